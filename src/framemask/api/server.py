"""The HTTP server under `framemask serve`: Granian by default, uvicorn as the fallback.

Granian (Rust HTTP, embedded in this process so the workers, signals and RSS stay those of one process)
takes messages off Python sooner than uvicorn. It runs the ASGI app through its native RSGI interface
(`framemask.api.rsgi`: a complete response is one call, not an awaited message), sends whole files by
path without the bytes entering Python, and the app's lifespan runs around the server.
`bench/service.py` measures both against nginx; `--server uvicorn` (or `FRAMEMASK_SERVER=uvicorn`) keeps
the previous server.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any, Literal

__all__ = ["SERVERS", "run"]

Server = Literal["granian", "uvicorn"]
SERVERS: tuple[Server, ...] = ("granian", "uvicorn")
GRACEFUL_SECONDS = 10


def run(app: Any, host: str, port: int, log_level: str, server: Server = "granian") -> None:
    """Serve `app` until SIGINT or SIGTERM (requests in flight get `GRACEFUL_SECONDS` to finish)."""
    if server == "uvicorn":
        import uvicorn

        uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=GRACEFUL_SECONDS)
        return
    asyncio.run(_granian(app, host, port, log_level))


ACCESS_FORMAT = '%(addr)s - "%(method)s %(path)s%(query_string)s %(protocol)s" %(status)d %(dt_ms).1f ms'


class _Quiet(logging.Filter):
    """Drop Granian's start-up notice that its embedded mode is experimental (it is the mode we test)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "experimental" not in record.getMessage()


class _AccessLine(logging.Filter):
    """Granian's access records carry the query apart from the path: show it after a `?`, signatures
    redacted (`RedactSignatures` does the same for uvicorn's records)."""

    def filter(self, record: logging.LogRecord) -> bool:
        from framemask.api.hardening import redact_signatures

        if isinstance(record.args, dict) and "query_string" in record.args:
            query = str(record.args["query_string"] or "")
            record.args = {**record.args, "query_string": redact_signatures("?" + query) if query else ""}
        return True


async def _granian(app: Any, host: str, port: int, log_level: str) -> None:
    from granian.constants import Interfaces
    from granian.log import LogLevels
    from granian.server.embed import Server as Embedded

    from framemask.api.rsgi import RSGIBridge

    embedded = Embedded(
        RSGIBridge(app),
        address=host,
        port=port,
        interface=Interfaces.RSGI,
        log_level=LogLevels(log_level),
        log_access=log_level in ("info", "debug"),
        log_access_format=ACCESS_FORMAT,
        websockets=False,
    )
    embedded.workers_kill_timeout = GRACEFUL_SECONDS
    logging.getLogger("_granian").addFilter(_Quiet())
    logging.getLogger("granian.access").addFilter(_AccessLine())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, embedded.stop)
    async with app.router.lifespan_context(app):
        await embedded.serve()
