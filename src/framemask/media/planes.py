"""The I420 array frames travel in through the anonymizer: one (H*3/2) x W uint8 array holding the Y plane,
then U and V at half size each way (`redact.encode.frame_to_i420` makes it). Its planes, as views."""

from __future__ import annotations

import numpy as np

__all__ = ["i420_planes"]


def i420_planes(i420: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Views of the Y (H x W), U and V (H/2 x W/2) planes of a contiguous I420 array of even size: writing
    to them writes to the frame."""
    height, width = i420.shape[0] * 2 // 3, i420.shape[1]
    quarter = (height // 2) * (width // 2)
    flat = i420.reshape(-1)
    return (
        i420[:height],
        flat[height * width : height * width + quarter].reshape(height // 2, width // 2),
        flat[height * width + quarter : height * width + 2 * quarter].reshape(height // 2, width // 2),
    )
