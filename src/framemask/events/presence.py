"""Intervals where people (or faces) are present, from the per-frame boxes in the seed format."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Presence:
    """Frames start..end (inclusive) with at least one box; `peak_seq` has the most boxes."""

    start: int
    end: int
    peak_seq: int
    peak_count: int


def counts_per_frame(boxes: dict[str, Any], labels: tuple[str, ...] = ("person", "face")) -> list[int]:
    """Boxes per frame (index seq-1); for each frame the larger of the per-label counts."""
    counts = [0] * int(boxes["endSequence"])
    for entry in boxes["sequence"]:
        counts[int(entry["seq"]) - 1] = max((len(entry.get(label, [])) for label in labels), default=0)
    return counts


def presence_intervals(boxes: dict[str, Any], max_gap: int = 5, min_frames: int = 3) -> list[Presence]:
    """Runs of frames with boxes, bridging gaps up to `max_gap` frames, dropping runs under `min_frames`."""
    counts = counts_per_frame(boxes)
    intervals: list[Presence] = []
    start = last = None
    for i, count in enumerate(counts, start=1):
        if count == 0:
            continue
        if start is not None and last is not None and i - last > max_gap + 1:
            intervals.append(_interval(counts, start, last))
            start = None
        if start is None:
            start = i
        last = i
    if start is not None and last is not None:
        intervals.append(_interval(counts, start, last))
    return [p for p in intervals if p.end - p.start + 1 >= min_frames]


def _interval(counts: list[int], start: int, end: int) -> Presence:
    window = counts[start - 1 : end]
    peak = max(range(len(window)), key=window.__getitem__)
    return Presence(start=start, end=end, peak_seq=start + peak, peak_count=window[peak])
