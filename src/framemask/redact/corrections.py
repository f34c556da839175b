"""Reviewer corrections and the effective regions they produce on every frame.

A reviewer's corrections (one document per saved revision, validated by `Corrections`):
- `drawnRectangles` `{seq: [{x, y, width, height}]}`: extra regions to mask on a frame (seed 000's format);
- `excluded` `{seq: [{x1, x2, y1, y2, label}]}`: detected boxes that are false positives on that frame;
- `excludedTracks` `[track id]`: detected tracks switched off on every frame;
- `tracks` `[{id, label, keyframes: [{seq, x, y, width, height}]}]`: manual tracks, masked from their first
  to their last key frame, interpolated linearly in *presentation time* between key frames (VFR-exact).

Effective regions of frame s = detected(s) - excluded(s) - excluded tracks + drawn(s) + manual tracks(s).
Added regions carry the label `manual`, so the effective document stays in the seed format.

Detected boxes get track ids: a box's own `track` key if the detector stored one, else ids linked here
frame to frame by overlap (same label, greedy highest IoU first, bridging a few missing frames), which is
deterministic, so a stored `excludedTracks` keeps meaning the same boxes.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from framemask.errors import InputError

__all__ = [
    "MANUAL",
    "BoxRef",
    "Corrections",
    "EffectiveBoxes",
    "KeyBox",
    "ManualTrack",
    "Rect",
]

MANUAL = "manual"
"""Label of every region a reviewer added."""
LINK_IOU = 0.3
LINK_GAP = 5
"""Detected boxes link into one track across up to this many frames without a match."""
MATCH_PX = 1.0
"""An excluded box matches a detected one whose every coordinate is within this many pixels."""
MAX_COORD = 65536.0
"""Coordinates and sizes are displayed-frame pixels: bounded (frames are at most 16384 wide), so that
`x + width` and interpolation stay finite."""
MAX_SEQ = 2**31 - 1
MAX_TRACK_ID = 2**53
MAX_RECTS_PER_FRAME = 256
"""Drawn rectangles on one frame, and excluded boxes on one frame (each)."""
MAX_REGIONS = 20_000
"""Drawn rectangles + excluded boxes + manual key boxes in one corrections document."""
MAX_TRACKS = 1000
MAX_EXCLUDED_TRACKS = 10_000

Coord = Annotated[float, Field(ge=-MAX_COORD, le=MAX_COORD, allow_inf_nan=False)]
Size = Annotated[float, Field(gt=0, le=2 * MAX_COORD, allow_inf_nan=False)]
Seq = Annotated[int, Field(ge=1, le=MAX_SEQ)]


class Rect(BaseModel):
    """A rectangle as drawn on the canvas (seed 000): top-left corner and size, displayed-frame pixels."""

    model_config = ConfigDict(extra="forbid")

    x: Coord
    y: Coord
    width: Size
    height: Size

    def xyxy(self) -> tuple[float, float, float, float]:
        return self.x, self.y, self.x + self.width, self.y + self.height


class KeyBox(Rect):
    """A manual track's box on one key frame."""

    seq: Seq


class BoxRef(BaseModel):
    """A detected box as `/frames` shows it (seed format), optionally with its label."""

    model_config = ConfigDict(extra="ignore")

    x1: Coord
    x2: Coord
    y1: Coord
    y2: Coord
    label: str | None = Field(None, max_length=32)


class ManualTrack(BaseModel):
    """A region followed across frames: key-frame boxes, interpolated by time in between."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=64)
    label: str = Field(MANUAL, pattern=r"^[a-z][a-z0-9_]{0,31}$")
    keyframes: list[KeyBox] = Field(min_length=1, max_length=MAX_REGIONS)

    @field_validator("keyframes")
    @classmethod
    def _distinct_frames(cls, value: list[KeyBox]) -> list[KeyBox]:
        seqs = [k.seq for k in value]
        if len(set(seqs)) != len(seqs):
            raise ValueError("a track has at most one key box per frame")
        return sorted(value, key=lambda k: k.seq)


class Corrections(BaseModel):
    """Everything a reviewer changed on one video (one revision). Frame numbers are 1-based seqs."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    drawn: dict[Seq, Annotated[list[Rect], Field(max_length=MAX_RECTS_PER_FRAME)]] = Field(
        default_factory=dict, alias="drawnRectangles", max_length=MAX_REGIONS
    )
    excluded: dict[Seq, Annotated[list[BoxRef], Field(max_length=MAX_RECTS_PER_FRAME)]] = Field(
        default_factory=dict, max_length=MAX_REGIONS
    )
    excluded_tracks: list[Annotated[int, Field(ge=0, le=MAX_TRACK_ID)]] = Field(
        default_factory=list, alias="excludedTracks", max_length=MAX_EXCLUDED_TRACKS
    )
    tracks: list[ManualTrack] = Field(default_factory=list, max_length=MAX_TRACKS)
    note: str | None = Field(None, max_length=2000)

    @model_validator(mode="after")
    def _unique_track_ids(self) -> Corrections:
        ids = [t.id for t in self.tracks]
        if len(set(ids)) != len(ids):
            raise ValueError("manual track ids must be unique")
        regions = sum(map(len, self.drawn.values())) + sum(map(len, self.excluded.values()))
        regions += sum(len(t.keyframes) for t in self.tracks)
        if regions > MAX_REGIONS:
            raise ValueError(
                f"{regions} regions (drawn rectangles, excluded boxes and key boxes) exceed the limit of {MAX_REGIONS}"
            )
        return self

    def seqs(self) -> Iterator[int]:
        """Every frame number the corrections mention."""
        yield from self.drawn
        yield from self.excluded
        for track in self.tracks:
            yield from (k.seq for k in track.keyframes)

    def check_range(self, end_sequence: int) -> None:
        """InputError naming the first frame number outside 1..end_sequence."""
        for seq in self.seqs():
            if not 1 <= seq <= end_sequence:
                raise InputError(f"frame {seq} is outside 1..{end_sequence}")

    def to_doc(self) -> dict[str, Any]:
        """JSON for storage and the API (the seed 000 key names)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")

    @property
    def empty(self) -> bool:
        return not (self.drawn or self.excluded or self.excluded_tracks or self.tracks)


# --- detected boxes and their tracks -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Box:
    label: str
    xyxy: tuple[int, int, int, int]
    track: int | None = None


def _frame_boxes(entry: Mapping[str, Any]) -> list[_Box]:
    out = []
    for label, boxes in entry.items():
        if label == "seq" or not isinstance(boxes, list):
            continue
        for b in boxes:
            track = b.get("track")
            out.append(_Box(label, (int(b["x1"]), int(b["y1"]), int(b["x2"]), int(b["y2"])), track))
    return out


def _iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def link_tracks(frames: Sequence[list[_Box]]) -> list[list[int]]:
    """A track id for every box of every frame (frames in seq order); stored ids are kept as they are."""
    next_id = 1 + max((b.track for f in frames for b in f if b.track is not None), default=0)
    alive: list[tuple[int, _Box, int]] = []  # (track id, last box, last frame index)
    result = []
    for i, boxes in enumerate(frames):
        alive = [t for t in alive if i - t[2] <= LINK_GAP]
        pairs = sorted(
            (
                (_iou(t[1].xyxy, b.xyxy), ti, bi)
                for ti, t in enumerate(alive)
                for bi, b in enumerate(boxes)
                if t[1].label == b.label and b.track is None
            ),
            reverse=True,
        )
        ids: list[int | None] = [b.track for b in boxes]
        used: set[int] = set()
        for iou, ti, bi in pairs:
            if iou < LINK_IOU:
                break
            if ti in used or ids[bi] is not None:
                continue
            used.add(ti)
            ids[bi] = alive[ti][0]
        for bi in range(len(boxes)):
            if ids[bi] is None:
                ids[bi], next_id = next_id, next_id + 1
        final = [int(t) for t in ids if t is not None]
        kept = set(final)
        alive = [t for t in alive if t[0] not in kept] + [(t, b, i) for t, b in zip(final, boxes, strict=True)]
        result.append(final)
    return result


# --- the effective boxes -------------------------------------------------------------------------------------


class EffectiveBoxes:
    """Detected boxes of a video with one revision's corrections applied, frame by frame."""

    def __init__(
        self,
        detected: Mapping[str, Any],
        corrections: Corrections,
        time_ms: np.ndarray,
        width: int,
        height: int,
    ) -> None:
        self.end_sequence = int(detected.get("endSequence") or len(time_ms))
        if len(time_ms) != self.end_sequence:
            raise InputError(f"the frame index has {len(time_ms)} frames, the boxes {self.end_sequence}")
        corrections.check_range(self.end_sequence)
        self.corrections, self.time_ms = corrections, np.asarray(time_ms, np.float64)
        self.width, self.height = width, height
        entries = {int(e["seq"]): e for e in detected.get("sequence", [])}
        self._labels = [[k for k, v in entries.get(s, {}).items() if isinstance(v, list)] for s in self._all()]
        self._detected = [_frame_boxes(entries.get(s, {})) for s in self._all()]
        self._tracks = link_tracks(self._detected)
        self._off_tracks = set(corrections.excluded_tracks)

    def _all(self) -> range:
        return range(1, self.end_sequence + 1)

    def frame(self, seq: int) -> list[dict[str, Any]]:
        """Every box of frame `seq`, detected ones flagged `excluded` when a correction removes them:
        `{x1, x2, y1, y2, label, source: detected|drawn|track, track, excluded}`."""
        out = []
        refs = self.corrections.excluded.get(seq, [])
        for box, track in zip(self._detected[seq - 1], self._tracks[seq - 1], strict=True):
            off = track in self._off_tracks or any(_matches(box, r) for r in refs)
            out.append(_dict(box.xyxy, box.label, "detected", track, off))
        for rect in self.corrections.drawn.get(seq, []):
            out.append(_dict(self._clip(rect.xyxy()), MANUAL, "drawn", None, False))
        for mt in self.corrections.tracks:
            xyxy = self._interpolated(mt, seq)
            if xyxy is not None:
                out.append(_dict(self._clip(xyxy), mt.label, "track", mt.id, False))
        return [b for b in out if b["x2"] > b["x1"] and b["y2"] > b["y1"]]

    def seed_entry(self, seq: int) -> dict[str, Any]:
        """Frame `seq` in the seed format: the regions that are masked, grouped by label."""
        entry: dict[str, Any] = {"seq": seq}
        for label in self._labels[seq - 1]:
            entry[label] = []
        for box in self.frame(seq):
            if not box["excluded"]:
                coords = {k: box[k] for k in ("x1", "x2", "y1", "y2")}
                entry.setdefault(box["label"], []).append(coords)
        return entry

    def to_doc(self, first: int = 1, last: int | None = None) -> dict[str, Any]:
        """The effective seed document (every frame of first..last)."""
        last = self.end_sequence if last is None else last
        return {"endSequence": self.end_sequence, "sequence": [self.seed_entry(s) for s in range(first, last + 1)]}

    def _clip(self, xyxy: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
        x1, y1, x2, y2 = xyxy
        return (
            min(max(math.floor(x1), 0), self.width),
            min(max(math.floor(y1), 0), self.height),
            min(max(math.ceil(x2), 0), self.width),
            min(max(math.ceil(y2), 0), self.height),
        )

    def _interpolated(self, track: ManualTrack, seq: int) -> tuple[float, float, float, float] | None:
        keys = track.keyframes
        if not keys[0].seq <= seq <= keys[-1].seq:
            return None
        after = next(i for i, k in enumerate(keys) if k.seq >= seq)
        if keys[after].seq == seq:
            return keys[after].xyxy()
        a, b = keys[after - 1], keys[after]
        t_a, t_b = self.time_ms[a.seq - 1], self.time_ms[b.seq - 1]
        t = float((self.time_ms[seq - 1] - t_a) / (t_b - t_a)) if t_b > t_a else (seq - a.seq) / (b.seq - a.seq)
        return tuple(p + (q - p) * t for p, q in zip(a.xyxy(), b.xyxy(), strict=True))  # type: ignore[return-value]


def _matches(box: _Box, ref: BoxRef) -> bool:
    if ref.label is not None and ref.label != box.label:
        return False
    x1, y1, x2, y2 = box.xyxy
    return all(abs(p - q) <= MATCH_PX for p, q in ((x1, ref.x1), (y1, ref.y1), (x2, ref.x2), (y2, ref.y2)))


def _dict(xyxy: Sequence[int], label: str, source: str, track: int | str | None, excluded: bool) -> dict[str, Any]:
    x1, y1, x2, y2 = xyxy
    return {
        "x1": x1,
        "x2": x2,
        "y1": y1,
        "y2": y2,
        "label": label,
        "source": source,
        "track": track,
        "excluded": excluded,
    }
