"""HDR pictures (PQ, HLG) on an SDR screen: the tone curve for stills and thumbnails.

A browser plays an HDR video itself, but a JPEG still is SDR: the decoder's HDR code values shown as if they
were SDR look dark and flat (TUD-Campus in HLG: mean level 78 against 120 in SDR). `sdr_view` maps each RGB
channel through one table: the transfer's inverse (PQ: the SMPTE ST 2084 EOTF; HLG: the BT.2100 inverse OETF
with the 1.2 system gamma of a 1000 cd/m2 display), reference white (203 cd/m2, ITU-R BT.2408) at SDR white,
highlights above 90% of it rolled off smoothly, then BT.1886's 2.4 gamma. Colours keep their BT.2020
primaries (no gamut conversion): a little less saturated than a colour-managed player shows them.

`sdr_planes` does the same to full-range Y, Cb, Cr planes (a JPEG's own samples, so 4:2:0 stills keep their
fast path): luma through the table, chroma scaled by the table's slope at that luma, which is what the table
applied to each of R', G', B' does to a colour's difference from grey, to first order.

Only what is *shown* goes through it (`api.frames`, event thumbnails); renders keep the video's own signal.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from framemask.media.signal import VideoSignal

__all__ = ["HLG", "PQ", "REFERENCE_WHITE", "is_hdr", "sdr_planes", "sdr_table", "sdr_view"]

PQ, HLG = 16, 18
"""H.273 transfer characteristics: SMPTE ST 2084 (PQ) and ARIB STD-B67 (HLG)."""
REFERENCE_WHITE = 203.0
"""cd/m2 of HDR reference white (BT.2408), shown as SDR white."""
SHOULDER = 0.9
"""Share of SDR white above which brighter light is compressed instead of clipped."""
_HLG_PEAK = 1000.0
_HLG_A, _HLG_B, _HLG_C = 0.17883277, 0.28466892, 0.55991073
_PQ_M1, _PQ_M2 = 2610 / 16384, 2523 / 4096 * 128
_PQ_C1, _PQ_C2, _PQ_C3 = 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32


def is_hdr(signal: VideoSignal) -> bool:
    """Whether stills of this video are tone-mapped (`sdr_table` knows its transfer)."""
    return sdr_table(signal.transfer) is not None


def sdr_view(rgb: np.ndarray, signal: VideoSignal) -> np.ndarray:
    """`rgb` (uint8) as an SDR screen should show it: tone-mapped if the video is PQ or HLG, else itself."""
    table = sdr_table(signal.transfer)
    return rgb if table is None else cv2.LUT(rgb, table)


MAX_CHROMA_GAIN = 2.0
"""Cap on the chroma scale of `sdr_planes`: the table is steep near black, where chroma is mostly noise."""


def sdr_planes(y: np.ndarray, u: np.ndarray, v: np.ndarray, transfer: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full-range 4:2:0 planes (uint8) as an SDR screen should show them; the same planes if not HDR."""
    table = sdr_table(transfer)
    if table is None:
        return y, u, v
    luma = cv2.resize(y, (u.shape[1], u.shape[0]), interpolation=cv2.INTER_AREA)
    gain = cv2.LUT(luma, _chroma_gain(transfer))
    return cv2.LUT(y, table), _scaled(u, gain), _scaled(v, gain)


def _scaled(chroma: np.ndarray, gain: np.ndarray) -> np.ndarray:
    centred = chroma.astype(np.float32) - 128.0
    scaled: np.ndarray = np.clip(centred * gain + 128.5, 0, 255).astype(np.uint8)
    return scaled


@functools.cache
def _chroma_gain(transfer: int) -> np.ndarray:
    """The table's slope at each code value (float32, 256 entries), capped at `MAX_CHROMA_GAIN`."""
    table = sdr_table(transfer)
    assert table is not None
    slope = np.gradient(table.astype(np.float64))
    return np.clip(slope, 0, MAX_CHROMA_GAIN).astype(np.float32)


@functools.cache
def sdr_table(transfer: int) -> np.ndarray | None:
    """The 256-entry uint8 table from `transfer`'s code values to SDR ones, or None if it is not HDR."""
    code = np.arange(256, dtype=np.float64) / 255.0
    if transfer == PQ:
        p = code ** (1 / _PQ_M2)
        nits = 10000.0 * (np.maximum(p - _PQ_C1, 0) / (_PQ_C2 - _PQ_C3 * p)) ** (1 / _PQ_M1)
    elif transfer == HLG:
        scene = np.where(code <= 0.5, code**2 / 3, (np.exp((code - _HLG_C) / _HLG_A) + _HLG_B) / 12)
        nits = _HLG_PEAK * scene**1.2
    else:
        return None
    relative = nits / REFERENCE_WHITE
    over = np.maximum(relative - SHOULDER, 0) / (1 - SHOULDER)
    shown = np.where(relative <= SHOULDER, relative, SHOULDER + (1 - SHOULDER) * over / (1 + over))
    return np.round(255 * shown ** (1 / 2.4)).clip(0, 255).astype(np.uint8)
