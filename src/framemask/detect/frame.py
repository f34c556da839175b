"""Detection on one frame: every detector side by side, on square pixels.

The anonymizer, its audit, `framemask detect` and the pose sampling of a bare file all call `detect_frame`,
so a frame is looked at the same way wherever boxes come from.
"""

from __future__ import annotations

import concurrent.futures
import functools
from collections.abc import Sequence

import cv2
import numpy as np

from framemask.detect.base import Detector
from framemask.detect.detections import LABELS, Detections

__all__ = ["FRAMES_IN_FLIGHT", "SQUARE_ENOUGH", "detect_frame", "detector_pool"]

SQUARE_ENOUGH = 0.02
"""Pixel aspect ratios within this of 1 (an odd size scaled to keep its shape, 1924:1923) are taken as square."""
FRAMES_IN_FLIGHT = 2
"""Frames whose detectors may run at once: the anonymizer tracks one while the next one's detection runs."""


def detect_frame(rgb: np.ndarray, detectors: Sequence[Detector], pixel_aspect: float = 1.0) -> Detections:
    """Every detector's boxes on one frame, clipped to it; several detectors run side by side (onnxruntime
    releases the GIL), so single-threaded sessions still use two cores while x264 is idle.

    Anamorphic video (`pixel_aspect`, a pixel's displayed width over its height, not 1): the detectors see the
    frame stretched to square pixels, people shaped as a player shows them and as the models learned them,
    and the boxes come back in the frame's own pixels."""
    height, width = rgb.shape[:2]
    if abs(pixel_aspect - 1) > SQUARE_ENOUGH:
        sx, sy = max(pixel_aspect, 1.0), max(1 / pixel_aspect, 1.0)  # stretch, never squeeze out detail
        square = cv2.resize(rgb, (round(width * sx), round(height * sy)), interpolation=cv2.INTER_LINEAR)
        return detect_frame(square, detectors).scaled(1 / sx, 1 / sy).clip(width, height)
    if len(detectors) == 1:
        return detectors[0].detect(rgb).clip(width, height)
    return Detections.merge(detector_pool().map(lambda d: d.detect(rgb), detectors)).clip(width, height)


@functools.cache
def detector_pool() -> concurrent.futures.ThreadPoolExecutor:
    """Threads for detectors side by side, started on first use (not at import)."""
    workers = len(LABELS) * FRAMES_IN_FLIGHT  # every detector of every frame in flight
    return concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="framemask-detector")
