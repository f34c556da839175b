"""Jobs: status and live progress (Server-Sent Events)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated

import anyio
from fastapi import APIRouter, HTTPException, Path, status
from fastapi.responses import StreamingResponse

from framemask.api.deps import CurrentUser, ServicesDep
from framemask.api.schemas import JobPublic
from framemask.service.context import Services
from framemask.service.jobs import segments_of
from framemask.store.models import Job

__all__ = ["router"]

router = APIRouter(prefix="/api/jobs", tags=["jobs"])

JobId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="job id (32 hex digits)")]
FINAL = {"succeeded", "failed"}
POLL_SECONDS = 0.25
KEEPALIVE_SECONDS = 15.0


def _job(services: Services, job_id: str) -> Job:
    job = services.queue.get(job_id)
    if job is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no job {job_id}")
    return job


def _public(services: Services, job: Job) -> JobPublic:
    return JobPublic.of(job, segments_of(services, job))


@router.get("/{job_id}", response_model=JobPublic)
def get_job(job_id: JobId, services: ServicesDep, _user: CurrentUser) -> JobPublic:
    """Status, progress (percent, aggregated over the segments of a long video), attempts, the worker
    holding it (`stalled` once its lease lapsed) and the error of a failed job; `segments` lists the segment
    jobs (index, frames, status, worker, attempts) when the video was cut into segments."""
    return _public(services, _job(services, job_id))


async def _events(services: Services, job_id: str) -> AsyncIterator[str]:
    last: str | None = None
    quiet = 0.0
    while True:
        job = await anyio.to_thread.run_sync(services.queue.get, job_id)
        if job is None:
            yield "event: gone\ndata: {}\n\n"
            return
        payload = (await anyio.to_thread.run_sync(_public, services, job)).model_dump_json()
        if payload != last:
            last, quiet = payload, 0.0
            yield f"event: progress\ndata: {payload}\n\n"
        elif quiet >= KEEPALIVE_SECONDS:
            quiet = 0.0
            yield ": keep-alive\n\n"
        if job.status in FINAL:
            yield f"event: end\ndata: {json.dumps({'status': job.status})}\n\n"
            return
        await asyncio.sleep(POLL_SECONDS)
        quiet += POLL_SECONDS


@router.get(
    "/{job_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "progress events until the job ends"}},
)
def job_events(job_id: JobId, services: ServicesDep, _user: CurrentUser) -> StreamingResponse:
    """Live progress as Server-Sent Events: `progress` (the job as JSON) on every change, then `end`."""
    _job(services, job_id)
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(_events(services, job_id), media_type="text/event-stream", headers=headers)
