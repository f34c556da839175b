"""`api/rsgi.RSGIBridge` under a real Granian server (`api.server.run`), with a small Starlette app whose
behaviour the bridge must carry: an endless stream that only its client's departure can stop, a request
body read in chunks, and the lifespan around the server."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.api import stop_process
from support.servers import free_port

APP = """
import asyncio, sys
from contextlib import asynccontextmanager
from pathlib import Path
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route
from framemask.api.server import run

marks = Path(sys.argv[2])

async def endless(request):
    async def ticks():
        try:
            while True:
                yield b"tick\\n"
                await asyncio.sleep(0.05)
        finally:
            marks.joinpath("stream-ended").touch()
    return StreamingResponse(ticks(), media_type="text/plain")

async def echo(request):
    chunks = [len(chunk) async for chunk in request.stream()]
    return PlainTextResponse(f"{sum(chunks)} bytes")

@asynccontextmanager
async def lifespan(app):
    marks.joinpath("started").touch()
    yield
    marks.joinpath("stopped").touch()

app = Starlette(routes=[Route("/endless", endless), Route("/echo", echo, methods=["POST"])], lifespan=lifespan)
run(app, "127.0.0.1", int(sys.argv[1]), "warning")
"""


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path, subprocess.Popen[bytes]]]:
    script = tmp_path / "app.py"
    script.write_text(APP)
    marks = tmp_path / "marks"
    marks.mkdir()
    port = free_port()
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen([sys.executable, str(script), str(port), str(marks)], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not (marks / "started").exists() or not _answers(base):
        assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "server.log").read_text()
        time.sleep(0.1)
    try:
        yield base, marks, proc
    finally:
        stop_process(proc)
        log.close()


def _answers(base: str) -> bool:
    try:
        httpx.get(f"{base}/nothing", timeout=2)
    except httpx.TransportError:
        return False
    return True


def _wait_for(path: Path, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return path.exists()


def test_a_stream_ends_when_its_client_leaves(served) -> None:
    base, marks, _proc = served
    with httpx.stream("GET", f"{base}/endless", timeout=10) as response:
        assert response.status_code == 200
        assert next(response.iter_lines()) == "tick"
    assert _wait_for(marks / "stream-ended")  # the app heard the disconnect: no stream left running


def test_a_body_arrives_whole_and_the_lifespan_ends_with_the_server(served) -> None:
    base, marks, proc = served
    body = b"x" * (3 * 1024 * 1024 + 17)
    answer = httpx.post(f"{base}/echo", content=iter([body[:1000], body[1000:]]), timeout=30)
    assert answer.status_code == 200 and answer.text == f"{len(body)} bytes"
    assert httpx.get(f"{base}/nothing").status_code == 404
    assert not (marks / "stopped").exists()
    stop_process(proc)
    assert proc.returncode == 0 and (marks / "stopped").exists()
