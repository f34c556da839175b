"""Sampled analyses as jobs: create one (row + job in one transaction), run it, store its samples.

A pose analysis reads the *original* (keypoints of mosaiced people would be noise) and the people of the
stored tracks (`processed_frame`: the ids the editor shows), runs `framemask.events.sampled.pose_samples`
and stores one `analysis_sample` row per sample in the job's completing transaction (a retried job
replaces them). Its state is its job's: nothing here changes when a job fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from framemask.errors import InputError
from framemask.media import FrameIndex
from framemask.media.sampling import fixed_rate_samples
from framemask.store.layout import load_index, local_copy
from framemask.store.models import Analysis, AnalysisSample, Job, ProcessedFrame, Video, utcnow

if TYPE_CHECKING:
    from collections.abc import Callable

    from framemask.jobs.context import Services
    from framemask.jobs.tasks import TaskRun

__all__ = ["ANALYSIS_KIND", "KINDS", "AnalysisState", "analysis_task", "create_analysis", "list_analyses"]

ANALYSIS_KIND = "analysis"
"""The job kind that runs analyses (its payload names the analysis)."""
KINDS = ("pose",)


@dataclass(frozen=True)
class AnalysisState:
    """An analysis row with its job (None once the job row is gone)."""

    analysis: Analysis
    job: Job | None


def create_analysis(services: Services, video: Video, kind: str, rate: float, requested_by: str) -> Analysis:
    """Insert the analysis and its job in one transaction (announce the job afterwards)."""
    if kind not in KINDS:
        raise InputError(f"unknown analysis kind {kind!r}; known: {', '.join(KINDS)}")
    with services.db.begin() as session:
        row = Analysis(video_id=video.id, kind=kind, rate=float(rate), requested_by=requested_by)
        session.add(row)
        session.flush()
        row.job_id = services.queue.enqueue(
            ANALYSIS_KIND,
            video_id=video.id,
            payload={"analysis_id": row.id},
            max_attempts=services.settings.job_max_attempts,
            session=session,
        )
        session.flush()
        session.expunge(row)
    return row


def _state(session: Session, row: Analysis) -> AnalysisState:
    return AnalysisState(row, session.get(Job, row.job_id) if row.job_id else None)


def list_analyses(services: Services, video_id: str) -> list[AnalysisState]:
    """The video's analyses, oldest first."""
    with services.db.session() as session:
        rows = session.scalars(select(Analysis).where(Analysis.video_id == video_id).order_by(Analysis.created_at))
        return [_state(session, r) for r in rows]


def get_analysis(services: Services, video_id: str, analysis_id: str) -> AnalysisState | None:
    with services.db.session() as session:
        row = session.get(Analysis, analysis_id)
        return _state(session, row) if row is not None and row.video_id == video_id else None


def analysis_samples(services: Services, analysis_id: str, offset: int, limit: int) -> list[AnalysisSample]:
    """Stored samples `offset` .. `offset + limit - 1` in sample order."""
    with services.db.session() as session:
        query = select(AnalysisSample).where(AnalysisSample.analysis_id == analysis_id)
        return list(session.scalars(query.order_by(AnalysisSample.k).offset(offset).limit(limit)))


def count_samples(services: Services, analysis_id: str) -> int:
    with services.db.session() as session:
        query = select(func.count()).select_from(AnalysisSample).where(AnalysisSample.analysis_id == analysis_id)
        return int(session.scalar(query) or 0)


# --- the job --------------------------------------------------------------------------------------------------


def _people_by_seq(services: Services, video_id: str, seqs: set[int]) -> dict[int, list[dict[str, Any]]]:
    """The stored person boxes (with track ids) of the sampled frames only."""
    out: dict[int, list[dict[str, Any]]] = {}
    ordered = sorted(seqs)
    with services.db.session() as session:
        for start in range(0, len(ordered), 500):
            chunk = ordered[start : start + 500]
            rows = session.execute(
                select(ProcessedFrame.seq, ProcessedFrame.boxes).where(
                    ProcessedFrame.video_id == video_id, ProcessedFrame.seq.in_(chunk)
                )
            )
            for seq, boxes in rows:
                out[int(seq)] = list((boxes or {}).get("person", []))
    return out


def analysis_task(run: TaskRun) -> Callable[[Session], None] | None:
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
    src = local_copy(services.store, bucket, key, settings.cache_dir / "videos" / video_id / Path(key).name)
    index = load_index(services.store, settings.bucket_processed, index_key) or FrameIndex.build(src)
    seqs = {s.seq for s in fixed_rate_samples(index, rate)}
    source = StoredPeople(_people_by_seq(services, video_id, seqs))
    estimator = load_pose()

    def progress(done: int, total: int) -> None:
        run.report(2.0 + 96.0 * done / max(total, 1), "pose")

    samples = pose_samples(src, rate, estimator, source, index=index, progress=progress)
    rows = [{"analysis_id": analysis_id, **s.to_json()} for s in samples]

    def finalize(session: Session) -> None:
        if session.get(Analysis, analysis_id) is None:  # the video went meanwhile
            return
        session.execute(delete(AnalysisSample).where(AnalysisSample.analysis_id == analysis_id))
        for start in range(0, len(rows), 1000):
            session.execute(insert(AnalysisSample), rows[start : start + 1000])
        analysis = session.get(Analysis, analysis_id)
        assert analysis is not None
        analysis.sample_count, analysis.model, analysis.finished_at = len(rows), estimator.name, utcnow()

    return finalize
