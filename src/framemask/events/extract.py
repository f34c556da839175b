"""Turn a video (and its boxes) into timeline events with key frames."""

from __future__ import annotations

import io
import os
from dataclasses import asdict, dataclass
from typing import Any

from PIL import Image

from framemask.events.describe import Describer, SummaryDescriber
from framemask.events.presence import presence_intervals
from framemask.events.scenes import scene_starts
from framemask.media import FrameIndex, FrameReader, round_ms


@dataclass(frozen=True)
class Event:
    """One interval of the timeline: a scene, or people present; `key_seq` is its key frame."""

    kind: str
    start_seq: int
    end_seq: int
    start_ms: float
    end_ms: float
    key_seq: int
    key_ms: float
    peak_count: int = 0
    people: int = 0
    description: str = ""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for name in ("start_ms", "end_ms", "key_ms"):
            data[name] = round_ms(data[name])
        return data


def extract_events(path: str | os.PathLike[str], boxes: dict[str, Any] | None = None,
                   index: FrameIndex | None = None, describer: Describer | None = None,
                   scene_threshold: float = 27.0) -> list[Event]:
    """Scenes from content cuts, plus presence intervals from `boxes` (seed format) when given."""
    index = index if index is not None else FrameIndex.build(path)
    events = _scene_events(index, scene_starts(path, index, threshold=scene_threshold))
    if boxes is not None:
        events += [
            _event(index, "presence", p.start, p.end, p.peak_seq, p.peak_count, p.people)
            for p in presence_intervals(boxes)
        ]
    describer = describer or SummaryDescriber()
    events.sort(key=lambda e: (e.start_seq, e.kind))
    return [_described(e, describer) for e in events]


def _scene_events(index: FrameIndex, starts: list[int]) -> list[Event]:
    ends = [s - 1 for s in starts[1:]] + [index.end_sequence]
    return [_event(index, "scene", s, e, (s + e) // 2, 0) for s, e in zip(starts, ends, strict=True)]


def _event(index: FrameIndex, kind: str, start: int, end: int, key: int, peak: int, people: int = 0) -> Event:
    end_ms = index.time_of(end + 1) if end < index.end_sequence else index.duration_ms
    return Event(kind=kind, start_seq=start, end_seq=end, start_ms=index.time_of(start), end_ms=end_ms,
                 key_seq=key, key_ms=index.time_of(key), peak_count=peak, people=people)


def _described(event: Event, describer: Describer) -> Event:
    return Event(**{**asdict(event), "description": describer.describe(event, None)})


def keyframe_jpeg(reader: FrameReader, seq: int, width: int = 320, quality: int = 80) -> bytes:
    """The key frame as a small JPEG for the thumbnails bucket (use the processed video: never show faces)."""
    image = Image.fromarray(reader.frame(seq, width=width))
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()
