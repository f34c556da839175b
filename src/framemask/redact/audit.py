"""The leak audit: run the detectors on a processed video and report what is still recognisable.

What counts as a leak has to be decided by the processed pixels, not by what the renderer claims. So a
detection is judged by how much of its fine detail is still visible:

- `basis="original"` (with the original video, recommended): the detectors run on the processed frame
  *and* on the original frame. For each box, the original's high-pass detail is compared with the
  processed one block by block (`visible_fraction`); `visible` is the (centre-weighted) share of the
  box's detail that survives. Flat areas carry no identity and do not count. This catches a person the
  renderer missed (found in the original, still visible in the output) even where the detector on the
  output misses it.
- `basis="boxes"` (with the boxes document): `visible` is the share of the box outside the recorded masked
  regions. This trusts that those regions really were masked (the render tests check the pixels).
- `basis="none"`: nothing can be proven masked, so every detection on the output is reported.

A detection is a leak when `visible` exceeds `MAX_VISIBLE` for its label: half of a person box (a
mostly-masked silhouette is not an identity), but only a quarter of a face box. A masked mosaic blob that
the person detector still fires on is therefore not a leak, while any face whose detail survives is.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import cv2
import numpy as np

from framemask.detect import LABELS, Detections, Detector, box_iou, load_detectors
from framemask.detect.frame import detect_frame
from framemask.errors import InputError
from framemask.media import VideoInfo, iter_frames, probe, rotate
from framemask.redact.encode import frame_to_rgb
from framemask.redact.pipeline import FACE_MAX_SIDE, Progress, check_targets
from framemask.redact.policy import MaskPolicy, painted_from_doc

__all__ = ["MAX_VISIBLE", "Leak", "audit_detectors", "audit_file", "visible_fraction"]

MAX_VISIBLE: dict[str, float] = {"person": 0.5, "face": 0.25}
BLOCK = 8
MIN_DETAIL = 2.0
"""Blocks whose original detail has a standard deviation below this (grey levels) are flat: nothing to hide."""


@dataclass
class Leak:
    """A detection whose content is still visible in the processed video."""

    seq: int
    label: str
    box: dict[str, int]
    visible: float
    found_in: list[str] = field(default_factory=list)


def high_pass(rgb: np.ndarray) -> np.ndarray:
    """Fine detail of a frame: grey minus its Gaussian blur (sigma 1.5)."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return gray - cv2.GaussianBlur(gray, (0, 0), 1.5)


def visible_fraction(orig_hp: np.ndarray, proc_hp: np.ndarray, box: Sequence[int]) -> float:
    """Share of the original detail inside `box` that the processed frame still shows (0 = all masked).

    Per 8x8 block, detail is "shown" when the processed high-pass correlates with the original's
    (> 0.6) at a similar amplitude (0.25-2x): compression keeps both, while a mosaic keeps neither
    (its cell edges add detail the original does not have), nor does a blur or a fill. Calibrated on
    the 720p bench clip: 1.8% of masked blocks pass, 97% of unmasked ones. Blocks are weighted towards
    the box centre (Gaussian, sigma half the box), where a detector's box holds the face or body rather
    than the background its edges include; flat blocks carry no identity and do not count."""
    x1, y1, x2, y2 = (int(v) for v in box)
    a, b = _blocks(orig_hp[y1:y2, x1:x2]), _blocks(proc_hp[y1:y2, x1:x2])
    if a is None or b is None:
        return 0.0
    ea, eb, eab = (a * a).sum(axis=(2, 3)), (b * b).sum(axis=(2, 3)), (a * b).sum(axis=(2, 3))
    detailed = ea > MIN_DETAIL**2 * BLOCK * BLOCK
    if not detailed.any():
        return 0.0
    corr = eab / np.sqrt(ea * eb + 1e-6)
    ratio = eb / np.maximum(ea, 1e-6)
    shown = detailed & (corr > 0.6) & (ratio > 0.25) & (ratio < 2.0)
    weight = ea * _centre_weight(*ea.shape)
    return float(weight[shown].sum() / weight[detailed].sum())


def _centre_weight(rows: int, cols: int) -> np.ndarray:
    """Gaussian weight of each block by its distance from the box centre (in half-box units)."""
    y = (np.arange(rows) + 0.5) / rows * 2 - 1
    x = (np.arange(cols) + 0.5) / cols * 2 - 1
    return np.exp(-(y[:, None] ** 2 + x[None, :] ** 2) / (2 * 0.5**2))


def _blocks(region: np.ndarray) -> np.ndarray | None:
    """The region cut into whole BLOCK x BLOCK tiles, shape (rows, cols, BLOCK, BLOCK)."""
    rows, cols = region.shape[0] // BLOCK, region.shape[1] // BLOCK
    if rows == 0 or cols == 0:
        return None
    tiles = region[: rows * BLOCK, : cols * BLOCK].reshape(rows, BLOCK, cols, BLOCK)
    return tiles.transpose(0, 2, 1, 3)


def covered_fraction(box: Sequence[int], masked: np.ndarray) -> float:
    """Share of `box` inside the masked regions ((N,4) xyxy)."""
    x1, y1, x2, y2 = (int(v) for v in box)
    if x2 <= x1 or y2 <= y1:
        return 1.0
    grid = np.zeros((y2 - y1, x2 - x1), bool)
    for mx1, my1, mx2, my2 in masked.tolist():
        grid[max(0, my1 - y1) : max(0, my2 - y1), max(0, mx1 - x1) : max(0, mx2 - x1)] = True
    return float(grid.mean())


def audit_detectors(targets: Sequence[str]) -> list[Detector]:
    """The detectors at their standard operating points (person 0.35, face 0.5), faces searched at full
    resolution: what "detectable" means. The anonymizer runs lower thresholds so it masks more than
    this finds (`pipeline.PERSON_THRESHOLD`)."""
    return load_detectors(tuple(targets), face_max_side=FACE_MAX_SIDE[False])


def audit_file(
    processed: str | os.PathLike[str],
    *,
    original: str | os.PathLike[str] | None = None,
    boxes_doc: dict[str, Any] | None = None,
    stride: int = 1,
    targets: Sequence[str] = LABELS,
    detectors: Sequence[Detector] | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Check every `stride`-th frame of `processed`; the audit report (see the module docstring)."""
    if stride < 1:
        raise InputError(f"stride must be >= 1, got {stride}")
    info = probe(processed)
    orig_info = _check_original(original, info) if original is not None else None
    policy = MaskPolicy.for_fps(info.fps)
    track = painted_from_doc(boxes_doc, info.end_sequence, info.width, info.height, policy) if boxes_doc else None
    detectors = list(detectors) if detectors is not None else audit_detectors(check_targets(targets))
    basis = "original" if original is not None else "boxes" if track is not None else "none"
    leaks: list[Leak] = []
    checked = 0
    counts = {"output": 0, "original": 0}
    aspect = float((orig_info or info).signal.sample_aspect_ratio)  # the original says it; an older master may not
    for seq, proc, orig in _frame_pairs(processed, original, info, orig_info, stride):
        checked += 1
        found = {"output": detect_frame(proc, detectors, aspect)}
        if orig is not None:
            found["original"] = detect_frame(orig, detectors, aspect)
        for source, dets in found.items():
            counts[source] += len(dets)
        masked = track.boxes(seq) if track is not None else None
        leaks.extend(_frame_leaks(seq, found, proc, orig, masked))
        if progress is not None:
            progress(seq, info.end_sequence)
    return {
        "frames_checked": checked,
        "basis": basis,
        "detections": counts if original is not None else {"output": counts["output"]},
        "leaks": [asdict(leak) for leak in leaks],
    }


def _frame_leaks(
    seq: int,
    found: dict[str, Detections],
    proc: np.ndarray,
    orig: np.ndarray | None,
    masked: np.ndarray | None,
) -> list[Leak]:
    """The leaks of one frame; a box found in both videos is reported once."""
    hp = (high_pass(orig), high_pass(proc)) if orig is not None else None
    leaks: list[Leak] = []
    for source, dets in found.items():
        for box, label in zip(dets.xyxy.round().astype(int).tolist(), dets.labels(), strict=True):
            if hp is not None:
                visible = visible_fraction(hp[0], hp[1], box)
            elif masked is not None:
                visible = 1.0 - covered_fraction(box, masked)
            else:
                visible = 1.0
            if visible <= MAX_VISIBLE.get(label, 0.25):
                continue
            same = next((lk for lk in leaks if lk.label == label and _seed_iou(lk.box, box) > 0.5), None)
            if same is not None:
                if source not in same.found_in:
                    same.found_in.append(source)
                continue
            seed_box = {"x1": box[0], "x2": box[2], "y1": box[1], "y2": box[3]}
            leaks.append(Leak(seq, label, seed_box, round(visible, 3), [source]))
    return leaks


def _seed_iou(a: dict[str, int], b: Sequence[int]) -> float:
    return float(box_iou([a["x1"], a["y1"], a["x2"], a["y2"]], b)[0, 0])


def _check_original(original: str | os.PathLike[str], info: VideoInfo) -> VideoInfo:
    """The original must have the processed video's frames and displayed size."""
    orig = probe(original)
    if orig.end_sequence != info.end_sequence:
        raise InputError(
            f"{original} has {orig.end_sequence} frames, {info.path} has {info.end_sequence}: not its original"
        )
    if (orig.width, orig.height) != (info.width, info.height):
        raise InputError(
            f"{original} is {orig.width}x{orig.height}, {info.path} is {info.width}x{info.height}: not its original"
        )
    return orig


def _frame_pairs(
    processed: str | os.PathLike[str],
    original: str | os.PathLike[str] | None,
    info: VideoInfo,
    orig_info: VideoInfo | None,
    stride: int,
) -> Iterator[tuple[int, np.ndarray, np.ndarray | None]]:
    """(seq, processed RGB, original RGB or None) of every `stride`-th frame, displayed orientation."""
    with contextlib.ExitStack() as stack:
        procs = stack.enter_context(contextlib.closing(iter_frames(processed)))
        origs = stack.enter_context(contextlib.closing(iter_frames(original))) if original is not None else None
        for seq, frame in procs:
            orig_frame = next(origs)[1] if origs is not None else None
            if (seq - 1) % stride and seq != info.end_sequence:
                continue
            proc = rotate(frame_to_rgb(frame), info.rotation)
            orig = None
            if orig_frame is not None and orig_info is not None:
                orig = rotate(frame_to_rgb(orig_frame), orig_info.rotation)
            yield seq, proc, orig
