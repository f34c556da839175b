"""Tracking: stable ids per label (ByteTrack from Roboflow's `trackers`) plus gap bridging, and
interpolation of tracked boxes between detected frames.

A detector misses a person for a frame or two all the time (motion blur, occlusion, a turned head);
an anonymiser whose mask blinks off for those frames leaks the identity. So a confirmed track that
ByteTrack reports missing keeps its box, moved on by its recent velocity, for up to `max_gap` updates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from framemask.detect.detections import LABELS, Detections

if TYPE_CHECKING:
    from trackers import ByteTrackTracker

__all__ = ["Tracker", "interpolate"]

UNTRACKED = -1
_VELOCITY_SMOOTHING = 0.5  # weight of the newest box delta in the running velocity


@dataclass
class _Track:
    """What we remember of a confirmed track to bridge its gaps."""

    box: np.ndarray
    velocity: np.ndarray
    confidence: float
    class_id: int
    misses: int = 0

    def observe(self, box: np.ndarray, confidence: float) -> None:
        delta = (box - self.box) / (self.misses + 1)
        self.velocity = _VELOCITY_SMOOTHING * delta + (1 - _VELOCITY_SMOOTHING) * self.velocity
        self.box, self.confidence, self.misses = box, confidence, 0

    def coast(self) -> np.ndarray:
        """The box one more update after the last sighting, extrapolated linearly."""
        self.misses += 1
        return self.box + self.velocity * self.misses


class Tracker:
    """Stable ids per label; a lost track's box is held (extrapolated) for up to `max_gap` updates.

    `update` returns every detection of the frame (ids >= 1, or -1 while ByteTrack has not matched it)
    followed by the bridged boxes of confirmed tracks missing from this frame.
    """

    def __init__(self, fps: float = 30.0, max_gap: int | None = None, lost_track_buffer: int = 30) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.fps = fps
        self.max_gap = max_gap if max_gap is not None else max(1, round(fps / 3))
        self.lost_track_buffer = lost_track_buffer
        self.reset()

    def reset(self) -> None:
        """Forget every track (between videos); ids start again at 1."""
        self._byte = {cid: self._new_bytetrack() for cid in range(len(LABELS))}
        self._ids: dict[tuple[int, int], int] = {}
        self._tracks: dict[int, _Track] = {}
        self._next_id = 1

    def _new_bytetrack(self) -> ByteTrackTracker:
        from trackers import ByteTrackTracker  # imports supervision (~0.5 s): only when tracking

        return ByteTrackTracker(
            lost_track_buffer=self.lost_track_buffer,
            frame_rate=self.fps,
            track_activation_threshold=0.0,  # detectors already thresholded: every box may start a track
            minimum_consecutive_frames=1,
            high_conf_det_threshold=0.5,
            minimum_iou_threshold=0.3,  # 0.1 lets a lost track grab an overlapping neighbour in a crowd
        )

    def _our_id(self, class_id: int, byte_id: int) -> int:
        """One id space across labels (each label has its own ByteTrack)."""
        if byte_id < 0:
            return UNTRACKED
        key = (class_id, byte_id)
        if key not in self._ids:
            self._ids[key] = self._next_id
            self._next_id += 1
        return self._ids[key]

    def _track_label(self, dets: Detections, class_id: int, timestamp: float | None) -> Detections:
        import supervision as sv

        sv_dets = sv.Detections(xyxy=dets.xyxy.astype(np.float32), confidence=dets.confidence,
                                class_id=dets.class_id)
        out = self._byte[class_id].update(sv_dets, timestamp=timestamp)
        ids = [self._our_id(class_id, int(t)) for t in out.tracker_id]
        confidence = out.confidence if out.confidence is not None else np.ones(len(out))
        return Detections(out.xyxy, confidence, np.full(len(out), class_id), np.array(ids, np.int64))

    def update(self, detections: Detections, timestamp: float | None = None) -> Detections:
        """Tracked boxes of the next frame; `timestamp` (seconds) keeps motion right on VFR video."""
        parts = [self._track_label(detections[detections.class_id == c], c, timestamp) for c in range(len(LABELS))]
        current = Detections.merge(parts)
        assert current.tracker_id is not None
        seen = set()
        for box, conf, cid, tid in zip(current.xyxy, current.confidence, current.class_id, current.tracker_id,
                                       strict=True):
            if tid == UNTRACKED:
                continue
            seen.add(int(tid))
            track = self._tracks.get(int(tid))
            if track is None:
                self._tracks[int(tid)] = _Track(box.copy(), np.zeros(4, np.float32), float(conf), int(cid))
            else:
                track.observe(box.copy(), float(conf))
        return Detections.merge([current, self._bridge(seen)])

    def _bridge(self, seen: set[int]) -> Detections:
        """Extrapolated boxes of confirmed tracks missing from this frame; forget those gone too long."""
        rows = []
        for tid, track in list(self._tracks.items()):
            if tid in seen:
                continue
            if track.misses >= self.max_gap:
                del self._tracks[tid]
                continue
            rows.append((track.coast(), track.confidence, track.class_id, tid))
        if not rows:
            return Detections.empty(tracked=True)
        return Detections(
            np.stack([r[0] for r in rows]),
            np.array([r[1] for r in rows]),
            np.array([r[2] for r in rows]),
            np.array([r[3] for r in rows]),
        )


def interpolate(a: Detections, b: Detections, t: float) -> Detections:
    """Boxes at fraction `t` between `a` (t=0) and `b` (t=1): linear for track ids in both, held as they
    are for boxes only in one of them (or without an id), so nobody drops out between detected frames."""
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"t must be within 0..1, got {t}")
    ids_a = a.tracker_id if a.tracker_id is not None else np.full(len(a), UNTRACKED, np.int64)
    ids_b = b.tracker_id if b.tracker_id is not None else np.full(len(b), UNTRACKED, np.int64)
    common = np.intersect1d(ids_a[ids_a >= 0], ids_b[ids_b >= 0])
    ia = np.array([np.flatnonzero(ids_a == i)[0] for i in common], np.int64)
    ib = np.array([np.flatnonzero(ids_b == i)[0] for i in common], np.int64)
    xyxy = a.xyxy[ia] * np.float32(1 - t) + b.xyxy[ib] * np.float32(t)
    conf = np.minimum(a.confidence[ia], b.confidence[ib])
    moved = Detections(xyxy, conf, a.class_id[ia], common.astype(np.int64))
    only_a = Detections(a.xyxy, a.confidence, a.class_id, ids_a)[~np.isin(ids_a, common)]
    only_b = Detections(b.xyxy, b.confidence, b.class_id, ids_b)[~np.isin(ids_b, common)]
    return Detections.merge([moved, only_a, only_b])
