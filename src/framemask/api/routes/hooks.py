"""Storage event notifications: an object landing in the raw bucket starts processing (seed 002:
upload -> bucket event -> queue -> worker). Accepts the S3 / MinIO event JSON (`Records[]`)."""

from __future__ import annotations

import hmac
from pathlib import PurePosixPath
from typing import Annotated, Any
from urllib.parse import unquote_plus

from fastapi import APIRouter, Body, Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, ConfigDict, Field, StrictStr
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from framemask.api.auth import Principal, audit
from framemask.api.deps import ServicesDep, _bearer, current_principal
from framemask.api.hardening import require_models
from framemask.api.routes.videos import create_video_row
from framemask.errors import InputError, NotFoundError
from framemask.jobs.context import Services
from framemask.store.models import Video, new_id
from framemask.store.objects import validate_key

__all__ = ["router"]

router = APIRouter(prefix="/api/hooks", tags=["hooks"])

OWN_PREFIX = "videos/"  # objects the API itself stored: their upload already queued them


def hook_principal(
    services: ServicesDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    """The webhook secret (as MinIO sends it: `Authorization: Bearer <secret>`) or an admin token."""
    secret = services.settings.webhook_secret
    given = credentials.credentials.encode() if credentials is not None else b""
    if secret is not None and given and hmac.compare_digest(given, secret.get_secret_value().encode()):
        return Principal(None, "s3-webhook", "admin")
    principal = current_principal(services, credentials)
    if not principal.allows("admin"):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "storage events need the admin role or the webhook secret")
    return principal


MAX_RECORDS = 1000


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow")  # S3 and MinIO send many more fields; only these are read


class S3Bucket(_Lenient):
    name: StrictStr = Field(min_length=1, max_length=255)


class S3Object(_Lenient):
    key: StrictStr = Field(min_length=1, max_length=3072, description="URL-encoded object key")


class S3Entity(_Lenient):
    bucket: S3Bucket
    object: S3Object


class S3Record(_Lenient):
    eventName: StrictStr = Field("", max_length=256)
    s3: S3Entity


class S3Event(_Lenient):
    """An S3 / MinIO bucket event notification (`Records[]`), type-checked."""

    Records: list[S3Record] = Field(min_length=1, max_length=MAX_RECORDS)


def _records(event: S3Event) -> list[tuple[str, str, str]]:
    """(event name, bucket, decoded key) of every record; 422 for a key that is not a valid object name."""
    out = []
    for record in event.Records:
        key = unquote_plus(record.s3.object.key)
        if len(key) > 1024 or not key.isprintable():
            raise InputError(f"invalid object key in the S3 event: {key[:64]!r}")
        out.append((record.eventName, record.s3.bucket.name, key))
    return out


def _ingest(services: Services, bucket: str, key: str, by: Principal) -> dict[str, Any]:
    with services.db.session() as session:
        existing = session.scalar(select(Video).where(Video.raw_bucket == bucket, Video.raw_key == key))
    if existing is not None:
        return {"key": key, "id": existing.id, "status": existing.status, "note": "already known"}
    size = services.store.size(bucket, key)
    video = Video(
        id=new_id(),
        filename=PurePosixPath(key).name[:255],
        status="queued",
        size_bytes=size,
        raw_bucket=bucket,
        raw_key=key,
        created_by=by.name,
    )
    try:
        job_id = create_video_row(services, video, None)
    except IntegrityError:  # a concurrent delivery of the same event won
        return {"key": key, "note": "already known"}
    services.announce(job_id)
    audit(services.db, by, "hook.ingest", video_id=video.id, detail={"bucket": bucket, "key": key})
    return {"key": key, "id": video.id, "status": "queued", "job_id": job_id}


@router.post("/s3", status_code=status.HTTP_202_ACCEPTED)
def s3_event(
    services: ServicesDep,
    principal: Annotated[Principal, Depends(hook_principal)],
    event: Annotated[S3Event, Body(description="S3 / MinIO bucket event notification")],
) -> dict[str, Any]:
    """Queue processing for objects created in the raw bucket; other events and buckets are ignored."""
    accepted, ignored, wanted = [], [], []
    for name, bucket, key in _records(event):
        created = "ObjectCreated" in name or name == ""
        if not created or bucket != services.settings.bucket_raw or key.startswith(OWN_PREFIX):
            ignored.append({"key": key, "bucket": bucket, "event": name})
        else:
            wanted.append((name, bucket, validate_key(key)))  # every record checked before any is queued
    if wanted:
        require_models(services.settings)
    for name, bucket, key in wanted:
        try:
            accepted.append(_ingest(services, bucket, key, principal))
        except NotFoundError:
            ignored.append({"key": key, "bucket": bucket, "event": name, "note": "object not found"})
    return {"accepted": accepted, "ignored": ignored}
