"""The track list with review hints: one entry per confirmed track of a video, and what to look at.

A reviewer cannot watch every frame of every person; the flags point at where the detector or the
tracker most likely failed:

- `starts_inside` / `ends_inside`: a track that begins or ends away from the frame edge, neither at the
  first nor the last frame. People walk in and out at the edges; a person who vanishes mid-frame was
  probably lost by the detector (occlusion, a pose it does not know) and may be unmasked from there on.
- `fragmented`: the track has gaps (frames where it was lost, then found again), or another track of
  the same label starts right where and soon after this one ended (one person, two ids).
- `short`: shorter than half a second: a false positive, or a person seen only briefly.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from framemask.detect import box_ioa, box_iou
from framemask.redact.boxes import FILLED, FLAGS, LABEL, SCORE, TRACK, X1, Y2, BoxTrack

__all__ = ["TrackSummary", "duplicate_tracks", "static_weak_tracks", "summarize_tracks"]

EDGE_FRACTION = 0.03
"""A box within this fraction of the frame's size from a border touches the edge."""
SUCCESSOR_SECONDS = 1.0
"""A same-label track starting within this time of another's end, where it ended, makes it fragmented."""
SHORT_SECONDS = 0.5
STATIC_SCORE = 0.4
STATIC_MOTION = 0.05
"""A confirmed track scoring below `STATIC_SCORE` on average whose box never moves more than
`STATIC_MOTION` of its height is most likely a thing (a cone, a post, a stone): a candidate, not a
person. Standing people score higher; the box is masked either way."""
DUPLICATE_INSIDE = 0.8
"""A box lying this much inside another box of the same label is a candidate duplicate of it..."""
DUPLICATE_SHARE = 0.8
"""...and a track whose boxes do so on this share of its life is a duplicate (a second box on one
person: upper body and whole body, or a box split at an occluder). Someone passing behind another
person overlaps them only while passing."""


@dataclass
class TrackSummary:
    """One confirmed track: its span, frames with a box, gaps (spans where the detector lost it; their
    boxes, if any, were filled in by interpolation) and review flags."""

    id: int
    label: str
    start_seq: int
    end_seq: int
    frames: int
    gaps: list[list[int]] = field(default_factory=list)
    mean_score: float = 0.0
    flags: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Span:
    label: int
    seqs: list[int] = field(default_factory=list)
    filled: list[int] = field(default_factory=list)
    boxes: list[np.ndarray] = field(default_factory=list)
    scores: list[int] = field(default_factory=list)


def summarize_tracks(track: BoxTrack, fps: float) -> list[TrackSummary]:
    """Every confirmed track of `track`, by id, with its review flags (see the module docstring)."""
    spans: dict[int, _Span] = {}
    for seq in range(1, len(track) + 1):
        for row in track.rows(seq):
            tid = int(row[TRACK])
            if tid < 0 or tid not in track.confirmed:
                continue
            span = spans.setdefault(tid, _Span(int(row[LABEL])))
            if span.seqs and span.seqs[-1] == seq:
                continue
            span.seqs.append(seq)
            if row[FLAGS] & FILLED:
                span.filled.append(seq)
            span.boxes.append(row[X1 : Y2 + 1].astype(np.float64))
            if row[SCORE] >= 0:
                span.scores.append(int(row[SCORE]))
    fps = fps if fps > 0 else 25.0
    out = [_summary(tid, span, track) for tid, span in sorted(spans.items())]
    by_id = {s.id: s for s in out}
    for tid, span in spans.items():
        if by_id[tid].gaps or _successor(tid, span, spans, fps):
            by_id[tid].flags.append("fragmented")
        if len(span.seqs) < max(2, SHORT_SECONDS * fps):
            by_id[tid].flags.append("short")
    return out


def _summary(tid: int, span: _Span, track: BoxTrack) -> TrackSummary:
    seqs = span.seqs
    lost = sorted({*span.filled, *(s for a, b in itertools.pairwise(seqs) for s in range(a + 1, b))})
    gaps = _runs(lost)
    flags = []
    if seqs[0] > 1 and not _at_edge(span.boxes[0], track.width, track.height):
        flags.append("starts_inside")
    if seqs[-1] < len(track) and not _at_edge(span.boxes[-1], track.width, track.height):
        flags.append("ends_inside")
    mean = round(sum(span.scores) / len(span.scores) / 1000, 3) if span.scores else 0.0
    return TrackSummary(tid, track.labels[span.label], seqs[0], seqs[-1], len(seqs), gaps, mean, flags)


def _runs(seqs: list[int]) -> list[list[int]]:
    """[[first, last], ...] of the consecutive runs in sorted `seqs`."""
    runs: list[list[int]] = []
    for seq in seqs:
        if runs and runs[-1][1] == seq - 1:
            runs[-1][1] = seq
        else:
            runs.append([seq, seq])
    return runs


def _at_edge(box: np.ndarray, width: int, height: int) -> bool:
    mx, my = max(2.0, EDGE_FRACTION * width), max(2.0, EDGE_FRACTION * height)
    x1, y1, x2, y2 = box
    return bool(x1 <= mx or y1 <= my or x2 >= width - mx or y2 >= height - my)


def _successor(tid: int, span: _Span, spans: dict[int, _Span], fps: float) -> bool:
    """Another track of the same label begins soon after this one ends, overlapping where it ended."""
    end, last = span.seqs[-1], span.boxes[-1]
    wh = last[2:] - last[:2]
    grown = np.concatenate([last[:2] - wh / 2, last[2:] + wh / 2])
    for other_id, other in spans.items():
        if other_id == tid or other.label != span.label:
            continue
        if 0 < other.seqs[0] - end <= SUCCESSOR_SECONDS * fps and box_iou(grown, other.boxes[0])[0, 0] > 0:
            return True
    return False


def duplicate_tracks(track: BoxTrack) -> set[int]:
    """Confirmed tracks that double another confirmed track of the same label (see `DUPLICATE_*`):
    demote them to candidates (still masked, not counted as people)."""
    life: dict[int, int] = {}
    inside: dict[tuple[int, int], int] = {}
    for seq in range(1, len(track) + 1):
        rows = track.rows(seq)
        rows = rows[(rows[:, TRACK] >= 0) & ((rows[:, FLAGS] & FILLED) == 0)]
        rows = rows[[int(t) in track.confirmed for t in rows[:, TRACK]]] if len(rows) else rows
        for tid in rows[:, TRACK]:
            life[int(tid)] = life.get(int(tid), 0) + 1
        if len(rows) < 2:
            continue
        ioa = box_ioa(rows[:, X1 : Y2 + 1], rows[:, X1 : Y2 + 1])  # share of box i inside box j
        for i, j in zip(*np.nonzero(ioa >= DUPLICATE_INSIDE), strict=True):
            if i != j and rows[i, LABEL] == rows[j, LABEL]:
                key = (int(rows[i, TRACK]), int(rows[j, TRACK]))
                inside[key] = inside.get(key, 0) + 1
    dropped: set[int] = set()
    for (inner, outer), frames in sorted(inside.items(), key=lambda kv: -kv[1]):
        if inner in dropped or outer in dropped:
            continue
        if frames >= DUPLICATE_SHARE * life[inner]:
            dropped.add(inner)
    return dropped


def static_weak_tracks(track: BoxTrack) -> set[int]:
    """Confirmed tracks that never move and score low (see `STATIC_*`): demote them to candidates."""
    boxes: dict[int, list[np.ndarray]] = {}
    scores: dict[int, list[int]] = {}
    for seq in range(1, len(track) + 1):
        for row in track.rows(seq):
            tid = int(row[TRACK])
            if tid in track.confirmed and not row[FLAGS] & FILLED and row[SCORE] >= 0:
                boxes.setdefault(tid, []).append(row[X1 : Y2 + 1].astype(np.float64))
                scores.setdefault(tid, []).append(int(row[SCORE]))
    out = set()
    for tid, seen in boxes.items():
        xyxy = np.array(seen)
        height = float(np.median(xyxy[:, 3] - xyxy[:, 1])) or 1.0
        centre = (xyxy[:, :2] + xyxy[:, 2:]) / 2
        moved = float(np.ptp(centre, axis=0).max()) / height
        if np.mean(scores[tid]) < STATIC_SCORE * 1000 and moved < STATIC_MOTION:
            out.add(tid)
    return out
