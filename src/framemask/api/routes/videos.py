"""Videos: upload (streamed), list, show, review state (PATCH), delete (rows and every stored object)."""

from __future__ import annotations

import logging
import shutil
from typing import Annotated

import anyio
from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from sqlalchemy import delete, func, select

from framemask.api.auth import audit, audit_row
from framemask.api.deps import CurrentUser, EditorUser, ServicesDep, VideoDep, client_of
from framemask.api.hardening import MAX_DB_INT, require_models
from framemask.api.schemas import ReviewUpdate, VideoCreated, VideoList, VideoPublic
from framemask.api.uploads import Upload, receive_upload
from framemask.errors import InputError, NotAVideoError
from framemask.jobs.context import Services
from framemask.jobs.tasks import apply_probe
from framemask.media import VideoInfo, probe
from framemask.store.layout import index_key, raw_key, save_index, store_file, video_prefix
from framemask.store.models import Job, Revision, Video, new_id, utcnow
from framemask.store.objects import delete_prefix

__all__ = ["create_video_row", "latest_job", "router"]

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/videos", tags=["videos"])

_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            }
        },
    }
}


def latest_job(services: Services, video_id: str) -> Job | None:
    with services.db.session() as session:
        query = select(Job).where(Job.video_id == video_id).order_by(Job.created_at.desc()).limit(1)
        return session.scalar(query)


def latest_revisions(services: Services, video_ids: list[str]) -> dict[str, int]:
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


def create_video_row(services: Services, video: Video, info: VideoInfo | None) -> str:
    """Insert the video and its processing job in one transaction; returns the job id."""
    with services.db.begin() as session:
        if info is not None:
            apply_probe(video, info)
        session.add(video)
        session.flush()
        job_id = services.queue.enqueue(
            "process_video", video_id=video.id, max_attempts=services.settings.job_max_attempts, session=session
        )
    return job_id


IMAGE_CONTAINERS = frozenset({"image2", "gif", "apng", "webp", "ico", "jpegxl_anim"})
"""FFmpeg demuxers of still (or animated) images; every `*_pipe` demuxer (png_pipe, jpeg_pipe, …) too."""
IMAGE_CODECS = frozenset(
    {"png", "apng", "mjpeg", "jpeg2000", "jpegls", "jpegxl", "bmp", "gif", "webp", "tiff", "qoi", "pam", "pbm",
     "pgm", "ppm", "pcx", "sgi", "targa", "xbm", "xpm", "xwd", "dds", "exr", "hdr", "psd", "sunrast", "pictor"}
)  # fmt: skip
"""Image codecs: refused in a one-frame file (a photo renamed .mp4); MJPEG/PNG video in AVI/MOV is fine."""


def refuse_images(info: VideoInfo, filename: str) -> None:
    """NotAVideoError for a still or animated image, whatever its file name says."""
    container = info.container.split(",")[0]
    if (
        container in IMAGE_CONTAINERS
        or container.endswith("_pipe")
        or (info.end_sequence <= 1 and info.codec in IMAGE_CODECS)
    ):
        raise NotAVideoError(f"{filename} is an image ({info.codec} in {container}), not a video; upload a video file")


def _validated(upload: Upload) -> VideoInfo:
    """Probe the spooled upload (decodes a frame and indexes every packet); NotAVideoError if not a video
    (images included)."""
    info = probe(upload.path)
    refuse_images(info, upload.filename)
    return info


def _store_upload(services: Services, video: Video, upload: Upload, info: VideoInfo) -> None:
    """The original into the raw bucket (moved, for a local store) and its frame index blob."""
    store_file(services.store, video.raw_bucket, video.raw_key, upload.path)
    if info.index is not None:
        bucket = services.settings.bucket_processed
        video.index_key = save_index(services.store, bucket, index_key(video.id), info.index)


def _forget_objects(services: Services, video: Video) -> None:
    services.store.delete(video.raw_bucket, video.raw_key)
    for bucket in services.settings.buckets:
        delete_prefix(services.store, bucket, video_prefix(video.id))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=VideoCreated,
    openapi_extra=_UPLOAD_BODY,
    responses={
        413: {"description": "over FRAMEMASK_MAX_UPLOAD_MB"},
        422: {"description": "not a playable video (images included)"},
        503: {"description": "detection models not ready: run `framemask models --prepare`"},
    },
)
async def upload_video(request: Request, response: Response, services: ServicesDep, user: EditorUser) -> VideoCreated:
    """Upload a video (multipart field `file`). It is validated, stored in the raw bucket and queued."""
    settings = services.settings
    await anyio.to_thread.run_sync(require_models, settings)
    upload = await receive_upload(request, settings.data_dir / "uploads", settings.max_upload_bytes)
    try:
        try:
            info = await anyio.to_thread.run_sync(_validated, upload)
        except InputError as exc:
            reason = str(exc).replace(str(upload.path), upload.filename)
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"not a playable video: {reason}") from None
        video_id = new_id()
        video = Video(
            id=video_id,
            filename=upload.filename,
            status="queued",
            size_bytes=upload.size,
            raw_bucket=settings.bucket_raw,
            raw_key=raw_key(video_id, upload.filename),
            created_by=user.name,
        )
        await anyio.to_thread.run_sync(_store_upload, services, video, upload, info)
        try:
            job_id = await anyio.to_thread.run_sync(create_video_row, services, video, info)
        except BaseException:
            _forget_objects(services, video)
            raise
    finally:
        upload.path.unlink(missing_ok=True)
    services.announce(job_id)
    response.headers["Location"] = f"/api/videos/{video_id}"
    return VideoCreated(id=video_id, status="queued", job_id=job_id)


@router.get("", response_model=VideoList, response_model_by_alias=True)
def list_videos(
    services: ServicesDep,
    _user: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_DB_INT)] = 0,
    status_filter: Annotated[str | None, Query(alias="status", pattern="^[a-z]+$")] = None,
) -> VideoList:
    """Videos, newest first."""
    with services.db.session() as session:
        query = select(Video)
        if status_filter:
            query = query.where(Video.status == status_filter)
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = session.scalars(query.order_by(Video.created_at.desc()).limit(limit).offset(offset)).all()
    revisions = latest_revisions(services, [v.id for v in rows])
    return VideoList(items=[VideoPublic.of(v, latest_revision=revisions.get(v.id)) for v in rows], total=total)


@router.get("/{video_id}", response_model=VideoPublic, response_model_by_alias=True)
def get_video(video: VideoDep, services: ServicesDep) -> VideoPublic:
    """Status, probe facts (incl. `endSequence`), the processing job's progress, the review state, and the
    latest corrections revision next to the one the final video shows (`rendered_revision`)."""
    latest = latest_revisions(services, [video.id]).get(video.id)
    return VideoPublic.of(video, latest_job(services, video.id), latest_revision=latest)


@router.patch("/{video_id}", response_model=VideoPublic, response_model_by_alias=True)
def update_review(
    video: VideoDep, services: ServicesDep, user: EditorUser, body: ReviewUpdate, request: Request
) -> VideoPublic:
    """Set the review state (`in_review`, `changes_requested`, `approved`; editors and admins). Audited
    (`video.review`, with the previous state)."""
    with services.db.begin() as session:
        row = session.get(Video, video.id, with_for_update=True)
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no video {video.id}")
        previous = row.review_state or "unreviewed"
        row.review_state, row.review_by, row.review_at = body.review_state, user.name, utcnow()
        detail = {"from": previous, "to": body.review_state}
        audit_row(session, user, "video.review", video_id=video.id, detail=detail, client=client_of(request))
        session.flush()
        session.expunge(row)
    latest = latest_revisions(services, [row.id]).get(row.id)
    return VideoPublic.of(row, latest_job(services, row.id), latest_revision=latest)


@router.delete("/{video_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_video(video: VideoDep, services: ServicesDep, user: EditorUser, request: Request) -> Response:
    """Delete the video's rows and every object it stored (original, processed, index, thumbnails)."""
    settings = services.settings
    with services.db.begin() as session:
        session.execute(delete(Video).where(Video.id == video.id))
    pool = getattr(request.app.state, "readers", None)
    if pool is not None:
        pool.drop_video(video.id)
    sprites = getattr(request.app.state, "sprites", None)
    if sprites is not None:
        sprites.forget(video.id)
    _forget_objects(services, video)
    shutil.rmtree(settings.cache_dir / "videos" / video.id, ignore_errors=True)
    audit(
        services.db,
        user,
        "video.delete",
        video_id=video.id,
        detail={"filename": video.filename},
        client=client_of(request),
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
