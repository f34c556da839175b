"""Display rotation: stored pixels -> what a player shows."""

from __future__ import annotations

import numpy as np


def normalize_rotation(rotation: float | int | None) -> int:
    """FFmpeg's display-matrix angle (counter-clockwise degrees) as one of 0, 90, 180, 270."""
    if not rotation:
        return 0
    return round(float(rotation) / 90.0) * 90 % 360


def rotate(image: np.ndarray, rotation: int) -> np.ndarray:
    """Rotate an HxWxC image counter-clockwise by `rotation` degrees (a multiple of 90), as players do."""
    k = normalize_rotation(rotation) // 90
    if k == 0:
        return image
    return np.ascontiguousarray(np.rot90(image, k=k))


def displayed_size(width: int, height: int, rotation: int) -> tuple[int, int]:
    """(width, height) as displayed after applying `rotation`."""
    return (height, width) if normalize_rotation(rotation) in (90, 270) else (width, height)
