"""Display rotation: stored pixels -> what a player shows."""

from __future__ import annotations

import cv2
import numpy as np


def normalize_rotation(rotation: float | int | None) -> int:
    """FFmpeg's display-matrix angle (counter-clockwise degrees) as one of 0, 90, 180, 270."""
    if not rotation:
        return 0
    return round(float(rotation) / 90.0) * 90 % 360


_TURNS = {90: cv2.ROTATE_90_COUNTERCLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_CLOCKWISE}


def rotate(image: np.ndarray, rotation: int) -> np.ndarray:
    """Rotate an image (HxW, or HxWxC with up to 4 channels) counter-clockwise by `rotation` degrees (a multiple
    of 90), as players do: a new contiguous array, or `image` itself when there is nothing to turn."""
    turn = _TURNS.get(normalize_rotation(rotation))
    return image if turn is None else cv2.rotate(image, turn)


def displayed_size(width: int, height: int, rotation: int) -> tuple[int, int]:
    """(width, height) as displayed after applying `rotation`."""
    return (height, width) if normalize_rotation(rotation) in (90, 270) else (width, height)
