"""`score_tracks` against sequences whose scores are known by construction (no detector involved)."""

from __future__ import annotations

import math

import pytest

from framemask.redact.scoring import score_tracks

pytest.importorskip("trackeval")

W, H = 640, 480
A, B = (100.0, 100.0, 160.0, 260.0), (400.0, 120.0, 460.0, 280.0)


def _doc(tracks_per_frame: list[list[tuple[int, tuple[float, float, float, float]]]]) -> dict[str, object]:
    return {
        "sequence": [
            {"seq": seq, "person": [{"track": t, "x1": b[0], "y1": b[1], "x2": b[2], "y2": b[3]} for t, b in boxes]}
            for seq, boxes in enumerate(tracks_per_frame, start=1)
        ]
    }


def _gt(frames: int) -> dict[int, list[tuple[int, tuple[float, float, float, float]]]]:
    return {seq: [(1, A), (2, B)] for seq in range(1, frames + 1)}


def test_perfect_tracks_score_one_everywhere() -> None:
    score = score_tracks(_doc([[(7, A), (9, B)]] * 20), _gt(20), W, H)
    assert score.hota == pytest.approx(1.0) and score.deta == pytest.approx(1.0) and score.assa == pytest.approx(1.0)
    assert score.mota == pytest.approx(1.0) and score.idf1 == pytest.approx(1.0) and score.id_switches == 0


def test_an_id_switch_costs_association_not_detection() -> None:
    # person A is tracked as 7 for 10 frames, then as 8: every box still found, half of A's life under one id
    frames = [[(7, A), (9, B)]] * 10 + [[(8, A), (9, B)]] * 10
    score = score_tracks(_doc(frames), _gt(20), W, H)
    assert score.deta == pytest.approx(1.0)
    # AssA = mean over matches of TPA / (TPA + FNA + FPA): A's matches score 10 / (10 + 10 + 0), B's 1
    assert score.assa == pytest.approx((20 * 0.5 + 20 * 1.0) / 40)
    assert score.hota == pytest.approx(math.sqrt(score.deta * score.assa))
    assert score.id_switches == 1


def test_a_missed_person_costs_detection() -> None:
    score = score_tracks(_doc([[(7, A)]] * 10), _gt(10), W, H)
    assert score.deta == pytest.approx(0.5) and score.assa == pytest.approx(1.0)
    assert score.recall == pytest.approx(0.5)
