"""Tracking: stable ids per label (ByteTrack) plus gap bridging, and interpolation between keyframes."""

from __future__ import annotations

from framemask.detect.detections import Detections

__all__ = ["Tracker", "interpolate"]


class Tracker:
    """Stable track ids per label; a lost track's box is held for up to `max_gap` frames."""

    def __init__(self, fps: float = 30.0, max_gap: int | None = None) -> None:
        self.fps = fps
        self.max_gap = max_gap if max_gap is not None else max(1, round(fps / 3))

    def update(self, detections: Detections) -> Detections:
        """Tracked boxes of the next frame (work in progress)."""
        raise NotImplementedError

    def reset(self) -> None:
        """Forget every track (between videos)."""


def interpolate(a: Detections, b: Detections, t: float) -> Detections:
    """Boxes at fraction t between a (t=0) and b (t=1), matched by tracker id (work in progress)."""
    raise NotImplementedError
