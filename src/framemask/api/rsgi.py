"""The ASGI app served through Granian's native RSGI interface.

Granian's own ASGI layer hands each message to Rust through an awaitable; its RSGI interface takes a
complete response in one plain call (`response_bytes`). `RSGIBridge` runs the unchanged ASGI app (every
route, middleware and check) and turns its messages into those calls: a player's 1 MiB range, which
`RangeFileResponse` sends as one body message, leaves in one call. Under 50 clients that served 8% more
ranges a second than the same app under Granian's ASGI, and an original's p99 went from 1.66x to 1.41x
nginx's (medians of four paired rounds; `docs/benchmarks.md`, session 18). RSGI's range-by-path
(`response_file_range`) was measured too and lost to both: Granian reads the file through tokio's blocking
pool, 128 KiB per hop.

Whole files still leave by path (`http.response.pathsend`, as under Granian's ASGI). The lifespan is not
RSGI's: `framemask.api.server` runs the app's own around the server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from granian.rsgi import HTTPProtocol, ProtocolClosed, Scope  # type: ignore[attr-defined]  # re-exported names
from starlette.types import ASGIApp, Message

__all__ = ["RSGIBridge", "asgi_scope"]

_HTTP_VERSIONS = {"1": "1.0", "1.1": "1.1", "2": "2"}


class RSGIBridge:
    """An RSGI application running an ASGI one (HTTP only; `framemask serve` turns websockets off)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __rsgi__(self, scope: Scope, proto: HTTPProtocol) -> None:
        if scope.proto != "http":
            return
        exchange = _Exchange(proto)
        await self.app(asgi_scope(scope), exchange.receive, exchange.send)
        if not exchange.started:  # the app ended without an answer (its error middleware normally sends a 500)
            proto.response_empty(500, [])


def asgi_scope(scope: Scope) -> dict[str, Any]:
    """The ASGI HTTP scope of an RSGI one."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": _HTTP_VERSIONS.get(scope.http_version, scope.http_version),
        "method": scope.method,
        "scheme": scope.scheme,
        "path": scope.path,  # decoded by Granian already (ASGI's optional `raw_path` is left out)
        "query_string": scope.query_string.encode("latin-1", "replace"),
        "root_path": "",
        "headers": [
            (name.encode("latin-1"), value.encode("latin-1", "replace")) for name, value in scope.headers.items()
        ],
        "client": _address(scope.client),
        "server": _address(scope.server),
        "state": {},
        "extensions": {"http.response.pathsend": {}},
    }


def _address(text: str) -> tuple[str, int] | None:
    """("host", port) of RSGI's "host:port" ("[::1]:port" or "::1:port" for IPv6)."""
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


class _Exchange:
    """One request: its body as ASGI `http.request` messages, the app's answer as RSGI response calls."""

    def __init__(self, proto: HTTPProtocol) -> None:
        self.proto = proto
        self.chunks: AsyncIterator[bytes] | None = None
        self.body_done = False
        self.status = 500
        self.headers: list[tuple[str, str]] = []
        self.started = False  # handed to the server: a complete response or the start of a stream
        self.stream: Any = None
        self.closed = False  # the client went away while streaming

    async def receive(self) -> Message:
        if not self.body_done:
            if self.chunks is None:
                self.chunks = aiter(self.proto)
            try:
                chunk = await anext(self.chunks)
            except StopAsyncIteration:
                self.body_done = True
                return {"type": "http.request", "body": b"", "more_body": False}
            return {"type": "http.request", "body": chunk, "more_body": True}
        await self.proto.client_disconnect()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.status = message["status"]
            self.headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in message["headers"]]
        elif kind == "http.response.body":
            await self._body(bytes(message.get("body", b"")), bool(message.get("more_body", False)))
        elif kind == "http.response.pathsend":
            self.started = True
            self.proto.response_file(self.status, self.headers, message["path"])
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r}")

    async def _body(self, body: bytes, more: bool) -> None:
        if self.stream is None:
            if self.started:
                raise RuntimeError("response already sent")
            self.started = True
            if not more:
                self.proto.response_bytes(self.status, self.headers, body)
                return
            self.stream = self.proto.response_stream(self.status, self.headers)
        if body and not self.closed:
            try:
                await self.stream.send_bytes(body)
            except ProtocolClosed:  # ASGI 2.3: sends to a gone client are dropped; receive() reports it
                self.closed = True
