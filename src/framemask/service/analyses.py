"""Sampled analyses (pose keypoints) of a video: ask for one (row + job in one transaction), list, read, and
store what its job produced. Their state is their job's; keypoints go with the video (cascade)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from framemask.errors import InputError
from framemask.service import revisions
from framemask.service.context import Services
from framemask.store.models import Analysis, AnalysisSample, Job, Video, utcnow

__all__ = [
    "ANALYSIS_KIND",
    "KINDS",
    "AnalysisState",
    "analysis_samples",
    "create_analysis",
    "get_analysis",
    "list_analyses",
    "people_by_seq",
    "store_samples",
]

ANALYSIS_KIND = "analysis"
"""The job kind that runs analyses (its payload names the analysis)."""
KINDS = ("pose",)


@dataclass(frozen=True)
class AnalysisState:
    """An analysis row with its job (None once the job row is gone)."""

    analysis: Analysis
    job: Job | None


def create_analysis(services: Services, *, video: Video, kind: str, rate: float, requested_by: str) -> Analysis:
    """Insert the analysis and its job in one transaction (the caller announces the job afterwards)."""
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


def list_analyses(services: Services, *, video_id: str) -> list[AnalysisState]:
    """The video's analyses, oldest first."""
    with services.db.session() as session:
        rows = session.scalars(select(Analysis).where(Analysis.video_id == video_id).order_by(Analysis.created_at))
        return [_state(session, r) for r in rows]


def get_analysis(services: Services, *, video_id: str, analysis_id: str) -> AnalysisState | None:
    """The analysis if it belongs to the video."""
    with services.db.session() as session:
        row = session.get(Analysis, analysis_id)
        return _state(session, row) if row is not None and row.video_id == video_id else None


def analysis_samples(services: Services, *, analysis_id: str, offset: int, limit: int) -> list[AnalysisSample]:
    """Stored samples `offset` .. `offset + limit - 1` in sample order."""
    with services.db.session() as session:
        query = select(AnalysisSample).where(AnalysisSample.analysis_id == analysis_id)
        return list(session.scalars(query.order_by(AnalysisSample.k).offset(offset).limit(limit)))


def people_by_seq(services: Services, *, video: Video, seqs: set[int]) -> dict[int, list[dict[str, Any]]]:
    """The people on the given frames as the reviewer's latest revision leaves them (what the editor shows
    and the final masks): detected tracks after merges, splits and overrides, manual person tracks (their
    own boxes under `UNTRACKED`, -1, unless they extend a detected track), excluded ones left out. Without
    corrections: the stored tracks."""
    with services.db.session() as session:
        revision = revisions.latest_revision(session, video_id=video.id)
    effective = revisions.effective_boxes(services, video=video, revision=revision)
    return {
        seq: [{"x1": a, "y1": b, "x2": c, "y2": d, "track": t} for (a, b, c, d), t in effective.shown(seq, "person")]
        for seq in sorted(seqs)
    }


def store_samples(session: Session, *, analysis_id: str, rows: list[dict[str, Any]], model: str) -> None:
    """The analysis's samples become exactly `rows` (inside the job's completing transaction); nothing if the
    analysis went with its video meanwhile."""
    analysis = session.get(Analysis, analysis_id)
    if analysis is None:
        return
    session.execute(delete(AnalysisSample).where(AnalysisSample.analysis_id == analysis_id))
    for start in range(0, len(rows), 1000):
        session.execute(insert(AnalysisSample), [{"analysis_id": analysis_id, **r} for r in rows[start : start + 1000]])
    analysis.sample_count, analysis.model, analysis.finished_at = len(rows), model, utcnow()
