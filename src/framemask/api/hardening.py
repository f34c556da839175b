"""Guards every route shares: bounded request bodies, JSON-safe validation errors, no server paths in
errors, no signatures in access logs, strict Range handling, and models that must be ready for uploads.

- `BodyLimit` (ASGI middleware): JSON bodies are capped (`MAX_JSON_BODY`; corrections `MAX_CORRECTIONS_BODY`)
  while they stream in, so a huge document is refused with 413 before it is parsed; uploads have their own
  limit (`FRAMEMASK_MAX_UPLOAD_MB`).
- `validation_error`: FastAPI echoes the offending input in a 422; a `NaN` or `Infinity` there made the
  JSON encoder fail (500). Non-finite numbers are echoed as strings and long inputs are cut.
- `scrub_paths`: absolute filesystem paths in a message become their last component.
- `RedactSignatures`: access-log lines show `signature=[redacted]` (also S3 `X-Amz-Signature`).
- `StrictRangeFileResponse`: a malformed or unsatisfiable `Range` answers 416 with `Content-Range: bytes */size`.
- `require_models`: uploads answer 503 naming `framemask models --prepare` while the models are missing.
"""

from __future__ import annotations

import logging
import math
import re
from typing import Any

from fastapi import HTTPException, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from starlette.responses import MalformedRangeHeader, RangeNotSatisfiable
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from framemask.settings import Settings

__all__ = [
    "MAX_CORRECTIONS_BODY",
    "MAX_DB_INT",
    "MAX_JSON_BODY",
    "BodyLimit",
    "RedactSignatures",
    "StrictRangeFileResponse",
    "install_log_redaction",
    "require_models",
    "scrub_paths",
    "validation_error",
]

log = logging.getLogger(__name__)

MAX_DB_INT = 2**63 - 1
"""Largest integer a database id (SQLite INTEGER, PostgreSQL BIGINT) can hold."""
MAX_JSON_BODY = 1024 * 1024
"""Bytes of any request body except uploads and corrections."""
MAX_CORRECTIONS_BODY = 4 * 1024 * 1024
"""Bytes of a corrections document (`PUT /api/videos/{id}/corrections`)."""
NO_STORE = "no-store"
"""Cache-Control of every response that carries original (unmasked) pixels."""

_UPLOAD_PATH = "/api/videos"
_CORRECTIONS_PATH = re.compile(r"^/api/videos/[^/]+/corrections/?$")


# --- request bodies ------------------------------------------------------------------------------------------


def _body_limit(scope: Scope) -> int | None:
    path = scope.get("path", "")
    if scope.get("method") == "POST" and path.rstrip("/") == _UPLOAD_PATH:
        return None  # streamed to a spool file under its own limit
    return MAX_CORRECTIONS_BODY if _CORRECTIONS_PATH.match(path) else MAX_JSON_BODY


class _TooLarge(HTTPException):
    """Raised from `receive` while the body streams in: an HTTPException, so FastAPI's body parsing passes
    it on (it turns any other exception into a 400) and its handler answers 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(status.HTTP_413_CONTENT_TOO_LARGE, _limit_message(limit))


def _limit_message(limit: int) -> str:
    return f"request body exceeds the limit of {limit} bytes"


class BodyLimit:
    """Refuse request bodies over their limit with 413 (by Content-Length, and while they stream in)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = _body_limit(scope) if scope["type"] == "http" else None
        if limit is None:
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await _too_large(limit)(scope, receive, send)
            return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if started:
                raise
            await _too_large(limit)(scope, receive, send)


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse({"detail": _limit_message(limit)}, status_code=status.HTTP_413_CONTENT_TOO_LARGE)


# --- validation errors ---------------------------------------------------------------------------------------

_MAX_ECHO = 200


def _json_safe(value: Any, depth: int = 0) -> Any:
    """`value` with non-finite floats as strings, long strings cut, deep or long containers summarised."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        return value if len(value) <= _MAX_ECHO else value[:_MAX_ECHO] + "…"
    if isinstance(value, dict):
        if depth > 3 or len(value) > 20:
            return f"<object with {len(value)} keys>"
        return {str(k)[:_MAX_ECHO]: _json_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        if depth > 3 or len(value) > 20:
            return f"<array of {len(value)} items>"
        return [_json_safe(v, depth + 1) for v in value]
    return value


async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422, but always valid JSON (no NaN) and never an echo of a whole huge document."""
    assert isinstance(exc, RequestValidationError)
    errors = jsonable_encoder(_json_safe(list(exc.errors())[:50]))
    return JSONResponse({"detail": errors}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


# --- messages and logs ---------------------------------------------------------------------------------------

_ABS_PATH = re.compile(r"(?<![\w.:/~-])(?:/[^\s/'\"`:;,()\[\]{}<>]+)+/?")


def scrub_paths(text: str | None) -> str | None:
    """`text` with every absolute filesystem path replaced by its last component (`/srv/x/a.mp4` -> `a.mp4`)."""
    if not text:
        return text

    def last(match: re.Match[str]) -> str:
        parts = [p for p in match.group(0).split("/") if p]
        return parts[-1] if len(parts) > 1 else match.group(0)

    return _ABS_PATH.sub(last, text)


_SIGNATURE = re.compile(
    r"(?i)([?&](?:signature|sig|token|x-amz-signature|x-amz-credential|x-amz-security-token)=)[^&\s\"]*"
)


def redact_signatures(text: str) -> str:
    return _SIGNATURE.sub(r"\1[redacted]", text)


class RedactSignatures(logging.Filter):
    """Removes URL signatures and hook tokens (`?token=`) from uvicorn access-log records (their args hold the
    request path)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(redact_signatures(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.msg, str):
            record.msg = redact_signatures(record.msg)
        return True


def install_log_redaction() -> None:
    """Attach `RedactSignatures` to uvicorn's access logger (once)."""
    logger = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactSignatures) for f in logger.filters):
        logger.addFilter(RedactSignatures())


# --- responses -----------------------------------------------------------------------------------------------


class StrictRangeFileResponse(FileResponse):
    """A file with Range support where every malformed or unsatisfiable Range answers 416
    (`Content-Range: bytes */size`) instead of a plain-text 400; 1 MiB read chunks.

    Starlette reads files in 64 KiB chunks, one worker-thread hop each; 1 MiB chunks cut the hops
    (and the latency of a typical player range request) by 16 for the same memory bound."""

    chunk_size = 1024 * 1024

    @classmethod
    def _parse_range_header(cls, http_range: str, file_size: int) -> list[tuple[int, int]]:
        try:
            return super()._parse_range_header(http_range, file_size)
        except MalformedRangeHeader:
            raise RangeNotSatisfiable(file_size) from None
        except (ValueError, OverflowError):  # e.g. `bytes=1e5-`
            raise RangeNotSatisfiable(file_size) from None


# --- model readiness -----------------------------------------------------------------------------------------

PREPARE_FIX = "framemask models --prepare"


def models_state(settings: Settings) -> dict[str, Any]:
    """Readiness of the detection models this service's jobs need (see `detect.models.readiness`)."""
    from framemask.detect.models import readiness

    ready, detail = readiness(settings.redact_targets)
    state: dict[str, Any] = {"ready": ready, "detail": scrub_paths(detail)}
    if not ready:
        state["fix"] = PREPARE_FIX
    return state


def models_checked_here(settings: Settings) -> bool:
    """Jobs of the embedded queue run on this machine, so its model cache is the one that matters;
    Celery workers elsewhere check their own."""
    return settings.queue == "embedded"


def require_models(settings: Settings) -> None:
    """503 (with the fix) while the models the embedded workers need are not ready."""
    if not models_checked_here(settings):
        return
    state = models_state(settings)
    if not state["ready"]:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"detection models are not ready ({state['detail']}); run `{PREPARE_FIX}` on the server",
            {"Retry-After": "60"},
        )
