"""Exact frame endpoint at 1080p: random and sequential `GET /frame?seq=` against a warm reader.

    .venv/bin/python bench/frames.py [--video ../shared/media/TUD-Campus.mp4] [--requests 120] [--save-as frames]

A 1080p25 H.264 clip (2 s GOPs, 2 B-frames) is made from `--video` (scaled, looped to 240 frames) and uploaded
to `framemask serve` (embedded defaults, workers off); the same bytes are then recorded as its processed file
(no detection: this measures the frame path, not the detector), and frames are asked for as the editor asks
(`variant=processed&format=jpeg&quality=90`, one request at a time over one keep-alive connection, client-side
latency):

1. random: `--requests` frames at random positions (each one a seek and a decode from its key frame);
2. sequential: `--requests` consecutive frames forward from a third of the way in (what stepping costs);
3. the same two at a display width of 960 pixels (`&width=960`, what a 1280-wide editor shows);
4. the same random and sequential requests on the clip re-encoded as framemask encodes a processed master
   (`VideoWriter`, the pipeline's `EncodeSettings.for_fps`: 0.5 s GOPs, the preset's B-frames), as a
   segmented render encodes it (`segment_encoder`: 0.5 s GOPs, no B-frames), and with the 1 s GOPs masters
   had before (the bitrate trade: each master's size is recorded). The processed file the editor steps
   through is one of the first two, so they are what an editor session costs; the 2 s GOP rows stand for an
   original;
5. random and sequential on the 2 s GOP clip remuxed under a -90 degree display rotation: a portrait phone
   clip's original (its frames are turned before they are encoded);
6. the 2 s GOP clip uploaded as an original (`variant=original`, audited): read from its review proxy (made as
   the service's proxy job makes it, `framemask.redact.proxy`; its encode time and size are recorded), and with
   `exact=true`, decoded from the original itself.

Anchor, in the same run: OpenCV (`cv2.VideoCapture` seek to the frame, read, `cv2.imencode` JPEG q90) on the
same processed file, in this process, no HTTP: what a naive frame server would do. Targets (issue 13):
random p95 <= 60 ms, sequential p95 <= 15 ms. Load average is recorded before and after: the machine is
shared, so compare against the anchor of the same run.

Writes bench/results/<save-as>.json and .md.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.common import pct, with_display_rotation, write_results  # noqa: E402
from bench.service import ADMIN, expose_as_processed, free_port, set_on_video, start_server  # noqa: E402
from framemask.media import iter_frames, probe  # noqa: E402
from framemask.redact.encode import EncodeSettings, VideoWriter, frame_to_i420, monotonic_pts  # noqa: E402
from framemask.redact.proxy import make_review_proxy  # noqa: E402
from framemask.redact.segments import segment_encoder  # noqa: E402

FRAMES = 240
PORTRAIT = "portrait original (2 s GOPs, shown rotated)"
ORIGINAL_PROXY = "original via its review proxy"
ORIGINAL_EXACT = "original, exact=true"
TARGETS = {"random": 60.0, "sequential": 15.0}


def make_clip(source: Path, out: Path) -> None:
    """1080p25 H.264 (yuv420p, 2 s GOPs, 2 B-frames) from `source`, looped to `FRAMES` frames."""
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-stream_loop",
            "-1",
            "-i",
            str(source),
            "-vf",
            "scale=1920:1080,fps=25",
            "-frames:v",
            str(FRAMES),
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-g",
            "50",
            "-bf",
            "2",
            "-pix_fmt",
            "yuv420p",
            "-an",
            str(out),
        ],
        check=True,
    )


def master_settings(fps: float) -> dict[str, EncodeSettings]:
    """The encoder settings of processed masters, as the pipeline picks them (`EncodeSettings.for_fps`, the
    preset's B-frames), as a segmented render does (`segment_encoder`: no B-frames), and the 1 s GOPs of before."""
    return {
        "master (0.5 s GOPs)": EncodeSettings.for_fps(fps),
        "segmented master (0.5 s GOPs, no B-frames)": segment_encoder(fps),
        "master before (1 s GOPs)": EncodeSettings(keyint=max(1, round(fps))),
    }


def make_master(clip: Path, out: Path, settings: EncodeSettings) -> None:
    """`clip` re-encoded by framemask's `VideoWriter` with `settings`, I420 frames and timestamps kept (as the
    pipeline writes a master)."""
    info = probe(clip)
    assert info.index is not None
    pts, time_base, _ = monotonic_pts(info.index.pts, info.index.time_base)
    with VideoWriter(out, info.width, info.height, time_base, info.fps, settings) as writer:
        for seq, frame in iter_frames(clip):
            writer.write_i420(frame_to_i420(frame), int(pts[seq - 1]))
        writer.close()


def upload(base: str, clip: Path) -> str:
    with open(clip, "rb") as fh:
        resp = httpx.post(
            f"{base}/api/videos",
            files={"file": (clip.name, fh, "video/mp4")},
            headers={"Authorization": f"Bearer {ADMIN}"},
            timeout=300,
        )
    resp.raise_for_status()
    return str(resp.json()["id"])


def serve_as_processed(base: str, data: Path, clip: Path) -> str:
    """Upload `clip` and record the stored bytes as its processed file: the id of the video."""
    video_id = upload(base, clip)
    stored = next((data / "objects" / "raw" / "videos" / video_id).glob("original.*"))
    expose_as_processed(data, video_id, stored)
    return video_id


def attach_proxy(data: Path, video_id: str) -> dict[str, float]:
    """Make the review proxy of the video's original as the proxy job does and record it on the video (the
    bench's server runs no workers). Its encode time (s) and size (MiB), beside the original's."""
    original = next((data / "objects" / "raw" / "videos" / video_id).glob("original.*"))
    target = data / "objects" / "processed" / "videos" / video_id / "proxy.mp4"
    target.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    make_review_proxy(original, target)
    seconds = time.perf_counter() - started
    set_on_video(data, video_id, proxy_key=f"videos/{video_id}/proxy.mp4")
    mib = 2**20
    return {
        "seconds": round(seconds, 2),
        "mib": round(target.stat().st_size / mib, 2),
        "original_mib": round(original.stat().st_size / mib, 2),
    }


def timed_gets(
    client: httpx.Client, url: str, seqs: list[int], extra: str, variant: str = "processed", source: str | None = None
) -> dict[str, Any]:
    """Each frame of `seqs` asked for in turn, checked (its number, and the file it came from when `source`)."""
    times, sizes = [], []
    for seq in seqs:
        t0 = time.perf_counter()
        resp = client.get(f"{url}?seq={seq}&variant={variant}&format=jpeg&quality=90{extra}")
        body = resp.content
        times.append((time.perf_counter() - t0) * 1000)
        if resp.status_code != 200 or resp.headers.get("x-frame-seq") != str(seq):
            raise RuntimeError(f"frame {seq}: {resp.status_code} {resp.headers.get('x-frame-seq')}")
        if source is not None and resp.headers.get("x-frame-source") != source:
            raise RuntimeError(f"frame {seq} came from {resp.headers.get('x-frame-source')}, not {source}")
        sizes.append(len(body))
    return summary(times) | {"kib": round(sum(sizes) / len(sizes) / 1024, 1)}


def summary(times: list[float]) -> dict[str, Any]:
    return {
        "p50_ms": round(pct(times, 50), 1),
        "p95_ms": round(pct(times, 95), 1),
        "max_ms": round(max(times), 1),
        "n": len(times),
    }


def opencv_anchor(path: Path, seqs: list[int]) -> dict[str, Any]:
    """Seek + read + JPEG q90 with OpenCV (frame-by-position: fast, not always exact on every file)."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    times = []
    for seq in seqs:
        t0 = time.perf_counter()
        cap.set(cv2.CAP_PROP_POS_FRAMES, seq - 1)
        ok, bgr = cap.read()
        if not ok:
            raise RuntimeError(f"OpenCV could not read frame {seq}")
        cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 90])
        times.append((time.perf_counter() - t0) * 1000)
    cap.release()
    return summary(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", type=Path, default=ROOT.parent / "shared" / "media" / "TUD-Campus.mp4")
    ap.add_argument("--requests", type=int, default=120)
    ap.add_argument("--save-as", default="frames")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-frames-"))
    clip = tmp / "clip_1080p.mp4"
    make_clip(args.video, clip)
    masters: dict[str, Path] = {}
    for i, (label, settings) in enumerate(master_settings(probe(clip).fps).items()):
        masters[label] = tmp / f"master_{i}.mp4"
        make_master(clip, masters[label], settings)
    master_mib = {label: round(path.stat().st_size / 2**20, 2) for label, path in masters.items()}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    load_before = os.getloadavg()
    proc = start_server(tmp / "data", port, tmp / "server.log")
    rng = random.Random(13)
    rows: dict[str, Any] = {}
    try:
        data = tmp / "data"
        video_id = serve_as_processed(base, data, clip)
        master_ids = {label: serve_as_processed(base, data, path) for label, path in masters.items()}
        portrait = with_display_rotation(clip, tmp / "portrait_1080p.mp4")
        master_ids[PORTRAIT] = serve_as_processed(base, data, portrait)
        original_id = upload(base, clip)
        proxy = attach_proxy(data, original_id)
        admin = {"Authorization": f"Bearer {ADMIN}"}
        token = httpx.post(f"{base}/api/tokens", json={"role": "editor", "name": "bench"}, headers=admin, timeout=60)
        token.raise_for_status()
        url = f"{base}/api/videos/{video_id}/frame"
        n = args.requests
        random_seqs = [rng.randrange(1, FRAMES + 1) for _ in range(n)]
        start = FRAMES // 3
        sequential = list(range(start, min(FRAMES, start + n)))
        with httpx.Client(headers={"Authorization": f"Bearer {token.json()['token']}"}, timeout=60) as client:
            client.get(f"{url}?seq=1&variant=processed&format=jpeg&quality=90").raise_for_status()  # warm reader
            for label, extra in (("", ""), (" (width=960)", "&width=960")):
                rows[f"random{label}"] = timed_gets(client, url, random_seqs, extra)
                rows[f"sequential{label}"] = timed_gets(client, url, sequential, extra)
            for label, master_id in master_ids.items():
                master_url = f"{base}/api/videos/{master_id}/frame"
                client.get(f"{master_url}?seq=1&variant=processed&format=jpeg&quality=90").raise_for_status()
                rows[f"{label}: random"] = timed_gets(client, master_url, random_seqs, "")
                rows[f"{label}: sequential"] = timed_gets(client, master_url, sequential, "")
            original_url = f"{base}/api/videos/{original_id}/frame"
            for label, extra, source in ((ORIGINAL_PROXY, "", "proxy"), (ORIGINAL_EXACT, "&exact=true", "original")):
                client.get(f"{original_url}?seq=1&variant=original&format=jpeg&quality=90{extra}").raise_for_status()
                for name, seqs in (("random", random_seqs), ("sequential", sequential)):
                    rows[f"{label}: {name}"] = timed_gets(client, original_url, seqs, extra, "original", source)
        rows["anchor: OpenCV seek+read+JPEG, random"] = opencv_anchor(clip, random_seqs)
        rows["anchor: OpenCV seek+read+JPEG, sequential"] = opencv_anchor(clip, sequential)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    load_after = os.getloadavg()
    data = {
        "frames": FRAMES,
        "size": "1920x1080",
        "rows": rows,
        "master_mib": master_mib,
        "proxy": proxy,
        "targets_p95_ms": TARGETS,
        "load_average_before": load_before,
        "load_average_after": load_after,
    }
    lines = [
        f"# Exact frames at 1080p: `GET /frame?seq=` ({args.save_as})",
        "",
        f"{FRAMES} frames of 1920x1080 H.264 (TUD-Campus scaled and looped; 2 s GOPs, 2 B-frames), JPEG q90 as "
        "the editor asks, one request at a time over one keep-alive connection, warm reader. "
        f"Load average before / after: {load_before[0]:.1f} / {load_after[0]:.1f} on {os.cpu_count()} shared cores.",
        "",
        "Rows without a prefix: that clip (2 s GOPs, as an original may be). `master (0.5 s GOPs)`: the same "
        "frames re-encoded by framemask's `VideoWriter` with the pipeline's settings for a processed master (x264 "
        "veryfast crf 23, closed GOPs, the preset's 3 B-frames). `segmented master`: the same with "
        "`segment_encoder` settings (no B-frames), as a segmented render writes it. `master before`: the 1 s GOPs "
        "masters had before. The editor steps through a processed master, so the master rows are what an editing "
        "session costs. `portrait original`: the 2 s GOP clip under a -90 degree display rotation, as a phone "
        "records portrait video. The OpenCV anchor reads the 2 s GOP clip. Master sizes (the bitrate trade): "
        + ", ".join(f"{label} {mib} MiB" for label, mib in master_mib.items())
        + f". `{ORIGINAL_PROXY}`: the clip uploaded as an original, its frames read from the review proxy, made "
        f"in {proxy['seconds']} s ({proxy['mib']} MiB, the original {proxy['original_mib']} MiB); "
        f"`{ORIGINAL_EXACT}`: the same original decoded itself.",
        "",
        "| requests | p50 ms | p95 ms | max ms | n | KiB per frame | target p95 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in rows.items():
        target = next((f"≤ {v:.0f} ms" for k, v in TARGETS.items() if name.split(": ")[-1] == k), "")
        lines.append(
            f"| {name} | {row['p50_ms']} | {row['p95_ms']} | {row['max_ms']} | {row['n']} | "
            f"{row.get('kib', '–')} | {target} |"
        )
    write_results(args.save_as, data, "\n".join(lines))


if __name__ == "__main__":
    main()
