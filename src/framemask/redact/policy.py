"""The mask policy: from what was detected (tracked boxes, `framemask.redact.boxes`) to what is painted.

Detected and painted are kept apart: the stored boxes are tight, one per person and frame; the policy
decides, at render time and from its own settings, how much more to hide so that nobody is seen:

- every detection is padded (`pad`: faces more, detectors box them tightly);
- a track that goes missing is held for up to `hold_frames`, moved on by its last velocity, so the
  mask does not blink off while the detector misses someone for a moment (the leak users of per-frame
  tools complain about most); a box a reviewer excluded ends its track's hold;
- weak detections no track claimed (`track` -1) are also painted on the frames before and after them
  (one-frame temporal dilation), unless a box of the same label already covers them there;
- regions without a score (drawn by a reviewer, older documents) are painted exactly;
- boxes filled in over a track's gap after tracking (`FILLED`) are data, not paint: the frame counts
  as a gap and the hold covers it, as it did while the video streamed through the first render;
- at a hard cut (the stored `cuts`) holds end and candidates are not dilated across: the new shot's first
  frames show no mask of the old shot's people.

The first render (streaming, `paint`) and every re-render (`painted_from_doc`) run the same code over
the same stored integers, so a re-encoded GOP paints exactly what the first render painted.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

import numpy as np

from framemask.detect import box_iou
from framemask.redact.boxes import (
    COLUMNS,
    EXCLUDED,
    FILLED,
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

__all__ = ["DEFAULT_POLICY", "MaskPolicy", "painted_from_doc"]

P = TypeVar("P")
_EMPTY = np.zeros((0, len(COLUMNS)), np.int32)


@dataclass
class _Held:
    """The last sighting of a track, to hold its mask across a gap."""

    row: np.ndarray
    seq: int
    velocity: np.ndarray
    excluded: bool


@dataclass(frozen=True)
class MaskPolicy:
    """How much to paint around what was detected (see the module docstring)."""

    pad: Mapping[str, float] = field(default_factory=lambda: {"person": 0.10, "face": 0.20})
    """Each detection grows by this fraction of its own size on every side (other labels: `default_pad`)."""
    default_pad: float = 0.10
    hold_frames: int = 8
    """A missing track stays masked this many frames (about a third of a second at 25 fps)."""
    untracked_min_score: Mapping[str, float] = field(default_factory=dict)
    """Weak detections no track claimed are painted from this score per label (default: all of them,
    down to the detector's threshold). They are what keeps small, distant people of a dense crowd
    masked: at 1080p a person 40 px tall scores 0.25-0.5 and may never start a track."""
    dilate_untracked: bool = True
    dilate_iou: float = 0.3

    def to_dict(self) -> dict[str, Any]:
        return {
            "pad": dict(self.pad),
            "default_pad": self.default_pad,
            "hold_frames": self.hold_frames,
            "dilate_untracked": self.dilate_untracked,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> MaskPolicy:
        """The policy `to_dict` wrote (recorded with a video, so a re-render paints as its first render)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (data or {}).items() if k in known})

    @classmethod
    def for_fps(cls, fps: float) -> MaskPolicy:
        """The default policy with the hold set to about a third of a second of this video."""
        return cls(hold_frames=max(1, round(fps / 3)) if fps > 0 else 8)

    def paint(
        self,
        frames: Iterable[tuple[P, np.ndarray]],
        labels: list[str],
        width: int,
        height: int,
        cuts: Collection[int] = frozenset(),
        first: int = 1,
    ) -> Iterator[tuple[P, np.ndarray]]:
        """Painted `COLUMNS` rows per frame (people first, no scores), for `(payload, rows)` of the frames
        `first`, `first` + 1, ... in order.

        Lags one frame behind its input (the dilation looks one frame ahead); payloads pass through.
        `labels` names the label column and may grow while frames arrive (it is read, never copied). At a
        frame of `cuts` (a new shot; read as frames arrive, so it may grow too) no held mask and no dilated
        candidate crosses from one shot into the other.
        """
        held: dict[int, _Held] = {}
        previous: np.ndarray | None = None
        pending: tuple[P, np.ndarray] | None = None
        seq = first - 1
        for payload, rows in frames:
            if pending is not None:
                seq += 1
                before, after = _same_shot(seq, previous, rows, held, cuts)
                yield pending[0], self._frame(seq, before, pending[1], after, held, labels, width, height)
                previous = pending[1]
            pending = (payload, rows)
        if pending is not None:
            before, _ = _same_shot(seq + 1, previous, None, held, cuts)
            yield pending[0], self._frame(seq + 1, before, pending[1], None, held, labels, width, height)

    def _frame(
        self,
        seq: int,
        previous: np.ndarray | None,
        rows: np.ndarray,
        following: np.ndarray | None,
        held: dict[int, _Held],
        labels: list[str],
        width: int,
        height: int,
    ) -> np.ndarray:
        live = rows[(rows[:, FLAGS] & (EXCLUDED | FILLED)) == 0]
        parts = [live[live[:, SCORE] == NO_SCORE], self._padded(self._detections(live, labels), labels)]
        parts.append(self._holds(seq, rows, held, labels))
        if self.dilate_untracked:
            for other in (previous, following):
                if other is not None:
                    weak = self._detections(_untracked(other), labels)
                    parts.append(self._padded(_uncovered(weak, live, self.dilate_iou), labels))
        out = np.concatenate(parts).astype(np.int64)
        out[:, [X1, X1 + 2]] = out[:, [X1, X1 + 2]].clip(0, width)
        out[:, [X1 + 1, Y2]] = out[:, [X1 + 1, Y2]].clip(0, height)
        out = out[(out[:, X1 + 2] > out[:, X1]) & (out[:, Y2] > out[:, X1 + 1])]
        out[:, TRACK], out[:, SCORE], out[:, FLAGS] = -1, NO_SCORE, 0
        return out[np.argsort(out[:, LABEL], kind="stable")].astype(np.int32)

    def _detections(self, rows: np.ndarray, labels: list[str]) -> np.ndarray:
        """The detections among `rows` to paint: tracked ones, and untracked ones scoring high enough."""
        rows = rows[rows[:, SCORE] != NO_SCORE]
        floor = np.array([self.untracked_min_score.get(labels[i], 0.0) * 1000 for i in rows[:, LABEL]])
        painted: np.ndarray = rows[(rows[:, TRACK] >= 0) | (rows[:, SCORE] >= np.rint(floor))]
        return painted

    def _holds(self, seq: int, rows: np.ndarray, held: dict[int, _Held], labels: list[str]) -> np.ndarray:
        """Boxes of tracks missing from this frame, moved on from their last sighting; updates `held`."""
        seen: set[int] = set()
        for row in rows[(rows[:, TRACK] >= 0) & ((rows[:, FLAGS] & FILLED) == 0)]:
            tid = int(row[TRACK])
            if tid in seen:
                continue
            seen.add(tid)
            last = held.get(tid)
            box = row[X1 : Y2 + 1].astype(np.float64)
            velocity = np.zeros(4)
            if last is not None and last.seq < seq:
                velocity = (box - last.row[X1 : Y2 + 1]) / (seq - last.seq)
            held[tid] = _Held(row.copy(), seq, velocity, bool(row[FLAGS] & EXCLUDED))
        out = []
        for tid, last in list(held.items()):
            if tid in seen:
                continue
            gap = seq - last.seq
            if gap > self.hold_frames or last.excluded:
                del held[tid]
                continue
            row = last.row.copy()
            row[X1 : Y2 + 1] = np.rint(last.row[X1 : Y2 + 1] + last.velocity * gap)
            out.append(row)
        return self._padded(np.array(out, np.int32).reshape(-1, len(COLUMNS)), labels)

    def _padded(self, rows: np.ndarray, labels: list[str]) -> np.ndarray:
        """Rows grown by their label's padding, rounded outward."""
        if not len(rows):
            return _EMPTY
        pads = np.array([self.pad.get(labels[i], self.default_pad) for i in rows[:, LABEL]])[:, None]
        xyxy = rows[:, X1 : Y2 + 1].astype(np.float64)
        wh = xyxy[:, 2:] - xyxy[:, :2]
        grown = np.concatenate([np.floor(xyxy[:, :2] - wh * pads), np.ceil(xyxy[:, 2:] + wh * pads)], axis=1)
        out = rows.copy()
        out[:, X1 : Y2 + 1] = grown
        return out


DEFAULT_POLICY = MaskPolicy()


def _same_shot(
    seq: int, previous: np.ndarray | None, following: np.ndarray | None, held: dict[int, _Held], cuts: Collection[int]
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The neighbours of frame `seq` in its own shot (None across a cut); a cut at `seq` also ends every hold."""
    if seq in cuts:
        held.clear()
        previous = None
    return previous, None if seq + 1 in cuts else following


def _untracked(rows: np.ndarray) -> np.ndarray:
    """Live detections no track claimed."""
    keep = (rows[:, TRACK] < 0) & (rows[:, SCORE] != NO_SCORE) & ((rows[:, FLAGS] & (EXCLUDED | FILLED)) == 0)
    out: np.ndarray = rows[keep]
    return out


def _uncovered(boxes: np.ndarray, frame: np.ndarray, min_iou: float) -> np.ndarray:
    """`boxes` with no box of the same label in `frame` overlapping them by more than `min_iou`."""
    if not len(boxes) or not len(frame):
        return boxes
    iou = box_iou(boxes[:, X1 : Y2 + 1], frame[:, X1 : Y2 + 1])
    same = boxes[:, LABEL][:, None] == frame[:, LABEL][None, :]
    uncovered: np.ndarray = boxes[~((iou > min_iou) & same).any(axis=1)]
    return uncovered


def painted_from_doc(
    doc: Mapping[str, Any], end_sequence: int, width: int, height: int, policy: MaskPolicy = DEFAULT_POLICY
) -> BoxTrack:
    """What the policy paints on every frame of a seed document (validated against the video)."""
    stored = boxes_from_doc(doc, end_sequence, width, height)
    painted = BoxTrack(width, height, stored.labels)
    frames = ((seq, stored.rows(seq)) for seq in range(1, end_sequence + 1))
    for _seq, rows in policy.paint(frames, stored.labels, width, height, stored.cuts):
        painted.append_rows(rows)
    return painted
