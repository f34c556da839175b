"""The corrections model: validation, effective boxes (added, excluded, tracks), interpolation by time."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from framemask.errors import InputError
from framemask.redact.corrections import Corrections, EffectiveBoxes, link_tracks

W, H = 320, 240


def box(x1: int, y1: int, x2: int, y2: int, **extra) -> dict:
    return {"x1": x1, "x2": x2, "y1": y1, "y2": y2, **extra}


def walking(n: int) -> dict:
    """Two people: one walks right 4 px a frame, one stands still; no face boxes."""
    return {
        "endSequence": n,
        "sequence": [
            {"seq": s, "person": [box(10 + 4 * s, 20, 60 + 4 * s, 120), box(200, 50, 250, 200)], "face": []}
            for s in range(1, n + 1)
        ],
    }


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
    assert e.seed_entry(4)["person"] == [box(200, 50, 250, 200)]
    assert e.seed_entry(5) == doc["sequence"][4]
    flags = [(b["source"], b["excluded"]) for b in e.frame(4)]
    assert flags == [("detected", True), ("detected", False)]


def test_excluding_a_whole_track_removes_it_on_every_frame() -> None:
    e = effective(walking(8), {})
    walker = e.frame(1)[0]["track"]
    assert {e.frame(s)[0]["track"] for s in range(1, 9)} == {walker}  # linked across frames by overlap
    off = effective(walking(8), {"excludedTracks": [walker]})
    assert all(off.seed_entry(s)["person"] == [box(200, 50, 250, 200)] for s in range(1, 9))


def test_stored_track_ids_are_used_as_they_are() -> None:
    doc = {"endSequence": 2, "sequence": [{"seq": s, "face": [box(0, 0, 10, 10, track=7)]} for s in (1, 2)]}
    assert link_tracks([[], []]) == [[], []]
    e = effective(doc, {"excludedTracks": [7]})
    assert e.seed_entry(1) == {"seq": 1, "face": []}


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
