"""Tracking: stable ids on real detections, an id kept across a short gap, spawns named from their first
detection, confirmation, reset, and interpolation. (Holding the *mask* across gaps is the mask policy's
job: tests/redact/test_tracks.py.)"""

from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import pytest
from conftest import SHARED_MEDIA

from framemask.detect import Detections, Tracker, interpolate, load_detectors, prepare_models
from framemask.media import iter_frames


def boxes(xyxy, label: str = "person", ids=None, conf=0.9) -> Detections:
    xyxy = np.asarray(xyxy, np.float32).reshape(-1, 4)
    d = Detections.from_boxes(xyxy, np.full(len(xyxy), conf), label)
    return d if ids is None else Detections(d.xyxy, d.confidence, d.class_id, np.asarray(ids))


@pytest.fixture(scope="module")
def tud_detections() -> list[Detections]:
    """Real person + face detections on the first 40 TUD-Campus frames."""
    prepare_models()
    detectors = load_detectors(("person", "face"))
    out = []
    for seq, frame in iter_frames(SHARED_MEDIA / "TUD-Campus.mp4"):
        if seq > 40:
            break
        rgb = frame.to_ndarray(format="rgb24")
        out.append(Detections.merge(d.detect(rgb) for d in detectors))
    return out


def _by_id(dets: Detections) -> dict[int, np.ndarray]:
    assert dets.tracker_id is not None
    return {int(t): b for t, b in zip(dets.tracker_id, dets.xyxy, strict=True) if t >= 0}


def test_ids_stay_stable_on_real_tud_frames(tud_detections: list[Detections]) -> None:
    tracker = Tracker(fps=25)
    outputs = [tracker.update(d) for d in tud_detections]
    # every detection comes back, nothing is invented
    for d, out in zip(tud_detections, outputs, strict=True):
        assert len(out) == len(d)
    # an id follows one person: between consecutive frames its box centre moves by a fraction of the box
    # width (measured 90th percentile: 0.34 for persons, 0.49 for faces, which walk ~8 px per frame)
    for label in ("person", "face"):
        shifts = []
        for prev, cur in itertools.pairwise(outputs):
            a, b = _by_id(prev.with_label(label)), _by_id(cur.with_label(label))
            shifts += [_shift(a[i], b[i]) for i in a.keys() & b.keys()]
        assert len(shifts) > 120, label  # enough matched pairs to judge (measured: 138 faces, more people)
        assert np.percentile(shifts, 90) < 0.6, label

    # the walkers around frame 10 keep their ids until frame 20 (a single missed frame is no new id)
    def around(i: int) -> set[int]:
        return set().union(*(_by_id(o.with_label("person")).keys() for o in outputs[i - 1 : i + 2]))

    assert len(around(9) & around(19)) >= 3
    # ids are unique across labels
    assert not (_by_id(outputs[-1].with_label("person")).keys() & _by_id(outputs[-1].with_label("face")).keys())


def test_gap_of_two_frames_keeps_the_same_id(tud_detections: list[Detections]) -> None:
    tracker = Tracker(fps=25)
    outs = [tracker.update(d) for d in tud_detections[:12]]
    people = _by_id(outs[-1].with_label("person"))
    target = max(people, key=lambda i: float(np.prod(people[i][2:] - people[i][:2])))  # the largest person
    box = people[target]
    for k in (12, 13):  # delete that person's detection for two frames
        d = tud_detections[k]
        keep = [not (d.class_id[j] == 0 and _iou(d.xyxy[j], box) > 0.3) for j in range(len(d))]
        assert target not in _by_id(tracker.update(d[np.array(keep)]))
    after = _by_id(tracker.update(tud_detections[14]))
    assert target in after and _iou(after[target], box) > 0.3  # re-associated three frames on: same id


def _shift(a: np.ndarray, b: np.ndarray) -> float:
    """Centre displacement relative to the box width."""
    return float(np.abs((a[:2] + a[2:]) / 2 - (b[:2] + b[2:]) / 2).max() / (a[2] - a[0]))


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    lt, rb = np.maximum(a[:2], b[:2]), np.minimum(a[2:], b[2:])
    inter = float(np.prod(np.clip(rb - lt, 0, None)))
    return inter / (float(np.prod(a[2:] - a[:2])) + float(np.prod(b[2:] - b[:2])) - inter)


def test_a_track_is_named_from_the_detection_that_started_it() -> None:
    tracker = Tracker(fps=30)
    first = tracker.update(boxes([0, 0, 40, 80]))
    assert first.tracker_id.tolist() == [-1]  # ByteTrack names a new track one update late...
    tracker.update(boxes([5, 0, 45, 80]))
    assert first.tracker_id.tolist() == [1]  # ...and the tracker writes the id back into its spawn
    assert tracker.stats[1].hits == 2 and not tracker.stats[1].confirmed
    tracker.update(boxes([10, 0, 50, 80]))
    assert tracker.confirmed() == {1}


def test_weak_detections_do_not_start_tracks() -> None:
    tracker = Tracker(fps=30)
    for x in range(0, 50, 5):
        out = tracker.update(boxes([x, 0, x + 40, 80], conf=0.3))
    assert out.tracker_id.tolist() == [-1] and tracker.confirmed() == set()


def test_reset_forgets_tracks_and_restarts_ids() -> None:
    tracker = Tracker(fps=30)
    for _ in range(3):
        first = tracker.update(boxes([[0, 0, 10, 20], [50, 50, 60, 70]], "face"))
    tracker.reset()
    assert len(tracker.update(Detections.empty())) == 0 and tracker.stats == {}
    for _ in range(3):
        again = tracker.update(boxes([[0, 0, 10, 20], [50, 50, 60, 70]], "face"))
    assert sorted(again.tracker_id.tolist()) == sorted(first.tracker_id.tolist()) == [1, 2]


def test_interpolate_moves_common_ids_and_holds_the_rest() -> None:
    a = Detections.merge([boxes([0, 0, 10, 10], ids=[1]), boxes([100, 100, 120, 140], "face", ids=[2])])
    b = Detections.merge([boxes([20, 10, 40, 30], ids=[1]), boxes([300, 0, 310, 10], ids=[3])])
    mid = interpolate(a, b, 0.25)
    got = _by_id(mid)
    assert sorted(got) == [1, 2, 3]
    np.testing.assert_allclose(got[1], [5, 2.5, 17.5, 15])
    np.testing.assert_allclose(got[2], [100, 100, 120, 140])  # only in a: held
    np.testing.assert_allclose(got[3], [300, 0, 310, 10])  # only in b: held
    assert mid.with_label("face").tracker_id.tolist() == [2]
    np.testing.assert_allclose(_by_id(interpolate(a, b, 0.0))[1], a.xyxy[0])
    np.testing.assert_allclose(_by_id(interpolate(a, b, 1.0))[1], b.xyxy[0])
    untracked = interpolate(boxes([1, 1, 2, 2]), boxes([5, 5, 6, 6]), 0.5)
    assert len(untracked) == 2 and untracked.tracker_id.tolist() == [-1, -1]
    with pytest.raises(ValueError, match=r"t must be within 0\.\.1"):
        interpolate(a, b, 1.5)


def test_the_tracker_library_imports_in_the_background_and_a_tracker_waits_for_it() -> None:
    """`preload` imports ByteTrack (with parts of supervision and scipy) on a thread; a tracker made at once
    has not imported it, and its first update waits for the import instead of failing."""
    code = """
import sys, threading
from framemask.detect import Detections, Tracker
from framemask.detect.tracking import preload
preload()
tracker = Tracker(fps=25)
print([t.name for t in threading.enumerate() if "import" in t.name], "trackers.core.bytetrack.tracker" in sys.modules)
person = Detections.from_boxes([[10, 10, 50, 90]], [0.9], "person")
tracker.update(person)  # ByteTrack names a track one update after its first detection
print(tracker.update(person).tracker_id.tolist(), "trackers.core.bytetrack.tracker" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.split("\n")[:2] == ["['framemask-import-trackers'] False", "[1] True"]


def test_every_track_gets_a_new_id_at_a_cut_and_weak_people_stay_tracked() -> None:
    """A person of the new shot standing where one of the old shot stood gets an id of their own, and a person
    scored below ACTIVATE, tracked before the cut, is still tracked after it (a reset would drop them: only a
    confident frame starts a track)."""
    tracker = Tracker(fps=6)
    there, weak_spot = [100, 50, 160, 200], [300, 60, 350, 190]
    first = boxes([there, weak_spot], conf=0.9)
    before = [tracker.update(first)] + [tracker.update(boxes([there, weak_spot], conf=c)) for c in (0.9, 0.3, 0.3)]
    old = before[-1].tracker_id.tolist()
    assert old == before[1].tracker_id.tolist() and -1 not in old and len(set(old)) == 2
    after = [tracker.update(boxes([there, weak_spot], conf=0.3), cut=True)]
    after += [tracker.update(boxes([there, weak_spot], conf=0.3)) for _ in range(3)]
    new = after[0].tracker_id.tolist()
    assert -1 not in new and not set(new) & set(old)  # both tracked, neither with an id of the old shot
    assert all(a.tracker_id.tolist() == new for a in after)  # and the new ids hold
    assert all(tracker.stats[i].hits == 4 for i in new) and tracker.confirmed() == set(old) | set(new)
    # without the cut, the same frames keep the old ids
    tracker = Tracker(fps=6)
    for conf in (0.9, 0.9, 0.3, 0.3):
        tracker.update(boxes([there, weak_spot], conf=conf))
    assert tracker.update(boxes([there, weak_spot], conf=0.3)).tracker_id.tolist() == old
