"""Turn a video (and its boxes) into timeline events with key frames, tags and key-frame embeddings."""

from __future__ import annotations

import bisect
import io
import os
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from typing import Any

from PIL import Image

from framemask.events.describe import Describer, TagDescriber
from framemask.events.presence import (
    counts_per_frame,
    presence_intervals,
    span_people,
    tracks_per_frame,
    without_excluded,
)
from framemask.events.scenes import scene_starts
from framemask.events.tags import TAG_RATE, Analyzer, Tag, analyze_frames, object_tags, people_tag, span_seqs
from framemask.media import FrameIndex, FrameReader, round_ms, sdr_view


@dataclass(frozen=True)
class Event:
    """One interval of the timeline: a scene, or people present; `key_seq` is its key frame.

    `peak_count`/`people` come from the tracks; `tags` are the `person` tag (from the tracks) and the other
    COCO classes seen in the span; `embedding` is the key frame's pooled detector features (or None)."""

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
    tags: tuple[Tag, ...] = ()
    embedding: tuple[float, ...] | None = field(default=None, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("tags", "embedding")}
        for name in ("start_ms", "end_ms", "key_ms"):
            data[name] = round_ms(data[name])
        data["tags"] = [t.to_json() for t in self.tags]
        return data


def extract_events(
    path: str | os.PathLike[str],
    boxes: dict[str, Any] | None = None,
    index: FrameIndex | None = None,
    describer: Describer | None = None,
    scene_threshold: float = 27.0,
    analyzer: Analyzer | None = None,
    tag_rate: float = TAG_RATE,
    tag_path: str | os.PathLike[str] | None = None,
    tag_index: FrameIndex | None = None,
) -> list[Event]:
    """Scenes from content cuts, plus presence intervals from `boxes` (seed format) when given; people counts
    of every event from the boxes' tracks. With an `analyzer` (NanoDet `with_features`), object tags from
    frames sampled in each span (of `tag_path` when given: the original, whose objects no mask touches) and the
    key frame's embedding (always from `path`: the masked frame)."""
    index = index if index is not None else FrameIndex.build(path)
    people = _People(boxes) if boxes is not None else None
    events = _scene_events(index, scene_starts(path, index, threshold=scene_threshold), people)
    if boxes is not None:
        events += presence_events(index, boxes)
    events.sort(key=lambda e: (e.start_seq, e.kind))
    if analyzer is not None:
        events = tag_events(path, index, events, analyzer, tag_rate, tag_path, tag_index)
    return describe_events(events, describer)


def presence_events(index: FrameIndex, boxes: dict[str, Any]) -> list[Event]:
    """People-present intervals of `boxes` (boxes a reviewer excluded do not count)."""
    return [
        _event(
            index, "presence", p.start, p.end, p.peak_seq, p.peak_count, p.people, tags=_person(p.peak_count, p.people)
        )
        for p in presence_intervals(without_excluded(boxes))
    ]


def describe_events(events: Iterable[Event], describer: Describer | None = None) -> list[Event]:
    describer = describer or TagDescriber()
    return [replace(e, description=describer.describe(e, None)) for e in events]


def tag_events(
    path: str | os.PathLike[str],
    index: FrameIndex,
    events: list[Event],
    analyzer: Analyzer,
    rate: float = TAG_RATE,
    tag_path: str | os.PathLike[str] | None = None,
    tag_index: FrameIndex | None = None,
) -> list[Event]:
    """`events` with object tags (sampled from each span of `tag_path`, else `path`) and the key frame's
    embedding (from `path`). Each sampled frame is decoded and analysed once, in order, even where events
    overlap. `tag_path` must have the same frames as `path` (the original of a processed video)."""
    plans = [span_seqs(index, e.start_seq, e.end_seq, e.key_seq, rate) for e in events]
    keys = {e.key_seq for e in events}
    with FrameReader(path, index) as reader:
        if tag_path is None:
            facts = analyze_frames(reader, (s for plan in plans for s in plan), analyzer)
            embedded = facts
        else:
            embedded = analyze_frames(reader, keys, analyzer)
    if tag_path is not None:
        with FrameReader(tag_path, tag_index) as original:
            if original.index.end_sequence != index.end_sequence:
                raise ValueError(f"{tag_path} has {original.index.end_sequence} frames, {path} {index.end_sequence}")
            facts = analyze_frames(original, (s for plan in plans for s in plan), analyzer)
    out = []
    for event, plan in zip(events, plans, strict=True):
        tags = _person(event.peak_count, event.people) + tuple(object_tags([facts[s].counts for s in plan]))
        out.append(replace(event, tags=tags, embedding=embedded[event.key_seq].embedding))
    return out


def refresh_events(
    path: str | os.PathLike[str],
    index: FrameIndex,
    boxes: dict[str, Any],
    previous: list[Event],
    changed: Iterable[int],
    analyzer: Analyzer | None,
    describer: Describer | None = None,
    tag_rate: float = TAG_RATE,
    tag_path: str | os.PathLike[str] | None = None,
    tag_index: FrameIndex | None = None,
) -> list[tuple[Event, bool]]:
    """The timeline after a correction: the previous scenes (cuts do not move) and presence intervals
    recomputed from the effective `boxes`; every event whose span holds a `changed` frame, or that is new,
    is tagged again and gets its embedding from `path` (the new final). Returns (event, recomputed) pairs;
    an event that is not recomputed keeps its previous tags and embedding."""
    edits = sorted(set(changed))
    people = _People(boxes)
    scenes = [e for e in previous if e.kind == "scene"]
    current = _scene_events(index, [e.start_seq for e in scenes], people) if scenes else []
    events = sorted(current + presence_events(index, boxes), key=lambda e: (e.start_seq, e.kind))
    before = {(e.kind, e.start_seq, e.end_seq): e for e in previous}
    keep: dict[int, Event] = {}
    for i, event in enumerate(events):
        old = before.get((event.kind, event.start_seq, event.end_seq))
        touched = bisect.bisect_left(edits, event.start_seq) < bisect.bisect_right(edits, event.end_seq)
        if (
            old is not None
            and not touched
            and (old.peak_count, old.people, old.key_seq) == (event.peak_count, event.people, event.key_seq)
            and (old.embedding is not None or analyzer is None)
        ):
            keep[i] = replace(event, tags=old.tags, embedding=old.embedding)
    redo = [i for i in range(len(events)) if i not in keep]
    if analyzer is not None and redo:
        for i, event in zip(
            redo,
            tag_events(path, index, [events[i] for i in redo], analyzer, tag_rate, tag_path, tag_index),
            strict=True,
        ):
            events[i] = event
    for i, event in keep.items():
        events[i] = event
    described = describe_events(events, describer)
    return [(e, i not in keep) for i, e in enumerate(described)]


class _People:
    """Boxes and track ids per frame of a seed document, for people counts over any span."""

    def __init__(self, boxes: dict[str, Any]) -> None:
        doc = without_excluded(boxes)
        self.counts, self.tracks = counts_per_frame(doc), tracks_per_frame(doc)

    def over(self, start: int, end: int) -> tuple[int, int, int]:
        return span_people(self.counts, self.tracks, start, end)


def _person(peak: int, people: int) -> tuple[Tag, ...]:
    tag = people_tag(peak, people)
    return (tag,) if tag else ()


def _scene_events(index: FrameIndex, starts: list[int], people: _People | None = None) -> list[Event]:
    ends = [s - 1 for s in starts[1:]] + [index.end_sequence]
    out = []
    for s, e in zip(starts, ends, strict=True):
        _peak_seq, peak, total = people.over(s, e) if people is not None else (0, 0, 0)
        out.append(_event(index, "scene", s, e, (s + e) // 2, peak, total, tags=_person(peak, total)))
    return out


def _event(
    index: FrameIndex, kind: str, start: int, end: int, key: int, peak: int, people: int = 0, tags: tuple[Tag, ...] = ()
) -> Event:
    end_ms = index.time_of(end + 1) if end < index.end_sequence else index.duration_ms
    return Event(
        kind=kind,
        start_seq=start,
        end_seq=end,
        start_ms=index.time_of(start),
        end_ms=end_ms,
        key_seq=key,
        key_ms=index.time_of(key),
        peak_count=peak,
        people=people,
        tags=tags,
    )


def keyframe_jpeg(reader: FrameReader, seq: int, width: int = 320, quality: int = 80) -> bytes:
    """The key frame as a small JPEG for the thumbnails bucket (use the processed video: never show faces)."""
    image = Image.fromarray(sdr_view(reader.frame(seq, width=width), reader.signal))  # HDR shown as SDR
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()
