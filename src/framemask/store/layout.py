"""Where a video's objects live: one key prefix per video in every bucket, so deleting is exhaustive."""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path, PurePosixPath
from typing import Literal

from framemask.media.index import FrameIndex
from framemask.store.objects import ObjectStore, validate_key

__all__ = [
    "INDEX_SUFFIX",
    "Variant",
    "index_key",
    "load_index",
    "local_copy",
    "processed_key",
    "proxy_key",
    "raw_key",
    "save_index",
    "segment_key",
    "segments_prefix",
    "sidecar_index_key",
    "thumbnail_key",
    "video_prefix",
]

log = logging.getLogger(__name__)

Variant = Literal["original", "processed", "proxy"]
INDEX_SUFFIX = ".index"
"""Every stored frame index blob (`FrameIndex.to_bytes`) ends in this; there is no other name for it."""

_SUFFIX_RE = re.compile(r"^\.[A-Za-z0-9]{1,8}$")
_COPY_LOCK_STRIPES = 64
_copy_locks = tuple(threading.Lock() for _ in range(_COPY_LOCK_STRIPES))
"""Striped: a fixed set shared by hash of the cache path, so serving many videos never grows a lock table
(two paths sharing a stripe only wait for each other's download)."""


def video_prefix(video_id: str) -> str:
    return f"videos/{video_id}/"


def raw_key(video_id: str, filename: str, attempt: str = "") -> str:
    """The original's key; keeps a sane extension (demuxers like it) and nothing else of the name.

    `attempt` (an idempotent upload's own nonce) makes the key unique to one upload attempt: two concurrent
    tries of one `Idempotency-Key` share the video id, and the loser must not overwrite the winner's object."""
    suffix = PurePosixPath(filename.replace("\\", "/")).suffix.lower()
    tag = f"-{attempt}" if attempt else ""
    return f"{video_prefix(video_id)}original{tag}{suffix if _SUFFIX_RE.match(suffix) else ''}"


def processed_key(video_id: str) -> str:
    return f"{video_prefix(video_id)}processed.mp4"


def proxy_key(video_id: str) -> str:
    """The original's review proxy (`framemask.redact.proxy`), in the processed bucket."""
    return f"{video_prefix(video_id)}proxy.mp4"


def index_key(video_id: str, variant: Variant = "original", attempt: str = "") -> str:
    """The frame index blob of a video's original, processed master or proxy (in the processed bucket).

    Built once per file: the original's at upload (or by the first processing when it arrived by an S3
    hook), the processed master's right after rendering it. Readers load it with `load_index`. `attempt`:
    as for `raw_key` (the video row records which key its index has).
    """
    if variant not in ("original", "processed", "proxy"):
        raise ValueError(f"unknown variant {variant!r}")
    return f"{video_prefix(video_id)}{variant}{f'-{attempt}' if attempt else ''}{INDEX_SUFFIX}"


def segments_prefix(video_id: str) -> str:
    """Where a video's segment outputs live while its processing job joins them (processed bucket)."""
    return f"{video_prefix(video_id)}segments/"


def segment_key(video_id: str, part: int, revision: int, digest: str, ext: str) -> str:
    """One segment's output (`ext`: `mp4` its part video, `npz` its rows), derived from (video, segment,
    revision, hash of the mask and encoder settings): a re-run overwrites it, never adds a second one."""
    if not re.fullmatch(r"[0-9a-f]{6,64}", digest) or ext not in ("mp4", "npz") or part < 0 or revision < 0:
        raise ValueError(f"bad segment key parts {part}, {revision}, {digest!r}, {ext!r}")
    return f"{segments_prefix(video_id)}r{revision}-{digest}/{part:05d}.{ext}"


def sidecar_index_key(key: str) -> str:
    """The index blob stored next to an object that is not a video of the service (an RTSP recording)."""
    return f"{key}{INDEX_SUFFIX}"


def load_index(store: ObjectStore, bucket: str, key: str | None) -> FrameIndex | None:
    """The one loader of stored frame indexes: the blob at `key`, or None if there is none (or it is unreadable)."""
    if not key or not store.exists(bucket, key):
        return None
    with store.open_read(bucket, key) as fh:
        blob = fh.read()
    try:
        return FrameIndex.from_bytes(blob)
    except ValueError:
        log.warning("ignoring unreadable stored frame index %s/%s", bucket, key)
        return None


def save_index(store: ObjectStore, bucket: str, key: str, index: FrameIndex) -> str:
    """Store `index` at `key`; returns the key."""
    with store.open_write(bucket, key) as fh:
        fh.write(index.to_bytes())
    return key


def thumbnail_key(video_id: str, name: str) -> str:
    return validate_key(f"{video_prefix(video_id)}{name}")


def _lock_for(path: Path) -> threading.Lock:
    return _copy_locks[hash(path) % _COPY_LOCK_STRIPES]


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
