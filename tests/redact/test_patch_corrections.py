"""The corrections model: validation, effective boxes (added, excluded, tracks), interpolation by time."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from framemask.errors import InputError
from framemask.redact.corrections import Corrections, EffectiveBoxes
from framemask.redact.policy import MaskPolicy

W, H = 320, 240


def box(x1: int, y1: int, x2: int, y2: int, **extra) -> dict:
    return {"x1": x1, "x2": x2, "y1": y1, "y2": y2, **extra}


def walking(n: int) -> dict:
    """Two tracked people: #1 walks right 4 px a frame, #2 stands still; no face boxes."""
    return {
        "endSequence": n,
        "sequence": [
            {
                "seq": s,
                "person": [
                    box(10 + 4 * s, 20, 60 + 4 * s, 120, track=1, score=0.9),
                    box(200, 50, 250, 200, track=2, score=0.8),
                ],
                "face": [],
            }
            for s in range(1, n + 1)
        ],
    }


STANDING = box(200, 50, 250, 200, track=2, score=0.8)


def effective(doc: dict, corrections: dict, time_ms=None) -> EffectiveBoxes:
    n = doc["endSequence"]
    times = np.arange(n, dtype=np.float64) * 40.0 if time_ms is None else np.asarray(time_ms, np.float64)
    return EffectiveBoxes(doc, Corrections.model_validate(corrections), times, W, H)


def test_seed_000_drawn_rectangles_are_accepted_as_given() -> None:
    body = {"drawnRectangles": {"30": [{"x": 50, "y": 50, "width": 100, "height": 100}]}}
    c = Corrections.model_validate(body)
    assert c.drawn[30][0].xyxy() == (50, 50, 150, 150)
    assert c.to_doc()["drawnRectangles"] == {"30": [{"x": 50.0, "y": 50.0, "width": 100.0, "height": 100.0}]}


@pytest.mark.parametrize(
    "body",
    [
        {"drawnRectangles": {"3": [{"x": 1, "y": 1, "width": 0, "height": 5}]}},  # empty rectangle
        {"drawnRectangles": {"x": []}},  # not a frame number
        {"unknown": 1},
        {"tracks": [{"id": "a", "keyframes": []}]},
        {"tracks": [{"id": "a", "keyframes": [{"seq": 2, "x": 0, "y": 0, "width": 5, "height": 5}] * 2}]},
        {"tracks": [{"id": "a", "keyframes": [{"seq": 2, "x": 0, "y": 0, "width": 5, "height": 5}]}] * 2},
    ],
)
def test_malformed_corrections_are_rejected(body: dict) -> None:
    with pytest.raises(ValidationError):
        Corrections.model_validate(body)


def test_frames_outside_the_video_are_input_errors() -> None:
    with pytest.raises(InputError, match=r"frame 11 is outside 1\.\.10"):
        effective(walking(10), {"drawnRectangles": {"11": [{"x": 0, "y": 0, "width": 5, "height": 5}]}})


def test_no_corrections_reproduce_the_detected_document() -> None:
    doc = walking(6)
    assert effective(doc, {}).to_doc() == doc


def test_drawn_rectangle_adds_a_manual_region_on_that_frame_only() -> None:
    e = effective(walking(6), {"drawnRectangles": {"3": [{"x": 5.5, "y": 6, "width": 10, "height": 300}]}})
    assert e.seed_entry(3)["manual"] == [box(5, 6, 16, 240)]  # outward-rounded, clipped to the frame
    assert "manual" not in e.seed_entry(2)


def test_excluding_one_detected_box_on_one_frame() -> None:
    doc = walking(6)
    e = effective(doc, {"excluded": {"4": [box(26, 20, 76, 120, label="person", track=1)]}})
    assert e.seed_entry(4)["person"] == [box(26, 20, 76, 120, track=1, score=0.9, excluded=True), STANDING]
    assert e.seed_entry(5) == doc["sequence"][4]
    flags = [(b["source"], b["track"], b["excluded"]) for b in e.frame(4)]
    assert flags == [("detected", 1, True), ("detected", 2, False)]
    # not painted there, and the policy does not hold the walker over the frame it was excluded on
    painted = e.painted(MaskPolicy(pad={"person": 0.0}))
    assert painted.boxes(4).tolist() == [[200, 50, 250, 200]]
    assert painted.boxes(5).tolist() == [[30, 20, 80, 120], [200, 50, 250, 200]]


def test_excluding_a_whole_track_removes_it_on_every_frame() -> None:
    e = effective(walking(8), {"excludedTracks": [1]})
    assert {b["track"] for s in range(1, 9) for b in e.frame(s) if b["excluded"]} == {1}
    painted = e.painted(MaskPolicy(pad={"person": 0.0}))
    assert all(painted.boxes(s).tolist() == [[200, 50, 250, 200]] for s in range(1, 9))


def test_stored_track_ids_are_used_as_they_are() -> None:
    doc = {"endSequence": 2, "sequence": [{"seq": s, "face": [box(0, 0, 10, 10, track=7, score=0.6)]} for s in (1, 2)]}
    e = effective(doc, {"excludedTracks": [7]})
    assert [b["track"] for s in (1, 2) for b in e.frame(s)] == [7, 7]
    assert e.painted(MaskPolicy()).boxes(1).size == 0


def test_old_documents_without_tracks_load_and_exclude_box_by_box() -> None:
    doc = {"endSequence": 2, "sequence": [{"seq": s, "person": [box(0, 0, 10, 10)]} for s in (1, 2)]}
    e = effective(doc, {"excludedTracks": [1], "excluded": {"2": [box(0, 0, 10, 10)]}})
    assert [(b["track"], b["score"], b["excluded"]) for s in (1, 2) for b in e.frame(s)] == [
        (None, None, False),
        (None, None, True),
    ]
    painted = e.painted(MaskPolicy())  # no score: a region painted exactly as given
    assert painted.boxes(1).tolist() == [[0, 0, 10, 10]] and painted.boxes(2).size == 0


def test_manual_track_is_interpolated_by_presentation_time() -> None:
    times = [0.0, 100.0, 110.0, 400.0, 500.0]  # variable frame rate
    keys = [
        {"seq": 1, "x": 0, "y": 0, "width": 10, "height": 10},
        {"seq": 4, "x": 100, "y": 0, "width": 10, "height": 10},
    ]
    e = effective(walking(5), {"tracks": [{"id": "t1", "keyframes": keys}]}, times)
    xs = [next((b["x1"] for b in e.frame(s) if b["source"] == "track"), None) for s in range(1, 6)]
    assert xs == [0, 25, 27, 100, None]  # 100 ms of 400 ms -> 25 px; 110 ms -> 27.5 -> floor 27; ends at key 4
    assert e.seed_entry(2)["manual"] == [box(25, 0, 35, 10)]


def test_split_gives_the_later_boxes_a_new_id_and_merge_joins_ids() -> None:
    e = effective(walking(6), {"splitTracks": [{"track": 1, "at": 4}]})
    ids = [[b["track"] for b in e.frame(s)] for s in range(1, 7)]
    assert ids == [[1, 2]] * 3 + [[3, 2]] * 3  # the new id: largest stored id (2) + 1
    assert all(b["source"] == "detected" for s in (4, 5) for b in e.frame(s))  # still a confirmed track
    merged = effective(walking(6), {"splitTracks": [{"track": 1, "at": 4}], "mergedTracks": [[2, 3]]})
    assert [[b["track"] for b in merged.frame(s)] for s in (1, 5)] == [[1, 2], [2, 2]]
    off = effective(walking(6), {"splitTracks": [{"track": 1, "at": 4}], "excludedTracks": [3]})
    painted = off.painted(MaskPolicy(pad={"person": 0.0}))
    assert [len(painted.boxes(s)) for s in range(1, 7)] == [2, 2, 2, 1, 1, 1]  # only the later part is off


def test_override_moves_a_detected_box_on_one_frame() -> None:
    e = effective(walking(6), {"overrides": {"3": [{"track": 2, "x": 190, "y": 40, "width": 70, "height": 170}]}})
    moved = [b for b in e.frame(3) if b["track"] == 2]
    assert moved == [
        {
            "x1": 190,
            "x2": 260,
            "y1": 40,
            "y2": 210,
            "label": "person",
            "source": "override",
            "track": 2,
            "score": None,
            "excluded": False,
        }
    ]
    painted = e.painted(MaskPolicy(pad={"person": 0.2}))  # an override is painted exactly, not padded
    assert [190, 40, 260, 210] in painted.boxes(3).tolist()
    assert [190, 20, 260, 230] in painted.boxes(4).tolist()  # the detection next frame is padded


def test_extending_a_track_covers_frames_the_detector_missed() -> None:
    doc = walking(8)
    for entry in doc["sequence"][3:6]:  # the walker is missed on frames 4-6
        entry["person"] = entry["person"][1:]
    keys = [
        {"seq": 3, "x": 22, "y": 20, "width": 50, "height": 100},
        {"seq": 7, "x": 38, "y": 20, "width": 50, "height": 100},
    ]
    e = effective(doc, {"tracks": [{"id": "k1", "keyframes": keys, "extends": 1}]})
    walker = [[b for b in e.frame(s) if b["source"] in ("detected", "track") and b["x1"] < 150] for s in range(1, 9)]
    assert [len(w) for w in walker] == [1] * 8
    assert [w[0]["source"] for w in walker[2:7]] == ["detected", "track", "track", "track", "detected"]
    assert e.seed_entry(5)["person"][-1] == box(30, 20, 80, 120, track=1)  # under the track's id, no score


def test_exclude_rules_switch_off_boxes_by_label_size_and_range() -> None:
    doc = walking(6)
    for entry in doc["sequence"]:
        entry["face"] = [box(205, 55, 215, 65, track=5, score=0.9)]
    rules = [{"label": "face", "smaller_than": 20}, {"label": "person", "from_seq": 5}]
    e = effective(doc, {"excludeRules": rules})
    off = [[(b["label"], b["excluded"]) for b in e.frame(s)] for s in (1, 5)]
    assert off[0] == [("person", False), ("person", False), ("face", True)]
    assert off[1] == [("person", True), ("person", True), ("face", True)]


@pytest.mark.parametrize(
    "body",
    [
        {"mutedRanges": [{"start_seq": 5, "end_seq": 2}]},
        {"mutedRanges": [{"start_seq": 1, "end_seq": 2, "mode": "beep"}]},
        {"mergedTracks": [[1]]},
        {"splitTracks": [{"track": -1, "at": 2}]},
        {"excludeRules": [{"smaller_than": 0}]},
    ],
)
def test_bad_track_operations_are_rejected(body: dict) -> None:
    with pytest.raises(ValidationError):
        Corrections.model_validate(body)


def test_muted_ranges_must_lie_in_the_video() -> None:
    ok = Corrections.model_validate({"mutedRanges": [{"start_seq": 2, "end_seq": 4, "mode": "tone"}]})
    assert ok.to_doc()["mutedRanges"] == [{"start_seq": 2, "end_seq": 4, "mode": "tone"}] and not ok.empty
    with pytest.raises(InputError, match=r"frame 11 is outside 1\.\.10"):
        effective(walking(10), {"mutedRanges": [{"start_seq": 2, "end_seq": 11}]})


def test_a_cut_survives_frame_by_frame_storage_and_corrections() -> None:
    from framemask.service.videos import _frame_rows

    doc = walking(10)
    doc["sequence"] = [e for e in doc["sequence"] if e["seq"] <= 5]  # the walkers leave at the cut...
    doc["sequence"].append({"seq": 6, "cut": True, "person": [box(150, 20, 190, 120, track=3, score=0.9)]})
    # ...stored one row per frame (the service's `processed_frame`) and read back as `detected_doc` does
    stored = {"endSequence": 10, "sequence": [{"seq": r["seq"], **r["boxes"]} for r in _frame_rows("v", doc)]}
    e = effective(stored, {"excludedTracks": [3]})
    assert [entry["seq"] for entry in e.to_doc()["sequence"] if entry.get("cut")] == [6]
    painted = e.painted(MaskPolicy(pad={"person": 0.0}, hold_frames=8))
    assert painted.boxes(5).size and all(painted.boxes(s).size == 0 for s in range(6, 11))  # no hold past the cut
