"""Sampled pose analysis (seed 003): exactly floor(duration x rate) samples, each with the keypoints of the
people on the frame on screen at its time.

Samples come from `media.sampling` (the frame index, never time x fps), so a VFR video neither drifts nor
gains or loses samples. People come from a `PeopleSource`: the stored tracked boxes of a processed video
(`StoredPeople`, what the service uses: same ids as the editor shows) or, for a bare file, NanoDet +
ByteTrack run on the sampled frames only (`DetectedPeople`). Pose runs on the frames of the *original*:
keypoints of a mosaiced person would be noise, which is also why they are personal data.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from framemask.detect.base import Detector
from framemask.detect.detections import Detections
from framemask.detect.frame import detect_frame
from framemask.detect.pose import PersonPose, PoseEstimator
from framemask.detect.tracking import UNTRACKED, Tracker
from framemask.media import FrameIndex, FrameReader, round_ms
from framemask.media.sampling import Sample, fixed_rate_samples

__all__ = ["DetectedPeople", "PeopleSource", "PoseSample", "StoredPeople", "pose_samples"]

Progress = Callable[[int, int], None]
People = list[tuple[tuple[float, float, float, float], int]]
"""Person boxes (x1, y1, x2, y2 frame pixels) with their track ids."""


@dataclass(frozen=True)
class PoseSample:
    """One fixed-rate sample and the poses of the people on its frame."""

    sample: Sample
    people: list[PersonPose]

    def to_json(self) -> dict[str, Any]:
        s = self.sample
        return {
            "k": s.k,
            "time_ms": round_ms(s.time_ms),
            "seq": s.seq,
            "frame_time_ms": round_ms(s.frame_time_ms),
            "people": [p.to_json() for p in self.people],
        }


class PeopleSource(Protocol):
    """Who is on a sampled frame: boxes with track ids."""

    def people(self, seq: int, time_ms: float, rgb: np.ndarray) -> People: ...


@dataclass
class StoredPeople:
    """Tracked person boxes already stored for the video: `{seq: [{"x1","y1","x2","y2","track"}, ...]}`."""

    by_seq: Mapping[int, list[dict[str, Any]]]

    def people(self, seq: int, time_ms: float, rgb: np.ndarray) -> People:
        out: People = []
        for box in self.by_seq.get(seq, []):
            xyxy = (float(box["x1"]), float(box["y1"]), float(box["x2"]), float(box["y2"]))
            out.append((xyxy, int(box.get("track", UNTRACKED))))
        return out

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> StoredPeople:
        """From a boxes document in the seed format (`framemask anonymize --boxes`)."""
        return cls({int(e["seq"]): list(e.get("person", [])) for e in doc.get("sequence", [])})


@dataclass
class DetectedPeople:
    """Persons detected on each sampled frame and tracked across the samples (timestamps keep VFR right).

    ByteTrack names a new track one update after the detection that started it; `Tracker` writes that id
    back into the previous frame's detections, so `settle` (called after the next frame) reads final ids.
    Detections no track claimed (weak, unconfirmed) are left out."""

    detector: Detector
    tracker: Tracker = field(default_factory=Tracker)

    def detections(self, time_ms: float, rgb: np.ndarray, pixel_aspect: float = 1.0) -> Detections:
        """The tracked persons of one sampled frame, detected on square pixels (`detect_frame`) as the
        anonymizer detects them: a squeezed (anamorphic) person is found as a player shows them."""
        return self.tracker.update(detect_frame(rgb, [self.detector], pixel_aspect), timestamp=time_ms / 1000.0)

    @staticmethod
    def settle(dets: Detections) -> People:
        ids = dets.tracker_id if dets.tracker_id is not None else np.full(len(dets), UNTRACKED)
        return [
            ((float(b[0]), float(b[1]), float(b[2]), float(b[3])), int(t))
            for b, t in zip(dets.xyxy, ids, strict=True)
            if int(t) != UNTRACKED
        ]

    def people(self, seq: int, time_ms: float, rgb: np.ndarray) -> People:
        return self.settle(self.detections(time_ms, rgb))


def _poses(estimator: PoseEstimator, rgb: np.ndarray, people: People) -> list[PersonPose]:
    if not people:
        return []
    boxes = np.array([p[0] for p in people], np.float32)
    return estimator.estimate(rgb, boxes, [p[1] for p in people])


def pose_samples(
    path: str | os.PathLike[str],
    rate: float,
    estimator: PoseEstimator,
    source: PeopleSource,
    *,
    index: FrameIndex | None = None,
    progress: Progress | None = None,
) -> list[PoseSample]:
    """Every sample of `path` at `rate` per second with the poses of its people (frames read once each)."""
    index = index if index is not None else FrameIndex.build(path)
    samples = fixed_rate_samples(index, rate)
    out: list[PoseSample] = []
    with FrameReader(path, index) as reader:
        for sample, poses in _analyse(reader, samples, estimator, source, progress):
            out.append(PoseSample(sample, poses))
    return out


def _analyse(
    reader: FrameReader,
    samples: list[Sample],
    estimator: PoseEstimator,
    source: PeopleSource,
    progress: Progress | None,
) -> Iterable[tuple[Sample, list[PersonPose]]]:
    """Samples in order; samples that land on the same frame share its result (one detection, one pose run)."""
    last: tuple[int, list[PersonPose]] | None = None
    pending: list[tuple[Sample, np.ndarray, Detections]] = []  # DetectedPeople: ids settle one frame later
    for done, sample in enumerate(samples, start=1):
        if last is not None and last[0] == sample.seq:
            if pending:
                pending.append((sample, pending[-1][1], pending[-1][2]))
            else:
                yield sample, last[1]
        else:
            rgb = reader.frame(sample.seq)
            if isinstance(source, DetectedPeople):
                dets = source.detections(sample.frame_time_ms, rgb, float(reader.signal.sample_aspect_ratio))
                yield from _flush(pending, estimator)
                pending = [(sample, rgb, dets)]
                last = (sample.seq, [])
            else:
                poses = _poses(estimator, rgb, source.people(sample.seq, sample.frame_time_ms, rgb))
                last = (sample.seq, poses)
                yield sample, poses
        if progress is not None:
            progress(done, len(samples))
    yield from _flush(pending, estimator)


def _flush(
    pending: list[tuple[Sample, np.ndarray, Detections]], estimator: PoseEstimator
) -> Iterable[tuple[Sample, list[PersonPose]]]:
    """Poses of the held samples of one frame, now that the next frame settled their track ids."""
    if not pending:
        return
    _, rgb, dets = pending[0]
    poses = _poses(estimator, rgb, DetectedPeople.settle(dets))
    for sample, _, _ in pending:
        yield sample, poses
