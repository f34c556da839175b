"""Task handlers: resolve ids through the database, call the pure pipeline, store what it produced.

A handler returns a `finalize(session)` that the queue runs in the same transaction that marks the
job succeeded, so database results of a job land exactly once. Objects are written under fixed keys
before that, so a retried or taken-over job overwrites rather than duplicates them.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import delete, insert, update
from sqlalchemy.orm import Session

from framemask.errors import StorageError
from framemask.jobs.events_step import events_prefix, store_events
from framemask.jobs.pipeline import ProcessOutcome, process_video
from framemask.jobs.rerender import RENDER_KIND, rerender_task
from framemask.jobs.run import Finalize, TaskRun, fetch, put, put_bytes
from framemask.jobs.segments import delete_keys, process_segmented, segment_task
from framemask.redact.boxes import CANDIDATES
from framemask.service import events as service_events
from framemask.service.context import Services
from framemask.service.videos import apply_probe, video_exists
from framemask.store.layout import index_key, load_index, processed_key
from framemask.store.models import Job, ProcessedFrame, Track, Video, utcnow
from framemask.store.objects import delete_prefix

__all__ = ["HANDLERS", "TaskRun", "cleanup_work_dir", "mark_video_failed"]

log = logging.getLogger(__name__)


def _set_video(services: Services, video_id: str, **values: Any) -> None:
    with services.db.begin() as session:
        video = session.get(Video, video_id)
        if video is not None:
            for name, value in values.items():
                setattr(video, name, value)


def process_video_task(run: TaskRun) -> Finalize | None:
    """Process one uploaded video: original -> processed master, index blob and per-frame boxes."""
    services, settings = run.services, run.services.settings
    if run.video_id is None:
        raise StorageError(f"job {run.job_id} has no video")
    with services.db.session() as session:
        video = session.get(Video, run.video_id)
        if video is None:  # deleted while queued: nothing to do
            return None
        bucket, key, stored_key = video.raw_bucket, video.raw_key, video.index_key
    _set_video(services, run.video_id, status="processing", error=None)
    stored = load_index(services.store, settings.bucket_processed, stored_key)  # built at upload
    cache = settings.cache_dir / "videos" / run.video_id / Path(key).name
    src = fetch(services.store, bucket, key, cache)
    original_key = stored_key if stored is not None and stored_key else index_key(run.video_id)
    joined = None
    if settings.segments_on_queue:  # long videos: one job per segment, any worker (jobs/segments.py)
        joined = process_segmented(run, src, stored, original_key)
        if joined is not None and stored is None:
            stored = joined[0].index  # the fan-out stored the original's index
    if joined is not None:
        outcome, segment_keys, timings = joined
    else:
        outcome = process_video(
            src,
            run.work_dir,
            targets=settings.redact_targets,
            style=settings.redact_style,
            stride=settings.redact_stride,
            audio=settings.keep_audio,
            report=run.report,
            index=stored,
            jobs=settings.segment_jobs if not settings.segments_on_queue else 1,
            segment_seconds=settings.segment_seconds,
        )
    finalize = _store_outcome(run, outcome, stored is None, original_key, src)
    if joined is not None:
        if finalize is None:  # the video was deleted meanwhile
            delete_keys(services, segment_keys)()
            return None
        finalize = _with_result(run.job_id, finalize, {"segments": len(segment_keys) // 2, "timings": timings})
        finalize.after_commit = delete_keys(services, segment_keys)  # type: ignore[attr-defined]
    return finalize


def _with_result(job_id: str, finalize: Finalize, result: dict[str, Any]) -> Finalize:
    def wrapped(session: Session) -> None:
        finalize(session)
        session.execute(
            update(Job).where(Job.id == job_id).values(result=result).execution_options(synchronize_session=False)
        )

    return wrapped


def _store_outcome(
    run: TaskRun, outcome: ProcessOutcome, store_original: bool, original_key: str, original: Path
) -> Finalize | None:
    """Store a rendered outcome (master, both indexes, events) and return the finalize that writes its rows.

    Event tags are read from the `original` (objects near people are not mosaiced there); key frames and
    thumbnails always come from the processed master."""
    services, settings = run.services, run.services.settings
    assert run.video_id is not None
    if store_original:  # e.g. ingested by an S3 hook: this is the original's one indexing
        put_bytes(services.store, settings.bucket_processed, original_key, outcome.index.to_bytes())
    processed_index_key = index_key(run.video_id, "processed")
    put_bytes(services.store, settings.bucket_processed, processed_index_key, outcome.processed_index.to_bytes())
    put(services.store, settings.bucket_processed, processed_key(run.video_id), outcome.processed)
    thumbs = settings.bucket_thumbnails
    events = store_events(
        services.store,
        thumbs,
        run.video_id,
        outcome.processed,
        outcome.boxes,
        report=run.report,
        index=outcome.processed_index,
        original=original,
        original_index=outcome.index,
    )
    run.report(99.0, "store")
    if not video_exists(services, video_id=run.video_id):  # deleted while we worked: leave nothing behind
        for name in (original_key, processed_index_key, processed_key(run.video_id)):
            services.store.delete(settings.bucket_processed, name)
        delete_prefix(services.store, thumbs, events_prefix(run.video_id))
        return None
    return _finalize_processing(run.video_id, outcome, events, original_key)


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


def _finalize_processing(
    video_id: str, outcome: ProcessOutcome, events: list[dict[str, Any]], original_index_key: str
) -> Finalize:
    rows = _frame_rows(video_id, outcome.boxes)
    tracks = [_track_row(video_id, t) for t in outcome.tracks]
    info, index = outcome.info, outcome.index

    def finalize(session: Session) -> None:
        video = session.get(Video, video_id)
        if video is None:
            return
        session.execute(delete(ProcessedFrame).where(ProcessedFrame.video_id == video_id))
        for start in range(0, len(rows), 1000):
            session.execute(insert(ProcessedFrame), rows[start : start + 1000])
        session.execute(delete(Track).where(Track.video_id == video_id))
        if tracks:
            session.execute(insert(Track), tracks)
        service_events.replace_events(session, video_id=video_id, rows=events)
        apply_probe(video, info)
        video.end_sequence = index.end_sequence
        video.key_frames = int(index.keys.sum())
        video.last_frame_ms = float(index.time_ms[-1])
        video.index_key = original_index_key
        video.processed_key = processed_key(video_id)
        video.gop_starts = outcome.gop_starts
        video.render_params = outcome.render
        video.boxes_total = sum(
            len(v) for r in rows for k, v in r["boxes"].items() if isinstance(v, list) and k != CANDIDATES
        )
        video.status, video.error, video.updated_at = "ready", None, utcnow()

    return finalize


def mark_video_failed(video_id: str | None, message: str) -> Finalize:
    """The `on_final` of a job that will not be retried: the video shows the reason."""

    def finalize(session: Session) -> None:
        video = session.get(Video, video_id) if video_id else None
        if video is not None:
            video.status, video.error, video.updated_at = "failed", message, utcnow()

    return finalize


def cleanup_work_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


HANDLERS: dict[str, Callable[[TaskRun], Finalize | None]] = {
    "process_video": process_video_task,
    RENDER_KIND: rerender_task,
    "segment": segment_task,
}


def _analysis_task(run: TaskRun) -> Finalize | None:
    from framemask.jobs.analysis import analysis_task  # the pose model's code only where a job runs it

    return analysis_task(run)


HANDLERS["analysis"] = _analysis_task
