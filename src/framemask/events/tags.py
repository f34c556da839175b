"""Event tags and key-frame embeddings from the detector that already runs (NanoDet, COCO).

NanoDet scores all 80 COCO classes in every forward pass; the anonymizer keeps only `person`. Here the
other classes become event tags: frames of each event's span are sampled (about `rate` per second, plus
its first, middle, last and key frame) from the PROCESSED video (objects are not masked there), each
sampled frame is analysed once even when events overlap, and a class is a tag of the event when it is
seen on at least two of its samples (one when the event has fewer than three): `peak` is the most boxes
of that class on one sampled frame. People are counted from the tracks (`person` tag: `peak` at once,
`count` distinct tracks), never from the masked pixels.

The same pass over the key frame gives the event's embedding: NanoDet's neck feature maps (strides 16
and 32, 128 channels each), global-average pooled, each L2-normalised, concatenated and L2-normalised
again (256 numbers). It describes the whole masked frame (scene layout, objects); no face is embedded.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from framemask.media import FrameIndex, FrameReader

__all__ = [
    "MIN_HITS",
    "TAG_RATE",
    "Analyzer",
    "Tag",
    "default_analyzer",
    "object_tags",
    "people_tag",
    "span_seqs",
    "tags_from_json",
]

log = logging.getLogger(__name__)

TAG_RATE = 1.0
"""Sampled frames per second of an event's span (besides its first, middle, last and key frame)."""
MIN_HITS = 2
"""Samples a class must be seen on to become a tag (events with fewer than three samples: one)."""


@dataclass(frozen=True)
class Tag:
    """What an event shows: a COCO class and the most of it at once; `count` (people only) the distinct tracks."""

    label: str
    peak: int
    count: int | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"label": self.label, "peak": self.peak}
        if self.count is not None:
            data["count"] = self.count
        return data


def tags_from_json(items: Iterable[dict[str, Any]] | None) -> tuple[Tag, ...]:
    return tuple(Tag(str(t["label"]), int(t["peak"]), t.get("count")) for t in items or ())


class _Objects(Protocol):
    def counts(self) -> dict[str, int]: ...


class _Analysis(Protocol):
    @property
    def objects(self) -> _Objects: ...

    @property
    def embedding(self) -> np.ndarray | None: ...


class Analyzer(Protocol):
    """One detector pass over an RGB frame: other-class boxes and (optionally) an embedding."""

    def analyze(self, rgb: np.ndarray) -> _Analysis: ...


def span_seqs(index: FrameIndex, start: int, end: int, key: int | None = None, rate: float = TAG_RATE) -> list[int]:
    """The frames sampled from start..end: the frame on screen every 1/rate s from the start, plus the first,
    middle, last and key frame."""
    seqs = {start, (start + end) // 2, end}
    if key is not None and start <= key <= end:
        seqs.add(key)
    t0 = index.time_of(start)
    t1 = index.time_of(end)
    step = 1000.0 / rate
    t = t0 + step
    while t < t1:
        seqs.add(index.frame_at(t))
        t += step
    return sorted(s for s in seqs if start <= s <= end)


def object_tags(samples: Sequence[dict[str, int]], min_hits: int = MIN_HITS) -> list[Tag]:
    """Classes seen on enough of the sampled frames' counts, most at once first."""
    need = min_hits if len(samples) >= 3 else 1
    labels = {label for counts in samples for label in counts}
    tags = []
    for label in labels:
        seen = [c[label] for c in samples if c.get(label)]
        if len(seen) >= need:
            tags.append(Tag(label, max(seen)))
    return sorted(tags, key=lambda t: (-t.peak, t.label))


def people_tag(peak: int, people: int) -> Tag | None:
    """The `person` tag from the tracks: most at once and distinct tracks (None without people)."""
    total = max(peak, people)
    return Tag("person", peak, total) if total else None


@dataclass(frozen=True)
class FrameFacts:
    counts: dict[str, int]
    embedding: tuple[float, ...] | None


def analyze_frames(reader: FrameReader, seqs: Iterable[int], analyzer: Analyzer) -> dict[int, FrameFacts]:
    """Every frame of `seqs` analysed once, in order (the reader decodes forward)."""
    out: dict[int, FrameFacts] = {}
    for seq in sorted(set(seqs)):
        result = analyzer.analyze(reader.frame(seq))
        emb = result.embedding
        out[seq] = FrameFacts(
            dict(result.objects.counts()), None if emb is None else tuple(round(float(v), 6) for v in emb)
        )
    return out


_analyzer_lock = threading.Lock()
_analyzers: dict[tuple[str, int], Analyzer] = {}


def default_analyzer(model_dir: Path | None = None, threads: int | None = None) -> Analyzer | None:
    """NanoDet built `with_features` from the prepared model (one per process), or None when the model is not
    ready (events then carry no object tags and no embedding)."""
    from framemask.detect.base import DEFAULT_THREADS
    from framemask.detect.models import NANODET_ONNX, default_model_dir, readiness
    from framemask.detect.nanodet import NanoDet

    model_dir = model_dir or default_model_dir()
    ready, why = readiness(("person",), model_dir)
    if not ready:
        log.warning("events: %s: no object tags, no embeddings", why)
        return None
    key = (str(model_dir / NANODET_ONNX), threads or DEFAULT_THREADS)
    with _analyzer_lock:
        if key not in _analyzers:
            _analyzers[key] = NanoDet.with_features(Path(key[0]), threads=key[1])
        return _analyzers[key]
