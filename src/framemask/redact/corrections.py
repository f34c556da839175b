"""Reviewer corrections and the effective regions they produce on every frame.

A reviewer's corrections (one document per saved revision, validated by `Corrections`):
- `drawnRectangles` `{seq: [{x, y, width, height}]}`: extra regions to mask on a frame (seed 000's format);
- `excluded` `{seq: [{x1, x2, y1, y2, label}]}`: detected boxes that are false positives on that frame;
- `excludedTracks` `[track id]`: detected tracks switched off on every frame;
- `tracks` `[{id, label, keyframes: [{seq, x, y, width, height}]}]`: manual tracks, masked from their first
  to their last key frame, interpolated linearly in *presentation time* between key frames (VFR-exact).

Effective boxes of frame s = detected(s) - excluded(s) - excluded tracks + drawn(s) + manual tracks(s).
Added regions carry the label `manual` (or their track's label) and no score, so the mask policy paints
them exactly; detected boxes keep their `track` and `score`, so it pads and holds them as on the first
render. Excluded detections stay in the effective document flagged `"excluded": true`: not painted, and
their track is not held over the frames a reviewer switched it off.

Track ids are the tracker's, stored with the boxes (`framemask.redact.boxes`); nothing is re-linked here.
Boxes of older documents have no track and can only be excluded one by one.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from framemask.errors import InputError
from framemask.redact.boxes import (
    COLUMNS,
    EXCLUDED,
    FLAGS,
    LABEL,
    NO_SCORE,
    TRACK,
    X1,
    Y2,
    BoxTrack,
    boxes_from_doc,
)
from framemask.redact.policy import MaskPolicy

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
        self.stored = boxes_from_doc(detected, self.end_sequence, width, height)
        self._track: BoxTrack | None = None

    @property
    def track(self) -> BoxTrack:
        """Every frame's effective rows (built once): what the mask policy paints from."""
        if self._track is None:
            track = BoxTrack(self.width, self.height, self.stored.labels)
            track.confirmed = set(self.stored.confirmed)
            for seq in range(1, self.end_sequence + 1):
                track.append_rows(self._rows(seq, track))
            self._track = track
        return self._track

    def _rows(self, seq: int, track: BoxTrack) -> np.ndarray:
        rows = self.stored.rows(seq).copy()
        off = set(self.corrections.excluded_tracks)
        refs = self.corrections.excluded.get(seq, [])
        for i, row in enumerate(rows):
            label = self.stored.labels[int(row[LABEL])]
            if (row[TRACK] >= 0 and int(row[TRACK]) in off) or any(_matches(row, label, r) for r in refs):
                rows[i, FLAGS] |= EXCLUDED
        added = [
            self._added_row(track.label_index(MANUAL), rect.xyxy()) for rect in self.corrections.drawn.get(seq, [])
        ]
        for mt in self.corrections.tracks:
            xyxy = self._interpolated(mt, seq)
            if xyxy is not None:
                added.append(self._added_row(track.label_index(mt.label), xyxy))
        return np.concatenate([rows, np.array(added, np.int32).reshape(-1, len(COLUMNS))])

    def _added_row(self, label: int, xyxy: tuple[float, float, float, float]) -> list[int]:
        return [label, *self._clip(xyxy), -1, NO_SCORE, 0]

    def frame(self, seq: int) -> list[dict[str, Any]]:
        """Every box of frame `seq`, detected ones flagged `excluded` when a correction removes them:
        `{x1, x2, y1, y2, label, source: detected|candidate|drawn|track, track, score, excluded}`."""
        out = []
        stored = len(self.stored.rows(seq))
        drawn = len(self.corrections.drawn.get(seq, []))
        manual = [mt for mt in self.corrections.tracks if self._interpolated(mt, seq) is not None]
        for i, row in enumerate(self.track.rows(seq).tolist()):
            label, x1, y1, x2, y2, track, score, flags = row
            box: dict[str, Any] = {"x1": x1, "x2": x2, "y1": y1, "y2": y2, "label": self.track.labels[label]}
            if i < stored:
                confirmed = track >= 0 and track in self.stored.confirmed
                box["source"] = "detected" if confirmed or score == NO_SCORE else "candidate"
                box["track"] = track if track >= 0 else None
                box["score"] = score / 1000 if score != NO_SCORE else None
            else:
                is_drawn = i - stored < drawn
                box["source"] = "drawn" if is_drawn else "track"
                box["track"] = None if is_drawn else manual[i - stored - drawn].id
                box["score"] = None
            box["excluded"] = bool(flags & EXCLUDED)
            out.append(box)
        return out

    def seed_entry(self, seq: int) -> dict[str, Any]:
        """Frame `seq` in the seed format (excluded detections flagged `"excluded": true`)."""
        return self.track.frame_doc(seq)

    def to_doc(self, first: int = 1, last: int | None = None) -> dict[str, Any]:
        """The effective seed document (every frame of first..last)."""
        last = self.end_sequence if last is None else last
        return {"endSequence": self.end_sequence, "sequence": [self.seed_entry(s) for s in range(first, last + 1)]}

    def painted(self, policy: MaskPolicy) -> BoxTrack:
        """What `policy` paints on every frame with these corrections."""
        painted = BoxTrack(self.width, self.height, self.track.labels)
        frames = ((seq, self.track.rows(seq)) for seq in range(1, self.end_sequence + 1))
        for _seq, rows in policy.paint(frames, self.track.labels, self.width, self.height):
            painted.append_rows(rows)
        return painted

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
        p, q = a.xyxy(), b.xyxy()
        return (p[0] + (q[0] - p[0]) * t, p[1] + (q[1] - p[1]) * t, p[2] + (q[2] - p[2]) * t, p[3] + (q[3] - p[3]) * t)


def _matches(row: np.ndarray, label: str, ref: BoxRef) -> bool:
    if ref.label is not None and ref.label != label:
        return False
    x1, y1, x2, y2 = (int(v) for v in row[X1 : Y2 + 1])
    return all(abs(p - q) <= MATCH_PX for p, q in ((x1, ref.x1), (y1, ref.y1), (x2, ref.x2), (y2, ref.y2)))
