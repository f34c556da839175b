"""`Detections`: the one array-backed box type passed from detectors to tracker, renderer and storage.

Parallel numpy arrays (like supervision's `Detections`) so a frame's boxes move between stages without
re-wrapping. Coordinates are pixels of the frame that was given to the detector (displayed orientation).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

LABELS: tuple[str, ...] = ("person", "face")  # class_id 0 = person, 1 = face

__all__ = ["LABELS", "Detections", "box_ioa", "box_iou", "label_id"]


def label_id(name: str) -> int:
    """The class id of a label name; ValueError names the known labels."""
    try:
        return LABELS.index(name)
    except ValueError:
        raise ValueError(f"unknown label {name!r}; known labels: {', '.join(LABELS)}") from None


def _overlaps(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Intersection areas (N, M) of x1, y1, x2, y2 boxes `a` (N, 4) and `b` (M, 4), and their own areas."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    p, q = a[:, None, :], b[None, :, :]
    ix = np.clip(np.minimum(p[..., 2], q[..., 2]) - np.maximum(p[..., 0], q[..., 0]), 0, None)
    iy = np.clip(np.minimum(p[..., 3], q[..., 3]) - np.maximum(p[..., 1], q[..., 1]), 0, None)
    return ix * iy, (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]), (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])


def box_iou(a: Any, b: Any) -> np.ndarray:
    """IoU of every x1, y1, x2, y2 box of `a` (N, 4) with every box of `b` (M, 4): the one IoU of the project."""
    inter, area_a, area_b = _overlaps(a, b)
    iou: np.ndarray = inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)
    return iou


def box_ioa(a: Any, b: Any) -> np.ndarray:
    """Share of every box of `a` lying inside every box of `b` (intersection over the area of `a`)."""
    inter, area_a, _ = _overlaps(a, b)
    ioa: np.ndarray = inter / np.maximum(area_a[:, None], 1e-9)
    return ioa


def _check(name: str, arr: np.ndarray, shape: tuple[int | None, ...]) -> None:
    pairs = zip(arr.shape, shape, strict=False)
    if arr.ndim != len(shape) or any(want is not None and got != want for got, want in pairs):
        want = tuple("N" if d is None else d for d in shape)
        raise ValueError(f"Detections.{name} must have shape {want}, got {arr.shape}".replace("'", ""))


@dataclass
class Detections:
    """Boxes of one frame: `xyxy` (N,4) float32 pixels, `confidence` (N,), `class_id` (N,), `tracker_id`."""

    xyxy: np.ndarray
    confidence: np.ndarray
    class_id: np.ndarray
    tracker_id: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.xyxy = np.asarray(self.xyxy, dtype=np.float32)
        if self.xyxy.size == 0:
            self.xyxy = self.xyxy.reshape(0, 4)
        self.confidence = np.asarray(self.confidence, dtype=np.float32)
        self.class_id = np.asarray(self.class_id, dtype=np.int32)
        _check("xyxy", self.xyxy, (None, 4))
        n = len(self.xyxy)
        _check("confidence", self.confidence, (n,))
        _check("class_id", self.class_id, (n,))
        if self.tracker_id is not None:
            self.tracker_id = np.asarray(self.tracker_id, dtype=np.int64)
            _check("tracker_id", self.tracker_id, (n,))
        if n and not np.isfinite(self.xyxy).all():
            raise ValueError("Detections.xyxy must be finite")
        if n and ((self.class_id < 0) | (self.class_id >= len(LABELS))).any():
            raise ValueError(f"Detections.class_id must be in 0..{len(LABELS) - 1} ({', '.join(LABELS)})")

    @classmethod
    def empty(cls, tracked: bool = False) -> Detections:
        """No boxes (with an empty `tracker_id` when `tracked`)."""
        return cls(
            np.zeros((0, 4), np.float32),
            np.zeros(0, np.float32),
            np.zeros(0, np.int32),
            np.zeros(0, np.int64) if tracked else None,
        )

    @classmethod
    def from_boxes(cls, xyxy: Any, confidence: Any, label: str) -> Detections:
        """Boxes of a single label, as one detector produces them."""
        xyxy = np.asarray(xyxy, dtype=np.float32).reshape(-1, 4)
        return cls(xyxy, np.asarray(confidence, np.float32).reshape(-1), np.full(len(xyxy), label_id(label)))

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index: Any) -> Detections:
        """Rows selected by a bool mask, an index array or a slice (always a `Detections`)."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        return Detections(
            self.xyxy[index],
            self.confidence[index],
            self.class_id[index],
            None if self.tracker_id is None else self.tracker_id[index],
        )

    @classmethod
    def merge(cls, items: Iterable[Detections]) -> Detections:
        """Concatenate; `tracker_id` survives only if every part has one."""
        parts = [d for d in items]
        if not parts:
            return cls.empty()
        tracked = all(d.tracker_id is not None for d in parts)
        return cls(
            np.concatenate([d.xyxy for d in parts]),
            np.concatenate([d.confidence for d in parts]),
            np.concatenate([d.class_id for d in parts]),
            np.concatenate([d.tracker_id for d in parts if d.tracker_id is not None]) if tracked else None,
        )

    def with_label(self, name: str) -> Detections:
        """Only the boxes of one label."""
        return self[self.class_id == label_id(name)]

    def labels(self) -> list[str]:
        """Label name per box."""
        return [LABELS[int(c)] for c in self.class_id]

    def clip(self, width: int, height: int) -> Detections:
        """Boxes clipped to the frame; boxes left with no area are dropped."""
        xyxy = self.xyxy.copy()
        xyxy[:, [0, 2]] = xyxy[:, [0, 2]].clip(0, width)
        xyxy[:, [1, 3]] = xyxy[:, [1, 3]].clip(0, height)
        keep = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
        out = Detections(xyxy, self.confidence, self.class_id, self.tracker_id)
        return out[keep]

    def scaled(self, sx: float, sy: float) -> Detections:
        """The boxes of a frame resized by `sx` horizontally and `sy` vertically."""
        factors = np.array([sx, sy, sx, sy], np.float32)
        return Detections(self.xyxy * factors, self.confidence, self.class_id, self.tracker_id)

    def pad(self, fraction: float, width: int | None = None, height: int | None = None) -> Detections:
        """Each box grown by `fraction` of its own width/height on every side (clipped if a size is given)."""
        wh = self.xyxy[:, 2:] - self.xyxy[:, :2]
        grow = np.concatenate([-wh, wh], axis=1) * np.float32(fraction)
        out = Detections(self.xyxy + grow, self.confidence, self.class_id, self.tracker_id)
        if width is not None and height is not None:
            return out.clip(width, height)
        return out

    def to_seed(self, width: int, height: int) -> dict[str, list[dict[str, int]]]:
        """Seed-format boxes per label: integer pixels clipped to the frame, every label present."""
        out: dict[str, list[dict[str, int]]] = {name: [] for name in LABELS}
        for box, cid in zip(self.xyxy, self.class_id, strict=True):
            x1, x2 = (int(np.clip(round(float(v)), 0, width)) for v in (box[0], box[2]))
            y1, y2 = (int(np.clip(round(float(v)), 0, height)) for v in (box[1], box[3]))
            if x2 > x1 and y2 > y1:
                out[LABELS[int(cid)]].append({"x1": x1, "x2": x2, "y1": y1, "y2": y2})
        return out

    @classmethod
    def from_seed(cls, boxes: dict[str, Sequence[dict[str, int]]]) -> Detections:
        """Inverse of `to_seed` (confidence 1.0), for corrections and audits."""
        parts = []
        for name, items in boxes.items():
            if name in LABELS and items:
                xyxy = [[b["x1"], b["y1"], b["x2"], b["y2"]] for b in items]
                parts.append(cls.from_boxes(xyxy, np.ones(len(xyxy)), name))
        return cls.merge(parts)
