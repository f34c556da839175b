"""Intervals where people (or faces) are present, from the per-frame boxes in the seed format.

Only confirmed tracks are listed under `person`/`face` (candidates are not people to count), so the
peak count is the most people on screen at once, and `people` the distinct tracks of the interval.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Presence:
    """Frames start..end (inclusive) with at least one box; `peak_seq` has the most boxes at once;
    `people` is the number of distinct tracks (0 when the boxes carry no track ids)."""

    start: int
    end: int
    peak_seq: int
    peak_count: int
    people: int = 0


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
    tracks = tracks_per_frame(boxes)
    return [_with_people(p, tracks) for p in intervals if p.end - p.start + 1 >= min_frames]


def tracks_per_frame(boxes: dict[str, Any], labels: tuple[str, ...] = ("person", "face")) -> list[dict[str, set[int]]]:
    """Track ids per label on every frame (index seq-1)."""
    out: list[dict[str, set[int]]] = [{} for _ in range(int(boxes["endSequence"]))]
    for entry in boxes["sequence"]:
        for label in labels:
            ids = {b["track"] for b in entry.get(label, []) if isinstance(b.get("track"), int)}
            out[int(entry["seq"]) - 1][label] = ids
    return out


def _with_people(p: Presence, tracks: list[dict[str, set[int]]]) -> Presence:
    """Distinct tracks of the label with the most of them (people, or faces in close-ups)."""
    window = tracks[p.start - 1 : p.end]
    people = max((len(set().union(*(f.get(label, set()) for f in window))) for label in ("person", "face")), default=0)
    return Presence(p.start, p.end, p.peak_seq, p.peak_count, max(people, p.peak_count if people else 0))


def _interval(counts: list[int], start: int, end: int) -> Presence:
    window = counts[start - 1 : end]
    peak = max(range(len(window)), key=window.__getitem__)
    return Presence(start=start, end=end, peak_seq=start + peak, peak_count=window[peak])


def without_excluded(boxes: dict[str, Any], labels: tuple[str, ...] = ("person", "face")) -> dict[str, Any]:
    """The document with boxes a reviewer excluded (`"excluded": true`) left out of `labels`: they are not
    people on screen any more. Other keys (candidates, added regions) are kept as they are."""
    sequence = []
    for entry in boxes["sequence"]:
        if any(b.get("excluded") for label in labels for b in entry.get(label, [])):
            entry = {**entry, **{label: [b for b in entry.get(label, []) if not b.get("excluded")] for label in labels}}
        sequence.append(entry)
    return {**boxes, "sequence": sequence}


def span_people(counts: list[int], tracks: list[dict[str, set[int]]], start: int, end: int) -> tuple[int, int, int]:
    """(peak seq, most boxes at once, distinct tracks) over frames start..end, as for presence intervals."""
    window = counts[start - 1 : end]
    if not window or max(window) == 0:
        return (start + end) // 2, 0, 0
    p = _with_people(_interval(counts, start, end), tracks)
    return p.peak_seq, p.peak_count, p.people
