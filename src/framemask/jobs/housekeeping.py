"""Local scratch space: orphaned upload spools and job scratch directories, and disk-full incidents.

A server killed mid-upload leaves its spool file in `data/uploads/`; a worker killed mid-job leaves its
scratch directory in `cache/jobs/`. `sweep()` removes what nobody uses any more, on startup and then every
`FRAMEMASK_SWEEP_SECONDS` (`Housekeeper`):

- a spool file is in use while its writer holds an exclusive `flock` on it (taken before it gets its
  final name, kept until the request is done; a killed process loses it), so a spool nobody locks is an
  orphan at any age, also one of another process sharing the data directory;
- a job scratch directory `<job id>-<claim token>` is in use while this process runs it, or while the job
  table says that claim still holds a live lease (another worker process);
- partial objects of the local store (`.name.<uuid>.part`) older than `FRAMEMASK_SCRATCH_MAX_AGE_SECONDS`.

Disk full: `is_disk_full()` recognises ENOSPC/EDQUOT anywhere in an exception's chain (also SQLite's
"database or disk is full"); `DISK_FULL` logs one line per incident instead of a traceback per try. A small
reserve file (`data/.disk-reserve`, `FRAMEMASK_DISK_RESERVE_MB`) is given up when a job stops for lack of space,
so the service can still record why it waits (the SQLite database usually lives on the same disk); it is made
again once space is back.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from framemask.errors import DiskFullError
from framemask.service import videos
from framemask.store.models import utcnow
from framemask.store.objects import LocalStore

if TYPE_CHECKING:
    from framemask.service.context import Services
    from framemask.settings import Settings

__all__ = [
    "DISK_FULL",
    "Housekeeper",
    "SweepResult",
    "active_work_dirs",
    "disk_full_error",
    "is_disk_full",
    "lock_spool",
    "spool_dir",
    "sweep",
    "sweep_video_cache",
]

log = logging.getLogger(__name__)

SPOOL_PREFIX = "upload-"
_NEW_SUFFIX = ".new"
_PARTIAL_SUFFIX = ".part"
_NEW_GRACE_SECONDS = 60.0
"""A spool file still being created (`.upload-*.new`, before its lock) is left alone this long."""
_DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
_DISK_FULL_TEXT = ("database or disk is full", "no space left on device", "disk quota exceeded")


# --- disk full ------------------------------------------------------------------------------------------------


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether `exc` (or anything in its cause/context chain) is a full disk or an exceeded quota."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, DiskFullError):
            return True
        if isinstance(exc, OSError) and exc.errno in _DISK_FULL_ERRNOS:
            return True
        if any(text in str(exc).lower() for text in _DISK_FULL_TEXT):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def disk_full_error(exc: BaseException, where: str, retry_after: float) -> DiskFullError:
    """A readable `DiskFullError` for `exc` (no paths: the message reaches API clients)."""
    if isinstance(exc, DiskFullError):
        return exc
    return DiskFullError(
        f"no space left on the server's disk ({where}); try again in {retry_after:g} s", retry_after=retry_after
    )


RESERVE_NAME = ".disk-reserve"


def ensure_reserve(path: Path, size: int) -> bool:
    """Make the reserve file (`size` bytes really allocated) if it is missing; False if there is no room."""
    if size <= 0 or (path.is_file() and path.stat().st_size >= size):
        return True
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as fh:
            os.posix_fallocate(fh.fileno(), 0, size)
        return True
    except OSError:
        path.unlink(missing_ok=True)
        return False


class _Incidents:
    """One log line when a disk-full incident starts, one when it ends (not one traceback per try)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._since: float | None = None
        self._count = 0
        self.reserve: tuple[Path, int] | None = None
        """The reserve file and its size (set by `Housekeeper`; given up by a job that waits for space)."""

    @property
    def active(self) -> bool:
        return self._since is not None

    def report(self, where: str, exc: BaseException) -> None:
        with self._lock:
            self._count += 1
            if self._since is not None:
                return
            self._since = time.monotonic()
        log.error("disk full (%s): %s; writes answer 503 and jobs wait until space is back", where, _short(exc))

    def give_up_reserve(self) -> None:
        """Free the reserve: room to record why a job waits (the job itself no longer writes)."""
        if self.reserve is not None:
            self.reserve[0].unlink(missing_ok=True)

    def space_back(self) -> bool:
        """True unless an incident is on and the reserve cannot be made again yet (then it ends the incident)."""
        if self._since is None:
            return True
        if self.reserve is not None and not ensure_reserve(*self.reserve):
            return False
        self.resolved()
        return True

    def resolved(self) -> None:
        if self._since is None:
            return
        with self._lock:
            if self._since is None:
                return
            seconds, count = time.monotonic() - self._since, self._count
            self._since, self._count = None, 0
        log.warning("disk space is back after %.0f s (%d failed writes); resuming", seconds, count)
        if self.reserve is not None:
            ensure_reserve(*self.reserve)


DISK_FULL = _Incidents()


def _short(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return str(text).splitlines()[0][:200]


# --- spools -------------------------------------------------------------------------------------------------


def spool_dir(settings: Settings) -> Path:
    return settings.data_dir / "uploads"


def jobs_scratch_dir(settings: Settings) -> Path:
    return settings.cache_dir / "jobs"


def lock_spool(directory: Path, name: str) -> tuple[Path, BinaryIO]:
    """Create `directory/name` already locked: (path, open binary file holding the lock).

    The file is born as `.name.new`, locked, then renamed, so a sweep never sees an unlocked live spool.
    """
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / name
    new = directory / f".{name}{_NEW_SUFFIX}"
    fh = open(new, "w+b")  # noqa: SIM115 - the caller owns it (the lock lives as long as the file is open)
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        os.replace(new, final)
    except BaseException:
        fh.close()
        new.unlink(missing_ok=True)
        raise
    return final, fh


def _remove_if_unlocked(path: Path) -> bool:
    try:
        fh = open(path, "rb")  # noqa: SIM115
    except OSError:
        return False
    with fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False  # its writer is alive
        path.unlink(missing_ok=True)
        return True


# --- job scratch --------------------------------------------------------------------------------------------

_active: set[Path] = set()
_active_lock = threading.Lock()


@contextlib.contextmanager
def active_work_dirs(path: Path) -> Iterator[Path]:
    """Mark a job scratch directory as used by this process while the block runs."""
    with _active_lock:
        _active.add(path)
    try:
        yield path
    finally:
        with _active_lock:
            _active.discard(path)


def _scratch_in_use(services: Services, path: Path) -> bool:
    with _active_lock:
        if path in _active:
            return True
    job_id, _, token8 = path.name.rpartition("-")
    if not job_id or not token8:
        return False
    job = services.queue.get(job_id)
    if job is None or job.status != "running" or not job.claim or job.lease_until is None:
        return False
    return job.claim.startswith(token8) and job.lease_until > utcnow()


# --- sweeping -----------------------------------------------------------------------------------------------


@dataclass
class SweepResult:
    spools: int = 0
    scratch_dirs: int = 0
    partial_objects: int = 0
    cached_videos: int = 0

    @property
    def total(self) -> int:
        return self.spools + self.scratch_dirs + self.partial_objects + self.cached_videos


# --- cached originals ---------------------------------------------------------------------------------------

CACHE_IN_USE_SECONDS = 120.0
"""A cached original used this recently (a job fetched it, a reader touched it) is never evicted for space."""


def _dir_size_and_use(path: Path) -> tuple[int, float]:
    size, used = 0, 0.0
    for item in path.rglob("*"):
        try:
            st = item.stat()
        except OSError:
            continue
        if item.is_file():
            size += st.st_size
        used = max(used, st.st_mtime, st.st_atime)
    return size, used


def sweep_video_cache(services: Services, now: float | None = None) -> int:
    """Bound and clean `cache/videos/<id>/` (local copies of unmasked originals on workers and API hosts).

    - the copy of a video that is no longer in the database is removed: a `DELETE` on one host reaches every
      worker within `FRAMEMASK_SWEEP_SECONDS`;
    - beyond `FRAMEMASK_VIDEO_CACHE_MB` the least recently used copies go first (not one used in the last
      `CACHE_IN_USE_SECONDS`; a reader with the file open keeps reading it anyway).
    Returns how many directories were removed."""
    root = services.settings.cache_dir / "videos"
    if not root.is_dir():
        return 0
    now = time.time() if now is None else now
    dirs = [d for d in root.iterdir() if d.is_dir()]
    if not dirs:
        return 0
    known = videos.existing_ids(services, video_ids=[d.name for d in dirs])
    removed = 0
    kept: list[tuple[float, int, Path]] = []
    for path in dirs:
        if path.name not in known:
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
            continue
        size, used = _dir_size_and_use(path)
        kept.append((used, size, path))
    limit = services.settings.video_cache_mb * 1024 * 1024
    total = sum(size for _, size, _ in kept)
    for used, size, path in sorted(kept):  # least recently used first
        if total <= limit:
            break
        if now - used < CACHE_IN_USE_SECONDS:
            continue
        shutil.rmtree(path, ignore_errors=True)
        total -= size
        removed += 1
    return removed


def sweep(services: Services) -> SweepResult:
    """Remove orphaned spools, job scratch directories and stale partial objects (see the module doc)."""
    settings = services.settings
    result = SweepResult()
    now = time.time()
    spools = spool_dir(settings)
    if spools.is_dir():
        for path in spools.iterdir():
            name = path.name
            if name.startswith(SPOOL_PREFIX) and path.is_file():
                result.spools += _remove_if_unlocked(path)
            elif (
                name.startswith(f".{SPOOL_PREFIX}")
                and name.endswith(_NEW_SUFFIX)
                and _age(path, now) > _NEW_GRACE_SECONDS
            ):
                path.unlink(missing_ok=True)
                result.spools += 1
    scratch = jobs_scratch_dir(settings)
    if scratch.is_dir():
        for path in scratch.iterdir():
            try:
                if path.is_dir() and not _scratch_in_use(services, path):
                    shutil.rmtree(path, ignore_errors=True)
                    result.scratch_dirs += 1
            except Exception as exc:  # the database may be unreachable: keep everything this time
                log.debug("scratch sweep skipped %s: %s", path.name, exc)
                break
    objects = settings.objects_dir
    if isinstance(services.store, LocalStore) and objects.is_dir():
        limit = settings.scratch_max_age_seconds
        for path in objects.rglob(f".*{_PARTIAL_SUFFIX}"):
            if path.is_file() and _age(path, now) > limit:
                path.unlink(missing_ok=True)
                result.partial_objects += 1
    try:
        result.cached_videos = sweep_video_cache(services, now)
    except Exception as exc:  # the database may be unreachable: keep every copy this time
        log.debug("video cache sweep skipped: %s", exc)
    if result.total:
        log.info(
            "swept %d orphaned upload spools, %d job scratch dirs, %d partial objects, %d cached originals",
            result.spools,
            result.scratch_dirs,
            result.partial_objects,
            result.cached_videos,
        )
    return result


def _age(path: Path, now: float) -> float:
    try:
        return now - path.stat().st_mtime
    except OSError:
        return 0.0


class Housekeeper(threading.Thread):
    """Sweeps on start (synchronously, before the first request) and then every `sweep_seconds`."""

    def __init__(self, services: Services) -> None:
        super().__init__(name="framemask-housekeeping", daemon=True)
        self.services = services
        self._halt = threading.Event()

    def start(self) -> None:
        settings = self.services.settings
        DISK_FULL.reserve = (settings.data_dir / RESERVE_NAME, settings.disk_reserve_mb * 1024 * 1024)
        self._sweep()
        super().start()

    def run(self) -> None:
        while not self._halt.wait(self.services.settings.sweep_seconds):
            self._sweep()

    def _sweep(self) -> None:
        try:
            sweep(self.services)
        except Exception:
            log.warning("housekeeping sweep failed", exc_info=True)
        if DISK_FULL.reserve is not None and not DISK_FULL.active:
            ensure_reserve(*DISK_FULL.reserve)

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(timeout=5)
