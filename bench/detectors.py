"""Detector benchmark (issue 3): ms per frame of each detector at 640x360 and 1280x720, plus the tracker.

Frames are real: MOT17-04 (1920x1080 street crowd, `mmtracking_demo_MOT17-04_frames1-8.mp4`) scaled to each
size. Median of 15 runs after 2 warm-ups, pre- and post-processing included, 2 ORT threads (and 1 for
comparison). Anchor: the research measurements in shared/research/models.md (same machine type) of the
same models: RetinaFace 11.4 / 44.5 ms, NanoDet (tf2onnx conversion) 37 / 37 ms, tiles 147 ms.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from bench.common import pct, write_results
from framemask.detect import Detections, Tracker, load_detectors, prepare_models
from framemask.media import FrameReader

SHARED = Path(__file__).resolve().parents[2] / "shared" / "media"
SIZES = ((640, 360), (1280, 720))
RUNS, WARMUP = 15, 2
ANCHOR_MS = {"retinaface-mnet025": (11.4, 44.5), "nanodet-m-416": (37.0, 37.0), "nanodet-m-416 tiles=2": (147.0, 147.0)}


def timed(fn: Callable[[], object]) -> float:
    for _ in range(WARMUP):
        fn()
    runs = []
    for _ in range(RUNS):
        t0 = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - t0) * 1000)
    return pct(runs, 50)


def frame(size: tuple[int, int]) -> np.ndarray:
    with FrameReader(SHARED / "mmtracking_demo_MOT17-04_frames1-8.mp4") as reader:
        return cv2.resize(reader.frame(4), size, interpolation=cv2.INTER_AREA)


def main() -> None:
    t0 = time.perf_counter()
    prepare_models()
    prepare_ms = (time.perf_counter() - t0) * 1000
    rows = []
    for threads in (2, 1):
        person, face = load_detectors(("person", "face"), threads=threads)
        (tiled,) = load_detectors(("person",), threads=threads, person_tiles=2)
        for name, det in (("nanodet-m-416", person), ("nanodet-m-416 tiles=2", tiled), ("retinaface-mnet025", face)):
            ms = [timed(lambda d=det, s=s: d.detect(frame_cache[s])) for s in SIZES]
            found = [len(det.detect(frame_cache[s])) for s in SIZES]
            rows.append(
                {
                    "detector": name,
                    "threads": threads,
                    "ms": ms,
                    "boxes": found,
                    "anchor_ms": ANCHOR_MS[name] if threads == 2 else None,
                }
            )
    dets = Detections.merge(d.detect(frame_cache[SIZES[1]]) for d in (person, face))
    tracker = Tracker(fps=30)
    track_ms = timed(lambda: tracker.update(dets))
    lines = [
        "# Detectors: ms per frame (median of 15, pre/post-processing included)",
        "",
        "Frame: MOT17-04 street crowd scaled to each size.",
        f"`framemask models --prepare` when cached: {prepare_ms:.0f} ms.",
        "",
        "| detector | ORT threads | 640x360 ms | 1280x720 ms | boxes 640 / 1280 | research anchor ms |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        anchor = " / ".join(f"{v:g}" for v in r["anchor_ms"]) if r["anchor_ms"] else "-"
        lines.append(
            f"| {r['detector']} | {r['threads']} | {r['ms'][0]:.1f} | {r['ms'][1]:.1f} | "
            f"{r['boxes'][0]} / {r['boxes'][1]} | {anchor} |"
        )
    lines += ["", f"Tracker update with {len(dets)} boxes: {track_ms:.2f} ms."]
    write_results(
        "detectors",
        {"sizes": SIZES, "rows": rows, "tracker_ms": track_ms, "prepare_cached_ms": prepare_ms},
        "\n".join(lines),
    )


frame_cache = {s: frame(s) for s in SIZES}

if __name__ == "__main__":
    main()
