"""The detectors' input preparation: area downscaling in whole-number steps and the planar normalised blob."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from framemask.detect._runtime import planar_blob, shrink

MEAN = np.array([103.53, 116.28, 123.675], np.float32)
STD = np.array([57.375, 57.12, 58.395], np.float32)


def _frame(h: int, w: int) -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_whole_number_factor_is_opencv_area_average() -> None:
    frame = _frame(720, 1280)
    out = shrink(frame, 640, 360)
    assert np.array_equal(out, cv2.resize(frame, (640, 360), interpolation=cv2.INTER_AREA))
    # 2x2 box average, rounded: one output pixel checked by hand
    block = frame[:2, :2].astype(np.int32).reshape(4, 3).sum(0)
    assert np.all(np.abs(out[0, 0].astype(np.int32) - block / 4) <= 0.5)


@pytest.mark.parametrize(
    ("size", "target"), [((720, 1280), (416, 234)), ((1080, 1920), (416, 234)), ((481, 643), (416, 311))]
)
def test_fractional_factor_stays_close_to_one_area_step(size: tuple[int, int], target: tuple[int, int]) -> None:
    frame = cv2.GaussianBlur(_frame(*size), (0, 0), 3)  # image-like: neighbouring pixels correlate
    out = shrink(frame, *target)
    assert out.shape == (target[1], target[0], 3)
    one_step = cv2.resize(frame, target, interpolation=cv2.INTER_AREA)
    assert np.abs(out.astype(np.int16) - one_step).mean() < 1.0


def test_same_size_is_returned_untouched() -> None:
    frame = _frame(288, 416)
    assert shrink(frame, 416, 288) is frame


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
