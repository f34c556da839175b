"""The detector seam: a frame in, labelled boxes out."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from framemask.detect.detections import Detections

__all__ = ["DEFAULT_THREADS", "Detector"]

DEFAULT_THREADS = 2  # onnxruntime intra-op threads per model: the machine is shared with decode and encode


@runtime_checkable
class Detector(Protocol):
    """One model behind one call; `label` is the LABELS name it produces."""

    name: str
    label: str

    def detect(self, rgb: np.ndarray) -> Detections:
        """Boxes in the pixels of `rgb` (H x W x 3 uint8, displayed orientation)."""
        ...
