"""Event tags from what already runs: NanoDet's other COCO classes from the same forward pass as the persons,
people counted from the tracks, descriptions built from both; on real clips of the shared media.

What NanoDet (threshold 0.4) finds there, checked before writing these: a parked car (and at times a
bicycle) on MOT17-04, bottles on the arm-wrestling table, nothing but people worth a tag on TUD-Campus."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_MEDIA

from framemask.detect._runtime import make_session
from framemask.detect.models import NANODET_ONNX, default_model_dir, readiness
from framemask.detect.nanodet import COCO_CLASSES, EMBEDDING_DIM, NanoDet
from framemask.events import Event, Tag, TagDescriber, extract_events
from framemask.events.describe import clock, plural
from framemask.events.tags import object_tags, span_seqs
from framemask.media import FrameIndex, FrameReader
from framemask.redact import anonymize_file

MOT = SHARED_MEDIA / "mmtracking_demo_MOT17-04_frames1-8.mp4"
ARMS = SHARED_MEDIA / "mmaction2_demo_armwrestling.mp4"
TUD = SHARED_MEDIA / "TUD-Campus.mp4"


@pytest.fixture(scope="module")
def model() -> Path:
    ready, why = readiness(("person",))
    if not ready:
        pytest.fail(f"NanoDet not prepared ({why}): run `framemask models --prepare`")
    return default_model_dir() / NANODET_ONNX


@pytest.fixture(scope="module")
def analyzer(model: Path) -> NanoDet:
    return NanoDet.with_features(model, threads=1)


def _frame(path: Path, seq: int) -> np.ndarray:
    with FrameReader(path) as reader:
        return reader.frame(seq)


def test_detect_is_unchanged_and_objects_come_from_the_same_pass(model: Path, analyzer: NanoDet) -> None:
    rgb = _frame(MOT, 1)
    # the analyzer keeps the square 416x416 input (the anonymizer's NanoDet feeds the frame's aspect ratio,
    # tests/redact/test_perf_paths.py): the extra feature outputs must not change its persons
    square = make_session(model, 1, NanoDet.name)
    plain = NanoDet(model, threads=1, session=square).detect(rgb)
    with_features = analyzer.detect(rgb)
    assert set(plain.class_id.tolist()) == {0} and len(plain.xyxy) >= 10  # persons only, as the anonymizer wants
    np.testing.assert_array_equal(plain.xyxy, with_features.xyxy)
    np.testing.assert_array_equal(plain.confidence, with_features.confidence)
    found = analyzer.analyze(rgb)
    np.testing.assert_array_equal(found.persons.xyxy, plain.xyxy)  # the same forward pass, the same persons
    assert "car" in found.objects.labels and "person" not in found.objects.labels
    assert (found.objects.score >= 0.4).all() and (found.objects.class_id >= 1).all()
    h, w = rgb.shape[:2]
    assert (found.objects.xyxy[:, [1, 3]] <= h).all()
    assert (found.objects.xyxy >= 0).all() and (found.objects.xyxy[:, [0, 2]] <= w).all()
    assert found.embedding is not None and found.embedding.shape == (EMBEDDING_DIM,) and EMBEDDING_DIM <= 256
    assert float(np.linalg.norm(found.embedding)) == pytest.approx(1.0, abs=1e-5)
    assert analyzer.detect_objects(rgb).labels == found.objects.labels
    assert NanoDet(model, threads=1).analyze(rgb).embedding is None  # a plain session has no feature outputs
    assert len(COCO_CLASSES) == 80 and COCO_CLASSES[2] == "car"


def test_class_wise_nms_keeps_two_classes_on_one_spot(analyzer: NanoDet) -> None:
    rgb = _frame(ARMS, 32)
    objects = analyzer.analyze(rgb).objects
    assert objects.counts().get("bottle", 0) >= 1
    for label in set(objects.labels):  # within a class no two boxes overlap much
        boxes = objects.xyxy[[i for i, name in enumerate(objects.labels) if name == label]]
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
                iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
                inter = ix * iy
                union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
                assert inter / union <= 0.6


def _events(tmp_path: Path, src: Path, analyzer: NanoDet) -> tuple[list[Event], dict]:
    """Anonymize `src` (people), then the events of the PROCESSED video (key frames, embeddings) with object
    tags read from the original: on the masked master the mosaics next to an object (the bottles in the
    wrestlers' hands, the car beside the walkers) push its score under 0.4 on most frames."""
    result = anonymize_file(src, tmp_path / f"{src.stem}.mp4", targets=("person",), audio=False)
    assert result.track is not None
    boxes = result.track.to_doc()
    return extract_events(result.output, boxes=boxes, analyzer=analyzer, tag_path=src), boxes


def _tags(event: Event) -> dict[str, Tag]:
    return {t.label: t for t in event.tags}


def test_tags_on_mot17_street(tmp_path: Path, analyzer: NanoDet) -> None:
    events, boxes = _events(tmp_path, MOT, analyzer)
    tracks = {b["track"] for e in boxes["sequence"] for b in e["person"]}
    presence = [e for e in events if e.kind == "presence"]
    assert len(presence) == 1
    tags = _tags(presence[0])
    assert tags["car"].peak == 1  # the parked car
    assert tags["person"].count == len(tracks) >= 8 and tags["person"].peak == presence[0].peak_count
    assert presence[0].description.startswith(f"{len(tracks)} people")
    assert "a car" in presence[0].description and presence[0].description.endswith(", 0:00–0:03")  # 8 frames at 3 fps
    assert presence[0].embedding is not None and len(presence[0].embedding) == EMBEDDING_DIM


def test_tags_on_arm_wrestling(tmp_path: Path, analyzer: NanoDet) -> None:
    events, _ = _events(tmp_path, ARMS, analyzer)
    tagged = [e for e in events if "bottle" in _tags(e)]
    assert tagged, [e.description for e in events]
    assert any("bottle" in e.description for e in tagged)
    assert all(_tags(e)["person"].count >= 2 for e in tagged)  # wrestlers and onlookers, from the tracks


def test_people_on_tud_campus(tmp_path: Path, analyzer: NanoDet) -> None:
    events, _ = _events(tmp_path, TUD, analyzer)
    (presence,) = [e for e in events if e.kind == "presence"]
    (scene,) = [e for e in events if e.kind == "scene"]
    person = _tags(presence)["person"]
    assert person.count is not None and person.count >= 6 and 4 <= person.peak <= person.count
    assert _tags(scene)["person"] == person  # the one scene spans the whole clip: the same people
    at_once = "" if person.peak == person.count else f" (up to {person.peak} at once)"
    assert presence.description.startswith(f"{person.count} people{at_once}")
    assert presence.description.endswith(", 0:00–0:03")  # 71 frames at 25 fps
    # only classes seen on two sampled frames or more are tags: no one-frame flukes
    plan = span_seqs(FrameIndex.build(TUD), presence.start_seq, presence.end_seq, presence.key_seq)
    assert len(plan) >= 3


def test_tags_need_two_sightings_and_take_the_peak() -> None:
    samples = [{"car": 1}, {"car": 2, "dog": 1}, {}, {"car": 1, "tie": 1}, {"dog": 1}]
    assert object_tags(samples) == [Tag("car", 2), Tag("dog", 1)]  # "tie" was seen once
    assert object_tags([{"tie": 1}, {}]) == [Tag("tie", 1)]  # a short event: one sighting is enough


def test_descriptions() -> None:
    def event(kind: str, peak: int, people: int, tags: tuple[Tag, ...], start: float, end: float) -> Event:
        return Event(kind, 1, 2, start, end, 1, start, peak_count=peak, people=people, tags=tags)

    describe = TagDescriber().describe
    bike = (Tag("person", 2, 2), Tag("bicycle", 1))
    assert describe(event("presence", 2, 2, bike, 12_000, 19_000), None) == "2 people and a bicycle, 0:12–0:19"
    many = (Tag("person", 2, 3), Tag("car", 2), Tag("dog", 1))
    assert (
        describe(event("presence", 2, 3, many, 62_400, 70_000), None)
        == "3 people (up to 2 at once), 2 cars and a dog, 1:02–1:10"
    )
    assert describe(event("scene", 0, 0, (Tag("bus", 3),), 0, 3_500), None) == "3 buses, 0:00–0:04"
    assert describe(event("scene", 0, 0, (), 0, 999), None) == "scene, 0:00–0:01"
    assert describe(event("presence", 1, 1, (), 3_600_000, 3_601_000), None) == "1 person, 1:00:00–1:00:01"
    assert [plural(n, 2) for n in ("knife", "wine glass", "bench", "sheep")] == [
        "2 knives", "2 wine glasses", "2 benches", "2 sheep",
    ]  # fmt: skip
    assert plural("umbrella", 1) == "an umbrella" and clock(59_999) == "0:59"
