"""Readiness: can this process reach what a request or a job needs right now (database, object store, broker)?

`/healthz` answers 200 when every check passes and 503 otherwise, listing each check, so a load balancer
takes an instance out while PostgreSQL, S3 or Redis is down instead of letting its requests fail. Each check
runs with a deadline (`TIMEOUT_SECONDS`): a hanging dependency is reported as one, not waited for.
"""

from __future__ import annotations

import concurrent.futures
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

if TYPE_CHECKING:
    from framemask.service.context import Services

__all__ = ["TIMEOUT_SECONDS", "readiness"]

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 3.0
_PROBE_KEY = "healthz/probe"
_pool = concurrent.futures.ThreadPoolExecutor(max_workers=6, thread_name_prefix="framemask-health")


def _database(services: Services) -> None:
    with services.db.engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def _store(services: Services) -> None:
    services.store.exists(services.settings.bucket_processed, _PROBE_KEY)  # a missing key is fine, an error not


def _broker(services: Services) -> None:
    from kombu.connection import Connection  # only with FRAMEMASK_QUEUE=celery

    connect: Any = Connection  # kombu's constructor carries no type hints
    with connect(services.settings.broker_url, connect_timeout=TIMEOUT_SECONDS) as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=TIMEOUT_SECONDS)


def readiness(services: Services) -> dict[str, str]:
    """`{"database": "ok" | "error: …", "store": …, "broker": …}` (broker only with `FRAMEMASK_QUEUE=celery`)."""
    checks: dict[str, Callable[[Services], None]] = {"database": _database, "store": _store}
    if services.settings.queue == "celery":
        checks["broker"] = _broker
    futures = {name: _pool.submit(check, services) for name, check in checks.items()}
    results: dict[str, str] = {}
    for name, future in futures.items():
        try:
            future.result(timeout=TIMEOUT_SECONDS + 1.0)
            results[name] = "ok"
        except concurrent.futures.TimeoutError:
            results[name] = f"error: no answer within {TIMEOUT_SECONDS:g} s"
        except Exception as exc:
            text_ = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            results[name] = f"error: {type(exc).__name__}: {text_}"
    for name, state in results.items():
        if state != "ok":
            log.warning("readiness: %s %s", name, state)
    return results
