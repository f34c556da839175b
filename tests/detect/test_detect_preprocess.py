"""The detectors' input preparation: the planar normalised blob."""

from __future__ import annotations

import numpy as np

from framemask.detect._runtime import planar_blob

MEAN = np.array([103.53, 116.28, 123.675], np.float32)
STD = np.array([57.375, 57.12, 58.395], np.float32)


def _frame(h: int, w: int) -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_planar_blob_matches_the_strided_expression_and_pads_with_zero() -> None:
    rgb = _frame(234, 416)
    blob = planar_blob(rgb, 288, 416, MEAN, STD)
    assert blob.shape == (1, 3, 288, 416) and blob.dtype == np.float32
    expected = ((rgb[..., ::-1].astype(np.float32) - MEAN) / STD).transpose(2, 0, 1)
    assert np.array_equal(blob[0, :, :234], expected)
    assert not blob[0, :, 234:].any()
    no_std = planar_blob(rgb, 256, 448, MEAN)
    assert np.array_equal(no_std[0, :, :234, :416], (rgb[..., ::-1].astype(np.float32) - MEAN).transpose(2, 0, 1))
    assert not no_std[0, :, :, 416:].any()
