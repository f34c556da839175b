"""Masking styles on in-memory frames: what changes inside a box, that nothing changes outside, the floors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from framemask.errors import InputError
from framemask.redact.styles import MAX_CELLS, MIN_CELL, Blur, Fill, Masker, Mosaic, box_slices, make_masker


def textured(height: int = 240, width: int = 320, seed: int = 0) -> np.ndarray:
    """Random noise: every mask must visibly change it."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def high_freq_energy(img: np.ndarray) -> float:
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return float(np.abs(cv2.Laplacian(gray, cv2.CV_32F)).mean())


@pytest.mark.parametrize("masker", [Mosaic(), Blur(), Fill(), Mosaic(shape="ellipse"), Blur(shape="ellipse")])
def test_pixels_outside_boxes_are_untouched(masker: Masker) -> None:
    original = textured()
    out = masker.apply(original.copy(), np.array([[40, 30, 140, 190], [200.4, 10.6, 300.2, 90.1]]))
    outside = np.ones(original.shape[:2], bool)
    outside[30:190, 40:140] = False
    outside[10:91, 200:301] = False
    assert np.array_equal(out[outside], original[outside])
    assert masker.apply(original.copy(), np.zeros((0, 4))).tobytes() == original.tobytes()


@pytest.mark.parametrize("masker", [Mosaic(), Blur(), Fill()])
def test_inside_a_box_the_detail_is_gone(masker: Masker) -> None:
    original = textured()
    out = masker.apply(original.copy(), np.array([[40, 40, 200, 200]]))
    before, after = high_freq_energy(original[40:200, 40:200]), high_freq_energy(out[40:200, 40:200])
    assert after < 0.2 * before
    assert np.abs(out[40:200, 40:200].astype(int) - original[40:200, 40:200]).mean() > 30


def test_mosaic_cells_are_averages_and_respect_the_size_floor() -> None:
    original = textured()
    box = np.array([[0, 0, 160, 80]])  # longer side 160 -> cell 20 px (160 / 8)
    out = Mosaic().apply(original.copy(), box)
    cell = max(MIN_CELL, 160 // MAX_CELLS)
    assert cell == 20
    block = out[0:20, 0:20]
    assert (block == block[0, 0]).all()
    assert np.abs(block[0, 0].astype(int) - original[0:20, 0:20].reshape(-1, 3).mean(0)).max() <= 1
    assert len(np.unique(out[0:80, 0:160].reshape(-1, 3), axis=0)) <= 8 * 4


def test_small_boxes_still_get_cells_of_at_least_min_cell() -> None:
    out = Mosaic().apply(textured(), np.array([[10, 10, 26, 26]]))  # 16 px face -> 2x2 cells of 8 px
    assert len(np.unique(out[10:26, 10:26].reshape(-1, 3), axis=0)) <= 4


def test_strength_only_coarsens() -> None:
    assert Mosaic().cell(160, 160) == 20 and Mosaic(strength=2).cell(160, 160) == 40
    assert Blur(strength=3).sigma(100, 100) == 3 * Blur().sigma(100, 100)
    with pytest.raises(InputError, match="strength"):
        make_masker("mosaic", strength=0.5)


def test_blur_sigma_floor_scales_with_the_box() -> None:
    assert Blur().sigma(400, 100) == 400 / MAX_CELLS
    assert Blur().sigma(10, 10) == 4.0


def test_ellipse_leaves_box_corners() -> None:
    original = textured()
    out = Mosaic(shape="ellipse").apply(original.copy(), np.array([[0, 0, 100, 100]]))
    assert np.array_equal(out[0:5, 0:5], original[0:5, 0:5])
    assert not np.array_equal(out[45:55, 45:55], original[45:55, 45:55])


def test_boxes_beyond_the_frame_are_clipped() -> None:
    original = textured()
    out = Fill().apply(original.copy(), np.array([[-50, -50, 20, 20], [310, 230, 400, 400], [500, 500, 600, 600]]))
    assert (out[0:20, 0:20] == 0).all() and (out[230:, 310:] == 0).all()
    assert np.array_equal(out[20:230, 20:310], original[20:230, 20:310])


def test_make_masker_rejects_unknown_names() -> None:
    with pytest.raises(InputError, match="mosaic, blur, fill"):
        make_masker("pixelate")
    with pytest.raises(InputError, match="rect, ellipse"):
        make_masker("blur", "circle")
    assert isinstance(make_masker("fill", "ellipse"), Fill)


def test_boxes_inside_a_painted_box_are_not_painted_again() -> None:
    original = textured()
    person, face = [20, 20, 220, 220], [60, 40, 100, 90]
    both = Mosaic().apply(original.copy(), np.array([person, face]))
    alone = Mosaic().apply(original.copy(), np.array([person]))
    assert np.array_equal(both, alone)  # the face is already inside a masked region
    face_first = Mosaic().apply(original.copy(), np.array([face, person]))
    assert not np.array_equal(face_first[40:90, 60:100], original[40:90, 60:100])


def _box_masks(boxes: np.ndarray, width: int, height: int) -> list[np.ndarray]:
    masks = []
    for box in boxes:
        mask = np.zeros((height, width), bool)
        region = box_slices(box, width, height)
        if region is not None:
            mask[region] = True
        masks.append(mask)
    return masks


@settings(max_examples=200, deadline=None)
@given(
    corners=st.lists(
        st.tuples(*[st.integers(-20, 140)] * 4, st.sampled_from([0.0, 0.3, 0.5, 0.99])), min_size=0, max_size=25
    ),
    shape=st.sampled_from(["rect", "ellipse"]),
    style=st.sampled_from([Mosaic, Blur, Fill]),
)
def test_regions_cover_every_box_each_within_its_own(corners, shape, style) -> None:
    """Nested, repeated, overlapping, empty and out-of-frame boxes (fractional edges round outward), any order:
    every box pixel is painted, each region lies in a box of its size, and with rectangles every pixel is
    painted last by the largest box covering it (the coarsest mask stays), smaller boxes first."""
    boxes = np.array([[x1 + f, y1 + f, x1 + f + w, y1 + f + h] for x1, y1, w, h, f in corners], np.float64)
    boxes = boxes.reshape(-1, 4) * 4  # large enough for overlaps to be cut off (`TRIM_PIXELS`)
    width, height = 480, 400
    regions = style(shape=shape)._regions(boxes, width, height)
    masks = _box_masks(boxes, width, height)
    painted = np.zeros((height, width), bool)
    last_side = np.zeros((height, width), int)  # the longer side of the box of the region painting a pixel last
    for region in regions:
        painted[region.rows, region.cols] = True
        last_side[region.rows, region.cols] = max(region.box)
        owners = [m for m in masks if m.sum() == region.box[0] * region.box[1] and m[region.rows, region.cols].all()]
        assert owners, f"{region} lies in no box of size {region.box}"
    assert np.array_equal(painted, np.any(masks, axis=0) if masks else painted)
    if shape == "rect":
        sides = [max(r.box) for r in regions]
        assert sides == sorted(sides)
        largest = np.zeros((height, width), int)
        for mask, box in zip(masks, boxes, strict=True):
            region = box_slices(box, width, height)
            if region is not None:
                side = max(s.stop - s.start for s in region)
                largest[mask] = np.maximum(largest[mask], side)
        assert np.array_equal(last_side, largest)
    else:  # ellipses: every box whole, in the order given
        assert len(regions) == sum(m.any() for m in masks)


def test_overlapping_boxes_cost_about_their_union() -> None:
    """A group of people: padded boxes overlapping to 3x the area they cover. Each pixel is painted about once,
    and what a smaller box adds keeps the mosaic cells of its own size."""
    big, right, top = [100, 0, 400, 300], [300, 0, 560, 300], [150, 0, 350, 120]  # cells 38, 38, 25 px
    boxes = np.array([top, big, right], np.float64)
    regions = Mosaic()._regions(boxes, 640, 360)
    area = sum((r.rows.stop - r.rows.start) * (r.cols.stop - r.cols.start) for r in regions)
    union = 300 * 460
    assert union <= area <= 1.15 * union  # the sum of the boxes' areas is 1.3x the union
    assert [r.box for r in regions] == [(300, 260), (300, 300)]  # `top` lies inside `big`; `big` paints last
    out = Mosaic().apply(textured(360, 640), boxes)
    cell = Mosaic().cell(300, 260)
    added = regions[0]
    assert added.cols.start > 300 and (added.cols.start - 300) % cell == 0  # whole cells of `right`'s grid
    across = -(-(added.cols.stop - added.cols.start) // cell)
    own = out[added.rows, 400 : added.cols.stop]  # what `big`, painted after it, leaves of `right`'s region
    assert len(np.unique(own.reshape(-1, 3), axis=0)) <= 8 * across  # cells of >= 36 px
    assert len(np.unique(out[0:300, 100:560].reshape(-1, 3), axis=0)) <= 8 * 8 + 8 * across


@pytest.mark.parametrize("masker", [Mosaic(), Blur(), Fill(), Mosaic(strength=2.0)])
def test_overlapping_boxes_leave_no_detail_anywhere_in_them(masker: Masker) -> None:
    """A group whose boxes overlap enough for later ones to be cut to their unpainted part: every pixel of
    every box loses its detail, in the parts cut off as much as in the rest, and nothing outside changes."""
    original = textured(360, 640, seed=3)
    boxes = np.array([[300, 0, 560, 300], [100, 0, 400, 300], [380, 150, 620, 350], [150, 10, 350, 120]], float)
    out = masker.apply(original.copy(), boxes)
    inside = np.zeros(original.shape[:2], bool)
    for x1, y1, x2, y2 in boxes.astype(int):
        inside[y1:y2, x1:x2] = True
        box = (slice(y1, y2), slice(x1, x2))
        assert high_freq_energy(out[box]) < 0.2 * high_freq_energy(original[box])
    assert np.array_equal(out[~inside], original[~inside])
    cut = masker._regions(boxes, 640, 360)[1]  # the second box, cut to what the first leaves of it
    assert cut.box == (300, 300) and cut.cols.stop - cut.cols.start < 300
    strip = (slice(0, 300), slice(100, 300))
    assert high_freq_energy(out[strip]) < 0.2 * high_freq_energy(original[strip])
