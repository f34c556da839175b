"""INT8 person model against FP32's own spread (issue 13 target 1): is INT8 as good as FP32, within the noise
that the tracking scores show anyway?

INT8 changes each person score by a few thousandths, and tracking turns such changes into different tracks:
a box near a threshold is kept or dropped, a track is born a frame earlier or later. So one INT8 run
compared with one FP32 run says little. This bench measures how far the FP32 scores move under score noise
of INT8's size, and where INT8 lands against that spread.

1. Noise size: person scores of FP32 and INT8 on the calibration clips (`scripts/calibrate_person_int8.py`,
   none of them scored below), matched box to box (IoU >= 0.5); the noise is Gaussian with the standard
   deviation of their differences.
2. FP32 runs with that noise added to every person score (`--runs` seeds), and one INT8 run, on the
   tracking bench's clips: TUD-Campus, its 1080p wide shot and the 720p dense crowd. Each is scored like
   `bench.tracking` (motmetrics, boxes per person, painted coverage, leak audit).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import write_results
from bench.tracking import CLIPS, HERE, dense_crowd, run_clip, wide_shot
from framemask.detect import Detections, box_iou, prepare_models
from framemask.detect.base import Detector
from framemask.redact.pipeline import DETECTOR_THREADS, FACE_MAX_SIDE, FACE_THRESHOLD, PERSON_THRESHOLD

RUNS = 4
MATCH_IOU = 0.5
METRICS = ("mota", "idf1", "boxes_per_gt", "gt_masked", "leaks")


def detectors(int8: bool) -> list[Detector]:
    """The default person + face detectors, with the person model in FP32 or INT8 (crowd pass as by default)."""
    from framemask.detect import load_detectors

    return load_detectors(
        ("person", "face"),
        threads=DETECTOR_THREADS,
        person_threshold=PERSON_THRESHOLD,
        person_int8=int8,
        person_crowd_pass=True,
        face_threshold=FACE_THRESHOLD,
        face_max_side=FACE_MAX_SIDE[True],
    )


def calibration_frames() -> list[np.ndarray]:
    sys.path.insert(0, str(HERE.parent / "scripts"))
    import calibrate_person_int8 as calibration

    media = Path(os.environ.get("FRAMEMASK_TEST_MEDIA") or HERE.parents[1] / "shared" / "media")
    return calibration.frames(media)


def score_noise(frames: list[np.ndarray], fp32: Detector, int8: Detector) -> dict[str, float]:
    """Standard deviation (and mean) of INT8 minus FP32 person scores over boxes both found."""
    diffs = []
    for rgb in frames:
        a, b = fp32.detect(rgb), int8.detect(rgb)
        if not len(a) or not len(b):
            continue
        iou = box_iou(a.xyxy, b.xyxy)
        taken: set[int] = set()
        for i in np.argsort(-a.confidence):
            j = int(np.argmax(iou[i]))
            if iou[i, j] >= MATCH_IOU and j not in taken:
                taken.add(j)
                diffs.append(float(b.confidence[j]) - float(a.confidence[i]))
    d = np.array(diffs)
    return {"pairs": len(d), "std": round(float(d.std()), 4), "mean": round(float(d.mean()), 4)}


class Jittered:
    """A detector whose scores get Gaussian noise of `std` (clipped to 0..1); thread-safe, seeded."""

    def __init__(self, inner: Detector, std: float, seed: int) -> None:
        self.inner, self.name, self.label = inner, inner.name, inner.label
        self._std, self._rng, self._lock = std, np.random.default_rng(seed), threading.Lock()

    def detect(self, rgb: np.ndarray) -> Detections:
        found = self.inner.detect(rgb)
        with self._lock:
            noise = self._rng.normal(0.0, self._std, len(found.confidence))
        return dataclasses.replace(found, confidence=np.clip(found.confidence + noise, 0.0, 1.0))


def clips(scratch: Path) -> dict[str, tuple[Path, Path, Path | None]]:
    return {
        "TUD-Campus": CLIPS["TUD-Campus"],
        "TUD-Campus wide shot, 1080p": wide_shot(scratch),
        "MOT17-04 dense clip, 720p": dense_crowd(scratch),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=RUNS, help=f"FP32 runs with noise per clip (default {RUNS})")
    args = parser.parse_args()
    prepare_models()
    scratch = HERE / "scratch" / "tracking"
    scratch.mkdir(parents=True, exist_ok=True)
    fp32, int8 = detectors(int8=False), detectors(int8=True)
    noise = score_noise(calibration_frames(), fp32[0], int8[0])
    print("score noise", noise, flush=True)
    rows = []
    for name, paths in clips(scratch).items():
        runs = []
        for seed in range(args.runs):
            jittered = [Jittered(fp32[0], noise["std"], seed), fp32[1]]
            runs.append(_scores(run_clip(name, *paths, scratch, detectors=jittered, anchor=False)))
            print(name, "fp32+noise", runs[-1], flush=True)
        plain = _scores(run_clip(name, *paths, scratch, detectors=fp32, anchor=False))
        quantised = _scores(run_clip(name, *paths, scratch, detectors=int8, anchor=False))
        print(name, "fp32", plain, "int8", quantised, flush=True)
        rows.append({"clip": name, "fp32": plain, "fp32_noise": runs, "int8": quantised})
    write_results("int8_spread", {"score_noise": noise, "runs": args.runs, "clips": rows}, markdown(noise, rows))


def _scores(row: dict[str, Any]) -> dict[str, float]:
    return {key: row["framemask"][key] for key in METRICS}


def markdown(noise: dict[str, float], rows: list[dict[str, Any]]) -> str:
    lines = [
        "## INT8 person model against FP32's own spread",
        "",
        f"Score noise: INT8 minus FP32 person scores on the calibration clips, {noise['pairs']} matched boxes: "
        f"mean {noise['mean']:+.4f}, standard deviation {noise['std']:.4f}. FP32 + noise: {len(rows[0]['fp32_noise'])} "
        "runs with Gaussian noise of that deviation on every person score. *in spread* says whether INT8 lies "
        "within the FP32 runs' range (plain FP32 included), on the side that matters for the metric.",
        "",
        "| clip | metric | FP32 | FP32 + noise: min .. max | INT8 | in spread |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        for key in METRICS:
            values = [run[key] for run in row["fp32_noise"]] + [row["fp32"][key]]
            low, high = min(values), max(values)
            worse_up = key in ("boxes_per_gt", "leaks")
            value = row["int8"][key]
            inside = value <= high if worse_up else value >= low
            lines.append(
                f"| {row['clip']} | {key} | {row['fp32'][key]} | {low} .. {high} | {value} | "
                f"{'yes' if inside else '**no**'} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
