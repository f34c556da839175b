"""Shared inference plumbing: ONNX Runtime sessions with bounded threads, NMS, box geometry."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from framemask.detect.base import DEFAULT_THREADS
from framemask.errors import ModelError

__all__ = ["DEFAULT_THREADS", "check_rgb", "make_session", "nms", "onnx_errors", "planar_blob", "shrink"]
_ORT_ERRORS = "onnxruntime.capi.onnxruntime_pybind11_state"  # its exceptions share no base class but Exception


def make_session(model: bytes | Path, threads: int = DEFAULT_THREADS, name: str = "model") -> ort.InferenceSession:
    """A CPU session with `threads` intra-op threads and sequential execution (the machine is shared)."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, threads)
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    # idle intra-op threads spin-wait by default, burning a core the decoder and encoder need
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    with onnx_errors(name):
        source = str(model) if isinstance(model, Path) else model
        return ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])


@contextmanager
def onnx_errors(name: str) -> Iterator[None]:
    """Translate onnxruntime failures (corrupt file, bad shapes) into `ModelError`."""
    try:
        yield
    except Exception as exc:
        if type(exc).__module__ != _ORT_ERRORS:
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{name}: onnxruntime failed: {first}") from exc


def nms(xyxy: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, best score first (OpenCV's implementation)."""
    if len(xyxy) == 0:
        return np.zeros(0, np.int64)
    xywh = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1).astype(np.float64)
    keep = cv2.dnn.NMSBoxes(xywh.tolist(), scores.astype(np.float64).tolist(), 0.0, iou)
    return np.asarray(keep, dtype=np.int64).reshape(-1)


def check_rgb(rgb: np.ndarray, who: str) -> None:
    """Detectors take H x W x 3 uint8 frames; anything else is a programming error worth a clear message."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8 or min(rgb.shape[:2]) < 1:
        raise ValueError(f"{who}.detect expects an HxWx3 uint8 RGB frame, got {rgb.dtype} {rgb.shape}")


def planar_blob(
    rgb: np.ndarray, height: int, width: int, mean_bgr: np.ndarray, std_bgr: np.ndarray | None = None
) -> np.ndarray:
    """A (1, 3, `height`, `width`) float32 BGR blob: `rgb` (at most that size) normalised as (x - mean) / std
    at the top left, zeros (the mean) elsewhere. Plane by plane: the same numbers as one strided numpy
    expression over the whole image, 6x faster."""
    h, w = rgb.shape[:2]
    blob = np.zeros((1, 3, height, width), np.float32)
    for c in range(3):
        plane = blob[0, c, :h, :w]
        np.subtract(rgb[..., 2 - c], mean_bgr[c], out=plane, dtype=np.float32)
        if std_bgr is not None:
            plane /= std_bgr[c]
    return blob


def shrink(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """`image` downscaled to `width` x `height` as OpenCV's INTER_AREA does it, about twice as fast.

    INTER_AREA is fast only for an exact 2x: at any other ratio (1280 -> 416, 1920 -> 640) it weighs every
    source pixel into every output pixel it touches, 3-6 ms a 720p/1080p frame here. So while the image is
    at least three times the target on both axes it is first halved with INTER_AREA's 2x path (an odd last
    row or column is dropped: under one source pixel), and only the rest, a ratio of 1.5-3 on a quarter of
    the pixels or fewer, takes the general path. (Halving further, down to a ratio under 2, was faster still
    but blurred small people more: fewer confirmed tracks in the MOT17-04 crowd.) The pixels differ from a
    direct INTER_AREA by a mean of 0.4-0.8 grey levels on upscaled street frames
    (tests/detect/test_detect_preprocess.py, bench/preprocess.py)."""
    while image.shape[1] >= 3 * width and image.shape[0] >= 3 * height:
        h, w = image.shape[:2]
        image = cv2.resize(image[: h - h % 2, : w - w % 2], (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    if image.shape[1] == width and image.shape[0] == height:
        return image
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
