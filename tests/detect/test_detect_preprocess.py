"""The detectors' input preparation: the planar normalised blob and the downscale (`shrink`)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import SHARED_MEDIA
from hypothesis import given, settings
from hypothesis import strategies as st

from framemask.detect._runtime import planar_blob, shrink
from framemask.media import FrameReader

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


# --- shrink: INTER_AREA's result by exact halvings first ------------------------------------------------------


def _street(width: int, height: int) -> np.ndarray:
    """A real street frame (TUD-Campus, 640x480) scaled up to `width` x `height`, pillar-boxed as the benches'."""
    with FrameReader(SHARED_MEDIA / "TUD-Campus.mp4") as reader:
        rgb = reader.frame(30)
    inner = round(640 * height / 480)
    canvas = np.zeros((height, width, 3), np.uint8)
    left = (width - inner) // 2
    canvas[:, left : left + inner] = cv2.resize(rgb, (inner, height), interpolation=cv2.INTER_LANCZOS4)
    return canvas


@pytest.mark.parametrize(
    ("size", "target"), [((1280, 720), (416, 234)), ((1920, 1080), (416, 234)), ((1920, 1080), (640, 360))]
)
def test_shrink_stays_next_to_inter_area_on_a_real_frame(size: tuple[int, int], target: tuple[int, int]) -> None:
    """Measured: a mean of 0.4-0.8 grey levels and a 99th percentile of 4-9 on this sharp (lanczos) upscale."""
    rgb = _street(*size)
    ours = shrink(rgb, *target)
    area = cv2.resize(rgb, target, interpolation=cv2.INTER_AREA)
    assert ours.shape == area.shape and ours.dtype == np.uint8
    diff = np.abs(ours.astype(np.int16) - area.astype(np.int16))
    assert diff.mean() < 1.2
    assert np.percentile(diff, 99) <= 14


def test_shrink_is_inter_area_itself_below_a_factor_of_three() -> None:
    rgb = _frame(480, 640)
    for target in ((416, 312), (321, 241), (320, 240), (214, 161)):
        assert np.array_equal(shrink(rgb, *target), cv2.resize(rgb, target, interpolation=cv2.INTER_AREA))


@settings(max_examples=60, deadline=None)
@given(
    h=st.integers(1, 90),
    w=st.integers(1, 90),
    th=st.integers(1, 90),
    tw=st.integers(1, 90),
    level=st.integers(0, 255),
)
def test_shrink_gives_the_asked_size_and_keeps_a_flat_image_flat(h: int, w: int, th: int, tw: int, level: int) -> None:
    th, tw = min(th, h), min(tw, w)
    flat = np.full((h, w, 3), level, np.uint8)
    out = shrink(flat, tw, th)
    assert out.shape == (th, tw, 3)
    assert (out == level).all()
    noisy = _frame(h, w)
    small = shrink(noisy, tw, th)
    assert small.shape == (th, tw, 3) and small.min() >= noisy.min() and small.max() <= noisy.max()
