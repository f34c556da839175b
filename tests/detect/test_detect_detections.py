"""`Detections`: validation messages, selection, merge, geometry and the seed format."""

from __future__ import annotations

import numpy as np
import pytest

from framemask.detect import LABELS, Detections, label_id


def make(boxes, labels=None, ids=None) -> Detections:
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    labels = labels or ["person"] * len(boxes)
    return Detections(
        boxes,
        np.linspace(0.9, 0.5, len(boxes)),
        np.array([LABELS.index(x) for x in labels]),
        None if ids is None else np.asarray(ids),
    )


def _arrays(n_box: int = 1, box_cols: int = 4, n_conf: int | None = None, cls=None, ids=None, box=None):
    n_conf = n_box if n_conf is None else n_conf
    return {
        "xyxy": np.zeros((n_box, box_cols)) if box is None else np.asarray(box),
        "confidence": np.zeros(n_conf),
        "class_id": np.zeros(n_box) if cls is None else np.asarray(cls),
        "tracker_id": ids,
    }


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (_arrays(2, box_cols=3), r"xyxy must have shape \(N, 4\), got \(2, 3\)"),
        (_arrays(2, n_conf=3), r"confidence must have shape \(2,\), got \(3,\)"),
        (_arrays(2, cls=np.zeros((2, 1))), r"class_id must have shape \(2,\)"),
        (_arrays(1, ids=np.zeros(2)), r"tracker_id must have shape \(1,\), got \(2,\)"),
        (_arrays(1, cls=[2]), r"class_id must be in 0..1"),
        (_arrays(1, box=[[0, 0, np.nan, 1]]), "finite"),
    ],
)
def test_validation_messages(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        Detections(**kwargs)


def test_dtypes_empty_and_labels() -> None:
    d = make([[0, 0, 10, 10]], ids=[7])
    assert (d.xyxy.dtype, d.confidence.dtype, d.class_id.dtype, d.tracker_id.dtype) == (
        np.float32,
        np.float32,
        np.int32,
        np.int64,
    )
    empty = Detections.empty()
    assert len(empty) == 0 and empty.xyxy.shape == (0, 4) and empty.tracker_id is None
    assert Detections.empty(tracked=True).tracker_id.shape == (0,)
    assert Detections(np.zeros(0), [], []).xyxy.shape == (0, 4)
    assert label_id("face") == 1
    with pytest.raises(ValueError, match="known labels: person, face"):
        label_id("car")


def test_getitem_mask_index_and_with_label() -> None:
    d = make([[0, 0, 1, 1], [1, 1, 2, 2], [2, 2, 3, 3]], ["person", "face", "person"], ids=[1, 2, 3])
    assert d[d.confidence > 0.6].tracker_id.tolist() == [1, 2]
    assert d[np.array([2, 0])].tracker_id.tolist() == [3, 1]
    assert isinstance(d[1], Detections) and d[1].tracker_id.tolist() == [2]
    people = d.with_label("person")
    assert people.tracker_id.tolist() == [1, 3] and people.labels() == ["person", "person"]


def test_merge_keeps_tracker_ids_only_when_all_have_them() -> None:
    a, b = make([[0, 0, 1, 1]], ids=[1]), make([[1, 1, 2, 2]], ["face"], ids=[2])
    merged = Detections.merge([a, b])
    assert len(merged) == 2 and merged.tracker_id.tolist() == [1, 2] and merged.class_id.tolist() == [0, 1]
    assert Detections.merge([a, make([[0, 0, 1, 1]])]).tracker_id is None
    assert len(Detections.merge([])) == 0


def test_clip_drops_boxes_outside_and_pad_grows_by_fraction() -> None:
    d = make([[-5, -5, 20, 10], [200, 200, 300, 300], [10, 10, 20, 30]])
    clipped = d.clip(100, 50)
    assert clipped.xyxy.tolist() == [[0, 0, 20, 10], [10, 10, 20, 30]]
    padded = make([[10, 10, 20, 30]]).pad(0.1)
    assert np.allclose(padded.xyxy, [[9, 8, 21, 32]])
    assert np.allclose(make([[0, 10, 20, 30]]).pad(0.5, 25, 100).xyxy, [[0, 0, 25, 40]])


def test_to_seed_integer_clipped_every_label_present() -> None:
    d = make([[-3.4, 2.6, 700.2, 40.5], [10, 10, 10.2, 20]], ["face", "person"])
    seed = d.to_seed(640, 360)
    assert seed == {"person": [], "face": [{"x1": 0, "x2": 640, "y1": 3, "y2": 40}]}
    back = Detections.from_seed({"person": [{"x1": 1, "x2": 5, "y1": 2, "y2": 8}], "face": []})
    assert back.xyxy.tolist() == [[1, 2, 5, 8]] and back.labels() == ["person"]
