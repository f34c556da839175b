"""FastAPI dependencies as `Annotated` aliases: services, the calling principal, role checks, the video."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from framemask.api.auth import Principal, authenticate
from framemask.jobs.context import Services
from framemask.store.models import Video

__all__ = ["AdminUser", "CurrentUser", "EditorUser", "ServicesDep", "VideoDep", "VideoId", "client_of"]

_bearer = HTTPBearer(auto_error=False, description="API token: `Authorization: Bearer <token>`")


def get_services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


ServicesDep = Annotated[Services, Depends(get_services)]


def current_principal(
    services: ServicesDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing bearer token", {"WWW-Authenticate": "Bearer"})
    principal = authenticate(services.db, credentials.credentials)
    if principal is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid or revoked token", {"WWW-Authenticate": "Bearer"})
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


def get_video(video_id: VideoId, services: ServicesDep, _user: CurrentUser) -> Video:
    with services.db.session() as session:
        video = session.get(Video, video_id)
    if video is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no video {video_id}")
    return video


VideoDep = Annotated[Video, Depends(get_video)]


def client_of(request: Request) -> str | None:
    return request.client.host if request.client else None
