"""Storage event notifications: an object landing in the raw bucket starts processing (seed 002:
upload -> bucket event -> queue -> worker). Accepts the S3 / MinIO / radosgw event JSON (`Records[]`).

Who may post: the webhook secret as a bearer token (MinIO's `auth_token`), the URL token as `?token=` (for
radosgw and other servers whose notifications cannot send headers), or an admin API token. Objects under
`videos/` are ignored (the API stored them itself: their upload already queued them), and each is logged.
"""

from __future__ import annotations

import hmac
import logging
from pathlib import PurePosixPath
from typing import Annotated, Any
from urllib.parse import unquote_plus

from fastapi import APIRouter, Body, Depends, HTTPException, Query, status
from pydantic import BaseModel, ConfigDict, Field, SecretStr, StrictStr

from framemask.api.deps import BearerCredentials, ServicesDep, current_principal
from framemask.api.hardening import require_models
from framemask.errors import InputError, NotFoundError
from framemask.service import videos
from framemask.service.auth import Principal, audit
from framemask.service.context import Services
from framemask.store.models import Video, new_id
from framemask.store.objects import validate_key

__all__ = ["router"]

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/hooks", tags=["hooks"])

OWN_PREFIX = "videos/"  # objects the API itself stored: their upload already queued them


def _matches(given: str | None, secret: SecretStr | None) -> bool:
    """Constant-time comparison with a configured secret (never true when either is missing)."""
    if not given or secret is None:
        return False
    return hmac.compare_digest(given.encode(), secret.get_secret_value().encode())


HookToken = Annotated[
    str | None,
    Query(
        alias="token",
        max_length=256,
        description="`FRAMEMASK_WEBHOOK_URL_TOKEN`, for S3 servers that cannot send an Authorization header",
    ),
]


def hook_principal(services: ServicesDep, credentials: BearerCredentials, token: HookToken = None) -> Principal:
    """The URL token (`?token=`), the webhook secret as bearer (as MinIO sends it), or an admin token.

    A wrong URL token is a 401 even when a bearer token is sent too: a misconfigured hook should fail loudly."""
    settings = services.settings
    if token is not None:
        if _matches(token, settings.webhook_url_token):
            return Principal(None, "s3-webhook", "admin")
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid hook token")
    if credentials is not None and _matches(credentials.credentials, settings.webhook_secret):
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
    existing = videos.find_by_object(services, bucket=bucket, key=key)
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
        job_id = videos.create_video(services, video=video, info=None)
    except videos.DuplicateVideoError:  # a concurrent delivery of the same event won
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
        if created and bucket == services.settings.bucket_raw and key.startswith(OWN_PREFIX):
            log.info("storage event for %s/%s ignored: keys under %s are the API's own", bucket, key, OWN_PREFIX)
            ignored.append({"key": key, "bucket": bucket, "event": name, "note": f"under {OWN_PREFIX}: the API's own"})
        elif not created or bucket != services.settings.bucket_raw:
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
