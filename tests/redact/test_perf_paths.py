"""The anonymizer's fast paths against the slower ones they replace, on real frames of TUD-Campus.

- NanoDet with its input size opened (416x288 for 16:9) finds the boxes of the converted 416x416 graph;
- masks painted straight into I420 planes paint the pixels the RGB path paints (plus, at an odd box edge,
  the chroma-sharing neighbour), with the same look;
- a whole render through I420 stores the same boxes as one through RGB, and its frames match.
"""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from conftest import SHARED_MEDIA

from framemask.detect import box_iou, prepare_models
from framemask.detect._runtime import make_session
from framemask.detect.models import NANODET_ONNX, default_model_dir
from framemask.detect.nanodet import NanoDet
from framemask.errors import ModelError
from framemask.media import FrameReader
from framemask.redact import anonymize_file, pipeline
from framemask.redact.encode import frame_to_i420, i420_frame, i420_to_rgb
from framemask.redact.styles import Blur, Fill, Masker, Mosaic, box_slices

TUD = SHARED_MEDIA / "TUD-Campus.mp4"


def _tud(seq: int) -> av.VideoFrame:
    with FrameReader(TUD) as reader:
        return reader.av_frame(seq)


@pytest.fixture(scope="module")
def model() -> Path:
    prepare_models()
    return default_model_dir() / NANODET_ONNX


def test_open_input_nanodet_finds_the_boxes_of_the_square_graph(model: Path) -> None:
    square = NanoDet(model, 0.25, threads=1, session=make_session(model, 1))
    opened = NanoDet(model, 0.25, threads=1)
    assert opened.open_size and not square.open_size
    for seq in (5, 35, 65):
        rgb = cv2.resize(i420_to_rgb(frame_to_i420(_tud(seq))), (1280, 720), interpolation=cv2.INTER_LINEAR)
        assert opened._letterbox(rgb, square=False)[0].shape == (1, 3, 288, 416)  # 234 rows + margin
        a, b = square.detect(rgb), opened.detect(rgb)
        assert len(a) >= 3 and abs(len(a) - len(b)) <= 1
        # scores may differ by up to 0.05 (below), so a box that close to the threshold may be in one list only
        a = a[a.confidence >= 0.25 + 0.05]
        iou = box_iou(a.xyxy, b.xyxy)
        best = iou.argmax(1)
        matched = iou.max(1) >= 0.9
        assert matched.mean() >= 0.9, f"frame {seq}: {iou.max(1)}"
        assert np.abs(a.confidence[matched] - b.confidence[best[matched]]).max() <= 0.05


def test_the_open_graph_is_cached_beside_the_model_and_reused(model: Path, tmp_path: Path) -> None:
    copy = tmp_path / NANODET_ONNX
    copy.write_bytes(model.read_bytes())
    rgb = cv2.resize(i420_to_rgb(frame_to_i420(_tud(20))), (1280, 720))
    first = NanoDet(copy, 0.25, threads=1)
    (cached,) = tmp_path.glob("nanodet-m-416.open-*.onnx")
    stamp = cached.stat().st_mtime_ns
    second = NanoDet(copy, 0.25, threads=1)
    assert second.open_size and cached.stat().st_mtime_ns == stamp  # loaded, not rebuilt
    a, b = first.detect(rgb), second.detect(rgb)
    assert np.array_equal(a.xyxy, b.xyxy) and np.array_equal(a.confidence, b.confidence)
    assert len(list(tmp_path.glob("nanodet-m-416.open-*.onnx"))) == 1


def test_the_int8_graph_is_cached_beside_the_open_one_and_reused(model: Path, tmp_path: Path) -> None:
    copy = tmp_path / NANODET_ONNX
    copy.write_bytes(model.read_bytes())
    NanoDet(copy, 0.25, threads=1, int8=True)
    (cached,) = tmp_path.glob("nanodet-m-416.open-*.int8-*.onnx")
    stamp = cached.stat().st_mtime_ns
    NanoDet(copy, 0.25, threads=1, int8=True)
    assert cached.stat().st_mtime_ns == stamp  # loaded, not quantised again
    assert len(list(tmp_path.glob("*.onnx"))) == 3  # the model, its open-size graph, their INT8 graph


def test_preparing_models_survives_an_int8_model_that_cannot_be_built(
    model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """INT8 is opt-in: ranges that do not fit (another onnxruntime) must not fail `framemask models --prepare`."""
    from framemask.detect import quantize
    from framemask.detect.nanodet import prepare_variants

    reason = "INT8 ranges do not fit this model: 3 of 34 convolutions left in float"

    def refuse(model: bytes) -> bytes:
        raise ModelError(reason)

    copy = tmp_path / NANODET_ONNX
    copy.write_bytes(model.read_bytes())
    monkeypatch.setattr(quantize, "quantize_convs", refuse)
    said: list[str] = []
    prepare_variants(copy, said.append)
    assert said == [f"INT8 person model not built: {reason}"]
    assert len(list(tmp_path.glob("*.open-*.onnx"))) == 1 and not list(tmp_path.glob("*int8*"))
    with pytest.raises(ModelError, match="do not fit"):  # asking for it says why
        NanoDet(copy, threads=1, int8=True)


def test_default_detectors_are_built_once_per_process_until_models_stop_being_ready(
    model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for built in model.parent.glob(f"{model.stem}*"):  # the model, its manifest, its open-size graph
        if ".int8-" not in built.name:
            (tmp_path / built.name).write_bytes(built.read_bytes())
    monkeypatch.setenv("FRAMEMASK_MODEL_DIR", str(tmp_path))
    first, second = pipeline.default_detectors(("person", "face")), pipeline.default_detectors(("person", "face"))
    assert [id(d) for d in first] == [id(d) for d in second]
    assert pipeline.default_detectors(("face",))[0] is not first[1]  # each target set has its own
    kept = (tmp_path / NANODET_ONNX).read_bytes()
    (tmp_path / NANODET_ONNX).unlink()
    with pytest.raises(ModelError, match="not ready"):
        pipeline.default_detectors(("person", "face"))
    (tmp_path / NANODET_ONNX).write_bytes(kept)
    rebuilt = pipeline.default_detectors(("person", "face"))
    assert rebuilt[0] is not first[0]  # built again once the models were back
    rgb = cv2.resize(i420_to_rgb(frame_to_i420(_tud(20))), (1280, 720))
    assert np.array_equal(rebuilt[0].detect(rgb).xyxy, first[0].detect(rgb).xyxy)


def test_small_faces_setting_looks_for_the_faces_of_a_crowd_at_full_resolution(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """MOT17-04 at 1080p: with people in the targets, faces are looked for at 640 px unless FRAMEMASK_SMALL_FACES
    is set; then at full size, which finds the small faces of the crowd the person detector misses."""
    with FrameReader(SHARED_MEDIA / "mmtracking_demo_MOT17-04_frames1-8.mp4") as reader:
        rgb = reader.frame(4)
    monkeypatch.delenv("FRAMEMASK_SMALL_FACES", raising=False)
    default = pipeline.default_detectors(("person", "face"))
    monkeypatch.setenv("FRAMEMASK_SMALL_FACES", "1")
    thorough = pipeline.default_detectors(("person", "face"))
    assert default[1].max_side == 640 and thorough[1].max_side == 1920  # type: ignore[attr-defined]
    assert thorough[0] is not default[0]  # a separate build, cached under its own key
    faces = [int((pipeline.detect_frame(rgb, d).class_id == 1).sum()) for d in (default, thorough)]
    assert faces[1] >= faces[0] + 5, faces
    monkeypatch.setenv("FRAMEMASK_SMALL_FACES", "0")
    assert pipeline.default_detectors(("person", "face"))[1] is default[1]


def test_crowd_pass_setting_turns_the_second_look_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default detectors look at a crowd twice; FRAMEMASK_CROWD_PASS=0 leaves one look (and fewer people)."""
    with FrameReader(SHARED_MEDIA / "mmtracking_demo_MOT17-04_frames1-8.mp4") as reader:
        rgb = reader.frame(4)
    monkeypatch.delenv("FRAMEMASK_CROWD_PASS", raising=False)
    twice = pipeline.default_detectors(("person",))
    monkeypatch.setenv("FRAMEMASK_CROWD_PASS", "0")
    once = pipeline.default_detectors(("person",))
    assert once[0] is not twice[0]  # a separate build, cached under its own key
    people = [len(pipeline.detect_frame(rgb, d)) for d in (once, twice)]
    assert people[1] >= people[0] + 5, people


BOXES = np.array(
    [
        [101.3, 40.7, 231.0, 401.2],  # a person: fractional, odd edges
        [140.0, 60.0, 180.0, 101.0],  # a face inside it: skipped (already painted)
        [400.0, 300.0, 517.0, 479.0],
        [600.5, -20.0, 700.0, 90.0],  # clipped at the right and top edges
    ]
)


def _region(boxes: np.ndarray, shape: tuple[int, int], ellipse: bool) -> np.ndarray:
    """The pixels a masker may paint: the boxes' pixel rectangles (or their inscribed ellipses)."""
    region = np.zeros(shape, bool)
    for box in boxes:
        rect = box_slices(box, shape[1], shape[0])
        assert rect is not None
        if ellipse:
            h, w = rect[0].stop - rect[0].start, rect[1].stop - rect[1].start
            y = (np.arange(h) + 0.5 - h / 2) / (h / 2)
            x = (np.arange(w) + 0.5 - w / 2) / (w / 2)
            region[rect] |= (y[:, None] ** 2 + x[None, :] ** 2) <= 1.0
        else:
            region[rect] = True
    return region


@pytest.mark.parametrize(
    "masker",
    [Mosaic(), Blur(), Fill(color=(255, 0, 255)), Mosaic(shape="ellipse"), Mosaic(strength=2.5)],
    ids=["mosaic", "blur", "fill", "mosaic-ellipse", "mosaic-strong"],
)
def test_i420_masks_paint_the_pixels_the_rgb_path_paints(masker: Masker) -> None:
    i420 = frame_to_i420(_tud(30))
    height = i420.shape[0] * 2 // 3
    rgb = i420_to_rgb(i420)
    by_rgb = masker.apply(rgb.copy(), BOXES)
    by_i420 = masker.apply_i420(i420.copy(), BOXES)
    region = _region(BOXES, rgb.shape[:2], getattr(masker, "shape", "rect") == "ellipse")

    luma = by_i420[:height] != i420[:height]
    assert not (luma & ~region).any(), "luma painted outside the boxes"
    painted_rgb = (by_rgb != rgb).any(-1)
    assert not (painted_rgb & ~region).any()
    # outside the boxes, the I420 path changes only pixels sharing a chroma sample with a box pixel
    back = i420_to_rgb(by_i420)
    painted_i420 = (back != rgb).any(-1)
    ring = cv2.dilate(region.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & ~region
    assert not (painted_i420 & ~region & ~ring).any()
    if isinstance(masker, Fill):  # a colour no pixel had: both paint exactly the region
        assert np.array_equal(painted_rgb, region) and np.array_equal(painted_i420 & region, region)
    else:  # a mosaic cell or blur can equal a pixel by chance: the paths disagree on under 2% of the region
        assert (painted_rgb ^ painted_i420)[region].mean() < 0.02
    # the same look: inside the boxes the two results differ by rounding, not by content
    diff = np.abs(back.astype(int) - by_rgb.astype(int))[region & ~ring]
    assert diff.mean() < 3.0, diff.mean()


def test_i420_mosaic_cells_are_the_means_of_their_pixels() -> None:
    i420 = frame_to_i420(_tud(12))
    out = Mosaic().apply_i420(i420.copy(), np.array([[96, 48, 256, 208]]))  # 160 px box: 20 px cells
    cell, before = out[48:68, 96:116], i420[48:68, 96:116]
    assert (cell == cell[0, 0]).all()
    assert abs(int(cell[0, 0]) - float(before.mean())) <= 0.5 + 1e-9


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def test_a_render_through_i420_matches_one_through_rgb(tmp_path: Path, model: Path, monkeypatch) -> None:
    fast = anonymize_file(TUD, tmp_path / "i420.mp4")
    monkeypatch.setattr(pipeline, "paints_i420", lambda width, height: False)
    slow = anonymize_file(TUD, tmp_path / "rgb.mp4")
    assert fast.boxes == slow.boxes  # detection saw the same RGB pixels
    assert fast.painted is not None and slow.painted is not None
    assert all(np.array_equal(fast.painted.rows(s), slow.painted.rows(s)) for s in range(1, fast.end_sequence + 1))
    a, b = _frames(tmp_path / "i420.mp4"), _frames(tmp_path / "rgb.mp4")
    assert len(a) == len(b) == fast.end_sequence
    for x, y in zip(a, b, strict=True):
        mse = float(np.mean((x.astype(np.float64) - y.astype(np.float64)) ** 2))
        assert 10 * np.log10(255**2 / max(mse, 1e-9)) > 35.0


def test_an_encoder_frame_wraps_the_painted_planes_without_copying_them(tmp_path: Path) -> None:
    i420 = frame_to_i420(_tud(30))
    expected = i420.copy()
    frame = i420_frame(i420)
    planes = [np.frombuffer(memoryview(p), np.uint8) for p in frame.planes]
    assert all(np.shares_memory(plane, i420) for plane in planes)  # the array's own memory, no copy
    del i420  # the frame keeps the array alive
    h, w = frame.height, frame.width
    got = [planes[0].reshape(h, -1)[:, :w], planes[1].reshape(h // 2, -1)[:, : w // 2], planes[2].reshape(h // 2, -1)]
    assert np.array_equal(np.concatenate([g.reshape(-1) for g in got]), expected.reshape(-1))
    # and x264 encodes what the array held: a lossless encode decodes to the same planes
    out = tmp_path / "one.mp4"
    with av.open(str(out), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"qp": "0", "preset": "ultrafast"}
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with av.open(str(out)) as container:
        decoded = frame_to_i420(next(container.decode(video=0)))
    assert np.array_equal(decoded, expected)
