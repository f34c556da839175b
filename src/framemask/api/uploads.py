"""Streaming multipart upload: the file part goes straight to a local spool file, size-checked as it
arrives (never trusting Content-Length), never held whole in memory.

Why not Starlette's `request.form()`: it cannot stop a body at a byte limit while it streams, and it
spools to the system temp directory, which costs a second copy of multi-gigabyte files.
"""

from __future__ import annotations

import contextlib
import uuid
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import anyio
from fastapi import HTTPException, Request, status
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from framemask.jobs.housekeeping import DISK_FULL, SPOOL_PREFIX, disk_full_error, is_disk_full, lock_spool

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks  # a TypedDict the library defines for checkers only

__all__ = ["Upload", "receive_upload"]

FIELD = "file"
_BATCH = 1024 * 1024  # parse and write in ~1 MiB batches off the event loop
_MAX_FIELD_BYTES = 64 * 1024
_ENVELOPE_BYTES = 1024 * 1024  # multipart headers and small fields around the file


@dataclass(frozen=True)
class Upload:
    """A received upload's spool file. It stays locked (in use, see `framemask.jobs.housekeeping`) until
    this object is gone, so the sweep never removes a spool whose request is still being handled."""

    path: Path
    filename: str
    size: int
    lock: BinaryIO | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.lock is not None:
            weakref.finalize(self, self.lock.close)


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

    def callbacks(self) -> MultipartCallbacks:
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
    services = getattr(request.app.state, "services", None)
    retry_after = services.settings.disk_full_retry_seconds if services is not None else 30.0
    try:
        path, fh = lock_spool(spool_dir, f"{SPOOL_PREFIX}{uuid.uuid4().hex}")
    except OSError as exc:
        raise _disk_full_or(exc, retry_after) from None
    try:
        sink = _Sink(fh, limit)
        parser = MultipartParser(boundary, sink.callbacks())
        async for batch in _batches(request, limit + _ENVELOPE_BYTES):
            await anyio.to_thread.run_sync(parser.write, batch)
        parser.finalize()
        fh.flush()
        upload = _finished(sink, path, fh)
        DISK_FULL.resolved()
        return upload
    except _TooLarge:
        _drop(path, fh)
        raise _too_large(limit) from None
    except FormParserError as exc:
        _drop(path, fh)
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"malformed multipart body: {exc}") from None
    except OSError as exc:
        _drop(path, fh)
        raise _disk_full_or(exc, retry_after) from None
    except BaseException:
        _drop(path, fh)
        raise


def _drop(path: Path, fh: BinaryIO) -> None:
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        fh.close()


def _disk_full_or(exc: OSError, retry_after: float) -> BaseException:
    """A full disk becomes a 503 with Retry-After (one log line per incident); other OS errors stay."""
    if not is_disk_full(exc):
        return exc
    DISK_FULL.report("receiving an upload", exc)
    return disk_full_error(exc, "receiving an upload", retry_after)


def _finished(sink: _Sink, path: Path, fh: BinaryIO) -> Upload:
    if sink.filename is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "no 'file' field in the upload")
    if not sink.ended:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "truncated upload: the multipart body ended early")
    if sink.size == 0:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "the uploaded file is empty")
    name = Path(sink.filename.replace("\\", "/")).name[:255] or "upload"
    return Upload(path, name, sink.size, lock=fh)
