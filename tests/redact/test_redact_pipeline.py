"""Pipeline mechanics with a detector that reads the frame number from the decoded pixels.

The generated test videos show each frame's number as 8 binary blocks, so this detector knows which frame
it was given without any side channel, and places one person box at a position that depends on it. That
makes stride, interpolation by time, bounded queues and failure handling checkable to the pixel.
"""

from __future__ import annotations

import threading
from pathlib import Path

import av
import numpy as np
import pytest
from support.videos import VideoSpec, frame_number, make_video, pattern

from framemask.detect import Detections
from framemask.redact import anonymize_file, painted_from_doc
from framemask.redact.pipeline import LOOKAHEAD, QUEUE_FRAMES


class FrameReadingDetector:
    """A person box at x = 40 + 2 * (frame index); raises on `fail_at` if set."""

    name, label = "frame-reader", "person"

    def __init__(self, fail_at: int | None = None) -> None:
        self.seen: list[int] = []
        self.fail_at = fail_at
        self.progress: list[int] = [0]
        self.in_flight: list[int] = []

    def detect(self, rgb: np.ndarray) -> Detections:
        i = frame_number(rgb)
        self.seen.append(i)
        self.in_flight.append(i + 1 - self.progress[-1])
        if self.fail_at is not None and i == self.fail_at:
            raise RuntimeError(f"detector failed on frame {i}")
        x = 40 + 2 * i
        return Detections.from_boxes([[x, 100, x + 40, 200]], [0.9], "person")


def test_stride_detects_every_kth_frame_and_interpolates_by_time(tmp_path: Path) -> None:
    times = [i / 30 for i in range(20)] + [19 / 30 + i / 10 for i in range(1, 22)]  # 30 fps, then 10 fps
    src = make_video(tmp_path / "vfr.mp4", VideoSpec(times=tuple(times), gop=10))
    detector = FrameReadingDetector()
    result = anonymize_file(src, tmp_path / "out.mp4", detectors=[detector], stride=3)
    detected = [*range(0, 41, 3), 40]  # every 3rd frame and the last one
    assert sorted(detector.seen) == detected  # detections run ahead in parallel: any order, each once
    for entry in result.boxes["sequence"]:
        i = entry["seq"] - 1
        a = max(d for d in detected if d <= i)
        b = min(d for d in detected if d >= i)
        t = 0.0 if a == b else (times[i] - times[a]) / (times[b] - times[a])
        x = 40 + 2 * (a + t * (b - a))  # interpolated by presentation time, not by frame index
        (box,) = entry["person"]  # detected: tight, one track from the first frame to the last
        assert abs(box["x1"] - x) <= 0.5 and box["x2"] - box["x1"] == 40 and box["track"] == 1, (entry, x)
        (painted,) = result.painted.boxes(entry["seq"]).tolist()  # painted: padded by 10% a side
        assert painted == [box["x1"] - 4, 90, box["x2"] + 4, 210]


def test_queues_bound_the_frames_in_flight(tmp_path: Path) -> None:
    src = make_video(tmp_path / "long.mp4", VideoSpec(n=400, fps=50, size=(96, 64), gop=50))
    detector = FrameReadingDetector()
    anonymize_file(
        src, tmp_path / "out.mp4", detectors=[detector], stride=4, progress=lambda d, t: detector.progress.append(d)
    )
    assert len(detector.seen) == 101
    # the three queues, two strides (a detected frame waits for the next one to be tracked), the strides
    # detected ahead, a frame per stage
    assert max(detector.in_flight) <= 3 * QUEUE_FRAMES + (2 + LOOKAHEAD) * 4 + 4


def test_a_failing_stage_stops_everything_and_leaves_no_file(tmp_path: Path) -> None:
    src = make_video(tmp_path / "in.mp4", VideoSpec(n=120, fps=30))
    threads_before = threading.active_count()
    with pytest.raises(RuntimeError, match="frame 60"):
        anonymize_file(src, tmp_path / "out.mp4", detectors=[FrameReadingDetector(fail_at=60)], stride=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]
    assert threading.active_count() == threads_before


def _two_shots(path: Path, n: int, cut: int, size: tuple[int, int] = (320, 240), fps: int = 30) -> Path:
    """`pattern` frames (numbered), whose picture below the number turns into other stripes at frame `cut`."""
    width, height = size
    block = max(width // 10, 4)
    other = np.zeros((height, width, 3), np.uint8)
    other[:, :, 0], other[::8] = 200, (30, 90, 60)
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "sc_threshold": "0"}
        for i in range(n):
            img = pattern(i, width, height)
            if i >= cut:
                img[block:] = other[block:]
            out.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(stream.encode(None))
    return path


class ShotReadingDetector(FrameReadingDetector):
    """As `FrameReadingDetector`, with the person 80 px higher in the second shot (red stripes)."""

    def detect(self, rgb: np.ndarray) -> Detections:
        found = super().detect(rgb)
        if rgb[100:, :, 0].mean() > 150:
            found.xyxy[:, [1, 3]] -= 80
        return found


def test_a_hard_cut_is_detected_on_both_sides(tmp_path: Path) -> None:
    src = _two_shots(tmp_path / "cut.mp4", n=50, cut=23)
    detector = ShotReadingDetector()
    result = anonymize_file(src, tmp_path / "out.mp4", detectors=[detector], stride=5)
    # the old shot's last frame and the new one's first are looked at; the stride counts again from the cut
    assert sorted(detector.seen) == [0, 5, 10, 15, 20, 22, 23, 28, 33, 38, 43, 48, 49]
    for entry in result.boxes["sequence"]:  # nothing slides across the cut: every box is where its shot has it
        (box,) = entry["person"]
        i = entry["seq"] - 1
        assert (box["x1"], box["y1"]) == (40 + 2 * i, 100 if i < 23 else 20), entry
    # the cut is stored with the boxes, and a re-render from them paints what the first render painted
    assert [entry["seq"] for entry in result.boxes["sequence"] if entry.get("cut")] == [24]
    assert {len(result.painted.rows(s)) for s in range(1, 51)} == {1}  # the old shot's person is not held over
    repainted = painted_from_doc(result.boxes, 50, 320, 240, result.policy)
    assert all(np.array_equal(repainted.rows(s), result.painted.rows(s)) for s in range(1, 51))


def test_nobody_of_the_new_shot_inherits_an_id_of_the_old_one(tmp_path: Path) -> None:
    """The person of the second shot stands where the first shot's stood: each shot has one track of its own."""
    src = _two_shots(tmp_path / "cut.mp4", n=50, cut=23)
    result = anonymize_file(src, tmp_path / "out.mp4", detectors=[FrameReadingDetector()], stride=5)
    ids = [[box["track"] for box in entry["person"]] for entry in result.boxes["sequence"]]
    before, after = {i for seq in ids[:23] for i in seq}, {i for seq in ids[23:] for i in seq}
    assert all(len(seq) == 1 for seq in ids) and len(before) == 1 and len(after) == 1 and before != after, ids
