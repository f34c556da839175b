"""Detector input downscale (issue 13): `shrink` against OpenCV's INTER_AREA (the anchor), run side by side.

Every detected frame is downscaled once per detector before inference: NanoDet to 416 px on its long side,
RetinaFace (with people in the targets) to 640. Frames are real street footage, TUD-Campus frame 30 scaled
with lanczos to 1280x720 and 1920x1080 and pillar-boxed as the throughput bench's clips are; the downscale
runs on one OpenCV thread, as in the pipeline's detector threads. Median of `RUNS` after `WARMUP`, both
variants interleaved in each round. The pixel difference of the two results is reported too (mean and
99th percentile of the absolute difference, grey levels).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from bench.common import pct, write_results
from framemask.detect._runtime import shrink
from framemask.media import FrameReader

SHARED = Path(__file__).resolve().parents[2] / "shared" / "media"
RUNS, WARMUP = 60, 5
Resize = Callable[[np.ndarray, int, int], np.ndarray]
CASES = (
    ((1280, 720), (416, 234), "NanoDet, 720p"),
    ((1280, 720), (640, 360), "RetinaFace max side 640, 720p"),
    ((1920, 1080), (416, 234), "NanoDet, 1080p"),
    ((1920, 1080), (640, 360), "RetinaFace max side 640, 1080p"),
)


def street(width: int, height: int) -> np.ndarray:
    with FrameReader(SHARED / "TUD-Campus.mp4") as reader:
        rgb = reader.frame(30)
    inner = round(rgb.shape[1] * height / rgb.shape[0])
    canvas = np.zeros((height, width, 3), np.uint8)
    left = (width - inner) // 2
    canvas[:, left : left + inner] = cv2.resize(rgb, (inner, height), interpolation=cv2.INTER_LANCZOS4)
    return canvas


def area(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)


def paired(fns: tuple[Resize, Resize], rgb: np.ndarray, target: tuple[int, int]) -> tuple[float, float]:
    """Median ms of each of the two downscales of `rgb` to `target`, run alternately."""
    for _ in range(WARMUP):
        for fn in fns:
            fn(rgb, *target)
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(RUNS):
        for fn, out in zip(fns, times, strict=True):
            t0 = time.perf_counter()
            fn(rgb, *target)
            out.append((time.perf_counter() - t0) * 1000)
    return pct(times[0], 50), pct(times[1], 50)


def main() -> None:
    cv2.setNumThreads(1)
    rows = []
    for size, target, use in CASES:
        rgb = street(*size)
        area_ms, shrink_ms = paired((area, shrink), rgb, target)
        diff = np.abs(shrink(rgb, *target).astype(np.int16) - area(rgb, *target))
        rows.append(
            {
                "from": f"{size[0]}x{size[1]}",
                "to": f"{target[0]}x{target[1]}",
                "use": use,
                "inter_area_ms": round(area_ms, 3),
                "shrink_ms": round(shrink_ms, 3),
                "speedup": round(area_ms / shrink_ms, 2),
                "mean_abs_diff": round(float(diff.mean()), 3),
                "p99_abs_diff": float(np.percentile(diff, 99)),
            }
        )
    load = [round(v, 2) for v in os.getloadavg()]
    lines = [
        "# Detector input downscale: `shrink` vs OpenCV INTER_AREA (anchor)",
        "",
        f"One OpenCV thread, median of {RUNS} interleaved runs; load average after {load}. Frames: TUD-Campus "
        "frame 30, lanczos-scaled and pillar-boxed.",
        "",
        "| downscale | for | INTER_AREA ms | shrink ms | speed-up | mean / p99 abs. difference |",
        "|---|---|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['from']} -> {r['to']} | {r['use']} | {r['inter_area_ms']} | {r['shrink_ms']} | "
            f"{r['speedup']}x | {r['mean_abs_diff']} / {r['p99_abs_diff']:.0f} |"
        )
    write_results("preprocess", {"rows": rows, "load_average": load}, "\n".join(lines))


if __name__ == "__main__":
    main()
