"""Sending stored files with few event-loop round trips: the stream endpoint's response.

Starlette's `FileResponse` spends five worker-thread hops on a 1 MiB range (stat, open, seek, read, close),
and under 50 concurrent clients those hops, not the bytes, set the latency. `RangeFileResponse` takes the
`os.stat` result the caller already has and reads each chunk with one `pread` hop (the first one opens the
file, the last one closes it). A whole file goes out with `http.response.pathsend` when the server offers
it (Granian: the bytes never enter Python). Range parsing and the 416 answers are `StrictRangeFileResponse`'s.
"""

from __future__ import annotations

import os

import anyio.to_thread
from starlette.datastructures import MutableHeaders
from starlette.types import Send

from framemask.api.hardening import StrictRangeFileResponse

__all__ = ["RangeFileResponse"]


def _read_at(path: str, fd: int | None, offset: int, size: int) -> tuple[int, bytes]:
    """`size` bytes at `offset` (opening the file on the first call): one thread hop per chunk."""
    if fd is None:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        return fd, os.pread(fd, size, offset)
    except BaseException:
        os.close(fd)
        raise


class RangeFileResponse(StrictRangeFileResponse):
    """A stored file, whole or one or more byte ranges, read with one `pread` hop per chunk."""

    async def _send_span(self, send: Send, start: int, end: int) -> None:
        fd: int | None = None
        path = str(self.path)
        try:
            while start < end:
                fd, chunk = await anyio.to_thread.run_sync(_read_at, path, fd, start, min(self.chunk_size, end - start))
                if not chunk:
                    raise RuntimeError(f"file {os.path.basename(path)} is shorter than expected")
                start += len(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": start < end})
        finally:
            if fd is not None:
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
