"""NanoDet's crowd pass: a crowd of small people, or a wide shot of a few, is looked at again closer; other
frames are detected exactly as before."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_MEDIA
from support.reshoot import WIDE_SHOT, Box, reshoot

from framemask.detect import load_detectors, prepare_models
from framemask.detect import quantize as quantize_module
from framemask.detect.detections import box_iou
from framemask.detect.nanodet import NanoDet
from framemask.media import iter_frames
from framemask.redact.pipeline import PERSON_THRESHOLD
from framemask.redact.scoring import load_gt

MOT = SHARED_MEDIA / "mmtracking_demo_MOT17-04_frames1-8.mp4"
MOT_GT = Path(__file__).resolve().parents[2] / "bench/data/MOT17-04-frames1-8.gt.txt"


@pytest.fixture(scope="module", autouse=True)
def _prepared() -> None:
    prepare_models()  # a no-op when the models are cached


def _person(crowd_pass: bool) -> NanoDet:
    (det,) = load_detectors(("person",), person_threshold=PERSON_THRESHOLD, person_crowd_pass=crowd_pass)
    assert isinstance(det, NanoDet)
    return det


def _recall(
    det: NanoDet, clip: Path = MOT, gt: dict[int, list[tuple[int, Box]]] | None = None, every: int = 1
) -> float:
    """Share of a clip's annotated pedestrians (MOT17-04 at 1080p, frames 1-8, by default) that a detection
    meets at IoU >= 0.5, on every `every`-th frame."""
    gt, hits, total = gt if gt is not None else load_gt(MOT_GT), 0, 0
    for seq, frame in iter_frames(clip):
        if (seq - 1) % every or not gt.get(seq):
            continue
        found = det.detect(frame.to_ndarray(format="rgb24")).xyxy
        people = np.array([box for _, box in gt[seq]])
        if len(found):
            hits += int((box_iou(people, found).max(axis=1) >= 0.5).sum())
        total += len(people)
    return hits / total


def test_crowd_pass_finds_many_more_of_a_street_crowd() -> None:
    """A busy street at 1080p, people 130-240 px tall, 42 annotated a frame: at 416 px NanoDet meets half of
    them; the crowd pass (640 px) about two thirds."""
    plain, crowd = _recall(_person(False)), _recall(_person(True))
    print(f"MOT17-04 1080p recall at {PERSON_THRESHOLD}: plain {plain:.3f}, crowd pass {crowd:.3f}")
    assert crowd >= plain + 0.1
    assert crowd >= 0.6


def test_crowd_pass_looks_closer_at_a_wide_shot(tmp_path: Path) -> None:
    """A wide street shot has few people, all small: TUD-Campus at half size on a grey 1080p canvas (its 4-6
    walkers 65-155 px tall, 14-34 px at 416 px) is no crowd, but its people are looked at again at 640 px.
    Measured on every 4th frame: recall 0.53 with one look, 0.71 with the closer one."""
    shot = reshoot(SHARED_MEDIA, WIDE_SHOT, tmp_path / "wide.mp4")
    plain, closer = _recall(_person(False), shot.path, shot.gt, 4), _recall(_person(True), shot.path, shot.gt, 4)
    print(f"wide shot recall at {PERSON_THRESHOLD}: plain {plain:.3f}, crowd pass {closer:.3f}")
    assert closer >= plain + 0.1


@pytest.mark.parametrize("clip", ["TUD-Campus.mp4", "mmaction2_demo_armwrestling.mp4"])
def test_crowd_pass_changes_nothing_without_a_crowd(clip: str) -> None:
    """A few people far away beside nearer ones (TUD-Campus's walkers and the people behind its glass, the
    arm-wrestling spectators) are neither a crowd nor a wide shot: the boxes are the first look's, to the pixel."""
    plain, crowd = _person(False), _person(True)
    looked = 0
    for seq, frame in iter_frames(SHARED_MEDIA / clip):
        if seq % 3 != 1:
            continue
        rgb = frame.to_ndarray(format="rgb24")
        a, b = plain.detect(rgb), crowd.detect(rgb)
        assert np.array_equal(a.xyxy, b.xyxy) and np.array_equal(a.confidence, b.confidence), seq
        looked += len(a) > 0
    assert looked >= 10  # the clips do have people


@pytest.mark.parametrize("pays_off", [True, False])
def test_crowd_pass_uses_int8_only_where_it_pays_off(monkeypatch: pytest.MonkeyPatch, pays_off: bool) -> None:
    """The second look runs INT8 convolutions on a CPU with VNNI (as fast at 640 px as FP32 at 416) and
    the detector's own FP32 session elsewhere; either way it finds the crowd."""
    monkeypatch.setattr(quantize_module, "int8_pays_off", lambda: pays_off)
    det = _person(True)
    rgb = next(frame.to_ndarray(format="rgb24") for _, frame in iter_frames(MOT))
    found = det.detect(rgb)
    assert (det._crowd_session is not det.session) is pays_off
    assert len(found) > len(_person(False).detect(rgb)) + 5
