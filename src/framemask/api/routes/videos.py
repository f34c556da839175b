"""Videos: upload (streamed), list, show, review state (PATCH), delete (rows and every stored object)."""

from __future__ import annotations

import logging
import secrets
from typing import Annotated

import anyio
from fastapi import APIRouter, Header, HTTPException, Query, Request, Response, status

from framemask.api.deps import CurrentUser, EditorUser, ServicesDep, VideoDep, client_of
from framemask.api.hardening import MAX_DB_INT, require_models
from framemask.api.schemas import JobPublic, ReviewUpdate, VideoCreated, VideoList, VideoPublic
from framemask.api.uploads import Upload, receive_upload
from framemask.errors import InputError
from framemask.media import VideoInfo, probe, refuse_images
from framemask.service import videos
from framemask.service.auth import Principal
from framemask.service.context import Services
from framemask.service.jobs import segments_of
from framemask.store.layout import index_key, raw_key, save_index, store_file
from framemask.store.models import Video, new_id

__all__ = ["router"]

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

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=8,
        max_length=128,
        pattern=r"^[\x21-\x7e]+$",
        description="a random key (e.g. a UUID) the client sends again when it retries this upload: a retry "
        "answers the video its first try created (`Idempotent-Replayed: true`) and never makes a second one",
    ),
]


def _validated(upload: Upload) -> VideoInfo:
    """Probe the spooled upload (decodes a frame and indexes every packet); NotAVideoError if not a video
    (images included)."""
    info = probe(upload.path)
    refuse_images(info, upload.filename)  # a photo renamed .mp4 is refused here, before it is stored
    return info


def _store_upload(services: Services, video: Video, upload: Upload, info: VideoInfo, attempt: str) -> None:
    """The original into the raw bucket (moved, for a local store) and its frame index blob."""
    store_file(services.store, video.raw_bucket, video.raw_key, upload.path)
    if info.index is not None:
        bucket = services.settings.bucket_processed
        video.index_key = save_index(services.store, bucket, index_key(video.id, attempt=attempt), info.index)


def _forget_attempt(services: Services, video: Video) -> None:
    """Delete what one idempotent upload attempt stored (its own keys), never its twin's objects."""
    services.store.delete(video.raw_bucket, video.raw_key)
    if video.index_key:
        services.store.delete(services.settings.bucket_processed, video.index_key)


def _replay(services: Services, response: Response, video_id: str) -> VideoCreated | None:
    """The answer to a retried idempotent upload whose video exists (None: it does not)."""
    video = videos.get_video(services, video_id=video_id)
    job = videos.upload_job(services, video_id=video_id) if video is not None else None
    if video is None or job is None:
        return None
    response.headers["Location"] = f"/api/videos/{video_id}"
    response.headers["Idempotent-Replayed"] = "true"
    return VideoCreated(id=video_id, status=video.status, job_id=job.id)


def _create(services: Services, video: Video, upload: Upload, info: VideoInfo, attempt: str) -> str | None:
    """Store the original and insert the rows; None when an idempotent twin won the race.

    An idempotent upload (`attempt` set) stores under keys of its own, so whichever twin commits first keeps
    its objects untouched and the loser deletes only its own."""
    _store_upload(services, video, upload, info, attempt)
    try:
        return videos.create_video(services, video=video, info=info)
    except videos.DuplicateVideoError:
        if not attempt:
            videos.forget_objects(services, video=video)
            raise
        _forget_attempt(services, video)
        return None
    except BaseException:
        if attempt:
            _forget_attempt(services, video)
        else:
            videos.forget_objects(services, video=video)
        raise


def _new_video(video_id: str, upload: Upload, bucket: str, user: Principal, attempt: str) -> Video:
    return Video(
        id=video_id,
        filename=upload.filename,
        status="queued",
        size_bytes=upload.size,
        raw_bucket=bucket,
        raw_key=raw_key(video_id, upload.filename, attempt),
        created_by=user.name,
    )


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
async def upload_video(
    request: Request,
    response: Response,
    services: ServicesDep,
    user: EditorUser,
    idempotency_key: IdempotencyKey = None,
) -> VideoCreated:
    """Upload a video (multipart field `file`). It is validated, stored in the raw bucket and queued.

    The answer is 201 once the video and its job are committed, also while the broker is down (the job is
    announced when it is back). With `Idempotency-Key`, a retry answers the first try's video."""
    settings = services.settings
    await anyio.to_thread.run_sync(require_models, settings)
    upload = await receive_upload(request, settings.data_dir / "uploads", settings.max_upload_bytes)
    try:
        video_id = videos.idempotent_id(owner=user, key=idempotency_key) if idempotency_key else new_id()
        if idempotency_key and (replayed := await anyio.to_thread.run_sync(_replay, services, response, video_id)):
            return replayed
        try:
            info = await anyio.to_thread.run_sync(_validated, upload)
        except InputError as exc:
            reason = str(exc).replace(str(upload.path), upload.filename)
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"not a playable video: {reason}") from None
        attempt = secrets.token_hex(4) if idempotency_key else ""
        video = _new_video(video_id, upload, settings.bucket_raw, user, attempt)
        job_id = await anyio.to_thread.run_sync(_create, services, video, upload, info, attempt)
    finally:
        upload.path.unlink(missing_ok=True)
    if job_id is None:  # a concurrent retry of the same idempotent upload created it
        replayed = await anyio.to_thread.run_sync(_replay, services, response, video_id)
        if replayed is None:
            raise HTTPException(status.HTTP_409_CONFLICT, "this Idempotency-Key was used for another upload")
        return replayed
    await anyio.to_thread.run_sync(services.announce, job_id)
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
    page = videos.list_videos(services, limit=limit, offset=offset, status=status_filter)
    items = [VideoPublic.of(v, latest_revision=page.latest_revisions.get(v.id)) for v in page.videos]
    return VideoList(items=items, total=page.total)


@router.get("/{video_id}", response_model=VideoPublic, response_model_by_alias=True)
def get_video(video: VideoDep, services: ServicesDep) -> VideoPublic:
    """Status, probe facts (incl. `endSequence`), the processing job's progress, the review state, and the
    latest corrections revision next to the one the final video shows (`rendered_revision`)."""
    return _public(services, video)


@router.patch("/{video_id}", response_model=VideoPublic, response_model_by_alias=True)
def update_review(
    video: VideoDep, services: ServicesDep, user: EditorUser, body: ReviewUpdate, request: Request
) -> VideoPublic:
    """Set the review state (`in_review`, `changes_requested`, `approved`; editors and admins). Audited
    (`video.review`, with the previous state)."""
    row = videos.set_review(services, video_id=video.id, state=body.review_state, by=user, client=client_of(request))
    return _public(services, row)


def _public(services: Services, video: Video) -> VideoPublic:
    latest = videos.latest_revisions(services, video_ids=[video.id]).get(video.id)
    job = videos.latest_job(services, video_id=video.id)
    public = JobPublic.of(job, segments_of(services, job)) if job else None
    return VideoPublic.of(video, public, latest_revision=latest)


@router.delete("/{video_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_video(video: VideoDep, services: ServicesDep, user: EditorUser, request: Request) -> Response:
    """Delete the video's rows and every object it stored (original, processed, index, thumbnails)."""
    pool = getattr(request.app.state, "readers", None)
    if pool is not None:
        pool.drop_video(video.id)
    sprites = getattr(request.app.state, "sprites", None)
    if sprites is not None:
        sprites.forget(video.id)
    videos.delete_video(services, video=video, by=user, client=client_of(request))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
