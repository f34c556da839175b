"""The boxes of a video, frame by frame, in the seed format: what was detected, kept compactly.

The seed format holds every frame, integer pixels of the displayed frame, clipped:

    {"endSequence": N, "sequence": [{"seq": 1,
        "person": [{"x1", "x2", "y1", "y2", "track": 3, "score": 0.87}],
        "face": [...],
        "candidates": [{"x1", "x2", "y1", "y2", "label": "person", "score": 0.31, "track": 9}]}, ...]}

- `person`/`face` hold one tight box per confirmed track (see `framemask.detect.tracking`).
- `candidates` hold what the detector found but tracking did not confirm (a weak box no track claimed,
  a track too short to trust): not a person to list or count, but still masked.
- A box with a `score` is a detection: the mask policy (`framemask.redact.policy`) pads it and holds
  its track across short gaps when painting. A box without one (older documents, regions a reviewer
  added) is a region painted exactly as given.

In memory a frame is a small int32 array of `ROW` columns, so a long video's boxes stay a few bytes a box.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from framemask.detect import LABELS, Detections
from framemask.errors import InputError

__all__ = [
    "CANDIDATES",
    "COLUMNS",
    "CUT",
    "EXCLUDED",
    "FILLED",
    "NO_SCORE",
    "BoxTrack",
    "boxes_from_doc",
    "load_boxes_doc",
]

COORDS = ("x1", "x2", "y1", "y2")
CANDIDATES = "candidates"
"""Reserved key of a frame entry: detections tracking did not confirm (each names its `label`)."""
CUT = "cut"
"""A frame entry's flag (`"cut": true`) when the frame starts a new shot. Kept in the entry, so wherever
entries are stored one by one (the service's `processed_frame` rows) the cuts go with them."""
COLUMNS = ("label", "x1", "y1", "x2", "y2", "track", "score", "flags")
LABEL, X1, Y1, X2, Y2, TRACK, SCORE, FLAGS = range(len(COLUMNS))
NO_SCORE = -1
"""`score` column of a region painted exactly (scores are stored in thousandths)."""
EXCLUDED = 1
"""`flags` bit of a box a reviewer excluded: not painted, but its track counts as seen on that frame."""
FILLED = 2
"""`flags` bit of a box filled in over a gap of its track (interpolated after the video was tracked).
Shown and counted as the track's box, but the mask policy treats the frame as a gap (it holds the track
there), so painting stays exactly what the first, streaming render painted."""
MAX_COORD = 1 << 20


class BoxTrack:
    """The boxes of every frame of one video, in order (seq 1..N), which track ids are confirmed, and the
    frames that start a new shot (`cuts`: the mask policy holds nothing across them)."""

    def __init__(self, width: int, height: int, labels: Sequence[str] = LABELS) -> None:
        self.width, self.height = width, height
        self.labels = list(labels)
        self.confirmed: set[int] = set()
        self.cuts: set[int] = set()
        self._frames: list[np.ndarray] = []

    def label_index(self, name: str) -> int:
        if name not in self.labels:
            self.labels.append(name)
        return self.labels.index(name)

    def append(self, dets: Detections) -> np.ndarray:
        """Record the next frame's detections (rounded to whole pixels, clipped); returns its rows."""
        xyxy = np.rint(np.asarray(dets.xyxy, np.float64).reshape(-1, 4))
        xyxy = xyxy.clip(0, [self.width, self.height, self.width, self.height])
        n = len(xyxy)
        ids = dets.tracker_id if dets.tracker_id is not None else np.full(n, -1)
        labels = [self.label_index(LABELS[int(c)]) for c in dets.class_id]
        score = np.rint(np.asarray(dets.confidence, np.float64) * 1000).clip(0, 1000)
        rows = np.column_stack([labels, xyxy, ids, score, np.zeros(n)]).astype(np.int32).reshape(-1, len(COLUMNS))
        return self.append_rows(rows)

    def append_rows(self, rows: np.ndarray) -> np.ndarray:
        """Record a frame given as `COLUMNS` rows; boxes with no area are dropped."""
        rows = np.asarray(rows, np.int32).reshape(-1, len(COLUMNS))
        rows = rows[(rows[:, X2] > rows[:, X1]) & (rows[:, Y2] > rows[:, Y1])]
        self._frames.append(rows)
        return rows

    def __len__(self) -> int:
        return len(self._frames)

    def fill_gaps(self, time_ms: np.ndarray, max_ms: float) -> int:
        """Fill the gaps of confirmed tracks up to `max_ms` long with boxes interpolated by presentation
        time, flagged `FILLED`; returns how many boxes were added. Run once, after tracking."""
        last: dict[int, tuple[int, np.ndarray]] = {}
        added: dict[int, list[np.ndarray]] = {}
        for seq in range(1, len(self._frames) + 1):
            for row in self._frames[seq - 1]:
                tid = int(row[TRACK])
                if tid < 0 or tid not in self.confirmed or row[FLAGS] & FILLED:
                    continue
                before = last.get(tid)
                if before is not None and seq - before[0] > 1 and time_ms[seq - 1] - time_ms[before[0] - 1] <= max_ms:
                    a, row_a = before
                    span = float(time_ms[seq - 1] - time_ms[a - 1]) or 1.0
                    for mid in range(a + 1, seq):
                        t = float(time_ms[mid - 1] - time_ms[a - 1]) / span
                        fill = row_a.copy()
                        fill[X1 : Y2 + 1] = np.rint(row_a[X1 : Y2 + 1] * (1 - t) + row[X1 : Y2 + 1] * t)
                        fill[SCORE] = min(int(row_a[SCORE]), int(row[SCORE]))
                        fill[FLAGS] = FILLED
                        added.setdefault(mid, []).append(fill)
                last[tid] = (seq, row)
        for seq, rows in added.items():
            self._frames[seq - 1] = np.concatenate([self._frames[seq - 1], np.array(rows, np.int32)])
        return sum(len(rows) for rows in added.values())

    def rows(self, seq: int) -> np.ndarray:
        """`COLUMNS` rows of frame `seq` (1-based)."""
        return self._frames[seq - 1]

    def boxes(self, seq: int) -> np.ndarray:
        """(N, 4) x1, y1, x2, y2 of frame `seq`, people before faces (faces paint on top)."""
        rows = self._frames[seq - 1]
        return rows[np.argsort(rows[:, LABEL], kind="stable")][:, X1 : Y2 + 1]

    def frame_doc(self, seq: int) -> dict[str, Any]:
        entry: dict[str, Any] = {"seq": seq}
        if seq in self.cuts:
            entry[CUT] = True
        entry.update({name: [] for name in LABELS})
        candidates = []
        for label, x1, y1, x2, y2, track, score, flags in self._frames[seq - 1].tolist():
            box: dict[str, Any] = {"x1": x1, "x2": x2, "y1": y1, "y2": y2}
            if track >= 0:
                box["track"] = track
            if score != NO_SCORE:
                box["score"] = score / 1000
            if flags & EXCLUDED:
                box["excluded"] = True
            if flags & FILLED:
                box["filled"] = True
            if score != NO_SCORE and track not in self.confirmed:
                candidates.append({**box, "label": self.labels[label]})
            else:
                entry.setdefault(self.labels[label], []).append(box)
        if candidates:
            entry[CANDIDATES] = candidates
        return entry

    def iter_docs(self) -> Iterator[dict[str, Any]]:
        for seq in range(1, len(self._frames) + 1):
            yield self.frame_doc(seq)

    def to_doc(self) -> dict[str, Any]:
        """The whole seed document (builds every dict: prefer `write_json` for long videos)."""
        return {"endSequence": len(self._frames), "sequence": list(self.iter_docs())}

    def write_json(self, path: str | os.PathLike[str]) -> None:
        """Stream the seed document to `path` (one frame per line), atomically."""
        target = Path(path)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            fh.write(f'{{"endSequence": {len(self._frames)}, "sequence": [\n')
            for seq, entry in enumerate(self.iter_docs(), start=1):
                fh.write(json.dumps(entry, separators=(",", ":")))
                fh.write(",\n" if seq < len(self._frames) else "\n")
            fh.write("]}\n")
        tmp.replace(target)


def load_boxes_doc(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a seed-format JSON file; InputError if it is not one."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError(f"{path}: no such boxes file") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise InputError(f"{path}: not a JSON boxes document ({exc})") from exc
    if not isinstance(doc, Mapping):
        raise InputError(f"{path}: a boxes document must be a JSON object")
    return dict(doc)


def boxes_from_doc(doc: Mapping[str, Any], end_sequence: int, width: int, height: int) -> BoxTrack:
    """Validate a seed document against the video and load it; frames it omits have no boxes.

    Every list of boxes in a frame entry is masked, whatever its label (corrections add their own). A
    tracked box listed under its label makes its track confirmed; one under `candidates` does not.
    """
    if doc.get("endSequence") != end_sequence:
        raise InputError(f"boxes document has endSequence {doc.get('endSequence')!r}, the video has {end_sequence}")
    sequence = doc.get("sequence")
    if not isinstance(sequence, list):
        raise InputError("boxes document has no 'sequence' list")
    track = BoxTrack(width, height)
    per_seq: dict[int, list[list[int]]] = {}
    for entry in sequence:
        seq = entry.get("seq") if isinstance(entry, Mapping) else None
        if not isinstance(seq, int) or isinstance(seq, bool) or not 1 <= seq <= end_sequence:
            raise InputError(f"boxes document has an entry with seq {seq!r} outside 1..{end_sequence}")
        rows = per_seq.setdefault(seq, [])
        cut = entry.get(CUT, False)
        if not isinstance(cut, bool):
            raise InputError(f"seq {seq}: a frame's cut flag must be true or false, got {cut!r}")
        if cut:
            track.cuts.add(seq)
        for name, boxes in entry.items():
            if name == "seq" or not isinstance(boxes, list):
                continue
            for box in boxes:
                label = _candidate_label(box, seq) if name == CANDIDATES else name
                row = _row(box, seq, width, height, track.label_index(label))
                if name != CANDIDATES and row[TRACK] >= 0:
                    track.confirmed.add(row[TRACK])
                rows.append(row)
    for seq in range(1, end_sequence + 1):
        track.append_rows(np.array(per_seq.get(seq, []), np.int32).reshape(-1, len(COLUMNS)))
    return track


def _candidate_label(box: Any, seq: int) -> str:
    label = box.get("label") if isinstance(box, Mapping) else None
    if not isinstance(label, str) or not label:
        raise InputError(f"seq {seq}: a candidate box needs a label, got {box!r}")
    return label


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _row(box: Any, seq: int, width: int, height: int, label: int) -> list[int]:
    if not isinstance(box, Mapping) or any(not _number(box.get(k)) for k in COORDS):
        raise InputError(f"seq {seq}: a box needs finite numeric x1, x2, y1, y2, got {box!r}")
    if any(abs(box[k]) > MAX_COORD for k in COORDS):
        raise InputError(f"seq {seq}: box coordinates must be within +-{MAX_COORD}, got {box!r}")
    track, score = box.get("track", -1), box.get("score")
    if track is None:
        track = -1
    if not isinstance(track, int) or isinstance(track, bool) or not -1 <= track < 2**31:
        raise InputError(f"seq {seq}: a box's track must be an integer id, got {track!r}")
    if score is not None and (not _number(score) or not 0 <= score <= 1):
        raise InputError(f"seq {seq}: a box's score must be within 0..1, got {score!r}")
    x1, x2 = sorted((box["x1"], box["x2"]))
    y1, y2 = sorted((box["y1"], box["y2"]))
    return [
        label,
        int(np.clip(np.floor(x1), 0, width)),
        int(np.clip(np.floor(y1), 0, height)),
        int(np.clip(np.ceil(x2), 0, width)),
        int(np.clip(np.ceil(y2), 0, height)),
        track,
        NO_SCORE if score is None else round(score * 1000),
        (EXCLUDED if box.get("excluded") is True else 0) | (FILLED if box.get("filled") is True else 0),
    ]
