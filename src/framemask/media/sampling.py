"""Sampling a video at a fixed rate (seed 003): exactly duration x rate samples, each tied to a real frame.

Sample k is taken at t_k = k / rate from the first frame and uses the frame on screen at t_k, so a VFR
video neither drifts nor gains or loses samples: the count depends only on the duration and the rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from framemask.errors import InputError
from framemask.media.index import FrameIndex


@dataclass(frozen=True)
class Sample:
    """One fixed-rate sample: its own time, and the frame shown then."""

    k: int
    time_ms: float
    seq: int
    frame_time_ms: float


def sample_count(duration_ms: float, rate: float) -> int:
    """floor(duration x rate): the samples whose time lies inside the video."""
    return max(1, math.floor(duration_ms * rate / 1000.0 + 1e-9))


def fixed_rate_samples(index: FrameIndex, rate: float) -> list[Sample]:
    """`rate` samples per second over the whole video, each mapped to the frame on screen at its time."""
    if not (0 < rate <= 1000):
        raise InputError(f"sampling rate must be in (0, 1000] per second, got {rate}")
    samples = []
    for k in range(sample_count(index.duration_ms, rate)):
        t = k * 1000.0 / rate
        seq = index.frame_at(t)
        samples.append(Sample(k=k, time_ms=t, seq=seq, frame_time_ms=index.time_of(seq)))
    return samples
