"""`framemask serve` as a real uvicorn process on a loopback port: streamed upload over a socket, Range
reads, an over-limit upload cut off mid-stream with 413, and the server still serving afterwards."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.api import ADMIN, make_settings, settings_env, stop_process
from support.servers import free_port


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("serve")
    settings = make_settings(root / "data", max_upload_mb=2)
    port = free_port()
    cli = Path(sys.executable).with_name("framemask")
    log = open(root / "serve.log", "wb")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen(
        [str(cli), "serve", "--port", str(port), "--log-level", "warning"],
        env=settings_env(settings),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/healthz").status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, (root / "serve.log").read_text()
        time.sleep(0.2)
    try:
        yield base, settings
    finally:
        stop_process(proc)
        log.close()


def test_streamed_upload_and_range_over_a_real_socket(server, make) -> None:
    base, settings = server
    headers = {"Authorization": f"Bearer {ADMIN}"}
    video = make("vfr")
    with httpx.Client(base_url=base, headers=headers, timeout=60) as client, open(video, "rb") as fh:
        resp = client.post("/api/videos", files={"file": ("vfr.mp4", fh, "video/mp4")})
        assert resp.status_code == 201, resp.text
        vid = resp.json()["id"]
        stored = settings.data_dir / "objects" / "raw" / "videos" / vid / "original.mp4"
        assert stored.read_bytes() == video.read_bytes()
        got = client.get(f"/api/videos/{vid}/stream?variant=original", headers={"Range": "bytes=50-149"})
        assert got.status_code == 206 and got.content == video.read_bytes()[50:150]
        assert got.headers["content-range"] == f"bytes 50-149/{video.stat().st_size}"
        assert (
            client.get(f"/api/videos/{vid}/stream?variant=original", headers={"Range": "bytes=99999999-"}).status_code
            == 416
        )


def post_streaming(base: str, path: str, headers: dict[str, str], chunks: Iterator[bytes]) -> bytes:
    """POST a chunked body over a raw socket, reading the response while still sending.

    A server that refuses mid-body answers and closes; the answer is read as it arrives, so a refusal is
    seen as the status it sent, and a connection dropped without any answer returns b"" (a failure)."""
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=60)
    head = "".join(f"{k}: {v}\r\n" for k, v in {**headers, "Host": host, "Transfer-Encoding": "chunked"}.items())

    def send() -> None:
        try:
            sock.sendall(f"POST {path} HTTP/1.1\r\n{head}\r\n".encode())
            for chunk in chunks:
                sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server stopped reading: expected once it refused

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    received = b""
    try:
        while b"\r\n\r\n" not in received:
            data = sock.recv(65536)
            if not data:
                break
            received += data
    except OSError:
        pass
    finally:
        sock.close()
        sender.join(timeout=10)
    return received


def test_over_limit_upload_is_cut_off_and_the_server_keeps_serving(server) -> None:
    base, settings = server

    def body() -> Iterator[bytes]:
        yield b'--B\r\nContent-Disposition: form-data; name="file"; filename="huge.mp4"\r\n\r\n'
        for _ in range(64):  # 64 MiB offered against a 2 MiB limit, no Content-Length
            yield b"\0" * (1024 * 1024)

    headers = {"Authorization": f"Bearer {ADMIN}", "Content-Type": "multipart/form-data; boundary=B"}
    answer = post_streaming(base, "/api/videos", headers, body())
    assert answer.split(b"\r\n", 1)[0].startswith(b"HTTP/1.1 413"), answer[:200]  # not a dropped connection
    spool = settings.data_dir / "uploads"
    assert not spool.exists() or list(spool.iterdir()) == []
    listing = httpx.get(f"{base}/api/videos", headers={"Authorization": f"Bearer {ADMIN}"})
    assert listing.status_code == 200


def test_the_rsgi_bridge_keeps_http_semantics(server, make) -> None:
    """`framemask serve` runs the ASGI app through Granian's RSGI interface (`api/rsgi.py`): HEAD keeps the
    length without a body, a whole file leaves by path, a percent-encoded path is decoded once, the audit
    row names the client's address, and an event stream whose client leaves does not stop the server."""
    base, _settings = server
    headers = {"Authorization": f"Bearer {ADMIN}"}
    video = make("vfr")
    size = video.stat().st_size
    with httpx.Client(base_url=base, headers=headers, timeout=60) as client, open(video, "rb") as fh:
        created = client.post("/api/videos", files={"file": ("bridge.mp4", fh, "video/mp4")}).json()
        stream = f"/api/videos/{created['id']}/stream?variant=original"
        head = client.head(stream)
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-length"] == str(size)
        assert client.get(stream).content == video.read_bytes()  # http.response.pathsend
        ranged = client.get(stream, headers={"Range": "bytes=-100"})
        assert ranged.status_code == 206 and ranged.content == video.read_bytes()[-100:]
        odd = client.get("/api/videos/ab%2525cd")
        assert odd.status_code == 422 and odd.json()["detail"][0]["input"] == "ab%25cd"
        rows = client.get("/api/audit", params={"video_id": created["id"], "action": "original.stream"}).json()
        assert len(rows) == 3 and {row["client"] for row in rows} == {"127.0.0.1"}
        assert {row["detail"]["range"] for row in rows} == {None, "bytes=-100"}
        with client.stream("GET", f"/api/jobs/{created['job_id']}/events") as events:
            assert events.headers["content-type"].startswith("text/event-stream")
            assert next(events.iter_lines()).startswith("event: ")
        # the stream's client is gone (tests/api/test_rsgi_bridge.py: its handler is cancelled); the server answers
        assert client.get(f"/api/videos/{created['id']}").status_code == 200
