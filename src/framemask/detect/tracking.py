"""Tracking: one stable id per person/face (ByteTrack from Roboflow's `trackers`), and interpolation of
tracked boxes between detected frames.

The tracker only says *who is who*; it never invents boxes. Holding a lost person's mask across a gap
is the mask policy's job (`framemask.redact.policy`), applied when painting, so the stored tracks stay
what the detector saw.

Tracks are born only from confident detections (`ACTIVATE`), and ByteTrack's second association lets
weaker detections of a known person keep its track alive (a turned body, partial occlusion). A track
counts as *confirmed* once it was matched on `CONFIRM_HITS` detected frames; shorter tracks (a cone
seen twice, a reflection) are kept as unconfirmed candidates: still masked, not listed as people.

At a hard cut to a new view every track gets a new id (`update(..., cut=True)`), so nobody of the new shot
inherits the id of whoever stood there in the old one (excluding that track in review would unmask both).
ByteTrack itself goes on: a person scored below `ACTIVATE` stays tracked, where a reset would leave them without
a track until a confident frame, and a false cut (a whip pan) costs split ids, not lost people.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from framemask.detect.detections import LABELS, Detections, box_iou
from framemask.partial_import import import_in_background, import_parts

if TYPE_CHECKING:
    from trackers import ByteTrackTracker

__all__ = ["ACTIVATE", "CONFIRM_HITS", "UNTRACKED", "TrackStats", "Tracker", "interpolate", "preload"]

UNTRACKED = -1
ACTIVATE = 0.5
"""Minimum score of a detection that starts a new track (ByteTrack's high/low split too)."""
MATCH_IOU = 0.2
"""Minimum IoU between a track's predicted box and a detection to associate them. Lower lets a lost
track grab a neighbour in a crowd; higher breaks tracks of people walking fast at a low detection rate."""
CONFIRM_HITS = 3
"""Detected frames a track needs to count as a confirmed person/face (about half a second at 6 Hz)."""
LOST_SECONDS = 1.0
"""How long a lost track waits to be matched again before its id is retired (occlusion by a passer-by)."""


TRACKER_PARTS: dict[str, dict[str, str]] = {
    "trackers": {"ByteTrackTracker": "trackers.core.bytetrack.tracker"},
    "supervision": {
        "Detections": "supervision.detection.core",
        "box_iou_batch": "supervision.detection.utils.iou_and_nms",
    },
    "scipy.optimize": {"linear_sum_assignment": "scipy.optimize._lsap"},
}
"""What ByteTrack uses of these packages, by the submodule defining it: imported without the packages'
`__init__` (`framemask.partial_import`), which import every tracker, supervision's annotators and most of scipy
(0.6-0.7 s of one core against 0.1 s)."""


BYTETRACK = "trackers.core.bytetrack.tracker"


def preload() -> None:
    """Start importing ByteTrack on a daemon thread (once per process), so the import (~0.1 s of one core,
    holding the GIL) runs beside the probe and the detectors' set-up; a `Tracker` waits for it on its first
    `update`."""
    import_in_background(BYTETRACK, TRACKER_PARTS, "framemask-import-trackers")


def _import_trackers() -> type[ByteTrackTracker]:
    tracker: type[ByteTrackTracker] = import_parts(BYTETRACK, TRACKER_PARTS).ByteTrackTracker
    return tracker


@dataclass
class TrackStats:
    """What the tracker saw of one id: its label, detected frames (hits) and their score sum."""

    label: int
    hits: int = 0
    score_sum: float = 0.0

    @property
    def confirmed(self) -> bool:
        return self.hits >= CONFIRM_HITS


@dataclass
class Tracker:
    """Stable ids per label, in one id space (each label has its own ByteTrack).

    `update` returns every detection of the frame with its id (>= 1), or -1 for a weak detection no
    track claimed. ByteTrack names a new track one update after the detection that started it, so
    `update` also writes the new id into that detection, in the `Detections` it returned last time:
    callers that hold a frame until the next detected one (to interpolate) get the track from its start.
    `stats` accumulates hits per id for the confirmation rule.
    """

    fps: float = 30.0
    stats: dict[int, TrackStats] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        if self.fps <= 0:
            raise ValueError(f"fps must be positive, got {self.fps}")
        self.reset()

    def reset(self) -> None:
        """Forget every track (between videos); ids start again at 1."""
        self._byte: dict[int, ByteTrackTracker] = {}  # one per label, made on first use
        self._ids: dict[tuple[int, int], int] = {}  # (label, ByteTrack's id) -> ours, within the current shot
        self._last: Detections | None = None
        self.stats = {}

    def _bytetrack(self, class_id: int) -> ByteTrackTracker:
        if class_id not in self._byte:
            self._byte[class_id] = self._new_bytetrack()
        return self._byte[class_id]

    def _new_bytetrack(self) -> ByteTrackTracker:
        return _import_trackers()(
            # the buffer is counted in 30 fps frames whatever `frame_rate` is
            lost_track_buffer=round(LOST_SECONDS * 30),
            frame_rate=self.fps,
            track_activation_threshold=ACTIVATE,
            minimum_consecutive_frames=1,  # an id at once; confirmation is ours (`TrackStats`)
            high_conf_det_threshold=ACTIVATE,
            minimum_iou_threshold=MATCH_IOU,
        )

    def _our_id(self, class_id: int, byte_id: int) -> int:
        if byte_id < 0:
            return UNTRACKED
        key = (class_id, byte_id)
        if key not in self._ids:
            self._ids[key] = len(self.stats) + 1
            self.stats[self._ids[key]] = TrackStats(class_id)
        return self._ids[key]

    def _track_label(self, dets: Detections, class_id: int, timestamp: float | None) -> Detections:
        byte = self._bytetrack(class_id)  # first: it imports the library its way (`_import_trackers`)
        import supervision as sv

        sv_dets = sv.Detections(xyxy=dets.xyxy.astype(np.float32), confidence=dets.confidence, class_id=dets.class_id)
        out = byte.update(sv_dets, timestamp=timestamp)
        byte_ids = out.tracker_id if out.tracker_id is not None else np.full(len(out), UNTRACKED)
        ids = np.array([self._our_id(class_id, int(t)) for t in byte_ids], np.int64)
        confidence = out.confidence if out.confidence is not None else np.ones(len(out))
        for tid, score in zip(ids, confidence, strict=True):
            if tid != UNTRACKED:
                self.stats[int(tid)].hits += 1
                self.stats[int(tid)].score_sum += float(score)
        return Detections(out.xyxy, confidence, np.full(len(out), class_id), ids)

    def update(self, detections: Detections, timestamp: float | None = None, cut: bool = False) -> Detections:
        """Tracked boxes of the next detected frame; `timestamp` (seconds) keeps motion right on VFR video; `cut`:
        the frame starts a new shot, where every track gets a new id (and no id is given back to the frame before)."""
        if cut:
            self._ids = {}
            self._last = None
        known = set(self.stats)
        current = Detections.merge(
            [self._track_label(detections[detections.class_id == c], c, timestamp) for c in range(len(LABELS))]
        )
        if self._last is not None:
            self._name_spawns(self._last, current, known)
        self._last = current
        return current

    def _name_spawns(self, previous: Detections, current: Detections, known: set[int]) -> None:
        """Give each id new in `current` to the unnamed box of `previous` it overlaps most (its spawn)."""
        assert previous.tracker_id is not None and current.tracker_id is not None
        free = np.flatnonzero(previous.tracker_id == UNTRACKED)
        new = [i for i, tid in enumerate(current.tracker_id) if tid != UNTRACKED and int(tid) not in known]
        if not len(free) or not new:
            return
        iou = box_iou(previous.xyxy[free], current.xyxy[new])
        iou[previous.class_id[free][:, None] != current.class_id[new][None, :]] = 0.0
        for _ in range(min(len(free), len(new))):
            i, j = np.unravel_index(int(np.argmax(iou)), iou.shape)
            if iou[i, j] < MATCH_IOU:
                break
            tid = int(current.tracker_id[new[j]])
            previous.tracker_id[free[i]] = tid
            self.stats[tid].hits += 1
            self.stats[tid].score_sum += float(previous.confidence[free[i]])
            iou[i, :], iou[:, j] = -1.0, -1.0

    def confirmed(self) -> set[int]:
        """Ids that count as people/faces so far."""
        return {tid for tid, s in self.stats.items() if s.confirmed}


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
