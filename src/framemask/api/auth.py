"""Re-export of `framemask.service.auth` (tokens, principals, audit): the API checks them, the service layer
owns them. Kept for callers (CLI, tests) that import them from here."""

from framemask.service.auth import (
    ROLE_RANK,
    TOKEN_PREFIX,
    AuditWhere,
    Principal,
    audit,
    audit_row,
    authenticate,
    create_token,
    hash_token,
    seed_admin_token,
)

__all__ = [
    "ROLE_RANK",
    "TOKEN_PREFIX",
    "AuditWhere",
    "Principal",
    "audit",
    "audit_row",
    "authenticate",
    "create_token",
    "hash_token",
    "seed_admin_token",
]
