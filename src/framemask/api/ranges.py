"""Sending stored files with few event-loop round trips: the stream endpoint's response.

Starlette's `FileResponse` spends five worker-thread hops on a 1 MiB range (stat, open, seek, read, close)
and starts a task group that listens for the client's disconnect, and under 50 concurrent clients that
machinery, not the bytes, sets the latency. `RangeFileResponse` takes the `os.stat` result the caller
already has and reads each chunk on the event loop when the page cache holds it (`preadv` with
`RWF_NOWAIT`, Linux), else with one `pread` hop to a worker thread. A body sent as one message (a player's
1 MiB range) gets no disconnect listener: there is nothing left to cancel once it is handed over. A whole
file goes out with `http.response.pathsend` when the server offers it (Granian: the bytes never enter
Python). Range parsing and the 416 answers are `StrictRangeFileResponse`'s.
"""

from __future__ import annotations

import os

import anyio.to_thread
from starlette.datastructures import MutableHeaders
from starlette.responses import RangeNotSatisfiable
from starlette.types import Receive, Scope, Send

from framemask.api.hardening import StrictRangeFileResponse

__all__ = ["RangeFileResponse"]

_NOWAIT: int | None = getattr(os, "RWF_NOWAIT", None) if hasattr(os, "preadv") else None
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)


def _read_cached(fd: int, offset: int, size: int) -> bytes | None:
    """`size` bytes at `offset` if the page cache holds them all (never waits for the disk), else None."""
    if _NOWAIT is None:
        return None
    buf = bytearray(size)
    try:
        got = os.preadv(fd, [buf], offset, _NOWAIT)
    except OSError:  # EAGAIN: not cached; EOPNOTSUPP: a filesystem without RWF_NOWAIT
        return None
    return bytes(buf) if got == size else None


def _read(fd: int, offset: int, size: int) -> bytes:
    return os.pread(fd, size, offset)


def _one_body_message(response: RangeFileResponse, scope: Scope) -> bool:
    """Whether the body leaves in a single `http.response.body` message: a file or a single range (with no
    `If-Range`) of at most one chunk. A 416 or a HEAD sends no body at all."""
    size = response.stat_result.st_size if response.stat_result is not None else None
    if size is None:
        return False
    if size <= response.chunk_size:
        return True
    http_range = if_range = None
    for name, value in scope["headers"]:
        if name == b"range":
            http_range = value.decode("latin-1")
        elif name == b"if-range":
            if_range = value
    if http_range is None or if_range is not None:
        return False
    try:
        ranges = response._parse_range_header(http_range, size)
    except RangeNotSatisfiable:
        return True
    return len(ranges) == 1 and ranges[0][1] - ranges[0][0] <= response.chunk_size


class RangeFileResponse(StrictRangeFileResponse):
    """A stored file, whole or one or more byte ranges, read from the page cache on the event loop
    (a worker-thread `pread` when it is not cached)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _one_body_message(self, scope):
            # Starlette listens for a disconnect (a task group) only below ASGI 2.4, where `send` does not
            # fail on a gone client; one body message has nothing to cancel, so it is sent as under 2.4.
            scope = {**scope, "asgi": {**scope.get("asgi", {}), "spec_version": "2.4"}}
        await super().__call__(scope, receive, send)

    async def _send_span(self, send: Send, start: int, end: int) -> None:
        fd = os.open(str(self.path), _OPEN_FLAGS)
        try:
            while start < end:
                size = min(self.chunk_size, end - start)
                chunk = _read_cached(fd, start, size)
                if chunk is None:
                    chunk = await anyio.to_thread.run_sync(_read, fd, start, size)
                if not chunk:
                    raise RuntimeError(f"file {os.path.basename(self.path)} is shorter than expected")
                start += len(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": start < end})
        finally:
            os.close(fd)

    async def _handle_simple(self, send: Send, send_header_only: bool, send_pathsend: bool) -> None:
        size = self.stat_result.st_size if self.stat_result is not None else None
        if send_header_only or send_pathsend or size is None or size == 0:
            await super()._handle_simple(send, send_header_only, send_pathsend)
            return
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        await self._send_span(send, 0, size)

    async def _handle_single_range(
        self, send: Send, start: int, end: int, file_size: int, send_header_only: bool
    ) -> None:
        headers = MutableHeaders(raw=list(self.raw_headers))
        headers["content-range"] = f"bytes {start}-{end - 1}/{file_size}"
        headers["content-length"] = str(end - start)
        await send({"type": "http.response.start", "status": 206, "headers": headers.raw})
        if send_header_only or start >= end:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        await self._send_span(send, start, end)
