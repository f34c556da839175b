"""API tokens (only their SHA-256 is stored), roles, and the audit log.

Roles are ordered viewer < editor < admin. Viewers see processed (de-identified) material only;
editors may upload, delete and open originals (every such access is audited); admins also manage
tokens, read the audit log and may post storage events.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any, TypedDict, Unpack

from sqlalchemy import bindparam, insert, select, update

from framemask.errors import InputError
from framemask.store.db import Database
from framemask.store.models import ROLES, ApiToken, AuditLog, utcnow

__all__ = [
    "ROLE_RANK",
    "TOKEN_PREFIX",
    "AuditWhere",
    "Principal",
    "audit",
    "audit_entries",
    "audit_row",
    "audit_values",
    "authenticate",
    "create_token",
    "hash_token",
    "list_tokens",
    "principal_of",
    "record_use",
    "revoke_token",
    "seed_admin_token",
    "token_by_id",
    "use_due",
]

ROLE_RANK = {role: rank for rank, role in enumerate(ROLES)}
TOKEN_PREFIX = "fm_"
_LAST_USED_EVERY = 60.0
_last_used: dict[int, float] = {}
_last_used_lock = threading.Lock()


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's id, name and role."""

    token_id: int | None
    name: str
    role: str

    def allows(self, role: str) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[role]


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def create_token(
    db: Database, role: str, name: str | None = None, *, by: Principal | None = None, client: str | None = None
) -> tuple[str, ApiToken]:
    """A new random token with `role`; returns the raw token (shown once) and its row."""
    if role not in ROLE_RANK:
        raise InputError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(name=(name or f"{role} token")[:120], role=role, token_hash=hash_token(raw))
    with db.begin() as session:
        session.add(row)
        session.flush()
        detail = {"token_id": row.id, "role": role, "name": row.name}
        audit_row(session, by, "token.create", detail=detail, client=client)
    return raw, row


def seed_admin_token(db: Database, raw: str) -> None:
    """Make `FRAMEMASK_ADMIN_TOKEN` a valid admin token (idempotent)."""
    digest = hash_token(raw)
    with db.begin() as session:
        if session.scalar(select(ApiToken.id).where(ApiToken.token_hash == digest)) is None:
            session.add(ApiToken(name="admin (FRAMEMASK_ADMIN_TOKEN)", role="admin", token_hash=digest))


_TOKEN_BY_HASH = select(ApiToken.id, ApiToken.name, ApiToken.role, ApiToken.revoked).where(
    ApiToken.token_hash == bindparam("digest")
)


def authenticate(db: Database, raw: str) -> Principal | None:
    """The principal for a raw bearer token, or None if unknown or revoked (one Core select: every request
    runs it, and the ORM's session and object would cost several times the query)."""
    if not raw or len(raw) > 256:
        return None
    with db.engine.connect() as conn:
        row = conn.execute(_TOKEN_BY_HASH, {"digest": hash_token(raw)}).first()
    principal = principal_of(row)
    if principal is not None and principal.token_id is not None:
        _touch(db, principal.token_id)
    return principal


def principal_of(row: Any) -> Principal | None:
    """The principal of a token's (id, name, role, revoked) columns; None if there is no row or it is revoked."""
    if row is None or row[3]:
        return None
    return Principal(row[0], row[1], row[2])


def use_due(token_id: int) -> bool:
    """Whether `record_use` should write now: last use is recorded at most once a minute per token (no
    write per request). True claims the slot, so concurrent requests write once."""
    now = time.monotonic()
    with _last_used_lock:
        if now - _last_used.get(token_id, -_LAST_USED_EVERY) < _LAST_USED_EVERY:
            return False
        _last_used[token_id] = now
    return True


def record_use(db: Database, token_id: int) -> None:
    """Set the token's `last_used_at` (after `use_due` said so)."""
    with db.engine.begin() as conn:
        conn.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=utcnow()))


def _touch(db: Database, token_id: int) -> None:
    if use_due(token_id):
        record_use(db, token_id)


class AuditWhere(TypedDict, total=False):
    """What an audit entry is about besides who and what: the video, details, the client's address."""

    video_id: str | None
    detail: dict[str, Any] | None
    client: str | None


def _audit_values(principal: Principal | None, action: str, where: AuditWhere) -> dict[str, Any]:
    return {
        "token_id": principal.token_id if principal else None,
        "actor": principal.name if principal else "system",
        "role": principal.role if principal else None,
        "action": action,
        "video_id": where.get("video_id"),
        "client": where.get("client"),
        "detail": where.get("detail"),
    }


def audit_values(principal: Principal | None, action: str, **where: Unpack[AuditWhere]) -> dict[str, Any]:
    """Every column of one audit entry as `audit` writes it, its time included: for a writer that is not
    SQLAlchemy (`StreamReads.audit_nowait`), so no column default fills it in."""
    return {"at": utcnow(), **_audit_values(principal, action, where)}


def audit_row(session: Any, principal: Principal | None, action: str, **where: Unpack[AuditWhere]) -> None:
    """Add one audit entry to `session` (committed with the change it records)."""
    session.add(AuditLog(**_audit_values(principal, action, where)))


def audit(db: Database, principal: Principal | None, action: str, **where: Unpack[AuditWhere]) -> None:
    """Append one audit entry in its own transaction (before the protected bytes are sent): one Core insert,
    since every range request of an original writes one."""
    with db.engine.begin() as conn:
        conn.execute(insert(AuditLog).values(**_audit_values(principal, action, where)))


def token_by_id(db: Database, token_id: int) -> ApiToken | None:
    with db.session() as session:
        return session.get(ApiToken, token_id)


def list_tokens(db: Database) -> list[ApiToken]:
    with db.session() as session:
        return list(session.scalars(select(ApiToken).order_by(ApiToken.id)))


def revoke_token(db: Database, token_id: int, *, by: Principal, client: str | None) -> ApiToken | None:
    """Revoke a token (audited `token.revoke`); None if there is no such token."""
    with db.begin() as session:
        token = session.get(ApiToken, token_id)
        if token is None:
            return None
        token.revoked = True
        audit_row(session, by, "token.revoke", detail={"token_id": token_id}, client=client)
        session.flush()
        session.expunge(token)
    return token


def audit_entries(
    db: Database, *, limit: int, video_id: str | None = None, action: str | None = None
) -> list[AuditLog]:
    """The newest audit entries first, optionally of one video and/or one action."""
    query = select(AuditLog).order_by(AuditLog.id.desc()).limit(limit)
    if video_id:
        query = query.where(AuditLog.video_id == video_id)
    if action:
        query = query.where(AuditLog.action == action)
    with db.session() as session:
        return list(session.scalars(query))
