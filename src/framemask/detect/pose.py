"""Pose keypoints of the people in a frame: MoveNet Lightning (single person) on each person's crop.

Why Lightning on crops rather than MoveNet MultiPose: framemask already finds and tracks every person
(NanoDet + ByteTrack), so the crops come for free and each pose inherits a stable track id; MultiPose
would detect people a second time, caps at 6 per frame, sees small CCTV people at 256 px only, and its
graph needs dynamic-shape ops (TopK, Range, Tile) our converter does not carry. Lightning's cost grows
with the number of people (one 192 px forward pass each), which `bench/analysis.py` measures.

Each crop is a square around the person box (the longer side times `CROP_SCALE`, padded with black where
it leaves the frame), resized to 192x192 and fed as int32 RGB. MoveNet returns (y, x, score) in crop
units; they are mapped back to frame pixels. Keypoints follow COCO's order (`KEYPOINTS`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort

from framemask.detect._runtime import DEFAULT_THREADS, check_rgb, make_session, onnx_errors
from framemask.errors import ModelError

__all__ = ["CROP_SCALE", "KEYPOINTS", "PersonPose", "PoseEstimator", "check_model", "load_pose"]

KEYPOINTS: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip
"""COCO's 17 keypoints, in MoveNet's (and COCO's) output order."""
BoxLike = Sequence[float] | np.ndarray
"""x1, y1, x2, y2 in frame pixels."""
SIZE = 192
CROP_SCALE = 1.25
"""Crop side / the person box's longer side: MoveNet was trained on people with some margin around them."""


@dataclass(frozen=True)
class PersonPose:
    """One person's keypoints: `keypoints` is (17, 3) float32 of x, y (frame pixels) and score (0..1)."""

    track: int
    box: tuple[float, float, float, float]
    keypoints: np.ndarray

    def to_json(self) -> dict[str, Any]:
        """`{"track", "box": [x1, y1, x2, y2], "keypoints": [[x, y, score] x 17]}`, pixels to 0.1, scores to 0.001."""
        return {
            "track": self.track,
            "box": [round(float(v), 1) for v in self.box],
            "keypoints": [[round(float(x), 1), round(float(y), 1), round(float(s), 3)] for x, y, s in self.keypoints],
        }


def _crop_transform(box: BoxLike) -> tuple[float, float, float]:
    """(x0, y0, side): the square crop around `box` in frame pixels."""
    x1, y1, x2, y2 = (float(v) for v in box)
    side = max(x2 - x1, y2 - y1, 1.0) * CROP_SCALE
    return (x1 + x2) / 2 - side / 2, (y1 + y2) / 2 - side / 2, side


class PoseEstimator:
    """MoveNet Lightning (ONNX, converted at `framemask models --prepare`) on person crops."""

    name = "movenet-lightning"

    def __init__(
        self, model: Path | bytes, threads: int = DEFAULT_THREADS, session: ort.InferenceSession | None = None
    ) -> None:
        self.session = session or make_session(model, threads, self.name)
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or list(inputs[0].shape) != [1, SIZE, SIZE, 3]:
            raise ModelError(f"{self.name}: expected one 1x{SIZE}x{SIZE}x3 input, got {[i.shape for i in inputs]}")
        self._input = inputs[0].name

    def crop(self, rgb: np.ndarray, box: BoxLike) -> np.ndarray:
        """The 192x192 RGB crop MoveNet sees for `box` (black outside the frame)."""
        x0, y0, side = _crop_transform(box)
        scale = SIZE / side
        matrix = np.array([[scale, 0.0, -x0 * scale], [0.0, scale, -y0 * scale]], np.float32)
        return cv2.warpAffine(rgb, matrix, (SIZE, SIZE), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))

    def keypoints(self, rgb: np.ndarray, box: BoxLike) -> np.ndarray:
        """(17, 3) x, y in frame pixels and score, for the person in `box` (x1, y1, x2, y2)."""
        check_rgb(rgb, self.name)
        x0, y0, side = _crop_transform(box)
        with onnx_errors(self.name):
            (out,) = self.session.run(None, {self._input: self.crop(rgb, box)[None].astype(np.int32)})
        yxs = np.asarray(out, np.float32).reshape(len(KEYPOINTS), 3)
        return np.stack([x0 + yxs[:, 1] * side, y0 + yxs[:, 0] * side, yxs[:, 2]], axis=1).astype(np.float32)

    def estimate(self, rgb: np.ndarray, boxes: np.ndarray, tracks: Sequence[int]) -> list[PersonPose]:
        """A pose for every person box (N, 4) of the frame, tagged with its track id."""
        return [
            PersonPose(int(track), (float(b[0]), float(b[1]), float(b[2]), float(b[3])), self.keypoints(rgb, b))
            for b, track in zip(np.asarray(boxes, np.float32).reshape(-1, 4), tracks, strict=True)
        ]


def check_model(path: Path) -> None:
    """A converted model is sane: 17 (y, x, score) rows within 0..1, and no confident keypoint in a blank crop."""
    estimator = PoseEstimator(path, threads=1)
    with onnx_errors(estimator.name):
        (out,) = estimator.session.run(None, {estimator._input: np.full((1, SIZE, SIZE, 3), 128, np.int32)})
    out = np.asarray(out)
    if out.shape != (1, 1, len(KEYPOINTS), 3) or not np.isfinite(out).all():
        raise ModelError(f"converted MoveNet gives {out.shape}, not (1, 1, 17, 3): conversion is wrong")
    if out.min() < 0 or out.max() > 1 or out[..., 2].max() > 0.3:
        raise ModelError("converted MoveNet is confident about a blank crop: conversion is wrong")


def load_pose(model_dir: Path | None = None, threads: int = DEFAULT_THREADS) -> PoseEstimator:
    """The ready pose model; `ModelError` says how to build it when it is missing."""
    from framemask.detect.models import movenet_status

    status = movenet_status(model_dir)
    if not status.ready:
        raise ModelError(f"pose model {status.name} not ready: {status.detail}")
    return PoseEstimator(Path(status.path), threads)
