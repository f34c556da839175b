"""Renders of corrections: queue one, find the active one and the last one, name and hash the finals.

Which revision a final shows is recorded in the succeeded render job's `result` (`{"revision", "final_key",
...}`), the audit trail of renders; the final lives at its own key per revision (`final_key`), so a render
never overwrites its input. The job itself is `framemask.jobs.rerender`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from framemask.media import FrameIndex
from framemask.service.auth import Principal, audit_row
from framemask.service.context import Services
from framemask.service.revisions import latest_revision
from framemask.store.layout import video_prefix
from framemask.store.models import Job, Video, utcnow
from framemask.store.objects import ObjectStore

__all__ = [
    "RENDER_KIND",
    "RenderBusyError",
    "active_render",
    "final_key",
    "final_revision",
    "last_render",
    "queue_render",
    "record_hashes",
    "record_render",
    "sha256_of",
    "span_ms",
]

RENDER_KIND = "rerender"
_FINAL_RE = re.compile(r"final-r(\d+)\.mp4$")


class RenderBusyError(Exception):
    """A render of the video is queued or running already (one at a time per video)."""


def final_key(video_id: str, revision: int | None) -> str:
    """Where the final video of a revision is stored (revision 0: no corrections)."""
    return f"{video_prefix(video_id)}final-r{revision or 0}.mp4"


def final_revision(video: Video) -> int | None:
    """The revision the video's current final shows (0: none applied), None without a final (from its key)."""
    if not video.final_key:
        return None
    match = _FINAL_RE.search(video.final_key)
    return int(match.group(1)) if match else None


def span_ms(index: FrameIndex, start_seq: int, end_seq: int, duration_ms: float | None = None) -> tuple[float, float]:
    """[start, end) ms of frames start_seq..end_seq: the time of start_seq to the time of end_seq + 1, or to
    the end of the video for the last frame (the later of the index's and the probed duration)."""
    start = index.time_of(start_seq)
    if end_seq < index.end_sequence:
        return start, index.time_of(end_seq + 1)
    return start, max(index.duration_ms, float(duration_ms or 0.0))


def sha256_of(store: ObjectStore, bucket: str, key: str, chunk: int = 1 << 20) -> str:
    """SHA-256 (hex) of a stored object, streamed (memory stays at one chunk)."""
    digest = hashlib.sha256()
    with store.open_read(bucket, key) as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def last_render(session: Session, *, video: Video) -> dict[str, Any] | None:
    """The result of the render that produced the video's current final, if there is one."""
    if video.final_key is None:
        return None
    query = (
        select(Job.result)
        .where(Job.video_id == video.id, Job.kind == RENDER_KIND, Job.status == "succeeded")
        .order_by(Job.finished_at.desc())
    )
    for result in session.scalars(query):
        if result and result.get("final_key") == video.final_key:
            return dict(result)
    return None


def active_render(session: Session, *, video_id: str) -> Job | None:
    """A queued or running render of the video (or one parked `waiting` while its segment jobs run)."""
    active = ("queued", "running", "waiting")
    query = select(Job).where(Job.video_id == video_id, Job.kind == RENDER_KIND, Job.status.in_(active))
    return session.scalars(query.limit(1)).first()


def queue_render(services: Services, *, video: Video, by: Principal, client: str | None) -> tuple[str, int | None]:
    """Queue a render of the latest revision (audited `video.render`); returns (job id, revision number).

    `RenderBusyError` if one is queued or running. The caller announces the job after this commits."""
    with services.db.begin() as session:
        if active_render(session, video_id=video.id) is not None:
            raise RenderBusyError(f"video {video.id} is already being rendered")
        row = latest_revision(session, video_id=video.id)
        number = row.number if row else None
        job_id = services.queue.enqueue(
            RENDER_KIND,
            video_id=video.id,
            payload={"revision": number},
            max_attempts=services.settings.job_max_attempts,
            session=session,
        )
        detail = {"revision": number, "job": job_id}
        audit_row(session, by, "video.render", video_id=video.id, detail=detail, client=client)
    return job_id, number


def record_render(*, job_id: str, video_id: str, key: str, summary: dict[str, Any]) -> Callable[[Session], None]:
    """The finalize of a render: the video shows the new final; the job's result records what it did."""

    def finalize(session: Session) -> None:
        video = session.get(Video, video_id)
        if video is None:
            return
        video.final_key, video.updated_at = key, utcnow()
        video.final_sha256 = summary.get("final_sha256")
        session.execute(update(Job).where(Job.id == job_id).values(result=summary))

    return finalize


def record_hashes(services: Services, *, video: Video) -> tuple[str, str | None]:
    """SHA-256 of the original and of the current final (computed once, then stored on the video)."""
    original = video.original_sha256
    if original is None:
        original = sha256_of(services.store, video.raw_bucket, video.raw_key)
        with services.db.begin() as session:
            session.execute(update(Video).where(Video.id == video.id).values(original_sha256=original))
    final = video.final_sha256
    if final is None and video.final_key is not None:
        final = sha256_of(services.store, services.settings.bucket_processed, video.final_key)
        with services.db.begin() as session:  # only if no render replaced the final meanwhile
            session.execute(
                update(Video).where(Video.id == video.id, Video.final_key == video.final_key).values(final_sha256=final)
            )
    return original, final
