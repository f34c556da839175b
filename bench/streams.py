"""RTSP recording benchmark (issue 5).

One GStreamer RTSP server process (`framemask rtsp serve --loop`) serves a 720p H.264 clip (30 fps, 2 s
GOPs, 2 B-frames, about 2 Mb/s). N recordings (`Recorder`, as `framemask rtsp record` runs it; 16 threads
per process, as a worker recording several cameras would) record it at the same time for D seconds of
media each, for N = 1, 2, 4, 8, ... until the machine falls behind real time. Per step:
- recorder CPU seconds per stream-second (process CPU after imports, so the steady-state cost);
- server CPU seconds per stream-second (the serving side, from /proc);
- lag: wall-clock span of the received packets minus their media span, relative to a single stream;
- completeness: every recording has the frames of its media span.
A step is "real time" when the worst lag stays under 0.5 s and no frame is missing.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import WORK, write_results
from bench.media import make_clip

DURATION = 8.0
MAX_LAG = 0.5
STEPS = (1, 2, 4, 8, 16, 32, 64, 96, 128, 192, 256)
PER_PROCESS = 16
"""Recordings per recorder process (threads): a worker records several cameras; processes share the cores."""
TICK = os.sysconf("SC_CLK_TCK")


def child(url: str, prefix: str, duration: float, count: int) -> None:
    """`count` recordings in threads of this process; prints each result, with the CPU share, as JSON lines."""
    from concurrent.futures import ThreadPoolExecutor

    from framemask.streams.recorder import Recorder

    def one(i: int) -> dict[str, Any]:
        return Recorder(url, f"{prefix}_{i}.mp4", duration=duration, on_status=lambda _m: None).run().to_json()

    start = time.process_time()
    with ThreadPoolExecutor(count) as pool:
        results = list(pool.map(one, range(count)))
    cpu = (time.process_time() - start) / count
    for result in results:
        print(json.dumps({**result, "cpu_seconds": cpu}))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def serve(clip: Path, port: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "framemask", "rtsp", "serve", str(clip), "--port", str(port), "--loop"],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if "press Ctrl-C" in line:
            return proc
    raise RuntimeError("rtsp serve did not start")


def step(clip: Path, n: int) -> dict[str, Any]:
    """N simultaneous recordings from a fresh server; a failure ends the ramp with its reason."""
    port = free_port()
    server = serve(clip, port)
    try:
        return record_all(f"rtsp://127.0.0.1:{port}/{clip.stem}", n, server.pid)
    except RuntimeError as exc:
        return {"streams": n, "realtime": False, "error": str(exc)[-300:]}
    finally:
        server.terminate()
        server.wait(20)


def record_all(url: str, n: int, server_pid: int) -> dict[str, Any]:
    groups = [min(PER_PROCESS, n - start) for start in range(0, n, PER_PROCESS)]
    server_before, wall = proc_cpu(server_pid), time.monotonic()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.streams",
                "--child",
                url,
                str(WORK / "streams" / f"rec_{n}_{g}"),
                str(DURATION),
                str(count),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for g, count in enumerate(groups)
    ]
    results = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=DURATION * 20 + 60)
        if proc.returncode != 0:
            raise RuntimeError(f"recorder failed: {stderr[-500:]}")
        results.extend(json.loads(line) for line in stdout.splitlines())
    wall = time.monotonic() - wall
    server_cpu = proc_cpu(server_pid) - server_before
    for out in (WORK / "streams").glob(f"rec_{n}_*"):
        out.unlink()
    media = sum(r["media_seconds"] for r in results)
    lags = [r["wall_seconds"] - r["media_seconds"] for r in results]
    expected = round(DURATION * 30)
    missing = sum(max(0, expected - r["frames"]) for r in results)
    return {
        "streams": n,
        "media_seconds": round(media, 2),
        "recorder_cpu_per_stream_second": round(sum(r["cpu_seconds"] for r in results) / media, 4),
        "server_cpu_per_stream_second": round(server_cpu / media, 4),
        "wall_minus_media_seconds": [round(min(lags), 3), round(max(lags), 3)],
        "missing_frames": missing,
        "statuses": sorted({r["status"] for r in results}),
        "wall_seconds": round(wall, 2),
        "complete": missing == 0 and all(r["status"] == "duration" for r in results),
    }


def main() -> None:
    clip = make_clip(WORK / "streams_720p_10s.mp4", 10)
    (WORK / "streams").mkdir(parents=True, exist_ok=True)
    steps: list[dict[str, Any]] = []
    baseline: float | None = None
    for n in STEPS:
        result = step(clip, n)
        if "error" not in result:
            # the server sends its prerolled start as a burst, so wall - media is negative when keeping up;
            # lag is how much later than with a single stream the last packets arrive
            low, high = result["wall_minus_media_seconds"]
            baseline = low if baseline is None else baseline
            result["lag_seconds"] = round(high - baseline, 3)
            result["realtime"] = result["complete"] and result["lag_seconds"] < MAX_LAG
        steps.append(result)
        print(json.dumps(result), file=sys.stderr)
        if not result["realtime"]:
            break
    sustained = max((s["streams"] for s in steps if s["realtime"]), default=0)
    write_results(
        "streams",
        {
            "clip": clip.name,
            "duration_per_recording_s": DURATION,
            "steps": steps,
            "sustained_realtime_streams": sustained,
            "load_average": os.getloadavg(),
        },
        markdown(steps, sustained),
    )


def markdown(steps: list[dict[str, Any]], sustained: int) -> str:
    rows = "\n".join(
        f"| {s['streams']} | {s['recorder_cpu_per_stream_second']:.4f} | {s['server_cpu_per_stream_second']:.4f} | "
        f"{s['lag_seconds']:.3f} | {s['missing_frames']} | {'yes' if s['realtime'] else 'no'} |"
        if "error" not in s
        else f"| {s['streams']} | - | - | - | - | failed: {s['error'].splitlines()[-1][:120]} |"
        for s in steps
    )
    return f"""## RTSP recording: CPU per stream and simultaneous real-time recordings

720p H.264 (30 fps, 2 s GOPs, 2 B-frames, ~2 Mb/s) served by one `framemask rtsp serve --loop` process; N
recordings ({PER_PROCESS} threads per recorder process) record {DURATION:g} s of media each at the same time
(remux to fragmented MP4 on the local disk, no decoding).
CPU is seconds of CPU per second of recorded stream; lag is how much later than with a single stream the
last packets arrive (wall-clock span of the received packets minus their media span, against 1 stream).
Each step uses a fresh server process. {os.cpu_count()} cores, shared with other work
(load average {os.getloadavg()[0]:.1f} at the end).

| streams | recorder CPU s / stream s | server CPU s / stream s | worst lag s | missing frames | real time |
|---|---|---|---|---|---|
{rows}

Sustained in real time on this machine: **{sustained}** simultaneous recordings (server and recorders together).
"""


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5]))
    else:
        main()
