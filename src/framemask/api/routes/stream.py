"""A video's bytes: `GET|HEAD /stream` with HTTP Range support (from S3 a 307 to a presigned URL), its lean
twin `StreamFastRoute` (mounted first in `api/app.py`), and `/stream/url`, a short-lived URL for `<video src>`.

Originals are for editors and admins only (viewers get 403) and every access to one is written to
the audit log before any byte leaves; processed and final (corrected) videos are open to every role.
"""

from __future__ import annotations

import mimetypes
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args
from urllib.parse import parse_qsl, quote

from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.responses import RedirectResponse
from starlette.datastructures import URLPath
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import Receive, Scope, Send

from framemask.api.access import (
    VIDEO_ID,
    cache_control,
    check_variant,
    guard_variant,
    last_use_due,
    object_of,
    read_caller,
    record_stream,
    stat_local,
)
from framemask.api.deps import (
    CurrentUser,
    ServicesDep,
    SignedRequest,
    SignedRequestDep,
    VideoDep,
    VideoId,
    bearer_scheme,
    signed_request,
    signing_key,
    token_proof,
)
from framemask.api.hardening import MAX_DB_INT
from framemask.api.ranges import RangeFileResponse
from framemask.api.schemas import Variant
from framemask.api.signing import signed_stream_query

__all__ = ["StreamFastRoute", "router"]

router = APIRouter(prefix="/api/videos", tags=["frames and streams"])


async def _authorize_stream(
    request: Request, signed: SignedRequest, video_id: str, variant: str
) -> tuple[str, str, Path | None, os.stat_result | None]:
    """Every check of a stream request, with no ORM object and, on embedded SQLite, no worker-thread hop
    unless the token's last use is due or the write lock is taken: who (token or signature, revocation), the
    video row, the variant guard and the audit row of an original, then where the bytes are."""
    services = signed.services
    caller = await read_caller(request, services, token_proof(signed, video_id, variant, "stream"), video_id)
    user, video = caller.user, caller.video
    if video is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no video {video_id}")
    check_variant(video, variant, user)
    touch = last_use_due(caller)
    if variant == "original" or touch:
        await record_stream(request, services, user, video_id, variant, touch)
    bucket, key = object_of(services, video, variant)
    return bucket, key, *stat_local(request, services, bucket, key, f"{video.id} ({variant})")


@router.head("/{video_id}/stream", include_in_schema=False)
@router.get(
    "/{video_id}/stream",
    response_class=Response,
    responses={
        206: {"description": "partial content"},
        307: {"description": "presigned S3 URL"},
        416: {"description": "range not satisfiable"},
    },
)
async def stream(
    request: Request,
    video_id: VideoId,
    signed: SignedRequestDep,
    variant: Variant = "processed",
) -> Response:
    """The video bytes with HTTP Range support (seekable in `<video>`); from S3 a 307 to a presigned URL."""
    return await _stream_response(request, signed, video_id, variant)


async def _stream_response(request: Request, signed: SignedRequest, video_id: str, variant: str) -> Response:
    """The stream's answer once its parameters are valid: both `stream` and `StreamFastRoute` end here."""
    bucket, key, path, stat_result = await _authorize_stream(request, signed, video_id, variant)
    services = signed.services
    headers = {"Cache-Control": cache_control(variant)}
    if path is None:
        url = services.store.presign_get(bucket, key, services.settings.signed_url_seconds, headers["Cache-Control"])
        return RedirectResponse(str(url), status_code=status.HTTP_307_TEMPORARY_REDIRECT, headers=headers)
    prefix = services.settings.accel_redirect_prefix
    if prefix:  # nginx sends the bytes (sendfile, Range); we only decided who may have them
        return Response(headers={"X-Accel-Redirect": f"{prefix}{quote(bucket)}/{quote(key)}", **headers})
    guessed = mimetypes.guess_type(key)[0] or "application/octet-stream"
    media_type = "video/mp4" if variant != "original" else guessed
    return RangeFileResponse(path, media_type=media_type, headers=headers, stat_result=stat_result)


_FAST_PATH = re.compile(rf"/api/videos/({VIDEO_ID.pattern})/stream")


_FAST_KEYS = frozenset({"variant", "expires", "signature", "tid"})


_VARIANTS = frozenset(get_args(Variant))


_DECIMAL = re.compile(r"0|[1-9][0-9]{0,18}")


_HEX = re.compile(r"[0-9a-f]{1,64}")


@dataclass(frozen=True, slots=True)
class _StreamQuery:
    video_id: str
    variant: str
    expires: int | None
    signature: str | None
    tid: int | None


def _fast_query(scope: Scope) -> _StreamQuery | None:
    """The stream request's parameters if each is in the plain form the route's validation accepts unchanged
    (known keys once each, a variant, decimal ids in range, a hex signature), else None."""
    if scope["method"] not in ("GET", "HEAD") or scope.get("root_path"):
        return None
    match = _FAST_PATH.fullmatch(scope["path"])
    if match is None:
        return None
    values: dict[str, str] = {}
    if scope["query_string"]:
        for name, value in parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True):
            if name not in _FAST_KEYS or name in values:
                return None
            values[name] = value
    variant = values.get("variant", "processed")
    signature = values.get("signature")
    expires, tid = _decimal(values.get("expires"), 0), _decimal(values.get("tid"), 1)
    if (
        variant not in _VARIANTS
        or (signature is not None and not _HEX.fullmatch(signature))
        or (expires is None) != ("expires" not in values)
        or (tid is None) != ("tid" not in values)
    ):
        return None
    return _StreamQuery(match[1], variant, expires, signature, tid)


def _decimal(text: str | None, least: int) -> int | None:
    """A plain decimal database id (no sign, spaces or leading zeros) in least..MAX_DB_INT, else None."""
    if text is None or not _DECIMAL.fullmatch(text):
        return None
    value = int(text)
    return value if least <= value <= MAX_DB_INT else None


class StreamFastRoute(BaseRoute):
    """`GET|HEAD /api/videos/{id}/stream` without FastAPI's routing and dependency resolution (~0.3 ms of a
    1 MiB range request's ~1.3 ms CPU): mounted first, it takes only requests whose parameters `_fast_query`
    read whole, then runs the route's own checks and response (`_stream_response`; its errors reach the app's
    exception handlers as the route's do). Anything else falls through to `stream`, so error bodies, 422s and
    the OpenAPI schema are the route's."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        query = _fast_query(scope) if scope["type"] == "http" else None
        return (Match.NONE, {}) if query is None else (Match.FULL, {"framemask.stream": query})

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        raise NoMatchFound(name, path_params)  # `url_for("stream")` names the FastAPI route

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        query: _StreamQuery = scope["framemask.stream"]
        request = Request(scope, receive)
        signed = await signed_request(request, await bearer_scheme(request), query.expires, query.signature, query.tid)
        response = await _stream_response(request, signed, query.video_id, query.variant)
        await response(scope, receive, send)


@router.get("/{video_id}/stream/url")
def stream_url(
    request: Request, video: VideoDep, services: ServicesDep, user: CurrentUser, variant: Variant = "processed"
) -> dict[str, Any]:
    """A short-lived URL for `<video src>` (no header needed): a presigned S3 URL or a signed API URL."""
    guard_variant(services, video, variant, user, request, "stream-url", {})
    seconds = services.settings.signed_url_seconds
    bucket, key = object_of(services, video, variant)
    presigned = services.store.presign_get(bucket, key, seconds, cache_control(variant))  # S3 sends it no-store too
    if presigned is None:
        query = signed_stream_query(signing_key(request), video.id, variant, seconds, user.token_id)
        presigned = f"{request.url_for('stream', video_id=video.id).path}?{query}"
    return {"url": presigned, "expires_in": seconds}
