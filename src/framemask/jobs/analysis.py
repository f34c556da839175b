"""The job that runs a sampled analysis (`framemask.service.analyses` creates it and stores its samples).

A pose analysis reads the *original* (keypoints of mosaiced people would be noise) and the people the
latest corrections revision leaves (the tracks and ids the editor shows: excluded tracks get no keypoints,
a reviewer's manual person track does), runs `framemask.events.sampled.pose_samples`
and stores one `analysis_sample` row per sample in the job's completing transaction (a retried job
replaces them). Its state is its job's: nothing here changes when a job fails.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from framemask.jobs.run import fetch
from framemask.media import FrameIndex
from framemask.media.sampling import fixed_rate_samples
from framemask.service.analyses import people_by_seq, store_samples
from framemask.store.layout import load_index
from framemask.store.models import Analysis, Video

if TYPE_CHECKING:
    from framemask.jobs.run import Finalize, TaskRun

__all__ = ["analysis_task"]


def analysis_task(run: TaskRun) -> Finalize | None:
    """Run one analysis (pose) over the original and return the finalize that stores its samples."""
    from framemask.detect.pose import load_pose
    from framemask.events.sampled import StoredPeople, pose_samples

    services, settings = run.services, run.services.settings
    analysis_id = str(run.payload.get("analysis_id", ""))
    with services.db.session() as session:
        row = session.get(Analysis, analysis_id)
        video = session.get(Video, row.video_id) if row is not None else None
        if row is None or video is None:  # deleted while queued
            return None
        rate, video_id = row.rate, video.id
        bucket, key, index_key = video.raw_bucket, video.raw_key, video.index_key
    run.report(1.0, "fetch")
    src = fetch(services.store, bucket, key, settings.cache_dir / "videos" / video_id / Path(key).name)
    index = load_index(services.store, settings.bucket_processed, index_key) or FrameIndex.build(src)
    seqs = {s.seq for s in fixed_rate_samples(index, rate)}
    source = StoredPeople(people_by_seq(services, video=video, seqs=seqs))
    estimator = load_pose()

    def progress(done: int, total: int) -> None:
        run.report(2.0 + 96.0 * done / max(total, 1), "pose")

    samples = pose_samples(src, rate, estimator, source, index=index, progress=progress)
    rows = [s.to_json() for s in samples]

    def finalize(session: Session) -> None:
        store_samples(session, analysis_id=analysis_id, rows=rows, model=estimator.name)

    return finalize
