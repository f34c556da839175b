"""Who am I, API tokens (admin) and the audit log (admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, status

from framemask.api.deps import AdminUser, CurrentUser, DbId, ServicesDep, client_of
from framemask.api.schemas import AuditEntry, TokenCreate, TokenCreated, TokenPublic
from framemask.service import auth

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["access"])


@router.get("/me")
def me(user: CurrentUser) -> dict[str, object]:
    """The calling token's name and role."""
    return {"name": user.name, "role": user.role, "token_id": user.token_id}


@router.post("/tokens", status_code=status.HTTP_201_CREATED, response_model=TokenCreated)
def new_token(body: TokenCreate, services: ServicesDep, user: AdminUser, request: Request) -> TokenCreated:
    """Create a token; the response is the only time the token itself is shown."""
    raw, row = auth.create_token(services.db, body.role, body.name, by=user, client=client_of(request))
    return TokenCreated(token=raw, **TokenPublic.model_validate(row).model_dump())


@router.get("/tokens", response_model=list[TokenPublic])
def list_tokens(services: ServicesDep, _user: AdminUser) -> list[TokenPublic]:
    return [TokenPublic.model_validate(t) for t in auth.list_tokens(services.db)]


@router.delete("/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_token(token_id: DbId, services: ServicesDep, user: AdminUser, request: Request) -> None:
    if auth.revoke_token(services.db, token_id, by=user, client=client_of(request)) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no token {token_id}")


@router.get("/audit", response_model=list[AuditEntry])
def list_audit(
    services: ServicesDep,
    _user: AdminUser,
    video_id: Annotated[str | None, Query(pattern=r"^[0-9a-f]{32}$")] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditEntry]:
    """Audit entries, newest first (every access to an original, token and delete operations)."""
    entries = auth.audit_entries(services.db, limit=limit, video_id=video_id, action=action)
    return [AuditEntry.model_validate(a) for a in entries]
