"""`sync` and `align`: the same moment in two videos, and their offset estimated from content alone."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from support.videos import pattern, vfr_times

from framemask.media import FrameIndex, FrameReader
from framemask.streams.align import align
from framemask.streams.compare import sync

CLI = [sys.executable, "-m", "framemask"]


def ffprobe_times_ms(path: Path) -> np.ndarray:
    """Decoded frame times from ffprobe (independent of framemask), ms from the first frame."""
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "frame=pts_time",
            "-of",
            "csv=p=0",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    times = np.array(sorted(float(line.strip(",")) for line in out.split()))
    return (times - times[0]) * 1000.0


def trimmed_copy(path: Path, times: list[float], skip: int, size=(320, 240), crf: str = "28") -> Path:
    """The clip's frames from `skip` on, re-encoded (lossy) with timestamps restarting at 0."""
    tb = Fraction(1, 90000)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = *size, "yuv420p"
        stream.time_base = stream.codec_context.time_base = tb
        stream.options = {"crf": crf, "preset": "veryfast"}
        for i in range(skip, len(times)):
            frame = av.VideoFrame.from_ndarray(pattern(i, *size), format="rgb24")
            frame.pts, frame.time_base = round((times[i] - times[skip]) / tb), tb
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


@pytest.mark.parametrize("ms", [0.0, 500.0, 1000.0, 1234.5, 1499.9, 2999.0, 60_000.0])
def test_sync_skips_what_the_timestamps_say(make, ms, tmp_path) -> None:
    a, b = make("vfr"), make("bframes")
    result = sync(a, b, ms, tmp_path)
    for name, path in (("a", a), ("b", b)):
        times = ffprobe_times_ms(path)
        shown = int(np.searchsorted(times, ms + 1e-6, side="right"))  # frames with time <= ms
        expect = max(shown, 1)
        assert result[name] == {
            "seq": expect,
            "time_ms": pytest.approx(times[expect - 1], abs=1e-3),
            "skipped": expect - 1,
        }


def test_sync_snapshots_are_the_exact_frames(make, tmp_path) -> None:
    a, b = make("vfr"), make("bframes")
    result = sync(a, b, 1234.5, tmp_path / "snaps")
    shots = result["snapshots"]
    for name, path in (("a", a), ("b", b)):
        with FrameReader(path) as reader:
            expect = reader.frame(result[name]["seq"])
        assert np.array_equal(np.asarray(Image.open(shots[name])), expect)
    pair = np.asarray(Image.open(shots["pair"]))
    assert pair.shape == (240 + 24, 320 * 2 + 8, 3)


def test_sync_cli_logs_skipped_frames(make, tmp_path) -> None:
    a, b = make("vfr"), make("bframes")
    done = subprocess.run(
        [*CLI, "sync", str(a), str(b), "--ms", "1500", "--snapshots", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["a"]["skipped"] == 35 and data["b"]["skipped"] == 37  # 30 @ 30 fps + 5 @ 10 fps; 1500/40
    lines = done.stderr.strip().splitlines()
    assert lines[0].startswith("a: skipped 35 of 100 frames to reach seq 36")
    assert lines[1].startswith("b: skipped 37 of 90 frames to reach seq 38")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "sync_1500ms.png",
        "sync_1500ms_a_seq36.png",
        "sync_1500ms_b_seq38.png",
    ]


def test_sync_with_offset_uses_b_timeline(make, tmp_path) -> None:
    result = sync(make("vfr"), make("bframes"), 1500.0, offset_ms=500.0)
    assert result["b"]["seq"] == FrameIndex.build(make("bframes")).frame_at(1000.0)
    assert "snapshots" not in result


@pytest.mark.parametrize("skip", [1, 12, 35, 47])
def test_align_finds_a_trimmed_copy(make, skip, tmp_path) -> None:
    times = list(vfr_times())
    original = make("vfr")
    copy = trimmed_copy(tmp_path / "copy.mp4", times, skip)
    found = align(original, copy)
    assert found.offset_frames == skip
    assert found.offset_ms == pytest.approx(FrameIndex.build(original).time_of(skip + 1), abs=1e-3)
    assert found.confidence > 0.9
    back = align(copy, original)
    assert back.offset_frames == -skip and back.offset_ms == pytest.approx(-found.offset_ms, abs=1e-3)


def test_align_cli_and_a_different_frame_rate(tmp_path) -> None:
    """The copy runs at 15 fps on a 30 fps original: the offset lands on the right frame time."""
    times = [i / 30 for i in range(120)]
    original = trimmed_copy(tmp_path / "orig.mp4", times, 0, crf="18")
    half = [times[i] for i in range(0, 120, 2)]
    copy_times = half[10:]  # starts at original frame 20 (666.667 ms), every other frame
    tb = Fraction(1, 90000)
    with av.open(str(tmp_path / "slow.mp4"), "w") as out:
        stream = out.add_stream("libx264", rate=15)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.time_base = stream.codec_context.time_base = tb
        for t in copy_times:
            frame = av.VideoFrame.from_ndarray(pattern(round(t * 30), 320, 240), format="rgb24")
            frame.pts, frame.time_base = round((t - copy_times[0]) / tb), tb
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    done = subprocess.run(
        [*CLI, "align", str(original), str(tmp_path / "slow.mp4")], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["offset_frames"] == 20 and data["offset_ms"] == pytest.approx(666.667, abs=1e-3)
    assert data["confidence"] > 0.9


def test_align_unrelated_videos_has_low_confidence(make, tmp_path) -> None:
    noise = tmp_path / "noise.mp4"
    rng = np.random.default_rng(3)
    with av.open(str(noise), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for _ in range(50):
            image = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(stream.encode(None))
    assert align(make("vfr"), noise).confidence < 0.5
