"""Estimate the offset between two recordings of the same scene from their content (VFR-aware).

Each frame becomes a tiny grey thumbnail (its signature), placed at its real timestamp. A coarse search
cross-correlates the two videos' signature channels and frame-difference energy, held on a fine time grid
(so variable frame rates and different rates line up), with an FFT over every lag where they overlap. The
best lag is then refined to an exact frame pairing: every offset `t_a[i] - t_b[j]` near it is scored by
the mean distance between each frame of `b` and the frame of `a` on screen at the same moment, so a copy
trimmed by k frames comes out as exactly the time of `a`'s frame k+1.

`offset_ms` is where `b`'s first frame lies on `a`'s timeline (positive: `b` started later).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np

from framemask.errors import InputError
from framemask.media import FrameIndex, iter_frames, round_ms

log = logging.getLogger(__name__)

__all__ = ["Alignment", "Signatures", "align", "signatures"]

THUMB = 16
"""Signature side: 16x16 grey pixels (256 values) per frame."""
GRID_MS = 4.0
"""Time step of the coarse search grid (longer videos use a coarser grid of at most MAX_GRID points)."""
MAX_GRID = 200_000
MIN_OVERLAP = 0.3
"""The videos must share at least this fraction of the shorter one for a lag to count."""
SAME_MS = 1.0
"""Timestamps this close are the same moment (RTP rounding moves frames by a 90 kHz tick)."""
MAX_CANDIDATES = 2000
"""Exact frame pairings scored around the coarse lag."""


@dataclass(frozen=True)
class Signatures:
    """Per-frame grey thumbnails of one video with their times (ms from its first frame)."""

    time_ms: np.ndarray
    thumbs: np.ndarray  # (frames, THUMB*THUMB) float32, 0..1

    @property
    def duration_ms(self) -> float:
        steps = np.diff(self.time_ms)
        return float(self.time_ms[-1] + (np.median(steps) if len(steps) else 0.0))


@dataclass(frozen=True)
class Alignment:
    offset_ms: float
    offset_frames: int
    """Frames of `a` before `b`'s first frame (negative: frames of `b` before `a`'s first frame)."""
    confidence: float
    """0..1: how much better the chosen pairing matches than the typical unrelated pairing."""
    matched_frames: int

    def to_json(self) -> dict[str, float | int]:
        return {
            "offset_ms": round_ms(self.offset_ms),
            "offset_frames": self.offset_frames,
            "confidence": round(self.confidence, 4),
            "matched_frames": self.matched_frames,
        }


def signatures(
    path: str | os.PathLike[str], index: FrameIndex | None = None, max_seconds: float | None = None
) -> Signatures:
    """Decode `path` once into per-frame signatures (stored orientation; both inputs are treated alike)."""
    index = index if index is not None else FrameIndex.build(path)
    thumbs: list[np.ndarray] = []
    for seq, frame in iter_frames(path):
        if seq > index.end_sequence or (max_seconds is not None and index.time_ms[seq - 1] > max_seconds * 1000):
            break
        grey = frame.to_ndarray(format="gray", width=THUMB, height=THUMB)
        thumbs.append(grey.reshape(-1).astype(np.float32) / 255.0)
    if not thumbs:
        raise InputError(f"{path}: no frames to align")
    return Signatures(time_ms=index.time_ms[: len(thumbs)].copy(), thumbs=np.stack(thumbs))


def align(a: str | os.PathLike[str], b: str | os.PathLike[str], max_seconds: float | None = None) -> Alignment:
    """The offset of `b` against `a` (see the module docstring)."""
    index_a, index_b = FrameIndex.build(a), FrameIndex.build(b)
    sig_a, sig_b = signatures(a, index_a, max_seconds), signatures(b, index_b, max_seconds)
    return align_signatures(sig_a, sig_b, index_a, index_b)


def align_signatures(sig_a: Signatures, sig_b: Signatures, index_a: FrameIndex, index_b: FrameIndex) -> Alignment:
    if sig_a.thumbs.shape[1] != sig_b.thumbs.shape[1]:
        raise InputError("signatures of different sizes")
    coarse = _coarse_lags(sig_a, sig_b)
    offset, distance, matched = min((_refine(sig_a, sig_b, lag) for lag in coarse), key=lambda r: r[1])
    typical = _typical_distance(sig_a, sig_b)
    confidence = float(np.clip(1.0 - distance / typical, 0.0, 1.0)) if typical > 0 else 0.0
    # frames of one video that start before the other's first frame (b's first frame pairs with a's frame
    # that starts at the offset, which is therefore not counted)
    if offset >= 0:
        frames = int(np.searchsorted(index_a.time_ms, offset - SAME_MS, side="left"))
    else:
        frames = -int(np.searchsorted(index_b.time_ms, -offset - SAME_MS, side="left"))
    log.info("coarse lags %s ms, refined %.3f ms (distance %.5f, typical %.5f)", coarse, offset, distance, typical)
    return Alignment(offset_ms=offset, offset_frames=frames, confidence=confidence, matched_frames=matched)


def _grid_step(sig_a: Signatures, sig_b: Signatures) -> float:
    return max(GRID_MS, max(sig_a.duration_ms, sig_b.duration_ms) / MAX_GRID)


def _held(sig: Signatures, channels: np.ndarray, length: int, step: float) -> np.ndarray:
    """Channels sample-and-held on the grid: grid point g shows the frame on screen at g * step."""
    grid = np.arange(length) * step
    on_screen = np.clip(np.searchsorted(sig.time_ms, grid + 1e-6, side="right") - 1, 0, len(sig.time_ms) - 1)
    return channels[on_screen]


def _channels(sig: Signatures) -> np.ndarray:
    """4x4 block means of the thumbnail plus frame-difference energy, on the pixel scale (0..1).

    Not standardised: scaling a channel that barely changes would turn coding noise into signal.
    """
    blocks = sig.thumbs.reshape(-1, 4, THUMB // 4, 4, THUMB // 4).mean(axis=(2, 4)).reshape(-1, 16)
    energy = np.concatenate([[0.0], np.abs(np.diff(sig.thumbs, axis=0)).mean(axis=1)])[:, None]
    return np.concatenate([blocks, energy], axis=1).astype(np.float64)


def _coarse_lags(sig_a: Signatures, sig_b: Signatures, keep: int = 5) -> list[float]:
    """Grid lags (ms, b against a) with the least mean squared channel difference over the overlap.

    Returns up to `keep` local minima at least 100 ms apart, best first: the refinement decides among them.
    """
    step = _grid_step(sig_a, sig_b)
    len_a = int(np.ceil(sig_a.duration_ms / step)) + 1
    len_b = int(np.ceil(sig_b.duration_ms / step)) + 1
    xa, xb = _held(sig_a, _channels(sig_a), len_a, step), _held(sig_b, _channels(sig_b), len_b, step)
    n = 1 << int(np.ceil(np.log2(len_a + len_b)))
    ones_a, ones_b = np.ones(len_a), np.ones(len_b)

    def xcorr(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """sum_t u[t + lag] v[t] for lag = -(len_b-1) .. len_a-1."""
        full = np.fft.irfft(np.fft.rfft(u, n, axis=0) * np.conj(np.fft.rfft(v, n, axis=0)), n, axis=0)
        if full.ndim > 1:
            full = full.sum(axis=1)
        return np.concatenate([full[n - (len_b - 1) :], full[:len_a]])

    overlap = np.rint(xcorr(ones_a, ones_b))
    cross = xcorr(xa, xb)
    energy_a = xcorr((xa**2).sum(axis=1), ones_b)
    energy_b = xcorr(ones_a, (xb**2).sum(axis=1))
    msd = (energy_a + energy_b - 2.0 * cross) / np.maximum(overlap, 1.0)
    lags = np.arange(-(len_b - 1), len_a) * step
    msd[overlap < MIN_OVERLAP * min(len_a, len_b)] = np.inf
    chosen: list[float] = []
    for i in np.argsort(msd, kind="stable"):
        if not np.isfinite(msd[i]) or len(chosen) >= keep:
            break
        if all(abs(lags[i] - c) >= 100.0 for c in chosen):
            chosen.append(float(lags[i]))
    return chosen or [0.0]


def _pair_distance(sig_a: Signatures, sig_b: Signatures, offset: float) -> tuple[float, int]:
    """Mean distance between each frame of b and the frame of a on screen at the same moment."""
    t = sig_b.time_ms + offset
    inside = (t >= sig_a.time_ms[0] - SAME_MS) & (t < sig_a.duration_ms)
    if inside.sum() < max(1, MIN_OVERLAP * min(len(sig_a.time_ms), len(sig_b.time_ms))):
        return np.inf, 0
    on_screen = np.searchsorted(sig_a.time_ms, t[inside] + SAME_MS, side="right") - 1
    idx = np.clip(on_screen, 0, len(sig_a.time_ms) - 1)
    dist = np.abs(sig_a.thumbs[idx] - sig_b.thumbs[inside]).mean(axis=1)
    return float(dist.mean()), int(inside.sum())


def _refine(sig_a: Signatures, sig_b: Signatures, coarse: float) -> tuple[float, float, int]:
    """The exact frame pairing (offset t_a[i] - t_b[j]) near the coarse lag with the least distance."""
    steps = np.diff(np.concatenate([sig_a.time_ms, sig_b.time_ms]))
    grid = _grid_step(sig_a, sig_b)
    window = 2 * grid + min(float(np.abs(steps).max()) if len(steps) else 0.0, 1000.0)
    cand = (sig_a.time_ms[:, None] - sig_b.time_ms[None, :]).ravel()
    cand = np.unique(np.round(cand[np.abs(cand - coarse) <= window], 6))
    cand = cand[np.argsort(np.abs(cand - coarse), kind="stable")[:MAX_CANDIDATES]]  # ties: nearest the lag
    if len(cand) == 0:
        cand = np.array([coarse])
    best = (np.inf, coarse, 0)
    for offset in cand:
        distance, matched = _pair_distance(sig_a, sig_b, float(offset))
        if distance < best[0]:
            best = (distance, float(offset), matched)
    return best[1], best[0], best[2]


def _typical_distance(sig_a: Signatures, sig_b: Signatures) -> float:
    """The median distance between frames of a and b paired at random (the 'unrelated' level)."""
    rng = np.random.default_rng(0)
    i = rng.integers(0, len(sig_a.thumbs), 512)
    j = rng.integers(0, len(sig_b.thumbs), 512)
    return float(np.median(np.abs(sig_a.thumbs[i] - sig_b.thumbs[j]).mean(axis=1)))
