"""Reviewer corrections and the effective regions they produce on every frame.

A reviewer's corrections (one document per saved revision, validated by `Corrections`):
- `drawnRectangles` `{seq: [{x, y, width, height}]}`: extra regions to mask on a frame (seed 000's format);
- `excluded` `{seq: [{x1, x2, y1, y2, label}]}`: detected boxes that are false positives on that frame;
- `excludedTracks` `[track id]`: detected tracks switched off on every frame;
- `tracks` `[{id, label, keyframes: [{seq, x, y, width, height}], extends?}]`: manual tracks, masked from
  their first to their last key frame, interpolated linearly in *presentation time* between key frames
  (VFR-exact); with `extends: track id` they continue a detected track over frames it has no box on;
- `overrides` `{seq: [{track, x, y, width, height}]}`: a detected track's box moved or resized on a frame;
- `splitTracks` `[{track, at}]`: the track's boxes from frame `at` on get a new id (the largest stored id
  + 1 + the split's position in the list); `mergedTracks` `[[keep, other, ...]]`: one id for several;
- `excludeRules` `[{label?, smaller_than?, from_seq?, to_seq?}]`: bulk exclusion of matching detections;
- `mutedRanges` `[{start_seq, end_seq, mode: mute|tone}]`: audio silenced (or a tone) over those frames.

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
from collections.abc import Iterator, Mapping, Sequence
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from framemask.errors import InputError
from framemask.redact.boxes import (
    COLUMNS,
    EXCLUDED,
    FLAGS,
    LABEL,
    NO_SCORE,
    SCORE,
    TRACK,
    X1,
    Y2,
    BoxTrack,
    boxes_from_doc,
)
from framemask.redact.policy import MaskPolicy

__all__ = [
    "MANUAL",
    "BoxOverride",
    "BoxRef",
    "Corrections",
    "EffectiveBoxes",
    "ExcludeRule",
    "KeyBox",
    "ManualTrack",
    "MutedRange",
    "Rect",
    "TrackSplit",
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
TrackId = Annotated[int, Field(ge=0, le=MAX_TRACK_ID)]


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
    """A region followed across frames: key-frame boxes, interpolated by time in between.

    With `extends`, the key boxes continue a detected track: on frames where that track has no box the
    interpolated box is added under its id and label (to cover frames the detector missed)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=64)
    label: str = Field(MANUAL, pattern=r"^[a-z][a-z0-9_]{0,31}$")
    keyframes: list[KeyBox] = Field(min_length=1, max_length=MAX_REGIONS)
    extends: TrackId | None = None

    @field_validator("keyframes")
    @classmethod
    def _distinct_frames(cls, value: list[KeyBox]) -> list[KeyBox]:
        seqs = [k.seq for k in value]
        if len(set(seqs)) != len(seqs):
            raise ValueError("a track has at most one key box per frame")
        return sorted(value, key=lambda k: k.seq)


class BoxOverride(Rect):
    """A detected track's box on one frame, moved or resized by a reviewer (painted exactly as given)."""

    track: TrackId


class TrackSplit(BaseModel):
    """Split a detected track: its boxes from frame `at` on get a new id (one person became two)."""

    model_config = ConfigDict(extra="forbid")

    track: TrackId
    at: Seq


class ExcludeRule(BaseModel):
    """Exclude every detected box matching all given fields (bulk exclusion)."""

    model_config = ConfigDict(extra="forbid")

    label: str | None = Field(None, max_length=32)
    smaller_than: Size | None = Field(None, description="boxes whose larger side is below this many pixels")
    from_seq: Seq | None = None
    to_seq: Seq | None = None

    def matches(self, seq: int, label: str, xyxy: Sequence[int]) -> bool:
        if self.label is not None and label != self.label:
            return False
        if (self.from_seq is not None and seq < self.from_seq) or (self.to_seq is not None and seq > self.to_seq):
            return False
        side = max(xyxy[2] - xyxy[0], xyxy[3] - xyxy[1])
        return self.smaller_than is None or side < self.smaller_than


class MutedRange(BaseModel):
    """Frames whose audio is silenced (or replaced by a tone) in the final video."""

    model_config = ConfigDict(extra="forbid")

    start_seq: Seq
    end_seq: Seq
    mode: Literal["mute", "tone"] = "mute"

    @model_validator(mode="after")
    def _ordered(self) -> MutedRange:
        if self.end_seq < self.start_seq:
            raise ValueError("a muted range ends before it starts")
        return self


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
    overrides: dict[Seq, Annotated[list[BoxOverride], Field(max_length=MAX_RECTS_PER_FRAME)]] = Field(
        default_factory=dict, max_length=MAX_REGIONS
    )
    merged_tracks: list[Annotated[list[TrackId], Field(min_length=2, max_length=MAX_TRACKS)]] = Field(
        default_factory=list, alias="mergedTracks", max_length=MAX_TRACKS
    )
    split_tracks: list[TrackSplit] = Field(default_factory=list, alias="splitTracks", max_length=MAX_TRACKS)
    exclude_rules: list[ExcludeRule] = Field(default_factory=list, alias="excludeRules", max_length=100)
    muted_ranges: list[MutedRange] = Field(default_factory=list, alias="mutedRanges", max_length=MAX_TRACKS)
    note: str | None = Field(None, max_length=2000)

    @model_validator(mode="after")
    def _unique_track_ids(self) -> Corrections:
        ids = [t.id for t in self.tracks]
        if len(set(ids)) != len(ids):
            raise ValueError("manual track ids must be unique")
        regions = sum(map(len, self.drawn.values())) + sum(map(len, self.excluded.values()))
        regions += sum(map(len, self.overrides.values()))
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
        yield from self.overrides
        for track in self.tracks:
            yield from (k.seq for k in track.keyframes)
        yield from (s.at for s in self.split_tracks)
        for muted in self.muted_ranges:
            yield from (muted.start_seq, muted.end_seq)

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
        return not (
            self.drawn
            or self.excluded
            or self.excluded_tracks
            or self.tracks
            or self.overrides
            or self.merged_tracks
            or self.split_tracks
            or self.exclude_rules
            or self.muted_ranges
        )


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
        self._sources: list[list[tuple[str, Any]]] = []

    @property
    def track(self) -> BoxTrack:
        """Every frame's effective rows (built once): what the mask policy paints from."""
        if self._track is None:
            self._plan()
            track = BoxTrack(self.width, self.height, self.stored.labels)
            track.confirmed = self._confirmed
            track.cuts = self.stored.cuts
            self._sources = []
            for seq in range(1, self.end_sequence + 1):
                rows, sources = self._rows(seq, track)
                track.append_rows(rows)
                self._sources.append(sources)
            self._track = track
        return self._track

    def _plan(self) -> None:
        """Track ids after splits and merges, their labels, and which effective ids are confirmed."""
        c = self.corrections
        base = max((int(r[TRACK]) for s in range(1, self.end_sequence + 1) for r in self.stored.rows(s)), default=0)
        self._splits = [(sp.track, sp.at, base + 1 + i) for i, sp in enumerate(c.split_tracks)]
        self._merged = {t: group[0] for group in c.merged_tracks for t in group[1:] if t != group[0]}
        origin = {new: old for old, _at, new in self._splits}
        confirmed = set(self.stored.confirmed) | {new for new, old in origin.items() if old in self.stored.confirmed}
        self._confirmed = {self._merge(t) for t in confirmed}
        self._labels: dict[int, int] = {}
        for seq in range(1, self.end_sequence + 1):
            for row in self.stored.rows(seq):
                if row[TRACK] >= 0:
                    self._labels.setdefault(self._id(int(row[TRACK]), seq), int(row[LABEL]))

    def _merge(self, tid: int) -> int:
        seen = set()
        while tid in self._merged and tid not in seen:
            seen.add(tid)
            tid = self._merged[tid]
        return tid

    def _id(self, tid: int, seq: int) -> int:
        """The effective id of stored track `tid` on frame `seq` (splits, then merges)."""
        for track, at, new in self._splits:
            if tid == track and seq >= at:
                tid = new
        return self._merge(tid)

    def _rows(self, seq: int, track: BoxTrack) -> tuple[np.ndarray, list[tuple[str, Any]]]:
        c = self.corrections
        rows = self.stored.rows(seq).copy()
        sources: list[tuple[str, Any]] = []
        refs = c.excluded.get(seq, [])
        off = set(c.excluded_tracks)
        for i, row in enumerate(rows):
            label = self.stored.labels[int(row[LABEL])]
            if row[TRACK] >= 0:
                rows[i, TRACK] = self._id(int(row[TRACK]), seq)
            tid = int(rows[i, TRACK])
            box = [int(v) for v in row[X1 : Y2 + 1]]
            if (
                (tid >= 0 and tid in off)
                or any(_matches(row, label, r) for r in refs)
                or any(rule.matches(seq, label, box) for rule in c.exclude_rules)
            ):
                rows[i, FLAGS] |= EXCLUDED
            sources.append(("detected" if tid in self._confirmed else "candidate", tid if tid >= 0 else None))
        for old, at, new in self._splits:
            if seq != at:
                continue
            hits = np.flatnonzero(rows[:, TRACK] == self._merge(new))
            if len(hits):  # the old id ends here: a hidden, excluded copy stops the policy holding it
                end = rows[hits[0]].copy()
                end[TRACK], end[FLAGS] = self._merge(old), end[FLAGS] | EXCLUDED
                rows = np.concatenate([rows, end[None, :]])
                sources.append(("split", None))
        for override in c.overrides.get(seq, []):
            hits = np.flatnonzero(rows[:, TRACK] == override.track)
            if len(hits):
                rows[hits[0], X1 : Y2 + 1] = self._clip(override.xyxy())
                rows[hits[0], SCORE] = NO_SCORE
                sources[hits[0]] = ("override", override.track)
        added = []
        manual = track.label_index(MANUAL)
        for rect in c.drawn.get(seq, []):
            added.append(self._added_row(manual, rect.xyxy()))
            sources.append(("drawn", None))
        for mt in c.tracks:
            xyxy = self._interpolated(mt, seq)
            if xyxy is None:
                continue
            if mt.extends is None:
                added.append(self._added_row(track.label_index(mt.label), xyxy))
            elif mt.extends in self._labels and not (rows[:, TRACK] == mt.extends).any():
                added.append([self._labels[mt.extends], *self._clip(xyxy), mt.extends, NO_SCORE, 0])
            else:
                continue
            sources.append(("track", mt.id))
        return np.concatenate([rows, np.array(added, np.int32).reshape(-1, len(COLUMNS))]), sources

    def _added_row(self, label: int, xyxy: tuple[float, float, float, float]) -> list[int]:
        return [label, *self._clip(xyxy), -1, NO_SCORE, 0]

    def frame(self, seq: int) -> list[dict[str, Any]]:
        """Every box of frame `seq`, detected ones flagged `excluded` when a correction removes them:
        `{x1, x2, y1, y2, label, source: detected|candidate|override|drawn|track, track, score, excluded}`
        (`track`: the detector's id, after splits and merges; a manual track's own id for `track`)."""
        rows = self.track.rows(seq).tolist()
        out = []
        for (label, x1, y1, x2, y2, _tid, score, flags), (source, ref) in zip(
            rows, self._sources[seq - 1], strict=True
        ):
            if source == "split":  # the hidden end of a split track's old id
                continue
            box: dict[str, Any] = {"x1": x1, "x2": x2, "y1": y1, "y2": y2, "label": self.track.labels[label]}
            box.update(source=source, track=ref, score=score / 1000 if score != NO_SCORE else None)
            box["excluded"] = bool(flags & EXCLUDED)
            out.append(box)
        return out

    def shown(self, seq: int, label: str) -> list[tuple[tuple[int, int, int, int], int]]:
        """The `label` boxes a reviewer sees as tracked on frame `seq`, corrections applied: confirmed
        detections (after merges, splits and overrides) and manual tracks, excluded ones and unconfirmed
        candidates left out; each as (x1, y1, x2, y2) and its track id (-1 for a manual track of its own)."""
        rows = self.track.rows(seq)
        out = []
        for row, (source, _ref) in zip(rows, self._sources[seq - 1], strict=True):
            if self.track.labels[int(row[LABEL])] != label or row[FLAGS] & EXCLUDED:
                continue
            if source in ("detected", "override", "track"):
                x1, y1, x2, y2 = (int(v) for v in row[X1 : Y2 + 1])
                out.append(((x1, y1, x2, y2), int(row[TRACK])))
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
        for _seq, rows in policy.paint(frames, self.track.labels, self.width, self.height, self.stored.cuts):
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
