"""Per-frame masked boxes in the seed format, kept compactly while a video renders.

The seed format (`{"endSequence": N, "sequence": [{"seq": 1, "person": [{"x1","x2","y1","y2"}], ...}]}`)
holds every frame, integer pixels of the displayed frame, clipped. The boxes recorded are the regions that
were actually masked (padding included), so rendering the same document again reproduces the same video.
Frames are stored as small int32 arrays (label, x1, y1, x2, y2) rather than dicts, so a long video's boxes
stay a few bytes per box in memory.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from framemask.detect import LABELS, Detections
from framemask.errors import InputError

__all__ = ["BoxTrack", "boxes_from_doc", "load_boxes_doc"]

COORDS = ("x1", "x2", "y1", "y2")


class BoxTrack:
    """The masked boxes of every frame of one video, in order (seq 1..N)."""

    def __init__(self, width: int, height: int, labels: Sequence[str] = LABELS) -> None:
        self.width, self.height = width, height
        self.labels = tuple(labels)
        self._frames: list[np.ndarray] = []

    def append(self, dets: Detections) -> np.ndarray:
        """Record the next frame's boxes (rounded outward, clipped); returns them as (N,4) xyxy ints."""
        xyxy = np.asarray(dets.xyxy, np.float64).reshape(-1, 4)
        lo = np.floor(xyxy[:, :2]).clip(0, [self.width, self.height])
        hi = np.ceil(xyxy[:, 2:]).clip(0, [self.width, self.height])
        rows = np.column_stack([dets.class_id, lo, hi]).astype(np.int32)
        rows = rows[(rows[:, 3] > rows[:, 1]) & (rows[:, 4] > rows[:, 2])]
        self._frames.append(rows)
        return rows[:, 1:]

    def append_rows(self, rows: np.ndarray) -> None:
        """Record a frame given as (label index, x1, y1, x2, y2) rows (already clipped)."""
        self._frames.append(np.asarray(rows, np.int32).reshape(-1, 5))

    def __len__(self) -> int:
        return len(self._frames)

    def rows(self, seq: int) -> np.ndarray:
        """(label index, x1, y1, x2, y2) rows of frame `seq` (1-based)."""
        return self._frames[seq - 1]

    def frame_doc(self, seq: int) -> dict[str, Any]:
        entry: dict[str, Any] = {"seq": seq}
        entry.update({name: [] for name in self.labels})
        for label, x1, y1, x2, y2 in self._frames[seq - 1].tolist():
            entry.setdefault(self.labels[label], []).append({"x1": x1, "x2": x2, "y1": y1, "y2": y2})
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
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a JSON boxes document ({exc})") from exc
    if not isinstance(doc, Mapping):
        raise InputError(f"{path}: a boxes document must be a JSON object")
    return dict(doc)


def boxes_from_doc(doc: Mapping[str, Any], end_sequence: int, width: int, height: int) -> BoxTrack:
    """Validate a seed document against the video and load it; frames it omits have no boxes.

    Every list of boxes in a frame entry is masked, whatever its label (corrections may add their own).
    """
    if doc.get("endSequence") != end_sequence:
        raise InputError(f"boxes document has endSequence {doc.get('endSequence')!r}, the video has {end_sequence}")
    sequence = doc.get("sequence")
    if not isinstance(sequence, list):
        raise InputError("boxes document has no 'sequence' list")
    labels = list(LABELS)
    per_seq: dict[int, list[list[int]]] = {}
    for entry in sequence:
        seq = entry.get("seq") if isinstance(entry, Mapping) else None
        if not isinstance(seq, int) or not 1 <= seq <= end_sequence:
            raise InputError(f"boxes document has an entry with seq {seq!r} outside 1..{end_sequence}")
        rows = per_seq.setdefault(seq, [])
        for name, boxes in entry.items():
            if name == "seq" or not isinstance(boxes, list):
                continue
            if name not in labels:
                labels.append(name)
            rows.extend([labels.index(name), *_box(b, seq, width, height)] for b in boxes)
    track = BoxTrack(width, height, labels)
    for seq in range(1, end_sequence + 1):
        rows = np.array(per_seq.get(seq, []), np.int32).reshape(-1, 5)
        track.append_rows(rows[(rows[:, 3] > rows[:, 1]) & (rows[:, 4] > rows[:, 2])])
    return track


def _box(box: Any, seq: int, width: int, height: int) -> list[int]:
    if not isinstance(box, Mapping) or any(not isinstance(box.get(k), int | float) for k in COORDS):
        raise InputError(f"seq {seq}: a box needs numeric x1, x2, y1, y2, got {box!r}")
    x1, x2 = sorted((box["x1"], box["x2"]))
    y1, y2 = sorted((box["y1"], box["y2"]))
    return [
        int(np.clip(np.floor(x1), 0, width)),
        int(np.clip(np.floor(y1), 0, height)),
        int(np.clip(np.ceil(x2), 0, width)),
        int(np.clip(np.ceil(y2), 0, height)),
    ]
