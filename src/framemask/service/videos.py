"""Videos: create one with its processing job, read, list, review, delete; copy probe facts onto the row.

A video and its processing job are inserted in one transaction; announcing the job to the workers comes
after the commit (`Services.announce`), so the row is the truth and a broker outage never loses or
duplicates a video (see `docs/scaling.md`, "Re-announce sweep").
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from framemask.errors import NotFoundError
from framemask.jobs.queue import BACKGROUND_KINDS
from framemask.media import FrameIndex, VideoInfo
from framemask.redact.boxes import CANDIDATES
from framemask.service.auth import Principal, audit_row
from framemask.service.context import Services
from framemask.service.events import replace_events
from framemask.store.layout import processed_key, video_prefix
from framemask.store.models import Job, ProcessedFrame, Revision, Track, Video, utcnow
from framemask.store.objects import delete_prefix

__all__ = [
    "PROCESS_KIND",
    "DuplicateVideoError",
    "Processed",
    "VideoPage",
    "apply_probe",
    "create_video",
    "delete_video",
    "existing_ids",
    "find_by_object",
    "forget_objects",
    "get_video",
    "idempotent_id",
    "latest_job",
    "latest_revisions",
    "list_videos",
    "mark_failed",
    "processed_at",
    "record_processing",
    "record_proxy",
    "set_review",
    "set_video",
    "upload_job",
    "video_exists",
    "video_in",
    "without_proxy",
]

PROCESS_KIND = "process_video"


class DuplicateVideoError(Exception):
    """The video's id (an idempotent upload) or its raw object (a repeated bucket event) is already known."""


def apply_probe(video: Video, info: VideoInfo) -> None:
    """Copy probe facts onto the row (shared by upload validation and processing)."""
    video.width, video.height, video.rotation = info.width, info.height, info.rotation
    video.coded_width, video.coded_height = info.coded_width, info.coded_height
    video.codec, video.pix_fmt = info.codec, info.pix_fmt
    video.sample_aspect_ratio = info.signal.to_json()["sample_aspect_ratio"]
    video.time_base = f"{info.time_base.numerator}/{info.time_base.denominator}"
    video.duration_ms, video.fps = round(float(info.duration_ms), 3), round(float(info.fps), 6)
    video.vfr, video.has_audio, video.end_sequence = bool(info.vfr), bool(info.has_audio), int(info.end_sequence)
    index = info.index
    if index is not None:
        video.key_frames = int(index.keys.sum())
        video.last_frame_ms = round(float(index.time_ms[-1]), 3)


def idempotent_id(*, owner: Principal, key: str) -> str:
    """The video id of an upload sent with `Idempotency-Key: key` by `owner`: the same on every retry, so a
    retried upload finds the video its first try created instead of making a second one."""
    material = f"{owner.token_id}\x00{owner.name}\x00{key}".encode()
    return hashlib.sha256(material).hexdigest()[:32]


def create_video(services: Services, *, video: Video, info: VideoInfo | None) -> str:
    """Insert the video and its processing job in one transaction; returns the job id.

    Raises `DuplicateVideoError` when the id or the raw object is taken (nothing is written then)."""
    try:
        with services.db.begin() as session:
            if info is not None:
                apply_probe(video, info)
            session.add(video)
            session.flush()
            return services.queue.enqueue(
                PROCESS_KIND, video_id=video.id, max_attempts=services.settings.job_max_attempts, session=session
            )
    except IntegrityError:
        raise DuplicateVideoError(video.id) from None


def get_video(services: Services, *, video_id: str) -> Video | None:
    with services.db.session() as session:
        return session.get(Video, video_id)


def video_in(session: Session, *, video_id: str) -> bool:
    """Whether the video still has a row, seen from inside `session`'s transaction."""
    return session.get(Video, video_id) is not None


def video_exists(services: Services, *, video_id: str) -> bool:
    return get_video(services, video_id=video_id) is not None


def existing_ids(services: Services, *, video_ids: list[str]) -> set[str]:
    """Which of `video_ids` still have a row (one query)."""
    if not video_ids:
        return set()
    with services.db.session() as session:
        return set(session.scalars(select(Video.id).where(Video.id.in_(video_ids))))


def find_by_object(services: Services, *, bucket: str, key: str) -> Video | None:
    """The video whose original is the object `bucket/key` (a bucket event for a known object)."""
    with services.db.session() as session:
        return session.scalar(select(Video).where(Video.raw_bucket == bucket, Video.raw_key == key))


def set_video(services: Services, *, video_id: str, **values: Any) -> None:
    """Set columns of a video (nothing if it was deleted meanwhile)."""
    with services.db.begin() as session:
        video = session.get(Video, video_id)
        if video is not None:
            for name, value in values.items():
                setattr(video, name, value)


def latest_job(services: Services, *, video_id: str) -> Job | None:
    """The video's latest job of its own: processing, a re-render or a final render. Not a segment of one
    (its parent stands for it) nor background work (a review proxy, queued after processing succeeded), so
    a client following `job` sees the work that decides the video's status."""
    return _own_job(services, video_id, Job.kind.not_in(BACKGROUND_KINDS), Job.created_at.desc())


def upload_job(services: Services, *, video_id: str) -> Job | None:
    """The processing job the video's upload queued (its first): what a replayed idempotent upload answers."""
    return _own_job(services, video_id, Job.kind == PROCESS_KIND, Job.created_at)


def _own_job(services: Services, video_id: str, kind: Any, order: Any) -> Job | None:
    """The first by `order` of the video's top-level jobs (no segment jobs) that match `kind`."""
    with services.db.session() as session:
        query = select(Job).where(Job.video_id == video_id, Job.parent_id.is_(None), kind)
        return session.scalar(query.order_by(order).limit(1))


def latest_revisions(services: Services, *, video_ids: list[str]) -> dict[str, int]:
    """The latest corrections revision number of each video that has one (one query)."""
    if not video_ids:
        return {}
    with services.db.session() as session:
        rows = session.execute(
            select(Revision.video_id, func.max(Revision.number))
            .where(Revision.video_id.in_(video_ids))
            .group_by(Revision.video_id)
        ).all()
    return {video_id: int(number) for video_id, number in rows}


def processed_at(services: Services, *, video_id: str) -> datetime | None:
    """When the video's processing job last succeeded."""
    with services.db.session() as session:
        return session.scalar(
            select(Job.finished_at)
            .where(Job.video_id == video_id, Job.kind == PROCESS_KIND, Job.status == "succeeded")
            .order_by(Job.finished_at.desc())
            .limit(1)
        )


@dataclass(frozen=True)
class VideoPage:
    videos: list[Video]
    total: int
    latest_revisions: dict[str, int]


def list_videos(services: Services, *, limit: int, offset: int, status: str | None = None) -> VideoPage:
    """Videos newest first, the total matching `status`, and their latest revision numbers."""
    with services.db.session() as session:
        query = select(Video)
        if status:
            query = query.where(Video.status == status)
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = list(session.scalars(query.order_by(Video.created_at.desc()).limit(limit).offset(offset)).all())
    return VideoPage(rows, total, latest_revisions(services, video_ids=[v.id for v in rows]))


def set_review(services: Services, *, video_id: str, state: str, by: Principal, client: str | None) -> Video:
    """Move the video to review `state`, audited (`video.review`, with the previous state)."""
    with services.db.begin() as session:
        row = session.get(Video, video_id, with_for_update=True)
        if row is None:
            raise NotFoundError(f"no video {video_id}")
        previous = row.review_state or "unreviewed"
        row.review_state, row.review_by, row.review_at = state, by.name, utcnow()
        detail = {"from": previous, "to": state}
        audit_row(session, by, "video.review", video_id=video_id, detail=detail, client=client)
        session.flush()
        session.expunge(row)
    return row


def forget_objects(services: Services, *, video: Video) -> None:
    """Delete every object the video stored (original, processed, indexes, thumbnails, finals)."""
    services.store.delete(video.raw_bucket, video.raw_key)
    for bucket in services.settings.buckets:
        delete_prefix(services.store, bucket, video_prefix(video.id))


def delete_video(services: Services, *, video: Video, by: Principal, client: str | None) -> None:
    """Delete the video's rows (cascading), its objects and this host's cached copy; audited."""
    with services.db.begin() as session:
        session.execute(delete(Video).where(Video.id == video.id))
    forget_objects(services, video=video)
    shutil.rmtree(services.settings.cache_dir / "videos" / video.id, ignore_errors=True)
    with services.db.begin() as session:
        audit_row(session, by, "video.delete", video_id=video.id, detail={"filename": video.filename}, client=client)


def _frame_rows(video_id: str, boxes_doc: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for entry in boxes_doc.get("sequence", []):
        boxes = {name: value for name, value in entry.items() if name != "seq"}
        rows.append({"video_id": video_id, "seq": int(entry["seq"]), "boxes": boxes})
    return rows


def _track_row(video_id: str, summary: dict[str, Any]) -> dict[str, Any]:
    data = {k: summary[k] for k in ("frames", "gaps", "mean_score", "flags")}
    return {
        "video_id": video_id,
        "number": summary["id"],
        "label": summary["label"],
        "source": "detector",
        "enabled": True,
        "first_seq": summary["start_seq"],
        "last_seq": summary["end_seq"],
        "data": data,
    }


@dataclass(frozen=True)
class Processed:
    """What processing a video produced for the database (its objects are stored before this is written)."""

    info: VideoInfo
    index: FrameIndex
    boxes: dict[str, Any]
    """The detected boxes of every frame in the seed format (one `processed_frame` row each)."""
    tracks: list[dict[str, Any]]
    events: list[dict[str, Any]]
    gop_starts: list[int]
    render: dict[str, Any]
    original_index_key: str


def record_processing(session: Session, *, video_id: str, result: Processed) -> None:
    """Write a processed video's rows (frames, tracks, events) and make it `ready`, inside the transaction that
    completes its job (so they land exactly once); nothing if the video was deleted meanwhile."""
    video = session.get(Video, video_id)
    if video is None:
        return
    rows = _frame_rows(video_id, result.boxes)
    session.execute(delete(ProcessedFrame).where(ProcessedFrame.video_id == video_id))
    for start in range(0, len(rows), 1000):
        session.execute(insert(ProcessedFrame), rows[start : start + 1000])
    session.execute(delete(Track).where(Track.video_id == video_id))
    if result.tracks:
        session.execute(insert(Track), [_track_row(video_id, t) for t in result.tracks])
    replace_events(session, video_id=video_id, rows=result.events)
    apply_probe(video, result.info)
    index = result.index
    video.end_sequence = index.end_sequence
    video.key_frames = int(index.keys.sum())
    video.last_frame_ms = float(index.time_ms[-1])
    video.index_key = result.original_index_key
    video.processed_key = processed_key(video_id)
    video.gop_starts = result.gop_starts
    video.render_params = result.render
    video.boxes_total = sum(
        len(v) for r in rows for k, v in r["boxes"].items() if isinstance(v, list) and k != CANDIDATES
    )
    video.status, video.error, video.updated_at = "ready", None, utcnow()


def without_proxy(services: Services, kind: str) -> list[Video]:
    """Ready videos with no review proxy and no job of `kind` pending or done (short-GOP originals, or videos
    processed before proxies existed). A job of `kind` that succeeded without a proxy found its timeline at
    odds with the original's: asking again would find the same."""
    pending = select(Job.id).where(
        Job.video_id == Video.id, Job.kind == kind, Job.status.in_(("queued", "running", "waiting", "succeeded"))
    )
    with services.db.session() as session:
        query = select(Video).where(Video.status == "ready", Video.proxy_key.is_(None), ~pending.exists())
        return list(session.scalars(query.order_by(Video.created_at)))


def record_proxy(session: Session, *, video_id: str, key: str) -> bool:
    """The original's review proxy is stored at `key`; False if the video was deleted meanwhile."""
    video = session.get(Video, video_id)
    if video is None:
        return False
    video.proxy_key = key
    return True


def mark_failed(session: Session, *, video_id: str | None, message: str) -> None:
    """The video shows why its processing failed for good."""
    video = session.get(Video, video_id) if video_id else None
    if video is not None:
        video.status, video.error, video.updated_at = "failed", message, utcnow()
