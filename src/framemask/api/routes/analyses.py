"""Sampled analyses of a video (seed 003): `POST /api/videos/{id}/analyses` `{"kind": "pose", "rate": N}`
queues a job; the samples are fetched as JSON when it succeeded.

Pose keypoints describe how a person moves: personal data the masked video does not carry. So they exist
only when asked for — the POST is that request, and only the video's owner or an admin may make it — and
they are read under the rules of originals: editors and admins only, every request audited
(`analysis.create`, `analysis.read`). They are deleted with the video (cascade). The owner is the editor
named in the video's `created_by`, the name of the token that uploaded it (admins name tokens).
"""

from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import APIRouter, HTTPException, Path, Query, Request, Response, status

from framemask.api.deps import CurrentUser, ServicesDep, VideoDep, client_of, require_ready
from framemask.api.hardening import NO_STORE, scrub_paths
from framemask.api.schemas import (
    AnalysisCreate,
    AnalysisList,
    AnalysisPublic,
    AnalysisResult,
    AnalysisSamplePublic,
)
from framemask.detect.pose import KEYPOINTS
from framemask.service.analyses import (
    AnalysisState,
    analysis_samples,
    create_analysis,
    get_analysis,
    list_analyses,
)
from framemask.service.auth import Principal, audit
from framemask.service.context import Services
from framemask.store.models import Video

__all__ = ["router"]

router = APIRouter(prefix="/api/videos", tags=["analyses"])

AnalysisId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="analysis id (32 hex digits)")]
MAX_PAGE = 10_000


def _readers_only(user: Principal) -> None:
    if not user.allows("editor"):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "pose keypoints are personal data: editors and admins only")


def _public(state: AnalysisState) -> AnalysisPublic:
    row, job = state.analysis, state.job
    job_status = job.status if job is not None else "failed"
    return AnalysisPublic(
        id=row.id,
        video_id=row.video_id,
        kind=row.kind,
        rate=row.rate,
        status="running" if job_status == "waiting" else job_status,
        progress=job.progress if job is not None else 0.0,
        error=scrub_paths(job.error) if job is not None else "its job is gone",
        job_id=row.job_id,
        requested_by=row.requested_by,
        created_at=row.created_at,
        finished_at=row.finished_at,
        model=row.model,
        sample_count=row.sample_count,
        keypoint_names=list(KEYPOINTS),
    )


def _create(services: Services, video: Video, body: AnalysisCreate, user: Principal, client: str | None) -> str:
    row = create_analysis(services, video=video, kind=body.kind, rate=body.rate, requested_by=user.name)
    detail = {"analysis_id": row.id, "kind": body.kind, "rate": body.rate}
    audit(services.db, user, "analysis.create", video_id=video.id, detail=detail, client=client)
    assert row.job_id is not None
    services.announce(row.job_id)
    return row.id


@router.post(
    "/{video_id}/analyses",
    status_code=status.HTTP_201_CREATED,
    response_model=AnalysisPublic,
    responses={
        403: {"description": "not the video's owner (the editor named in `created_by`) or an admin"},
        409: {"description": "the video is not processed yet (its tracks give the people)"},
    },
)
async def create(
    request: Request,
    response: Response,
    video: VideoDep,
    services: ServicesDep,
    user: CurrentUser,
    body: AnalysisCreate,
) -> AnalysisPublic:
    """Ask for a sampled analysis (`pose`: 17 COCO keypoints of every tracked person on each sample's frame,
    from the original). This is the owner's request to store keypoints: only the video's owner or an admin."""
    if not (user.allows("admin") or (user.allows("editor") and video.created_by == user.name)):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only the video's owner or an admin may ask for pose keypoints")
    require_ready(video)
    analysis_id = await anyio.to_thread.run_sync(_create, services, video, body, user, client_of(request))
    state = await anyio.to_thread.run_sync(lambda: get_analysis(services, video_id=video.id, analysis_id=analysis_id))
    assert state is not None
    response.headers["Location"] = f"/api/videos/{video.id}/analyses/{analysis_id}"
    return _public(state)


@router.get("/{video_id}/analyses", response_model=AnalysisList)
def list_all(video: VideoDep, services: ServicesDep, user: CurrentUser, response: Response) -> AnalysisList:
    """The video's analyses with their state (editors and admins)."""
    _readers_only(user)
    response.headers["Cache-Control"] = NO_STORE
    return AnalysisList(video_id=video.id, items=[_public(s) for s in list_analyses(services, video_id=video.id)])


@router.get("/{video_id}/analyses/{analysis_id}", response_model=AnalysisResult)
def get_one(
    request: Request,
    response: Response,
    video: VideoDep,
    analysis_id: AnalysisId,
    services: ServicesDep,
    user: CurrentUser,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1, description="first sample (k) to return")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="samples to return")] = 1000,
) -> AnalysisResult:
    """The analysis and its samples (`offset`, `limit`), each tied to its frame (`seq`, `frame_time_ms`) with
    every tracked person's box and keypoints. Editors and admins; every read is audited (`analysis.read`)."""
    _readers_only(user)
    state = get_analysis(services, video_id=video.id, analysis_id=analysis_id)
    if state is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"video {video.id} has no analysis {analysis_id}")
    detail = {"analysis_id": analysis_id, "offset": offset, "limit": limit}
    audit(services.db, user, "analysis.read", video_id=video.id, detail=detail, client=client_of(request))
    response.headers["Cache-Control"] = NO_STORE  # personal data, like original pixels
    rows = analysis_samples(services, analysis_id=analysis_id, offset=offset, limit=limit)
    samples = [AnalysisSamplePublic.model_validate(r) for r in rows]
    return AnalysisResult(**_public(state).model_dump(), offset=offset, samples=samples)
