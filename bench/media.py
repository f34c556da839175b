"""Media core benchmark (issue 2).

(a) Building the frame index vs `ffprobe -count_frames` (the anchor) on the same files: time and count.
(b) Random exact-frame access on 720p H.264 with 2 s GOPs vs OpenCV `CAP_PROP_POS_FRAMES` seek + read
    (the anchor): latency p50/p95 and how often each returns the wrong frame; next-frame latency.
"""

from __future__ import annotations

import random
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from bench.common import WORK, pct, write_results

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support.videos import ffprobe_count

from framemask.media import FrameIndex, FrameReader

SHARED = Path(__file__).resolve().parents[2] / "shared" / "media"
BITS, BLOCK = 12, 48


def make_clip(path: Path, seconds: int, vfr: bool = False) -> Path:
    """720p H.264, 2 s GOPs, 2 B-frames; each frame shows its number as 12 big binary blocks."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tb = Fraction(1, 90000)
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt, s.time_base = 1280, 720, "yuv420p", tb
        s.codec_context.time_base = tb
        s.options = {"g": "60", "keyint_min": "60", "sc_threshold": "0", "bf": "2", "preset": "veryfast", "crf": "23"}
        y, x = np.mgrid[0:720, 0:1280]
        base = np.stack([(x // 5) % 256, (y // 3) % 256, ((x + y) // 7) % 256], -1).astype(np.uint8)
        t = 0.0
        for i in range(seconds * 30):
            img = np.roll(base, i * 3, axis=1)
            for b in range(BITS):
                img[0:BLOCK, b * BLOCK : (b + 1) * BLOCK] = 255 if (i >> b) & 1 else 0
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = round(t / tb), tb
            out.mux(s.encode(frame))
            t += (1 / 30) if not vfr or (i // 45) % 2 == 0 else (1 / 12)
        out.mux(s.encode(None))
    return path


def frame_number(rgb: np.ndarray) -> int:
    row = rgb[BLOCK // 4 : 3 * BLOCK // 4, : BITS * BLOCK].mean(axis=(0, 2))
    bits = [row[b * BLOCK + BLOCK // 4 : b * BLOCK + 3 * BLOCK // 4].mean() > 128 for b in range(BITS)]
    return sum(1 << b for b, on in enumerate(bits) if on)


def ffprobe_count_timed(path: Path) -> tuple[int, float]:
    """ffprobe's decoded frame count (the tests' reference count) and how long it took."""
    t0 = time.perf_counter()
    return ffprobe_count(path), time.perf_counter() - t0


def bench_index(files: list[Path]) -> list[dict]:
    rows = []
    for path in files:
        count, t_ffprobe = min((ffprobe_count_timed(path) for _ in range(3)), key=lambda r: r[1])
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            index = FrameIndex.build(path)
            times.append(time.perf_counter() - t0)
        rows.append(
            {
                "file": path.name,
                "frames": index.end_sequence,
                "ffprobe_frames": count,
                "equal": index.end_sequence == count,
                "index_s": min(times),
                "ffprobe_s": t_ffprobe,
                "speedup": t_ffprobe / min(times),
                "decoded": not index.exact_pts,
            }
        )
    return rows


def bench_random_access(path: Path, samples: int = 200) -> dict:
    index = FrameIndex.build(path)
    n = index.end_sequence
    rng = random.Random(7)
    seqs = [rng.randint(1, n) for _ in range(samples)]
    ours, wrong_ours, nxt = [], 0, []
    with FrameReader(path, index, cache_frames=1) as reader:
        for seq in seqs:
            t0 = time.perf_counter()
            img = reader.frame(seq)
            ours.append(time.perf_counter() - t0)
            wrong_ours += frame_number(img) != seq - 1
            if seq < n:
                t0 = time.perf_counter()
                img = reader.frame(seq + 1)
                nxt.append(time.perf_counter() - t0)
                wrong_ours += frame_number(img) != seq
    cap = cv2.VideoCapture(str(path))
    cv_times, wrong_cv = [], 0
    for seq in seqs:
        t0 = time.perf_counter()
        cap.set(cv2.CAP_PROP_POS_FRAMES, seq - 1)
        ok, img = cap.read()
        cv_times.append(time.perf_counter() - t0)
        wrong_cv += (not ok) or frame_number(img[..., ::-1]) != seq - 1
    cap.release()
    ms = 1000.0
    return {
        "file": path.name,
        "frames": n,
        "samples": samples,
        "framemask_p50_ms": pct(ours, 50) * ms,
        "framemask_p95_ms": pct(ours, 95) * ms,
        "framemask_next_p50_ms": pct(nxt, 50) * ms,
        "framemask_wrong": wrong_ours,
        "opencv_p50_ms": pct(cv_times, 50) * ms,
        "opencv_p95_ms": pct(cv_times, 95) * ms,
        "opencv_wrong": wrong_cv,
        "opencv_wrong_rate": wrong_cv / samples,
    }


def main() -> None:
    cfr = make_clip(WORK / "media_720p_cfr_60s.mp4", 60)
    vfr = make_clip(WORK / "media_720p_vfr_60s.mp4", 60, vfr=True)
    files = [cfr, vfr, *sorted(p for p in SHARED.glob("*") if p.suffix in (".mp4", ".mkv", ".mov", ".avi", ".webm"))]
    index_rows = bench_index(files)
    access = [bench_random_access(cfr), bench_random_access(vfr)]
    md = [
        "## Frame index vs `ffprobe -count_frames`",
        "",
        "| file | frames | ffprobe | equal | index ms | ffprobe ms | speed-up |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in index_rows:
        md.append(
            f"| {r['file']}{' (decoded)' if r['decoded'] else ''} | {r['frames']} | {r['ffprobe_frames']} | "
            f"{'yes' if r['equal'] else '**NO**'} | {r['index_s'] * 1000:.1f} | {r['ffprobe_s'] * 1000:.1f} | "
            f"{r['speedup']:.1f}x |"
        )
    md += [
        "",
        "## Random exact-frame access, 720p H.264, 2 s GOPs, 2 B-frames (vs OpenCV seek + read)",
        "",
        "| file | ours p50 / p95 ms | next frame p50 ms | ours wrong | OpenCV p50 / p95 ms | OpenCV wrong |",
        "|---|---|---|---|---|---|",
    ]
    for a in access:
        md.append(
            f"| {a['file']} | {a['framemask_p50_ms']:.1f} / {a['framemask_p95_ms']:.1f} | "
            f"{a['framemask_next_p50_ms']:.1f} | {a['framemask_wrong']} of {2 * a['samples']} | "
            f"{a['opencv_p50_ms']:.1f} / {a['opencv_p95_ms']:.1f} | {a['opencv_wrong']} of {a['samples']} |"
        )
    write_results("media", {"index": index_rows, "random_access": access}, "\n".join(md))


if __name__ == "__main__":
    main()
