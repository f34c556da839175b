"""Tracks you can trust: one tight box per person with a stable id, the mask policy painting from them,
track review hints, duplicates, gaps, and the boxes document round trip.

Synthetic cases use a scripted detector that reads the frame number from the decoded pixels (see
`_videos.pattern`), so each case states exactly what the detector saw on every frame.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from support.videos import VideoSpec, frame_number, make_video

from framemask.detect import Detections
from framemask.redact import anonymize_file, boxes_from_doc, painted_from_doc
from framemask.redact.boxes import load_boxes_doc
from framemask.redact.policy import MaskPolicy
from framemask.redact.tracklist import summarize_tracks

W, H = 320, 240


class ScriptedDetector:
    """Person boxes given per frame index by `script(i) -> [(x1, y1, x2, y2, score), ...]`."""

    name, label = "scripted", "person"

    def __init__(self, script: Callable[[int], list[tuple[float, float, float, float, float]]]) -> None:
        self.script = script

    def detect(self, rgb: np.ndarray) -> Detections:
        rows = self.script(frame_number(rgb))
        return Detections.from_boxes([r[:4] for r in rows], [r[4] for r in rows], "person")


def anonymize(tmp_path: Path, n: int, script, **kw):
    src = make_video(tmp_path / "in.mp4", VideoSpec(n=n, fps=25, size=(W, H), gop=25))
    out = tmp_path / "out.mp4"
    return anonymize_file(
        src, out, detectors=[ScriptedDetector(script)], stride=1, boxes_path=tmp_path / "b.json", **kw
    )


def walker(i: int) -> tuple[float, float, float, float, float]:
    """A person walking right 3 px a frame through the middle of the frame."""
    return (60 + 3 * i, 60, 100 + 3 * i, 180, 0.9)


def test_one_person_two_overlapping_detections_give_one_track(tmp_path: Path) -> None:
    # the detector boxes the whole body and, separately, the upper body (IoU 0.5: NMS keeps both)
    def script(i: int):
        x1, y1, x2, y2, _ = walker(i)
        return [(x1, y1, x2, y2, 0.9), (x1 + 2, y1, x2 - 2, y1 + 70, 0.7)]

    result = anonymize(tmp_path, 30, script)
    doc = result.boxes
    tracks = {b["track"] for e in doc["sequence"] for b in e["person"]}
    assert len(tracks) == 1 and all(len(e["person"]) == 1 for e in doc["sequence"])
    (box,) = doc["sequence"][9]["person"]
    assert (box["x1"], box["y1"], box["x2"], box["y2"]) == walker(9)[:4] and box["score"] == 0.9  # tight
    # the duplicate is not a person, but it is still masked
    assert all(len(e["candidates"]) == 1 for e in doc["sequence"])
    painted = result.painted.boxes(10).tolist()
    assert any(p[1] <= 60 and p[3] >= 130 for p in painted) and len(painted) == 2


def test_person_occluded_for_five_frames_keeps_one_id_and_stays_masked(tmp_path: Path) -> None:
    hidden = range(12, 17)  # frame indexes 12..16 = seqs 13..17

    def script(i: int):
        return [] if i in hidden else [walker(i)]

    result = anonymize(tmp_path, 30, script)
    ids = [b["track"] for e in result.boxes["sequence"] for b in e["person"]]
    assert len(ids) == 30 and set(ids) == {1}  # the gap is filled in, one id throughout
    filled = [e["seq"] for e in result.boxes["sequence"] if e["person"][0].get("filled")]
    assert filled == [13, 14, 15, 16, 17]
    (summary,) = summarize_tracks(result.track, 25)
    assert summary.gaps == [[13, 17]] and "fragmented" in summary.flags
    for seq in range(1, 31):  # the mask holds through the gap, moving on with the walker
        x1, y1, x2, y2, _ = walker(seq - 1)
        masks = result.painted.boxes(seq)
        assert len(masks) == 1, seq
        m = masks[0]
        assert m[0] <= x1 + 3 and m[2] >= x2 - 3 and m[1] <= y1 and m[3] >= y2, (seq, m.tolist())


def test_track_ending_mid_frame_is_flagged(tmp_path: Path) -> None:
    # like the person in the lift: the detector loses someone standing in the middle of the frame
    def script(i: int):
        return [(140, 80, 170, 150, 0.8)] if i < 20 else []

    result = anonymize(tmp_path, 40, script)
    (summary,) = summarize_tracks(result.track, 25)
    assert (summary.start_seq, summary.end_seq) == (1, 20)
    assert "ends_inside" in summary.flags and "starts_inside" not in summary.flags


def test_people_walking_out_of_the_frame_are_not_flagged(tmp_path: Path) -> None:
    def script(i: int):
        return [(10 * i, 60, 10 * i + 40, 180, 0.9)] if 10 * i + 40 <= W + 20 else []

    result = anonymize(tmp_path, 40, script)
    (summary,) = summarize_tracks(result.track, 25)
    assert summary.flags == []


def test_weak_untracked_boxes_are_masked_but_not_listed(tmp_path: Path) -> None:
    # a flickering weak detection (0.3): never a track, but masked on its frames and one frame around
    def script(i: int):
        return [(200, 40, 230, 100, 0.3)] if i % 3 == 0 else []

    result = anonymize(tmp_path, 12, script)
    assert all(e["person"] == [] for e in result.boxes["sequence"])
    assert [len(e.get("candidates", [])) for e in result.boxes["sequence"]] == [1, 0, 0] * 4
    masked = [len(result.painted.boxes(s)) > 0 for s in range(1, 13)]
    assert masked == [True] * 11 + [False]  # seq 12 is two frames from the last sighting (seq 10)


def test_boxes_json_with_tracks_round_trips(tmp_path: Path) -> None:
    result = anonymize(tmp_path, 20, lambda i: [walker(i), (250, 20, 280, 90, 0.3)] if i % 2 else [walker(i)])
    doc = load_boxes_doc(tmp_path / "b.json")
    assert doc == result.boxes
    entry = doc["sequence"][1]
    assert set(entry["person"][0]) == {"x1", "x2", "y1", "y2", "track", "score"}
    assert entry["candidates"][0]["label"] == "person" and entry["candidates"][0]["score"] == 0.3
    again = boxes_from_doc(doc, 20, W, H)
    assert again.to_doc() == doc and again.confirmed == result.track.confirmed
    # a re-render paints from the stored document exactly what the first render painted
    repainted = painted_from_doc(doc, 20, W, H, result.policy)
    assert all(np.array_equal(repainted.rows(s), result.painted.rows(s)) for s in range(1, 21))


def test_old_documents_without_track_or_score_still_load_and_paint_as_given() -> None:
    old = {"endSequence": 2, "sequence": [{"seq": 1, "person": [{"x1": 10, "x2": 50, "y1": 20, "y2": 90}]}]}
    track = boxes_from_doc(json.loads(json.dumps(old)), 2, W, H)
    assert track.to_doc()["sequence"][0]["person"] == [{"x1": 10, "x2": 50, "y1": 20, "y2": 90}]
    painted = painted_from_doc(old, 2, W, H, MaskPolicy())
    assert painted.boxes(1).tolist() == [[10, 20, 50, 90]] and painted.boxes(2).size == 0


@pytest.mark.parametrize(
    "box",
    [
        {"x1": 1, "x2": 5, "y1": 1, "y2": 5, "track": "a"},
        {"x1": 1, "x2": 5, "y1": 1, "y2": 5, "score": 2.0},
        {"x1": float("nan"), "x2": 5, "y1": 1, "y2": 5},
    ],
)
def test_bad_track_or_score_is_an_input_error(box: dict) -> None:
    from framemask.errors import InputError

    with pytest.raises(InputError):
        boxes_from_doc({"endSequence": 1, "sequence": [{"seq": 1, "person": [box]}]}, 1, W, H)


def test_presence_counts_distinct_tracks_and_the_peak_at_once() -> None:
    from framemask.events.describe import SummaryDescriber
    from framemask.events.extract import Event
    from framemask.events.presence import presence_intervals

    def person(track: int) -> dict:
        return {"x1": 10 * track, "x2": 10 * track + 8, "y1": 0, "y2": 20, "track": track, "score": 0.9}

    # three people pass one after the other, never more than two on screen; a weak candidate is no one
    frames = [[1], [1], [1, 2], [1, 2], [2], [2, 3], [3], [3], [3], [3]]
    doc = {
        "endSequence": 10,
        "sequence": [
            {
                "seq": i + 1,
                "person": [person(t) for t in ids],
                "face": [],
                "candidates": [{"x1": 0, "x2": 5, "y1": 0, "y2": 5, "label": "person", "score": 0.3}],
            }
            for i, ids in enumerate(frames)
        ],
    }
    (p,) = presence_intervals(doc)
    assert (p.start, p.end, p.peak_count, p.people) == (1, 10, 2, 3)
    event = Event("presence", 1, 10, 0.0, 400.0, p.peak_seq, 0.0, p.peak_count, p.people)
    assert SummaryDescriber().describe(event, None).startswith("3 people, up to 2 at once visible for 0.4 s")


def test_the_worker_in_the_lift_is_one_flagged_track() -> None:
    """Real clip (NASA, synthetic VFR): one small worker in a lift basket; one id from first sight to the
    last frame, and the frames before the detector first finds him are pointed out to the reviewer."""
    from conftest import SHARED_MEDIA

    from framemask.redact.pipeline import default_detectors

    src = SHARED_MEDIA / "torchcodec_nasa_13013_vfr.mp4"
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        result = anonymize_file(src, Path(tmp) / "out.mp4", detectors=default_detectors(("person", "face")))
    tracks = summarize_tracks(result.track, 12.9)
    people = [t for t in tracks if t.label == "person"]
    assert len(people) == 1, tracks
    (worker,) = people
    assert worker.end_seq == 50 and worker.frames == 50 - worker.start_seq + 1
    assert worker.start_seq == 1 or "starts_inside" in worker.flags
    assert result.painted is not None and all(len(result.painted.boxes(s)) for s in range(42, 51))


def test_a_static_weak_track_is_a_candidate_not_a_person(tmp_path: Path) -> None:
    # a traffic cone that the person detector scores 0.5 then 0.3-0.35, never moving; a walker passes by
    def script(i: int):
        cone = (250, 150, 275, 200, 0.5 if i == 0 else 0.3 + 0.05 * (i % 2))
        return [cone, walker(i)]

    result = anonymize(tmp_path, 30, script)
    people = {b["track"] for e in result.boxes["sequence"] for b in e["person"]}
    cones = {b.get("track") for e in result.boxes["sequence"] for b in e.get("candidates", [])}
    assert len(people) == 1 and len(cones) == 1 and people.isdisjoint(cones)
    assert all(any(p[0] <= 250 and p[2] >= 275 for p in result.painted.boxes(s).tolist()) for s in range(1, 31))


def _painted_doc(cut: object = None) -> dict:
    """One person seen on frames 1-4 only (a track of 4 hits), a weak candidate on frame 6, and frame 6 flagged
    as a shot's first (`"cut"`) when `cut` is given."""
    box = {"x1": 10, "x2": 50, "y1": 20, "y2": 90, "track": 1, "score": 0.9}
    seen = [{"seq": s, "person": [box]} for s in (1, 2, 3, 4)]
    weak: dict = {"seq": 6, "candidates": [{"x1": 200, "x2": 240, "y1": 20, "y2": 90, "label": "person", "score": 0.3}]}
    if cut is not None:
        weak["cut"] = cut
    return {"endSequence": 10, "sequence": [*seen, weak]}


def test_a_cut_ends_the_hold_and_the_dilation_does_not_cross_it() -> None:
    policy = MaskPolicy(hold_frames=4)
    plain = painted_from_doc(_painted_doc(), 10, W, H, policy)
    cut = painted_from_doc(_painted_doc(True), 10, W, H, policy)

    def frames(painted, left: bool) -> list[int]:  # frames painting the person (left) or the candidate
        return [s for s in range(1, 11) if any((b[0] < 100) == left for b in painted.boxes(s).tolist())]

    assert frames(plain, left=True) == [1, 2, 3, 4, 5, 6, 7, 8]  # the lost track is held 4 frames...
    assert frames(cut, left=True) == [1, 2, 3, 4, 5]  # ...up to the cut
    assert frames(plain, left=False) == [5, 6, 7]  # a candidate is painted on the frames around it too...
    assert frames(cut, left=False) == [6, 7]  # ...in its own shot


def test_cuts_round_trip_and_bad_cut_flags_are_input_errors(tmp_path: Path) -> None:
    from framemask.errors import InputError

    track = boxes_from_doc(_painted_doc(True), 10, W, H)
    assert track.cuts == {6} and [e["seq"] for e in track.to_doc()["sequence"] if e.get("cut")] == [6]
    track.write_json(tmp_path / "b.json")
    assert load_boxes_doc(tmp_path / "b.json") == track.to_doc()
    assert boxes_from_doc(_painted_doc(False), 10, W, H).cuts == set()
    assert not any("cut" in e for e in boxes_from_doc(_painted_doc(), 10, W, H).to_doc()["sequence"])
    for bad in ("yes", 1, [6]):
        with pytest.raises(InputError):
            boxes_from_doc(_painted_doc(bad), 10, W, H)
