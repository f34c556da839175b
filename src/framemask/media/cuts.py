"""Hard cuts as the frames stream past: where a new shot starts, decided one frame later.

The anonymizer detects people on every few frames and fills the frames between by interpolation. Across a
cut that is wrong: a person of the old shot matched with one of the new slides between their places, and the
new shot's first frames get boxes half-way to where its people are. So the pipeline asks `ShotCuts` about every
frame and detects on both sides of a cut (`framemask.redact.pipeline`).

PySceneDetect decides (its adaptive detector: the content detector the events timeline uses, judged against
the frames around), on a small copy of each frame: hard cuts survive the downscale, and the cost stays ~0.15 ms
a frame whatever the video's size.
"""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING

import cv2
import numpy as np

from framemask.media.planes import i420_planes
from framemask.partial_import import import_in_background, import_parts

if TYPE_CHECKING:
    from scenedetect import AdaptiveDetector

__all__ = [
    "CUT_WIDTH",
    "MIN_CHANGE",
    "RATIO",
    "RESUME_FRAMES",
    "ShotCuts",
    "preload_detector",
    "small_bgr_i420",
    "small_bgr_rgb",
]

MIN_CHANGE = 27.0
"""Least content change of a cut: PySceneDetect's default threshold for its content detector (the mean change
of hue, saturation and value between two frames, 0-255). Within a shot frames change by 0-12 (up to ~40 when a
hand-held camera shakes or a frame is corrupt); cuts between the shared test clips by 29 (a street and its
mirror image) to 107."""
RATIO = 3.0
"""How many times the change around it a cut's change must be: PySceneDetect's adaptive default."""
CUT_WIDTH = 128
"""Width of the copy the detector compares (height by the frame's aspect ratio, even)."""
RESUME_FRAMES = 50
"""How far back (in frames, ~2 s) a cut's first frame is looked for: a cut back to a view seen that recently (the
end of a run of corrupt frames, a camera swung away and back) resumes it, and the tracker keeps its ids there."""


def _small_size(width: int, height: int) -> tuple[int, int]:
    w = min(CUT_WIDTH, width) // 2 * 2 or 2
    h = max(2, round(height * w / max(width, 1) / 2) * 2)
    return w, h


def small_bgr_i420(i420: np.ndarray) -> np.ndarray:
    """A small BGR copy of an I420 frame ((H*3/2) x W: Y, U, V planes), scaled plane by plane before the
    colour conversion so the full frame is never converted."""
    luma, u, v = i420_planes(i420)
    w, h = _small_size(luma.shape[1], luma.shape[0])
    planes = [_shrink(luma, w, h), _shrink(u, w // 2, h // 2), _shrink(v, w // 2, h // 2)]
    small = np.concatenate([p.reshape(-1) for p in planes]).reshape(-1, w)
    return cv2.cvtColor(small, cv2.COLOR_YUV2BGR_I420)


def small_bgr_rgb(rgb: np.ndarray) -> np.ndarray:
    """A small BGR copy of an RGB frame."""
    w, h = _small_size(rgb.shape[1], rgb.shape[0])
    return cv2.cvtColor(_shrink(rgb, w, h), cv2.COLOR_RGB2BGR)


def _shrink(image: np.ndarray, w: int, h: int) -> np.ndarray:
    """`image` at w x h: bilinear to twice that, then pixel areas (area alone on a whole 720p plane costs
    ~0.19 ms, the two steps ~0.04 ms, and averaging the last 2 x 2 keeps texture from aliasing into the score)."""
    if image.shape[1] > 2 * w and image.shape[0] > 2 * h:
        image = cv2.resize(image, (2 * w, 2 * h), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)


DETECTOR_PARTS = {"scenedetect": {"AdaptiveDetector": "scenedetect.detectors.adaptive_detector"}}
"""The detector, by the submodule defining it: imported without PySceneDetect's `__init__`
(`framemask.partial_import`), which imports its video back ends and output writers and runs an `ffmpeg` to see
whether one is there (0.25 s against 0.03 s)."""


ADAPTIVE = "scenedetect.detectors.adaptive_detector"


def preload_detector() -> None:
    """Start importing PySceneDetect's detector on a daemon thread (once per process), beside the probe and the
    detectors' set-up; the detect stage then finds it loaded at its second frame (or waits for it)."""
    import_in_background(ADAPTIVE, DETECTOR_PARTS, "framemask-import-scenedetect")


def _import_detector() -> type[AdaptiveDetector]:
    detector: type[AdaptiveDetector] = import_parts(ADAPTIVE, DETECTOR_PARTS).AdaptiveDetector
    return detector


class ShotCuts:
    """Which frames, fed in order, start a new shot; each answer comes `latency` frames late.

    PySceneDetect's adaptive detector: a frame is a cut when its content change is at least `MIN_CHANGE`
    and `RATIO` times the mean change of the `latency` frames on either side. The frames after it are
    what tell a cut (calm again) from a shaking hand-held camera (the changes around are high too) and from
    a camera flash (the next frame jumps back). A cut within `min_frames` of the last one is not reported.
    PySceneDetect is imported on the second frame, so the first frame's work need not wait for it.

    A cut whose first frame differs by less than `MIN_CHANGE` from one of the `RESUME_FRAMES` frames before the
    last is also put in `resumed`: the view it cuts to was on screen moments ago, as after a run of corrupt
    frames in a recording with packet loss, so its people are likely the ones the tracks follow. (A cut back to
    the shot before the last, within those frames, counts as resumed too.)"""

    latency = 1
    RATE = 25.0
    """The frame rate PySceneDetect's timecodes are given: any does, as every length here is counted in frames."""

    def __init__(self, min_frames: int) -> None:
        self.min_frames = max(1, min_frames)
        self._detector: AdaptiveDetector | None = None
        self._first: np.ndarray | None = None
        self._fed = 0
        self._recent: collections.deque[tuple[int, np.ndarray]] = collections.deque(maxlen=RESUME_FRAMES + 3)
        """(position, small copy) of the last frames fed, oldest first: enough for a cut reported one frame late."""
        self.resumed: set[int] = set()
        """Positions of reported cuts back to a view seen within `RESUME_FRAMES` frames."""

    def feed(self, small_bgr: np.ndarray) -> list[int]:
        """Feed the next frame's small copy (`small_bgr_i420`, `small_bgr_rgb`); the 0-based positions (in
        feeding order) of the frames now known to start a new shot. The first frame never does."""
        self._fed += 1
        self._recent.append((self._fed - 1, small_bgr))
        if self._fed == 1:
            self._first = small_bgr
            return []
        if self._detector is None:
            self._detector = self._make_detector()
            assert self._first is not None
            self._process(0, self._first)
            self._first = None
        return self._process(self._fed - 1, small_bgr)

    def _make_detector(self) -> AdaptiveDetector:
        return _import_detector()(
            adaptive_threshold=RATIO,
            min_scene_len=self.min_frames,
            window_width=self.latency,
            min_content_val=MIN_CHANGE,
        )

    def _process(self, index: int, small_bgr: np.ndarray) -> list[int]:
        from scenedetect.common import FrameTimecode

        assert self._detector is not None
        cuts = self._detector.process_frame(FrameTimecode(index, self.RATE), np.ascontiguousarray(small_bgr))
        found = [cut.frame_num for cut in cuts]
        self.resumed.update(position for position in found if self._resumes(position))
        return found

    def _resumes(self, position: int) -> bool:
        """Whether the frame at `position` looks like one of the `RESUME_FRAMES` frames before the one just
        before it: a mean change of hue, saturation and value below `MIN_CHANGE`."""
        seen = dict(self._recent)
        if position not in seen:
            return False
        cut = _hsv(seen[position])
        earlier = range(position - 1 - RESUME_FRAMES, position - 1)
        return any(float(np.abs(cut - _hsv(seen[p])).mean()) < MIN_CHANGE for p in earlier if p in seen)


def _hsv(small_bgr: np.ndarray) -> np.ndarray:
    """Hue, saturation and value of a small copy, signed for differences (made only at a cut)."""
    return cv2.cvtColor(small_bgr, cv2.COLOR_BGR2HSV).astype(np.int16)
