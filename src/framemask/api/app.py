"""The FastAPI application: routers, error mapping, and the embedded workers' lifecycle.

`create_app(settings)` builds everything from one `Settings`; nothing is created at import time.
With `FRAMEMASK_QUEUE=embedded` (the default) the app runs `FRAMEMASK_WORKERS` worker threads
itself; with `celery` it only enqueues and `framemask worker` processes do the work.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import OperationalError

from framemask import __version__
from framemask.api.frames import ReaderPool
from framemask.api.hardening import (
    PREPARE_FIX,
    BodyLimit,
    install_log_redaction,
    models_checked_here,
    models_state,
    scrub_paths,
    validation_error,
)
from framemask.api.routes import (
    admin,
    analyses,
    corrections,
    events,
    hooks,
    jobs,
    media,
    review,
    stream,
    tracks,
    videos,
)
from framemask.errors import DiskFullError, FramemaskError, FrameRangeError, InputError, NotFoundError, StorageError
from framemask.jobs.celery_app import start_sweeper
from framemask.jobs.health import readiness
from framemask.jobs.housekeeping import DISK_FULL, Housekeeper, disk_full_error, is_disk_full
from framemask.jobs.worker import WorkerPool
from framemask.service.auth import seed_admin_token
from framemask.service.context import Services
from framemask.service.revisions import InvalidRevisionError
from framemask.settings import Settings, get_settings

__all__ = ["create_app"]

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).with_name("static")


def _status_of(exc: FramemaskError) -> int:
    if isinstance(exc, NotFoundError):
        return status.HTTP_404_NOT_FOUND
    if isinstance(exc, FrameRangeError | InputError):
        return status.HTTP_422_UNPROCESSABLE_CONTENT
    if isinstance(exc, StorageError):
        return status.HTTP_503_SERVICE_UNAVAILABLE
    return status.HTTP_500_INTERNAL_SERVER_ERROR


async def _framemask_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, FramemaskError)
    if is_disk_full(exc):
        return await _maybe_disk_full(request, exc)
    code = _status_of(exc)
    if code >= 500:
        log.error("request failed: %s", exc, exc_info=exc)
    return JSONResponse({"detail": scrub_paths(str(exc))}, status_code=code)


async def _invalid_revision(_request: Request, exc: Exception) -> JSONResponse:
    """A stored corrections revision that fails today's validation: 409 naming it (the next save fixes it)."""
    return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_409_CONFLICT)


# --- disk full: 503 with Retry-After, one log line per incident (see framemask.jobs.housekeeping) ---------


def _disk_full_response(exc: DiskFullError) -> JSONResponse:
    headers = {"Retry-After": str(max(1, round(exc.retry_after)))}
    return JSONResponse({"detail": scrub_paths(str(exc))}, status_code=503, headers=headers)


async def _maybe_disk_full(request: Request, exc: Exception) -> JSONResponse:
    """An OS or database error from a write: 503 with Retry-After when the disk is full, else re-raised;
    a database that cannot be reached (OperationalError) is an outage: 503, not 500."""
    if not is_disk_full(exc):
        if isinstance(exc, OperationalError):
            log.error("database unavailable: %s", str(exc).splitlines()[0][:300])
            return JSONResponse({"detail": "database unavailable; try again shortly"}, 503, {"Retry-After": "5"})
        raise exc
    if not isinstance(exc, DiskFullError):  # a DiskFullError was reported where it was raised
        DISK_FULL.report(f"{request.method} {request.url.path}", exc)
    retry = request.app.state.services.settings.disk_full_retry_seconds
    return _disk_full_response(disk_full_error(exc, "writing", retry))


def _start(app: FastAPI, settings: Settings) -> None:
    install_log_redaction()
    if models_checked_here(settings):
        state = models_state(settings)
        if not state["ready"]:
            log.warning(
                "detection models are not ready (%s): uploads answer 503 until you run `%s`",
                state["detail"],
                PREPARE_FIX,
            )
    services = Services.create(settings)
    app.state.services = services
    app.state.readers = ReaderPool()
    key = settings.url_signing_key
    app.state.signing_key = key.get_secret_value().encode() if key else secrets.token_bytes(32)
    if settings.admin_token is not None:
        seed_admin_token(services.db, settings.admin_token.get_secret_value())
    app.state.housekeeper = Housekeeper(services)  # removes orphaned spools/scratch now and periodically
    app.state.housekeeper.start()
    app.state.pool = None
    app.state.sweeper = None
    if settings.queue == "embedded" and settings.workers > 0:
        app.state.pool = WorkerPool(services, settings.workers)
        app.state.pool.start()
    elif settings.queue == "celery":
        app.state.sweeper = start_sweeper(services)


def _stop(app: FastAPI) -> None:
    if app.state.pool is not None:
        app.state.pool.stop()
    if app.state.sweeper is not None:
        app.state.sweeper.set()
    app.state.housekeeper.stop()
    app.state.readers.close()
    app.state.services.close()


def create_app(settings: Settings | None = None) -> FastAPI:
    """The framemask web service (API under /api, docs at /docs, the editor at / when built)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        _start(app, settings)
        try:
            yield
        finally:
            _stop(app)

    app = FastAPI(
        title="framemask",
        version=__version__,
        summary="Frame-accurate video de-identification",
        lifespan=lifespan,
    )
    app.add_exception_handler(FramemaskError, _framemask_error)
    app.add_exception_handler(InvalidRevisionError, _invalid_revision)
    app.add_exception_handler(OSError, _maybe_disk_full)
    app.add_exception_handler(OperationalError, _maybe_disk_full)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_middleware(BodyLimit)
    for module in (videos, media, stream, corrections, review, tracks, events, jobs, hooks, admin):
        app.include_router(module.router)
    app.include_router(analyses.router)
    app.router.routes.insert(0, stream.StreamFastRoute())  # the player's range requests skip FastAPI's routing

    @app.get("/healthz", include_in_schema=False)
    def healthz(request: Request) -> JSONResponse:
        """Readiness: 200 when the database, the object store (and the broker with Celery) answer, else 503
        with the failing `checks`; `models.ready` says whether uploads can be processed (else the fix)."""
        checks = readiness(request.app.state.services)
        models = models_state(settings)
        degraded = models_checked_here(settings) and not models["ready"]
        down = any(state != "ok" for state in checks.values())
        state = "unavailable" if down else "degraded" if degraded else "ok"
        body = {"status": state, "checks": checks, "models": models}
        return JSONResponse(body, status_code=503 if down else 200, headers={"Retry-After": "5"} if down else None)

    if (STATIC_DIR / "index.html").is_file():
        app.mount("/", StaticFiles(directory=STATIC_DIR, html=True), name="editor")
    return app
