"""The review-proxy job: after a long-GOP original is processed, a short-GOP copy of it for the editor.

Queued by the processing job's own transaction (`queue_proxy`), so a video is `ready` without waiting for it;
until the proxy exists the editor's original frames are decoded from the original itself.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy.orm import Session

from framemask.errors import StorageError
from framemask.jobs.run import AfterCommit, Finalize, TaskRun, fetch, put, put_bytes
from framemask.media import FrameIndex
from framemask.redact.proxy import ProxyMismatch, make_review_proxy, needs_proxy
from framemask.service import videos
from framemask.service.context import Services
from framemask.store.layout import index_key, load_index, proxy_key

__all__ = ["PROXY_KIND", "proxy_task", "queue_missing_proxies", "queue_proxy"]

PROXY_KIND = "review_proxy"

log = logging.getLogger(__name__)


def _report(run: TaskRun, done: int, total: int) -> None:
    run.report(95.0 * done / max(total, 1), "proxy")


def _enqueue(services: Services, video_id: str, session: Session | None = None) -> str:
    return services.queue.enqueue(
        PROXY_KIND, video_id=video_id, max_attempts=services.settings.job_max_attempts, session=session
    )


def queue_proxy(run: TaskRun, finalize: Finalize, index: FrameIndex) -> Finalize:
    """`finalize`, and in its transaction a proxy job for the video when its original needs one (and the
    settings want proxies); the job is announced once that transaction committed."""
    services, video_id = run.services, run.video_id
    if video_id is None or not services.settings.review_proxy or not needs_proxy(index):
        return finalize
    queued: list[str] = []
    earlier = getattr(finalize, "after_commit", None)

    def with_job(session: Session) -> None:
        finalize(session)
        if videos.video_in(session, video_id=video_id):
            queued.append(_enqueue(services, video_id, session))

    def announce() -> None:
        if earlier is not None:
            earlier()
        for job_id in queued:
            services.announce(job_id)

    return AfterCommit(with_job, announce)


def queue_missing_proxies(services: Services) -> list[str]:
    """Queue a proxy job for every ready video whose long-GOP original has none yet (videos processed before
    proxies existed, or with `review_proxy` off); the ids of the jobs, each announced. A video whose original's
    index is not stored yet is left to the next run."""
    bucket, queued = services.settings.bucket_processed, []
    for video in videos.without_proxy(services, PROXY_KIND):
        index = load_index(services.store, bucket, video.index_key) if video.index_key else None
        if index is None or not needs_proxy(index):
            continue
        job_id = _enqueue(services, video.id)
        services.announce(job_id)
        queued.append(job_id)
    return queued


def proxy_task(run: TaskRun) -> Finalize | None:
    """Make and store the proxy of the video's original, then record its key on the video."""
    services, settings = run.services, run.services.settings
    if run.video_id is None:
        raise StorageError(f"job {run.job_id} has no video")
    video = videos.get_video(services, video_id=run.video_id)
    if video is None:  # deleted since: nothing to do
        return None
    video_id, bucket = run.video_id, settings.bucket_processed
    cache = settings.cache_dir / "videos" / video_id / Path(video.raw_key).name
    original = fetch(services.store, video.raw_bucket, video.raw_key, cache)
    index = load_index(services.store, bucket, video.index_key) if video.index_key else None
    out = run.work_dir / "proxy.mp4"
    try:
        made = make_review_proxy(original, out, index=index, progress=lambda done, total: _report(run, done, total))
    except ProxyMismatch as exc:  # the same every time: no retry, the original keeps serving its frames
        log.warning("video %s: no review proxy: %s", video_id, exc)
        result = {"proxy": f"not made: {exc}"}
        return lambda session: services.queue.set_result(session, run.job_id, result)
    put(services.store, bucket, proxy_key(video_id), out)
    put_bytes(services.store, bucket, index_key(video_id, "proxy"), made.to_bytes())
    run.report(99.0, "store")

    def record(session: Session) -> None:
        if not videos.record_proxy(session, video_id=video_id, key=proxy_key(video_id)):
            for key in (proxy_key(video_id), index_key(video_id, "proxy")):  # deleted while we worked
                services.store.delete(bucket, key)

    return record
