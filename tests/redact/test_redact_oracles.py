"""Render and patch against oracles outside framemask: FFmpeg's auto-rotated decode of the input, ffprobe.

- Orientation: a rotated phone-style input with one bright corner must come out the way `ffmpeg` (which
  applies the display matrix) shows it, both from a full render and from a re-encoded GOP of a patch.
- Audio: an input whose audio runs past its last video frame keeps every audio packet (ffprobe counts).
"""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from support.videos import _write_tone

from framemask.redact import EncodeSettings, render_with_boxes
from framemask.redact.patch import patch_render

W, H, N, FPS = 320, 240, 20, 20  # stored size; displayed 240x320 after a 90 degree rotation


def corner_frame(i: int) -> np.ndarray:
    """Dark grey with a white block in the stored top-left corner and a grey block bottom-right."""
    img = np.full((H, W, 3), 40, dtype=np.uint8)
    img[:60, :80] = 255
    img[-40:, -40:] = 150
    img[100:140, 150 + i : 170 + i] = 90  # something that moves, so frames differ
    return img


@pytest.fixture(scope="module")
def rotated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rot") / "rotated.mp4"
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "12", "bf": "0"}
        stream.set_display_rotation(90)
        for i in range(N):
            frame = av.VideoFrame.from_ndarray(corner_frame(i), format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, FPS)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def ffmpeg_frames(path: Path) -> np.ndarray:
    """Every frame as the ffmpeg CLI shows it (display matrix applied): N x h x w x 3."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        first = next(c.decode(s))
        rotation = round(first.rotation or 0) % 180
        w, h = (first.height, first.width) if rotation == 90 else (first.width, first.height)
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(raw, dtype=np.uint8).reshape(-1, h, w, 3)


def mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def empty_doc(n: int, boxes: dict[int, list[dict]] | None = None) -> dict:
    return {"endSequence": n, "sequence": [{"seq": s, "person": b} for s, b in sorted((boxes or {}).items())]}


def test_the_reference_decode_is_really_rotated(rotated: Path) -> None:
    frames = ffmpeg_frames(rotated)
    assert frames.shape == (N, W, H, 3)  # portrait: the display matrix was applied
    assert not np.array_equal(frames[0], np.rot90(frames[0], 2))  # asymmetric: a reversed turn is visible


def test_render_is_oriented_like_ffmpeg_shows_the_input(rotated: Path, tmp_path: Path) -> None:
    out = render_with_boxes(rotated, tmp_path / "out.mp4", empty_doc(N)).output
    want, got = ffmpeg_frames(rotated), ffmpeg_frames(out)
    assert got.shape == want.shape
    for seq in (1, N // 2, N):
        assert mad(got[seq - 1], want[seq - 1]) < 4, f"frame {seq}"
        assert mad(got[seq - 1], np.rot90(want[seq - 1], 2)) > 15  # upside down is far off


def test_patched_gops_are_oriented_like_ffmpeg_shows_the_input(rotated: Path, tmp_path: Path) -> None:
    settings = EncodeSettings(keyint=10)
    master = render_with_boxes(rotated, tmp_path / "master.mp4", empty_doc(N), settings=settings).output
    box = {"x1": 160, "x2": 230, "y1": 250, "y2": 310}  # displayed bottom-right, away from the bright corner
    result = patch_render(rotated, master, tmp_path / "patched.mp4", empty_doc(N, {5: [box]}), [5], settings=settings)
    assert result.reencoded == [(1, 10)]
    want, got = ffmpeg_frames(rotated), ffmpeg_frames(result.output)
    for seq in (1, 3, 10):  # re-encoded from the original, outside the mask
        assert mad(got[seq - 1], want[seq - 1]) < 4, f"frame {seq}"
        assert mad(got[seq - 1], np.rot90(want[seq - 1], 2)) > 15


def write_long_audio(path: Path, codec: str) -> None:
    """1 s of video (25 frames) and 3 s of audio (`codec`)."""
    with av.open(str(path), mode="w") as out:
        video = out.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 160, 120, "yuv420p"
        video.options = {"preset": "ultrafast"}
        audio = (
            out.add_stream(codec, rate=48000, layout="mono") if codec != "aac" else out.add_stream("aac", rate=48000)
        )
        for i in range(25):
            frame = av.VideoFrame.from_ndarray(np.full((120, 160, 3), i * 9, dtype=np.uint8), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 25)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        _write_tone(out, audio, 3.0)


def audio_facts(path: Path) -> tuple[int, float]:
    """(packets, seconds from the first packet's start to the last packet's end) of the audio, per ffprobe."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries", "packet=pts_time,duration_time",
         "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rows = [[float(v) for v in line.split(",")[:2]] for line in out.split() if line]
    return len(rows), rows[-1][0] + rows[-1][1] - rows[0][0]


def test_audio_after_the_last_video_frame_is_kept(tmp_path: Path) -> None:
    src = tmp_path / "long_audio.mp4"
    write_long_audio(src, "aac")
    packets, seconds = audio_facts(src)
    assert seconds > 2.9  # the input really has 3 s of audio
    out = render_with_boxes(src, tmp_path / "out.mp4", empty_doc(25)).output
    assert audio_facts(out) == (packets, pytest.approx(seconds, abs=1e-3))


def test_reencoded_audio_after_the_last_video_frame_is_kept(tmp_path: Path) -> None:
    src = tmp_path / "long_pcm.mkv"
    write_long_audio(src, "pcm_s16le")  # not copyable into MP4: re-encoded to AAC
    _, seconds = audio_facts(src)
    assert seconds > 2.9
    out = render_with_boxes(src, tmp_path / "out.mp4", empty_doc(25)).output
    assert audio_facts(out)[1] == pytest.approx(seconds, abs=0.05)
