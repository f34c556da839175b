"""Where a video's objects live: one key prefix per video in every bucket, so deleting is exhaustive."""

from __future__ import annotations

import re
import threading
from pathlib import Path, PurePosixPath

from framemask.store.objects import ObjectStore, validate_key

__all__ = ["index_key", "local_copy", "processed_key", "raw_key", "thumbnail_key", "video_prefix"]

_SUFFIX_RE = re.compile(r"^\.[A-Za-z0-9]{1,8}$")
_copy_locks: dict[Path, threading.Lock] = {}
_copy_locks_guard = threading.Lock()


def video_prefix(video_id: str) -> str:
    return f"videos/{video_id}/"


def raw_key(video_id: str, filename: str) -> str:
    """The original's key; keeps a sane extension (demuxers like it) and nothing else of the name."""
    suffix = PurePosixPath(filename.replace("\\", "/")).suffix.lower()
    return f"{video_prefix(video_id)}original{suffix if _SUFFIX_RE.match(suffix) else ''}"


def processed_key(video_id: str) -> str:
    return f"{video_prefix(video_id)}processed.mp4"


def index_key(video_id: str) -> str:
    return f"{video_prefix(video_id)}index.npz"


def thumbnail_key(video_id: str, name: str) -> str:
    return validate_key(f"{video_prefix(video_id)}{name}")


def _lock_for(path: Path) -> threading.Lock:
    with _copy_locks_guard:
        return _copy_locks.setdefault(path, threading.Lock())


def local_copy(store: ObjectStore, bucket: str, key: str, cache_path: Path) -> Path:
    """A local file with the object's bytes: the object itself for a local store, else a cached download.

    The download is atomic and happens once per path even with concurrent callers; a cached copy
    whose size differs from the object is fetched again.
    """
    direct = store.local_path(bucket, key)
    if direct is not None:
        return direct
    with _lock_for(cache_path):
        size = store.size(bucket, key)
        if cache_path.is_file() and cache_path.stat().st_size == size:
            return cache_path
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        store.get_file(bucket, key, cache_path)
        return cache_path


def store_file(store: ObjectStore, bucket: str, key: str, path: Path) -> None:
    """Put a finished local file into the store, moving it when the store is a local directory."""
    from framemask.store.objects import LocalStore

    if isinstance(store, LocalStore):
        store.adopt_file(bucket, key, path)
    else:
        store.put_file(bucket, key, path)
