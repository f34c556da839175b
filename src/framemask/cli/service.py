"""Service commands: `framemask serve`, `framemask worker`, `framemask token create`, `framemask db upgrade`,
`framemask db proxies`."""

from __future__ import annotations

import argparse
import logging
import os
import signal
from typing import Any

__all__ = ["register"]

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    serve = subparsers.add_parser("serve", help="run the web service (API, docs, editor) with embedded workers")
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    serve.add_argument(
        "--server",
        default=os.environ.get("FRAMEMASK_SERVER", "granian"),
        choices=["granian", "uvicorn"],
        help="HTTP server (default granian, or FRAMEMASK_SERVER; see docs/benchmarks.md)",
    )
    serve.set_defaults(func=_serve)

    worker = subparsers.add_parser(
        "worker", help="run a background worker (Celery with FRAMEMASK_QUEUE=celery, else polls the job table)"
    )
    worker.add_argument("--concurrency", type=int, default=None, help="parallel jobs (default FRAMEMASK_WORKERS)")
    worker.add_argument(
        "--name", default=None, help="worker name shown on its jobs as NAME:pid (default FRAMEMASK_WORKER_NAME, host)"
    )
    worker.set_defaults(func=_worker)

    token = subparsers.add_parser("token", help="manage API tokens")
    token_sub = token.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    create = token_sub.add_parser("create", help="create a token and print it (shown only once)")
    create.add_argument("--role", required=True, choices=["viewer", "editor", "admin"])
    create.add_argument("--name", default=None, help="a label for the token")
    create.set_defaults(func=_token_create)

    db = subparsers.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    upgrade = db_sub.add_parser("upgrade", help="apply database migrations (alembic upgrade head)")
    upgrade.set_defaults(func=_db_upgrade)
    proxies = db_sub.add_parser(
        "proxies",
        help="queue review proxies for ready videos whose long-GOP originals have none (e.g. processed before "
        "proxies existed); `framemask serve` or `framemask worker` makes them",
    )
    proxies.set_defaults(func=_db_proxies)


def _settings() -> Any:
    from pydantic import ValidationError

    from framemask.settings import bad_settings, get_settings

    try:
        return get_settings()
    except ValidationError as exc:
        raise bad_settings(exc) from None


def _serve(args: argparse.Namespace) -> int:
    from framemask.api.app import create_app
    from framemask.api.server import run

    settings = _settings()
    app = create_app(settings)
    run(app, host=args.host, port=args.port, log_level=args.log_level, server=args.server)
    return 0


def _worker(args: argparse.Namespace) -> int:
    from framemask.jobs.worker import set_worker_name, worker_name

    settings = _settings()
    concurrency = args.concurrency or max(settings.workers, 1)
    set_worker_name(args.name or settings.worker_name)
    name = worker_name()
    if settings.queue == "celery":
        from framemask.jobs.celery_app import run_celery_worker

        run_celery_worker(settings, concurrency, f"framemask-{name.replace(':', '-')}@%h")
        return 0
    return _poll_worker(settings, concurrency, name)


def _poll_worker(settings: Any, concurrency: int, name: str) -> int:
    """Standalone worker on the job table (no broker): the embedded pool's threads and leases, until a signal."""
    from framemask.jobs.housekeeping import Housekeeper
    from framemask.jobs.worker import WorkerPool
    from framemask.service.context import Services

    services = Services.create(settings)
    housekeeper = Housekeeper(services)  # orphaned job scratch of killed workers, now and periodically
    housekeeper.start()
    pool = WorkerPool(services, concurrency)

    def _on_signal(_signum: int, _frame: object) -> None:
        pool.request_stop()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    log.info("worker %s: %d thread(s) polling the job table", name, concurrency)
    pool.start()
    pool.wait()
    housekeeper.stop()
    services.close()
    return 0


def _token_create(args: argparse.Namespace) -> int:
    from framemask.api.auth import create_token
    from framemask.store.db import Database

    db = Database(_settings().db_url)
    try:
        raw, row = create_token(db, args.role, args.name)
    finally:
        db.dispose()
    print(raw)
    log.info("created %s token %d (%s)", row.role, row.id, row.name)
    return 0


def _db_proxies(_args: argparse.Namespace) -> int:
    from framemask.jobs.proxy_step import queue_missing_proxies
    from framemask.service.context import Services

    services = Services.create(_settings())
    try:
        queued = queue_missing_proxies(services)
    finally:
        services.close()
    print(f"queued {len(queued)} review proxy job(s)")
    return 0


def _db_upgrade(_args: argparse.Namespace) -> int:
    from framemask.store.db import upgrade

    settings = _settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.db_url)
    print("database at head")
    return 0
