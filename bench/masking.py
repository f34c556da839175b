"""Masking overlapping boxes (issue 13): the mosaic as the pipeline paints a frame's boxes against the anchor of
painting every box whole, one after another, in the same run.

The boxes are what a default anonymize (people + faces) painted on the throughput bench's 720p clips: the
crowded street, the sparse arm-wrestling clip (a close group whose padded boxes overlap to about 3x the frame)
and the dense crowd. Each frame's I420 planes are masked as the mask stage does (`Masker.apply_i420`), on one
thread; the CPU time of that thread is measured over the clip's frames, both variants in each of `ROUNDS`
interleaved rounds, and the median is reported with the pixels painted per frame (relative to the frame).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

import cv2
import numpy as np

from bench.common import WORK, write_results
from bench.throughput import clips_720p
from framemask.media import iter_frames
from framemask.redact import anonymize_file
from framemask.redact.boxes import X1, Y2
from framemask.redact.encode import frame_to_i420
from framemask.redact.styles import Mosaic, box_slices

ROUNDS = 5
Paint = Callable[[np.ndarray, np.ndarray], object]


def box_by_box(masker: Mosaic) -> Paint:
    """The anchor: each box painted whole, in the order given."""

    def paint(i420: np.ndarray, boxes: np.ndarray) -> None:
        for box in boxes:
            masker.apply_i420(i420, box[None])

    return paint


def areas(masker: Mosaic, frames: list[tuple[np.ndarray, np.ndarray]]) -> tuple[float, float, float]:
    """Pixels per frame, over the frame's pixels: in the boxes (each painted whole, the anchor), painted by the
    pipeline, and covered (the union of the boxes)."""
    height, width = frames[0][0].shape[0] * 2 // 3, frames[0][0].shape[1]
    boxed = painted = covered = 0
    for _, boxes in frames:
        mask = np.zeros((height, width), bool)
        for box in boxes:
            region = box_slices(box, width, height)
            if region is not None:
                boxed += (region[0].stop - region[0].start) * (region[1].stop - region[1].start)
                mask[region] = True
        covered += int(mask.sum())
        painted += sum(r.size[0] * r.size[1] for r in masker._regions(boxes, width, height))
    pixels = len(frames) * width * height
    return boxed / pixels, painted / pixels, covered / pixels


def cpu_ms_per_frame(paint: Paint, frames: list[tuple[np.ndarray, np.ndarray]]) -> float:
    work = [i420.copy() for i420, _ in frames]
    start = time.thread_time()
    for i420, (_, boxes) in zip(work, frames, strict=True):
        paint(i420, boxes)
    return (time.thread_time() - start) * 1000 / len(frames)


def clip_frames(name: str, path: os.PathLike[str]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every frame's I420 planes with the boxes a default anonymize painted on it."""
    result = anonymize_file(path, WORK / f"masking_{name}.mp4")
    assert result.painted is not None
    return [(frame_to_i420(f), result.painted.rows(seq)[:, X1 : Y2 + 1]) for seq, f in iter_frames(path)]


def main() -> None:
    cv2.setNumThreads(1)
    masker = Mosaic()
    rows = []
    for name, path in clips_720p().items():
        frames = clip_frames(name, path)
        times: dict[str, list[float]] = {"anchor": [], "pipeline": []}
        for _ in range(ROUNDS):
            times["anchor"].append(cpu_ms_per_frame(box_by_box(masker), frames))
            times["pipeline"].append(cpu_ms_per_frame(masker.apply_i420, frames))
        anchor, ours = statistics.median(times["anchor"]), statistics.median(times["pipeline"])
        boxed, painted, covered = areas(masker, frames)
        rows.append(
            {
                "clip": name,
                "frames": len(frames),
                "boxes_per_frame": round(sum(len(b) for _, b in frames) / len(frames), 1),
                "box_area": round(boxed, 2),
                "painted_area": round(painted, 2),
                "union_area": round(covered, 2),
                "anchor_ms": round(anchor, 2),
                "pipeline_ms": round(ours, 2),
                "speedup": round(anchor / ours, 2),
            }
        )
    load = [round(v, 2) for v in os.getloadavg()]
    lines = [
        "# Masking overlapping boxes: the pipeline's mosaic vs every box painted whole (anchor)",
        "",
        f"CPU ms per 720p frame on one thread (I420, `apply_i420`), median of {ROUNDS} interleaved rounds; load "
        f"average after {load}. Areas are pixels painted per frame over the frame's pixels; *covered* is the "
        "union of the boxes.",
        "",
        "| clip | frames | boxes a frame | anchor paints | pipeline paints | covered "
        "| anchor ms | pipeline ms | speed-up |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['clip']} | {r['frames']} | {r['boxes_per_frame']} | {r['box_area']} | {r['painted_area']} | "
            f"{r['union_area']} | {r['anchor_ms']} | {r['pipeline_ms']} | {r['speedup']}x |"
        )
    write_results("masking", {"rows": rows, "load_average": load}, "\n".join(lines))


if __name__ == "__main__":
    main()
