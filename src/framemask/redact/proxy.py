"""Review proxies: a short-GOP copy of an original, so a reviewer can jump to any frame of it quickly.

Cameras and phones record with long GOPs (1-2 s, some much longer), so one random frame of such an original
decodes up to a whole GOP first: 115-137 ms at 1080p with 2 s GOPs, against 60 ms wanted. Video editors work
on proxies for this; framemask makes one per long-GOP original after processing it: the same frames with the
same timestamps (the master's encoder, nothing painted), a key frame every `PROXY_GOP_SECONDS`, no B-frames and
x264's `fastdecode` tune, at `PROXY_CRF` (about 49 dB PSNR against the original's own decode on the bench
clip: visually lossless). The editor's `original` frames come from it; the exact decode stays one query
parameter away, and downloads, renders and audits always read the original itself.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from framemask.errors import FramemaskError
from framemask.media import FrameIndex
from framemask.redact.encode import EncodeSettings
from framemask.redact.pipeline import render_with_boxes

__all__ = [
    "LONG_GOP_SECONDS",
    "PROXY_CRF",
    "PROXY_GOP_SECONDS",
    "ProxyMismatch",
    "longest_gop_ms",
    "make_review_proxy",
    "needs_proxy",
    "proxy_settings",
]

LONG_GOP_SECONDS = 1.0
"""An original whose longest GOP lasts longer than this gets a proxy (a master's GOPs last 0.5 s)."""
PROXY_GOP_SECONDS = 1 / 3
"""A proxy's key-frame interval: 8 frames at 25 fps, so a random frame decodes at most 7 others first."""
PROXY_CRF = 18
TIME_TOLERANCE_MS = 0.001
"""How far a proxy frame's time may be from the original's (rounding between time bases, never a frame)."""


class ProxyMismatch(FramemaskError):
    """The proxy's frames do not line up with the original's one for one."""


def longest_gop_ms(index: FrameIndex) -> float:
    """How long the longest GOP of a video plays (ms; the first frame starts one, key frame or not, and the
    last one lasts until the end of the video)."""
    starts = np.union1d([0], np.flatnonzero(index.keys))
    ends = np.append(index.time_ms[starts[1:]], index.duration_ms)
    return float(np.max(ends - index.time_ms[starts]))


def needs_proxy(index: FrameIndex) -> bool:
    """Whether random frames of this video are slow enough to be worth a proxy."""
    return longest_gop_ms(index) > LONG_GOP_SECONDS * 1000.0


def proxy_settings(fps: float) -> EncodeSettings:
    """x264 settings of a proxy at frame rate `fps`."""
    keyint = max(1, round((fps if fps > 0 else 25.0) * PROXY_GOP_SECONDS))
    return EncodeSettings(crf=PROXY_CRF, keyint=keyint, bframes=0, tune="fastdecode")


def make_review_proxy(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    index: FrameIndex | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> FrameIndex:
    """Write the proxy of `src` to `dst` and return the proxy's frame index, checked frame for frame against
    the original's (`index`, built when not given): the same number of frames at the same times, so a frame
    number or time means the same frame in both. Shown as the original is shown: a rotated original's frames
    are turned upright, an anamorphic one keeps its pixel aspect ratio and its colour description.

    Raises `ProxyMismatch` when the encoded timeline differs from the original's (timestamps the muxer had
    to move): such a video is served from the original alone."""
    original = index or FrameIndex.build(src)
    empty = {"endSequence": original.end_sequence, "sequence": []}
    settings = proxy_settings(original.fps)
    render_with_boxes(src, dst, empty, audio=False, progress=progress, settings=settings, index=original)
    made = FrameIndex.build(Path(dst))
    if len(made) != len(original):
        raise ProxyMismatch(f"its proxy has {len(made)} frames, the original {len(original)}")
    moved = np.abs(made.time_ms - original.time_ms)
    if moved.max() > TIME_TOLERANCE_MS:
        raise ProxyMismatch(f"frame {int(moved.argmax()) + 1} of its proxy is {moved.max():.3f} ms off")
    return made
