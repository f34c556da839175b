"""Streaming multipart upload: the file part goes straight to a local spool file, size-checked as it
arrives (never trusting Content-Length), never held whole in memory.

Why not Starlette's `request.form()`: it cannot stop a body at a byte limit while it streams, and it
spools to the system temp directory, which costs a second copy of multi-gigabyte files.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import anyio
from fastapi import HTTPException, Request, status
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

__all__ = ["Upload", "receive_upload"]

FIELD = "file"
_BATCH = 1024 * 1024  # parse and write in ~1 MiB batches off the event loop
_MAX_FIELD_BYTES = 64 * 1024
_ENVELOPE_BYTES = 1024 * 1024  # multipart headers and small fields around the file


@dataclass(frozen=True)
class Upload:
    path: Path
    filename: str
    size: int


class _Sink:
    """python-multipart callbacks: route the `file` part's bytes into the spool file."""

    def __init__(self, fh: BinaryIO, limit: int) -> None:
        self.fh, self.limit = fh, limit
        self.size = 0
        self.filename: str | None = None
        self.ended = False
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._headers: dict[str, bytes] = {}
        self._in_file = False
        self._seen_file = False

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda d, s, e: self._header_field.extend(d[s:e]),
            "on_header_value": lambda d, s, e: self._header_value.extend(d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_end": self._end,
        }

    def _part_begin(self) -> None:
        self._headers.clear()
        self._in_file = False

    def _header_end(self) -> None:
        self._headers[self._header_field.decode("latin-1").lower()] = bytes(self._header_value)
        self._header_field.clear()
        self._header_value.clear()

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get("content-disposition", b""))
        if options.get(b"name") == FIELD.encode() and not self._seen_file:
            self._in_file = self._seen_file = True
            self.filename = options.get(b"filename", b"upload").decode("utf-8", "replace")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if not self._in_file:
            return
        self.size += end - start
        if self.size > self.limit:
            raise _TooLarge
        self.fh.write(data[start:end])

    def _end(self) -> None:
        self.ended = True


class _TooLarge(Exception):
    pass


def _too_large(limit: int) -> HTTPException:
    return HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"upload exceeds the limit of {limit} bytes")


def _boundary(request: Request) -> bytes:
    ctype, options = parse_options_header(request.headers.get("content-type"))
    boundary = options.get(b"boundary")
    if ctype != b"multipart/form-data" or not boundary:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "expected multipart/form-data with a 'file' field")
    return boundary


async def _batches(request: Request, max_body: int) -> AsyncIterator[bytes]:
    pending: list[bytes] = []
    size = total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > max_body:
            raise _TooLarge
        pending.append(chunk)
        size += len(chunk)
        if size >= _BATCH:
            yield b"".join(pending)
            pending, size = [], 0
    if pending:
        yield b"".join(pending)


async def receive_upload(request: Request, spool_dir: Path, limit: int) -> Upload:
    """Stream the request's `file` part into `spool_dir`; 413 past `limit`, 422 if malformed or truncated.

    On any error the spool file is removed; on success the caller owns it.
    """
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + _ENVELOPE_BYTES:
        raise _too_large(limit)
    boundary = _boundary(request)
    spool_dir.mkdir(parents=True, exist_ok=True)
    path = spool_dir / f"upload-{uuid.uuid4().hex}"
    try:
        with open(path, "wb") as fh:
            sink = _Sink(fh, limit)
            parser = MultipartParser(boundary, sink.callbacks())  # type: ignore[arg-type]
            async for batch in _batches(request, limit + _ENVELOPE_BYTES):
                await anyio.to_thread.run_sync(parser.write, batch)
            parser.finalize()
        return _finished(sink, path)
    except _TooLarge:
        path.unlink(missing_ok=True)
        raise _too_large(limit) from None
    except FormParserError as exc:
        path.unlink(missing_ok=True)
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"malformed multipart body: {exc}") from None
    except BaseException:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)
        raise


def _finished(sink: _Sink, path: Path) -> Upload:
    if sink.filename is None:
        path.unlink(missing_ok=True)
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "no 'file' field in the upload")
    if not sink.ended:
        path.unlink(missing_ok=True)
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "truncated upload: the multipart body ended early")
    if sink.size == 0:
        path.unlink(missing_ok=True)
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "the uploaded file is empty")
    name = Path(sink.filename.replace("\\", "/")).name[:255] or "upload"
    return Upload(path, name, sink.size)
