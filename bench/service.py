"""Service benchmark: a 2 GB streamed upload and Range requests from 50 concurrent clients.

    .venv/bin/python -m bench.service [--upload-mb 2048] [--clients 50] [--requests 20] [--range-kb 1024]

1. Upload: `framemask serve` (embedded default, workers off so only the upload path runs) receives a
   2 GB video (raw 720p frames in Matroska, a real playable file) as one multipart POST. We record the
   throughput to the 201 and the server's RSS sampled every 20 ms plus the kernel's high-water mark
   (VmHWM): memory must stay flat, independent of the upload size.
2. Range: 50 concurrent clients each fetch random byte ranges of that video through
   `GET /api/videos/{id}/stream` (bearer auth; the original also writes an audit row per request) and,
   as the anchor in the same run, from nginx serving the same file from disk (1 worker process, like
   the one uvicorn process; sendfile on). Latency p50/p99 and throughput; every body is checked.
3. Profile: with py-spy installed (the dev extras), the original's row is loaded once more while py-spy samples
   the server (`bench/pyspy.py`), after the measured rows so they stay unprofiled. The summary says where the
   server's time goes when target 2 is missed.

Writes bench/results/service.json and bench/results/service.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from bench import pyspy

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
ADMIN = "bench-admin-token-0123456789abcdef"
FRAME_BYTES = 1280 * 720 * 3 // 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def make_video(path: Path, megabytes: int) -> int:
    """A playable raw-video Matroska file of about `megabytes` (fast to make, incompressible size)."""
    frames = max(1, megabytes * 1024 * 1024 // FRAME_BYTES)
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1280x720:rate=30",
            "-frames:v",
            str(frames),
            "-c:v",
            "rawvideo",
            "-pix_fmt",
            "yuv420p",
            str(path),
        ],
        check=True,
    )
    return frames


def rss_kb(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class RssSampler(threading.Thread):
    def __init__(self, pid: int, every: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.samples: list[int] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            self.samples.append(rss_kb(self.pid))
            time.sleep(self.every)


def multipart_body(path: Path, boundary: str, chunk: int = 1024 * 1024):
    yield (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
        "Content-Type: video/x-matroska\r\n\r\n"
    ).encode()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            yield block
    yield f"\r\n--{boundary}--\r\n".encode()


def start_server(
    data_dir: Path, port: int, log: Path, server: str | None = None, **extra: str
) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAMEMASK_")}
    env.update(
        FRAMEMASK_DATA_DIR=str(data_dir),
        FRAMEMASK_WORKERS="0",
        FRAMEMASK_ADMIN_TOKEN=ADMIN,
        FRAMEMASK_MAX_UPLOAD_MB="8192",
        **extra,
    )
    cli = Path(sys.executable).with_name("framemask")
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [
                str(cli),
                "serve",
                "--port",
                str(port),
                "--log-level",
                "warning",
                *(["--server", server] if server else []),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    wait_http(f"http://127.0.0.1:{port}/healthz")
    return proc


def bench_upload(base: str, pid: int, video: Path) -> tuple[dict[str, Any], str]:
    size = video.stat().st_size
    baseline = rss_kb(pid)
    sampler = RssSampler(pid)
    sampler.start()
    started = time.perf_counter()
    resp = httpx.post(
        f"{base}/api/videos",
        content=multipart_body(video, "benchboundary"),
        headers={"Authorization": f"Bearer {ADMIN}", "Content-Type": "multipart/form-data; boundary=benchboundary"},
        timeout=None,
    )
    elapsed = time.perf_counter() - started
    sampler.halt.set()
    sampler.join()
    resp.raise_for_status()
    peak = max([*sampler.samples, rss_kb(pid)])
    return {
        "bytes": size,
        "seconds_to_201": round(elapsed, 2),
        "throughput_mb_s": round(size / elapsed / 1e6, 1),
        "server_rss_before_mb": round(baseline / 1024, 1),
        "server_rss_peak_sampled_mb": round(peak / 1024, 1),
        "server_rss_growth_mb": round((peak - baseline) / 1024, 1),
        "server_vm_hwm_mb": round(rss_kb(pid, "VmHWM") / 1024, 1),
        "rss_samples": len(sampler.samples),
    }, resp.json()["id"]


def expose_as_processed(data: Path, video_id: str, stored: Path) -> None:
    """Make the same bytes the video's processed file (a hard link), so both stream paths can be measured
    without running detection on 2 GB: the processed path skips the audit write."""
    target = data / "objects" / "processed" / "videos" / video_id / "processed.mp4"
    target.parent.mkdir(parents=True, exist_ok=True)
    os.link(stored, target)
    set_on_video(data, video_id, processed_key=f"videos/{video_id}/processed.mp4")


def set_on_video(data: Path, video_id: str, **columns: str) -> None:
    """Write columns of a video row in the server's SQLite database (what a job would record)."""
    from framemask.store.db import Database
    from framemask.store.models import Video

    db = Database(f"sqlite:///{(data / 'framemask.db').resolve()}", migrate=False)
    with db.begin() as session:
        video = session.get(Video, video_id)
        for name, value in columns.items():
            setattr(video, name, value)
    db.dispose()


def copy_reference(size: int, src: Path, dst: Path) -> float:
    """Plain `cp` of the same file on the same disk: the ceiling for a store-to-disk upload."""
    started = time.perf_counter()
    shutil.copyfile(src, dst)
    os.sync()
    rate = size / (time.perf_counter() - started) / 1e6
    dst.unlink()
    return round(rate, 1)


async def range_load(
    url: str, size: int, source: Path, clients: int, per_client: int, span: int, headers: dict[str, str]
) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    rng = random.Random(7)
    plan = [[rng.randrange(0, size - span) for _ in range(per_client)] for _ in range(clients)]
    fd = os.open(source, os.O_RDONLY)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def one_client(client: httpx.AsyncClient, starts: list[int]) -> None:
        nonlocal errors
        for n, start in enumerate(starts):
            t0 = time.perf_counter()
            resp = await client.get(url, headers={**headers, "Range": f"bytes={start}-{start + span - 1}"})
            body = resp.content
            latencies.append(time.perf_counter() - t0)
            ok = resp.status_code == 206 and len(body) == span
            if ok and n % 5 == 0:  # spot-check the bytes themselves
                ok = body == os.pread(fd, span, start)
            errors += not ok

    started = time.perf_counter()
    async with httpx.AsyncClient(limits=limits, timeout=120) as client:
        await asyncio.gather(*(one_client(client, starts) for starts in plan))
    wall = time.perf_counter() - started
    os.close(fd)
    latencies.sort()
    q = statistics.quantiles(latencies, n=100)
    return {
        "requests": len(latencies),
        "errors": errors,
        "p50_ms": round(q[49] * 1000, 1),
        "p90_ms": round(q[89] * 1000, 1),
        "p99_ms": round(q[98] * 1000, 1),
        "max_ms": round(latencies[-1] * 1000, 1),
        "req_per_s": round(len(latencies) / wall, 1),
        "mb_per_s": round(len(latencies) * span / wall / 1e6, 1),
    }


WRK_SCRIPT = r"""
local size = tonumber(os.getenv("FM_SIZE"))
local span = tonumber(os.getenv("FM_SPAN"))
local auth = os.getenv("FM_AUTH")
math.randomseed(7)
request = function()
  local start = math.floor(math.random() * (size - span))
  local headers = {["Range"] = "bytes=" .. start .. "-" .. (start + span - 1)}
  if auth ~= nil and auth ~= "" then headers["Authorization"] = auth end
  return wrk.format("GET", nil, headers)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "FMJSON {\"requests\":%d,\"errors\":%d,\"p50_ms\":%.2f,\"p90_ms\":%.2f,\"p99_ms\":%.2f," ..
    "\"max_ms\":%.2f,\"duration_s\":%.3f,\"bytes\":%d}\n",
    summary.requests, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, summary.duration / 1e6, summary.bytes))
end
"""


def wrk_load(url: str, size: int, span: int, clients: int, seconds: int, headers: dict[str, str], work: Path) -> dict:
    """Measure with wrk (C, 2 threads): the load generator costs far less CPU than the servers under test."""
    script = work / "ranges.lua"
    script.write_text(WRK_SCRIPT)
    env = {**os.environ, "FM_SIZE": str(size), "FM_SPAN": str(span), "FM_AUTH": headers.get("Authorization", "")}
    out = subprocess.run(
        ["wrk", "-t2", f"-c{clients}", f"-d{seconds}s", "--timeout", "30s", "-s", str(script), url],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    row = json.loads(next(line for line in out.splitlines() if line.startswith("FMJSON ")).split(" ", 1)[1])
    row["req_per_s"] = round(row["requests"] / row["duration_s"], 1)
    row["mb_per_s"] = round(row["bytes"] / row["duration_s"] / 1e6, 1)
    return row


PROFILED = "framemask original (auth + audit)"


def profile_server(
    pid: int, url: str, size: int, span: int, clients: int, seconds: int, headers: dict[str, str], work: Path
) -> dict[str, Any]:
    """py-spy's summary of the server `pid` while wrk loads `url` as in the measured rows."""
    raw = work / "server-profile.txt"
    spy = pyspy.record(pid, seconds, raw)
    time.sleep(0.5)  # attached before the load starts
    row = wrk_load(url, size, span, clients, seconds, headers, work)
    _out, err = spy.communicate(timeout=seconds + 60)
    if spy.returncode != 0 or not raw.is_file():
        raise RuntimeError(f"py-spy failed: {err.decode(errors='replace').strip()[-300:]}")
    return {"target": PROFILED, "p99_ms_while_profiled": row["p99_ms"], **pyspy.summarise(raw)}


def warm(path: Path) -> None:
    """Read the file once so every server starts from the same (cached) page cache."""
    with open(path, "rb") as fh:
        while fh.read(8 * 1024 * 1024):
            pass


NGINX_CONF = """
{user}
worker_processes 1;
daemon off;
pid {pid};
error_log {log} warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000;
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
  types {{ video/x-matroska mkv; video/mp4 mp4; }}
  server {{
    listen 127.0.0.1:{port};
    root {root};
  }}
  server {{
    listen 127.0.0.1:{proxy_port};
    location /_objects/ {{
      internal;
      alias {root}/;
    }}
    location / {{
      proxy_pass http://127.0.0.1:{accel_app_port};
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
}}
"""


def start_nginx(root: Path, work: Path, port: int, proxy_port: int, app_port: int) -> subprocess.Popen[bytes]:
    """nginx serving `root` on `port` (the anchor) and, on `proxy_port`, fronting a framemask server that
    answers streams with X-Accel-Redirect (auth by framemask, bytes by nginx)."""
    conf = work / "nginx.conf"
    user = "user root;" if os.geteuid() == 0 else ""  # the files live in a private temp dir
    conf.write_text(
        NGINX_CONF.format(
            user=user,
            pid=work / "nginx.pid",
            log=work / "nginx.log",
            tmp=work,
            port=port,
            root=root,
            proxy_port=proxy_port,
            accel_app_port=app_port,
        )
    )
    proc = subprocess.Popen(
        ["nginx", "-c", str(conf), "-p", str(work)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_http(f"http://127.0.0.1:{port}/")
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def write_markdown(result: dict[str, Any]) -> None:
    up, rng = result["upload"], result["range"]
    lines = [
        "# Service benchmark",
        "",
        f"Machine: {result['machine']}. Generated by `bench/service.py`; raw numbers in `service.json`.",
        "",
        f"## Streamed upload ({up['bytes'] / 1e9:.2f} GB, one multipart POST, embedded default)",
        "",
        "| metric | value |",
        "|---|---|",
        f"| time to 201 (receive + probe/index + store) | {up['seconds_to_201']} s |",
        f"| throughput | {up['throughput_mb_s']} MB/s |",
        f"| plain `cp` of the same file (disk ceiling) | {result['cp_mb_s']} MB/s |",
        f"| server RSS before | {up['server_rss_before_mb']} MB |",
        f"| server RSS peak during upload (sampled every 20 ms) | {up['server_rss_peak_sampled_mb']} MB |",
        f"| RSS growth over the whole upload | {up['server_rss_growth_mb']} MB |",
        f"| kernel high-water mark (VmHWM) | {up['server_vm_hwm_mb']} MB |",
        "",
        f"## Range requests: {rng['clients']} concurrent connections, {rng['range_kb']} KiB ranges at random "
        f"offsets of a {rng['file_bytes'] / 1e9:.2f} GB file, {rng['seconds']} s per server",
        "",
        "| server | p50 ms | p90 ms | p99 ms | p99 / nginx p99 | req/s | MB/s | errors | body-check errors "
        "| load 1 min |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    anchor = rng["servers"]["nginx (anchor)"]["p99_ms"]
    for name, row in rng["servers"].items():
        lines.append(
            f"| {name} | {row['p50_ms']} | {row['p90_ms']} | {row['p99_ms']} | {row['p99_ms'] / anchor:.2f}x | "
            f"{row['req_per_s']} | {row['mb_per_s']} | {row['errors']} | {row['checked_bodies_errors']} | "
            f"{row.get('load_average_1min', '-')} |"
        )
    generator = next(iter(rng["servers"].values()))["generator"]
    lines += [
        "",
        "framemask = one `framemask serve` process (Granian, embedded; the `--server uvicorn` row is the fallback), "
        "bearer-token auth on every request; `original` also writes an audit row per request. "
        "nginx: 1 worker process, sendfile, no auth. The X-Accel-Redirect "
        "row is nginx in front of framemask (`FRAMEMASK_ACCEL_REDIRECT_PREFIX`): framemask checks the token, "
        "nginx sends the bytes. "
        f"Load generator: {generator} on the same 2 cores; before each measurement a Python pass checks every "
        "5th body byte for byte against the file. The machine is shared with other work: treat numbers as rough.",
    ]
    if result.get("profile"):
        prof = result["profile"]
        lines += ["", *pyspy.markdown(prof, f"Profile of the server under the `{prof['target']}` load")]
        lines.append(
            f"The row was loaded again for the profile (p99 {prof['p99_ms_while_profiled']} ms while sampled). "
            "*A native thread holding Python state* is Granian's runtime thread (Rust) while it holds the GIL: "
            "building request scopes and taking response bodies."
        )
    (RESULTS / "service.md").write_text("\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upload-mb", type=int, default=2048)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=20, help="requests per client (without wrk)")
    parser.add_argument("--seconds", type=int, default=15, help="measurement time per server (wrk)")
    parser.add_argument("--range-kb", type=int, default=1024)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy profile of the original's row")
    args = parser.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="fm-bench-service-"))
    work.mkdir(parents=True, exist_ok=True)
    data = work / "data"
    video = work / "upload.mkv"
    print(f"making a {args.upload_mb} MB video in {work} ...", flush=True)
    frames = make_video(video, args.upload_mb)
    size = video.stat().st_size
    port, nginx_port, proxy_port, accel_port = free_port(), free_port(), free_port(), free_port()
    server = start_server(data, port, work / "server.log")
    base = f"http://127.0.0.1:{port}"
    nginx = accel = fallback = None
    try:
        print("uploading ...", flush=True)
        upload, video_id = bench_upload(base, server.pid, video)
        upload["frames"] = frames
        print(json.dumps(upload), flush=True)
        stored = data / "objects" / "raw" / "videos" / video_id / "original.mkv"
        expose_as_processed(data, video_id, stored)
        accel = start_server(data, accel_port, work / "accel.log", FRAMEMASK_ACCEL_REDIRECT_PREFIX="/_objects/")
        uv_port = free_port()
        fallback = start_server(data, uv_port, work / "uvicorn.log", server="uvicorn")
        nginx = start_nginx(data / "objects", work, nginx_port, proxy_port, accel_port)
        span = args.range_kb * 1024
        auth = {"Authorization": f"Bearer {ADMIN}"}
        targets = {
            "nginx (anchor)": (f"http://127.0.0.1:{nginx_port}/raw/videos/{video_id}/original.mkv", {}),
            "framemask processed (auth)": (f"{base}/api/videos/{video_id}/stream", auth),
            "framemask original (auth + audit)": (f"{base}/api/videos/{video_id}/stream?variant=original", auth),
            "framemask processed (auth), `--server uvicorn`": (
                f"http://127.0.0.1:{uv_port}/api/videos/{video_id}/stream",
                auth,
            ),
            "nginx + framemask auth (X-Accel-Redirect)": (
                f"http://127.0.0.1:{proxy_port}/api/videos/{video_id}/stream",
                auth,
            ),
        }
        servers: dict[str, Any] = {}
        checks: dict[str, Any] = {}
        load_before = os.getloadavg()
        for name, (url, headers) in targets.items():
            print(f"range check + load: {name} ...", flush=True)
            warm(stored)
            checks[name] = asyncio.run(range_load(url, size, stored, args.clients, 2, span, headers))
            if shutil.which("wrk"):
                servers[name] = wrk_load(url, size, span, args.clients, args.seconds, headers, work)
                servers[name]["generator"] = "wrk"
            else:
                servers[name] = asyncio.run(range_load(url, size, stored, args.clients, args.requests, span, headers))
                servers[name]["generator"] = "python-httpx"
            servers[name]["checked_bodies_errors"] = checks[name]["errors"]
            servers[name]["load_average_1min"] = round(os.getloadavg()[0], 2)
            print(json.dumps(servers[name]), flush=True)
        load_after = [round(v, 2) for v in os.getloadavg()]
        profile = None
        if not args.no_profile and pyspy.available() and shutil.which("wrk"):
            print("profiling the original's row with py-spy ...", flush=True)
            url, headers = targets[PROFILED]
            profile = profile_server(server.pid, url, size, span, args.clients, args.seconds, headers, work)
        result = {
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
            "upload": upload,
            "cp_mb_s": copy_reference(size, stored, work / "cp-copy.mkv"),
            "range": {
                "clients": args.clients,
                "seconds": args.seconds,
                "range_kb": args.range_kb,
                "file_bytes": size,
                "servers": servers,
                "load_average_before": [round(v, 2) for v in load_before],
                "load_average_after": load_after,
            },
            "profile": profile,
        }
    finally:
        for proc in (nginx, accel, fallback, server):
            if proc is not None:
                stop(proc)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "service.json").write_text(json.dumps(result, indent=2) + "\n")
    write_markdown(result)
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    print((RESULTS / "service.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
