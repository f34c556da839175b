"""FastAPI dependencies as `Annotated` aliases: services, the calling principal, role checks, the video;
and the shared guards of routes that take a signed URL instead of a bearer token, or a frame range."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Query, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from framemask.api.hardening import MAX_DB_INT
from framemask.api.signing import verify_stream
from framemask.errors import FrameRangeError
from framemask.service import videos
from framemask.service.auth import Principal, authenticate, hash_token, token_by_id
from framemask.service.context import Services
from framemask.service.streaming import StreamToken, StreamVideo
from framemask.store.models import Video

__all__ = [
    "MAX_SEQ",
    "AdminUser",
    "BearerCredentials",
    "CurrentUser",
    "DbId",
    "EditorUser",
    "FirstSeq",
    "LastSeq",
    "ServicesDep",
    "SignedRequest",
    "SignedRequestDep",
    "TokenProof",
    "VideoDep",
    "VideoId",
    "bearer_proof",
    "bearer_scheme",
    "client_of",
    "current_principal",
    "frame_range",
    "load_video",
    "not_processed",
    "require_ready",
    "signed_or_bearer_principal",
    "signed_request",
    "signing_key",
    "token_proof",
]

bearer_scheme = HTTPBearer(auto_error=False, description="API token: `Authorization: Bearer <token>`")


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]
BearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]
"""The `Authorization: Bearer` credentials if sent (None otherwise): for guards that accept other proofs too."""
Credentials = BearerCredentials


def _bearer_error(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, {"WWW-Authenticate": "Bearer"})


def _bearer(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise _bearer_error("missing bearer token")
    return credentials.credentials


def current_principal(services: ServicesDep, credentials: Credentials) -> Principal:
    principal = authenticate(services.db, _bearer(credentials))
    if principal is None:
        raise _bearer_error("invalid or revoked token")
    return principal


CurrentUser = Annotated[Principal, Depends(current_principal)]


def require(role: str) -> Callable[[Principal], Principal]:
    def check(principal: CurrentUser) -> Principal:
        if not principal.allows(role):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"this needs the {role} role; you are {principal.role}")
        return principal

    return check


EditorUser = Annotated[Principal, Depends(require("editor"))]
AdminUser = Annotated[Principal, Depends(require("admin"))]

VideoId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="video id (32 hex digits)")]
MAX_SEQ = 2**31 - 1
"""Largest frame number the API accepts (far beyond any real video; keeps every query in range)."""
FirstSeq = Annotated[int | None, Query(alias="from", ge=1, le=MAX_SEQ)]
LastSeq = Annotated[int | None, Query(alias="to", ge=1, le=MAX_SEQ)]
DbId = Annotated[int, Path(ge=1, le=MAX_DB_INT, description="numeric id")]


def load_video(services: Services, video_id: str) -> Video:
    """The video row, or 404."""
    video = videos.get_video(services, video_id=video_id)
    if video is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no video {video_id}")
    return video


def get_video(video_id: VideoId, services: ServicesDep, _user: CurrentUser) -> Video:
    return load_video(services, video_id)


VideoDep = Annotated[Video, Depends(get_video)]


def not_processed(video: Video | StreamVideo) -> HTTPException:
    """The 409 of asking for processed material before it exists."""
    return HTTPException(status.HTTP_409_CONFLICT, f"video {video.id} is not processed yet (status {video.status})")


def require_ready(video: Video, *, processed: bool = False) -> None:
    """409 unless the video is `ready` (and, with `processed`, its processed file is recorded)."""
    if video.status != "ready" or (processed and video.processed_key is None):
        raise not_processed(video)


def frame_range(end: int, first: int | None, last: int | None) -> tuple[int, int]:
    """`from`/`to` (both optional, 1-based, inclusive) clamped to 1..end; an empty range is an error."""
    first, last = first or 1, min(last or end, end)
    if first > last:
        raise FrameRangeError(f"empty frame range {first}..{last} (the video has {end} frames)")
    return first, last


def client_of(request: Request) -> str | None:
    return request.client.host if request.client else None


def signing_key(request: Request) -> bytes:
    key: bytes = request.app.state.signing_key
    return key


@dataclass(frozen=True)
class SignedRequest:
    """How a request may prove who it is: a bearer token, or the query of a signed URL (`<video src>`,
    `<img src>`, `<a href>` cannot send headers). Checked by `signed_or_bearer_principal`."""

    services: Services
    key: bytes
    credentials: HTTPAuthorizationCredentials | None
    expires: int | None
    signature: str | None
    tid: int | None


async def signed_request(
    request: Request,
    credentials: Credentials,
    expires: Annotated[int | None, Query(ge=0, le=MAX_DB_INT)] = None,
    signature: Annotated[str | None, Query(max_length=64)] = None,
    tid: Annotated[int | None, Query(ge=1, le=MAX_DB_INT)] = None,
) -> SignedRequest:
    """A bearer token or a signed URL's query, checked later by the route (`signed_or_bearer_principal`,
    `token_proof`). Async: collecting it does no I/O, so it costs no worker-thread hop."""
    return SignedRequest(get_services(request), signing_key(request), credentials, expires, signature, tid)


SignedRequestDep = Annotated[SignedRequest, Depends(signed_request)]


def signed_or_bearer_principal(signed: SignedRequest, video_id: str, resource: str, what: str) -> Principal:
    """The bearer token's principal when the URL carries no signature; else the signature must cover this
    video, `resource`, the expiry and the issuing token id, and that token must not be revoked since
    (401 `invalid or expired {what} signature` / `the token that signed this URL is revoked`)."""
    if signed.signature is None or signed.expires is None:
        return current_principal(signed.services, signed.credentials)
    if not verify_stream(signed.key, video_id, resource, signed.expires, signed.tid, signed.signature):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, f"invalid or expired {what} signature")
    if signed.tid is None:
        return Principal(None, "signed-url", "viewer")
    token = token_by_id(signed.services.db, signed.tid)
    if token is None or token.revoked:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, _SIGNER_REVOKED)
    return Principal(token.id, token.name, token.role)


_SIGNER_REVOKED = "the token that signed this URL is revoked"


@dataclass(frozen=True, slots=True)
class TokenProof:
    """The token row a signed-or-bearer request must be checked against, found before any database read:
    by hash (a bearer token), by id (a URL signed by a token), or none (a URL signed without one)."""

    token_hash: str | None
    token_id: int | None

    def principal(self, token: StreamToken | None) -> Principal:
        """The caller, given the looked-up row (401 if it is unknown or revoked)."""
        if self.token_hash is None and self.token_id is None:
            return Principal(None, "signed-url", "viewer")
        if token is None or token.revoked:
            raise _bearer_error("invalid or revoked token") if self.token_hash else _signer_revoked()
        return Principal(token.id, token.name, token.role)


def _signer_revoked() -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, _SIGNER_REVOKED)


def token_proof(signed: SignedRequest, video_id: str, resource: str, what: str) -> TokenProof:
    """`signed_or_bearer_principal` split at its database read (same checks, same answers): the bearer
    token's hash, or the verified signature's token id; 401 for a missing token or a bad signature."""
    if signed.signature is None or signed.expires is None:
        return bearer_proof(signed.credentials)
    if not verify_stream(signed.key, video_id, resource, signed.expires, signed.tid, signed.signature):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, f"invalid or expired {what} signature")
    return TokenProof(None, signed.tid)


def bearer_proof(credentials: HTTPAuthorizationCredentials | None) -> TokenProof:
    """`current_principal` split at its database read (same 401s): the bearer token's hash to look up."""
    raw = _bearer(credentials)
    if not raw or len(raw) > 256:  # what `authenticate` refuses unseen
        raise _bearer_error("invalid or revoked token")
    return TokenProof(hash_token(raw), None)
