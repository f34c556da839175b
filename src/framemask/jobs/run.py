"""What a task handler is given (`TaskRun`) and returns (`Finalize`), and its storage calls with retries.

Shared by every handler module (`tasks`, `segments`, `rerender`, `events_step`), so none of them imports
another for these and the import graph of `jobs/` stays acyclic.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

from sqlalchemy.orm import Session
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from framemask.errors import StorageError
from framemask.jobs.pipeline import Report
from framemask.service.context import Services
from framemask.store.layout import local_copy
from framemask.store.objects import ObjectStore

__all__ = ["AfterCommit", "Finalize", "TaskRun", "fetch", "put", "put_bytes", "storage_retry"]

Finalize = Callable[[Session], None]
"""Run by the queue in the transaction that marks the job succeeded: a job's rows land exactly once."""

F = TypeVar("F", bound=Callable[..., Any])


class AfterCommit:
    """A finalize with a step that runs once its transaction committed (tidying up or announcing, which must
    neither roll back nor delay the results); the worker calls `after_commit` after completing the job."""

    def __init__(self, finalize: Finalize, after_commit: Callable[[], None]) -> None:
        self.finalize = finalize
        self.after_commit = after_commit

    def __call__(self, session: Session) -> None:
        self.finalize(session)


def storage_retry(func: F) -> F:
    """Retry transient storage hiccups (`StorageError`) quickly; anything else fails the attempt."""
    wrapped = retry(
        retry=retry_if_exception_type(StorageError),
        wait=wait_exponential(multiplier=0.5, max=8),
        stop=stop_after_attempt(4),
        reraise=True,
    )(func)
    return cast(F, wrapped)  # tenacity's wrapper keeps the signature


@dataclass(frozen=True)
class TaskRun:
    """One attempt at one job, as a handler sees it."""

    services: Services
    job_id: str
    attempt: int
    video_id: str | None
    payload: dict[str, Any]
    report: Report
    work_dir: Path


@storage_retry
def fetch(store: ObjectStore, bucket: str, key: str, cache: Path) -> Path:
    """A local copy of an object (reused when cached; the use is recorded for the LRU cache sweep)."""
    path = local_copy(store, bucket, key, cache)
    if path == cache:  # a cached download: mark it used (the cache sweep evicts least recently used first)
        with contextlib.suppress(OSError):
            os.utime(path)
    return path


@storage_retry
def put(store: ObjectStore, bucket: str, key: str, path: Path) -> None:
    store.put_file(bucket, key, path)


@storage_retry
def put_bytes(store: ObjectStore, bucket: str, key: str, data: bytes) -> None:
    with store.open_write(bucket, key) as fh:
        fh.write(data)
