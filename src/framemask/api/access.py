"""What a frame or stream request checks and writes before any byte leaves, lean (no ORM object, few
worker-thread hops): who asks and the video's row, the variant guard, the access writes (the audit row of an
original, the token's last use), the object's location and local file, and `cache_control`.

Shared by the frame route (`routes/media.py`) and the stream routes (`routes/stream.py`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from stat import S_ISREG
from typing import Any

import anyio
import anyio.to_thread
from fastapi import HTTPException, Request, status

from framemask.api.deps import TokenProof, client_of, not_processed
from framemask.api.hardening import NO_STORE
from framemask.errors import NotFoundError
from framemask.service.auth import Principal, audit, audit_values, record_use, use_due
from framemask.service.context import Services
from framemask.service.streaming import StreamReads, StreamRows, StreamVideo, WouldBlock
from framemask.store.models import Video

__all__ = [
    "VIDEO_ID",
    "Caller",
    "cache_control",
    "check_variant",
    "guard_variant",
    "last_use_due",
    "object_of",
    "read_caller",
    "record_access",
    "record_stream",
    "stat_local",
]

VIDEO_ID = re.compile(r"[0-9a-f]{32}")
"""`VideoId`'s pattern."""


def cache_control(variant: str, seconds: int = 3600) -> str:
    """Originals (unmasked pixels) must never stay in a browser or proxy cache."""
    return NO_STORE if variant == "original" else f"private, max-age={seconds}"


def guard_variant(
    services: Services,
    video: Video,
    variant: str,
    user: Principal,
    request: Request,
    action: str,
    detail: dict[str, Any],
) -> None:
    """403 for viewers asking for originals, 409 if the processed (or final) file is not there yet; audit
    originals."""
    check_variant(video, variant, user)
    if variant == "original":
        audit(services.db, user, f"original.{action}", video_id=video.id, detail=detail, client=client_of(request))


def check_variant(video: Video | StreamVideo, variant: str, user: Principal) -> None:
    """`guard_variant` without the audit row (the stream writes it in its own thread hop)."""
    if variant == "original":
        if not user.allows("editor"):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "originals are for editors and admins only")
    elif video.processed_key is None:
        raise not_processed(video)
    elif variant == "final" and video.final_key is None:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"video {video.id} has no final video yet: save corrections and render them (POST /render)",
        )


@dataclass(frozen=True, slots=True)
class Caller:
    """Who asks (how they proved it) and the video's row, read without an ORM object."""

    proof: TokenProof
    user: Principal
    video: StreamVideo | None


_STREAM_CHECKS = 4
"""Stream look-ups and audit writes in worker threads at once: within the database pool, so no connection churn."""


def _local_path(request: Request, services: Services, bucket: str, key: str) -> Path | None:
    """The store's local path of an object, resolved once per app (object keys are immutable, and resolving
    one costs a dozen syscalls a request)."""
    paths: dict[tuple[str, str], Path] | None = getattr(request.app.state, "local_paths", None)
    if paths is None:
        paths = request.app.state.local_paths = {}
    found = paths.get((bucket, key))
    if found is None:
        found = services.store.local_path(bucket, key)
        if found is not None and len(paths) < 4096:
            paths[(bucket, key)] = found
    return found


def _stream_reads(request: Request, services: Services) -> StreamReads:
    reads: StreamReads | None = getattr(request.app.state, "stream_reads", None)
    if reads is None or reads.db is not services.db:
        reads = request.app.state.stream_reads = StreamReads(services.db)
    return reads


async def _stream_rows(request: Request, reads: StreamReads, proof: TokenProof, video_id: str) -> StreamRows:
    """Token and video rows: on the event loop when the database allows it without waiting (embedded
    SQLite), else in one worker-thread hop."""
    if reads.on_loop:
        try:
            return reads.rows_nowait(token_hash=proof.token_hash, token_id=proof.token_id, video_id=video_id)
        except WouldBlock:
            pass
    rows = partial(reads.rows, token_hash=proof.token_hash, token_id=proof.token_id, video_id=video_id)
    return await anyio.to_thread.run_sync(rows, limiter=_stream_limiter(request))


async def read_caller(request: Request, services: Services, proof: TokenProof, video_id: str) -> Caller:
    """The caller (401 if the token is unknown or revoked) and the video (None if gone), by `_stream_rows`."""
    rows = await _stream_rows(request, _stream_reads(request, services), proof, video_id)
    return Caller(proof, proof.principal(rows.token), rows.video)


def last_use_due(caller: Caller) -> bool:
    """Whether a bearer request owes its token's last-use write now (`use_due` claims the slot)."""
    token_id = caller.user.token_id
    return caller.proof.token_hash is not None and token_id is not None and use_due(token_id)


def record_access(
    request: Request,
    services: Services,
    user: Principal,
    video_id: str,
    action: str | None,
    detail: dict[str, Any],
    touch: bool,
) -> None:
    """The writes a stream or frame request may owe, in its one worker-thread hop: the audit row `action`
    of an original (before any byte is sent) and, when `last_use_due` said so, the bearer token's last use."""
    if action is not None:
        audit(services.db, user, action, video_id=video_id, detail=detail, client=client_of(request))
    if touch and user.token_id is not None:
        record_use(services.db, user.token_id)


async def record_stream(
    request: Request, services: Services, user: Principal, video_id: str, variant: str, touch: bool
) -> None:
    """The writes a stream request owes, before any byte is sent: the audit row of an original on the event
    loop when the database allows it without waiting (`_audited_on_loop`); else, or when the token's last use
    is due too (once a minute), all of them in one worker-thread hop."""
    action = "original.stream" if variant == "original" else None
    detail = {"range": request.headers.get("range")}
    if action is not None and not touch and _audited_on_loop(request, services, user, video_id, action, detail):
        return
    record = partial(record_access, request, services, user, video_id, action, detail, touch)
    await anyio.to_thread.run_sync(record, limiter=_stream_limiter(request))


def _audited_on_loop(
    request: Request, services: Services, user: Principal, video_id: str, action: str, detail: dict[str, Any]
) -> bool:
    """Write the audit row `action` on the event loop if the database allows it without waiting (embedded
    SQLite, write lock free: `StreamReads.audit_nowait`); False if the caller must write it in a worker thread."""
    reads = _stream_reads(request, services)
    if not reads.on_loop:
        return False
    try:
        reads.audit_nowait(audit_values(user, action, video_id=video_id, detail=detail, client=client_of(request)))
    except WouldBlock:
        return False
    return True


def stat_local(
    request: Request, services: Services, bucket: str, key: str, what: str
) -> tuple[Path | None, os.stat_result | None]:
    """The object's local path and `os.stat` (None, None in S3); 404 if the file is gone. On the loop: a stat
    of a cached path is one syscall, far cheaper than the thread hop it would take."""
    path = _local_path(request, services, bucket, key)
    if path is None:
        return None, None
    try:
        stat_result = os.stat(path)
    except FileNotFoundError:
        raise NotFoundError(f"stored file of video {what} is missing") from None
    if not S_ISREG(stat_result.st_mode):
        raise NotFoundError(f"stored file of video {what} is missing")
    return path, stat_result


def _stream_limiter(request: Request) -> anyio.CapacityLimiter:
    limiter: anyio.CapacityLimiter | None = getattr(request.app.state, "stream_limiter", None)
    if limiter is None:
        limiter = request.app.state.stream_limiter = anyio.CapacityLimiter(_STREAM_CHECKS)
    return limiter


def object_of(services: Services, video: Video | StreamVideo, variant: str) -> tuple[str, str]:
    if variant == "original":
        return video.raw_bucket, video.raw_key
    key = video.final_key if variant == "final" else video.processed_key
    assert key is not None
    return services.settings.bucket_processed, key
