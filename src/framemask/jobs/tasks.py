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

from sqlalchemy.orm import Session

from framemask.errors import StorageError
from framemask.jobs.events_step import events_prefix, store_events
from framemask.jobs.pipeline import ProcessOutcome, process_video
from framemask.jobs.proxy_step import PROXY_KIND, proxy_task, queue_proxy
from framemask.jobs.rerender import RENDER_KIND, rerender_task
from framemask.jobs.run import AfterCommit, Finalize, TaskRun, fetch, put, put_bytes
from framemask.jobs.segments import delete_keys, process_segmented, segment_task
from framemask.service import videos
from framemask.store.layout import index_key, load_index, processed_key
from framemask.store.objects import delete_prefix

__all__ = ["HANDLERS", "TaskRun", "cleanup_work_dir", "mark_video_failed"]

log = logging.getLogger(__name__)


def process_video_task(run: TaskRun) -> Finalize | None:
    """Process one uploaded video: original -> processed master, index blob and per-frame boxes."""
    services, settings = run.services, run.services.settings
    if run.video_id is None:
        raise StorageError(f"job {run.job_id} has no video")
    video = videos.get_video(services, video_id=run.video_id)
    if video is None:  # deleted while queued: nothing to do
        return None
    bucket, key, stored_key = video.raw_bucket, video.raw_key, video.index_key
    videos.set_video(services, video_id=run.video_id, status="processing", error=None)
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
        finalize = _with_result(run, finalize, {"segments": len(segment_keys) // 2, "timings": timings})
        finalize = AfterCommit(finalize, delete_keys(services, segment_keys))
    return None if finalize is None else queue_proxy(run, finalize, outcome.index)


def _with_result(run: TaskRun, finalize: Finalize, result: dict[str, Any]) -> Finalize:
    def wrapped(session: Session) -> None:
        finalize(session)
        run.services.queue.set_result(session, run.job_id, result)

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
    if not videos.video_exists(services, video_id=run.video_id):  # deleted while we worked: leave nothing behind
        for name in (original_key, processed_index_key, processed_key(run.video_id)):
            services.store.delete(settings.bucket_processed, name)
        delete_prefix(services.store, thumbs, events_prefix(run.video_id))
        return None
    processed = videos.Processed(
        info=outcome.info,
        index=outcome.index,
        boxes=outcome.boxes,
        tracks=outcome.tracks,
        events=events,
        gop_starts=outcome.gop_starts,
        render=outcome.render,
        original_index_key=original_key,
    )
    video_id = run.video_id
    return lambda session: videos.record_processing(session, video_id=video_id, result=processed)


def mark_video_failed(video_id: str | None, message: str) -> Finalize:
    """The `on_final` of a job that will not be retried: the video shows the reason."""
    return lambda session: videos.mark_failed(session, video_id=video_id, message=message)


def cleanup_work_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


HANDLERS: dict[str, Callable[[TaskRun], Finalize | None]] = {
    "process_video": process_video_task,
    RENDER_KIND: rerender_task,
    "segment": segment_task,
    PROXY_KIND: proxy_task,
}


def _analysis_task(run: TaskRun) -> Finalize | None:
    from framemask.jobs.analysis import analysis_task  # the pose model's code only where a job runs it

    return analysis_task(run)


HANDLERS["analysis"] = _analysis_task
