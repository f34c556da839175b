"""A render shows as its input did: the pixel aspect ratio and the colour description survive, and so do the
colours a player derives from them (decoded to RGB, honouring each file's own tags)."""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from conftest import SHARED_MEDIA
from support.videos import VideoSpec, make_video, pattern

from framemask.media import VideoSignal, normalize_rotation, probe, rotate
from framemask.redact import EncodeSettings, render_with_boxes
from framemask.redact.encode import frame_to_i420, i420_frame, i420_to_rgb
from framemask.redact.patch import patch_render

N = 20
BT709, BT2020, HLG, BT601 = 1, 9, 18, 6
TV, PC = 1, 2

CASES = {
    # name: (spec, what the master must say: sar, primaries, transfer, matrix, range)
    "untagged": (VideoSpec(n=N), ("1:1", None, None, None, None)),
    "anamorphic": (VideoSpec(n=N, sar=Fraction(4, 3)), ("4:3", None, None, None, None)),
    "full range": (
        VideoSpec(n=N, pix_fmt="yuvj420p", color=(BT709, BT709, BT709, PC)),
        ("1:1", "bt709", "bt709", "bt709", "pc"),
    ),
    "10-bit HLG": (
        VideoSpec(n=N, pix_fmt="yuv420p10le", color=(BT2020, HLG, BT2020, TV)),
        ("1:1", "bt2020", "arib-std-b67", "bt2020nc", "tv"),
    ),
    # the planes turned, not converted; the pixel turned on its side
    "portrait, full range, anamorphic": (
        VideoSpec(n=N, rotation=90, sar=Fraction(4, 3), pix_fmt="yuvj420p", color=(BT709, BT709, BT709, PC)),
        ("3:4", "bt709", "bt709", "bt709", "pc"),
    ),
    # painted in RGB (an odd size has no 4:2:0): back in BT.601 at limited range
    "odd size, BT.709": (
        VideoSpec(n=N, size=(321, 241), pix_fmt="yuv444p", color=(BT709, BT709, BT709, TV)),
        ("1:1", "bt709", "bt709", "smpte170m", "tv"),
    ),
}


def stream_signal(path: Path) -> dict[str, str]:
    entries = "stream=sample_aspect_ratio,color_primaries,color_transfer,color_space,color_range"
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-of", "default=nw=1", "-show_entries", entries, path],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(line.split("=", 1) for line in out.split())


def shown_rgb(path: Path) -> list[np.ndarray]:
    """Every frame as a player shows it: RGB from the file's own matrix and range, display rotation applied."""
    with av.open(str(path)) as c:
        return [
            rotate(f.to_ndarray(format="rgb24"), normalize_rotation(f.rotation)).astype(np.int16)
            for f in c.decode(video=0)
        ]


def expected(want: tuple[str, str | None, str | None, str | None, str | None]) -> dict[str, str]:
    sar, primaries, transfer, matrix, rng = want
    unknown = "unknown"
    return {
        "sample_aspect_ratio": "N/A" if sar == "1:1" else sar,  # ffprobe prints no ratio for square pixels
        "color_primaries": primaries or unknown,
        "color_transfer": transfer or unknown,
        "color_space": matrix or unknown,
        "color_range": rng or unknown,
    }


@pytest.mark.parametrize("name", CASES)
def test_a_render_keeps_aspect_and_colours(tmp_path: Path, name: str) -> None:
    spec, want = CASES[name]
    src = make_video(tmp_path / "in.mp4", spec)
    out = render_with_boxes(src, tmp_path / "out.mp4", {"endSequence": N, "sequence": []}).output
    assert stream_signal(out) == expected(want)
    before, after = shown_rgb(src), shown_rgb(out)
    assert len(before) == len(after) == N
    # the same colours on screen: x264 at crf 23 (and, at an odd size, the RGB round trip) moves a sample by
    # 1-3 levels on average; a lost range or matrix moves the test pattern's colours by 5-9
    assert float(np.mean([np.abs(a - b).mean() for a, b in zip(before, after, strict=True)])) < 4


@pytest.mark.parametrize(
    ("name", "want"),
    [
        ("mmaction2_demo_armwrestling.mp4", {"sample_aspect_ratio": "64:51"}),  # anamorphic SD
        (  # a Samsung phone's portrait clip: HEVC, full range, BT.601, VFR, a -90 degree display matrix
            "immich_samsung-one-ui-6_motionphoto_video.mp4",
            {"color_range": "pc", "color_space": "bt470bg", "color_primaries": "bt470bg"},
        ),
    ],
)
def test_real_clips_keep_their_signal(tmp_path: Path, name: str, want: dict[str, str]) -> None:
    src = SHARED_MEDIA / name
    n = probe(src).end_sequence
    out = render_with_boxes(src, tmp_path / "out.mp4", {"endSequence": n, "sequence": []}).output
    signal = stream_signal(out)
    assert {k: signal[k] for k in want} == want
    before, after = shown_rgb(src), shown_rgb(out)
    assert len(before) == len(after) == n
    assert float(np.mean([np.abs(a - b).mean() for a, b in zip(before, after, strict=True)])) < 4


def test_probe_reports_the_signal_as_displayed(tmp_path: Path) -> None:
    src = make_video(tmp_path / "in.mp4", CASES["portrait, full range, anamorphic"][0])
    info = probe(src)
    assert (info.width, info.height) == (240, 320)
    assert info.signal == VideoSignal(Fraction(3, 4), BT709, BT709, BT709, PC)
    assert {k: info.to_json()[k] for k in ("sample_aspect_ratio", "color_space", "color_range")} == {
        "sample_aspect_ratio": "3:4",
        "color_space": "bt709",
        "color_range": "pc",
    }


def test_an_absurd_aspect_ratio_is_read_as_square_pixels(tmp_path: Path) -> None:
    """A corrupt or hostile header must not make the master (and the editor) 100 times wider than tall."""
    src = make_video(tmp_path / "in.mp4", VideoSpec(n=3, sar=Fraction(100, 1)))
    assert probe(src).signal.sample_aspect_ratio == 1
    out = render_with_boxes(src, tmp_path / "out.mp4", {"endSequence": 3, "sequence": []}).output
    assert stream_signal(out)["sample_aspect_ratio"] == "N/A"


def test_a_re_encoded_gop_says_what_the_master_says(tmp_path: Path) -> None:
    """A corrected GOP is spliced into the master: its SPS must carry the same aspect ratio and colours, or
    players would switch colours (and shape) in the middle of the video."""
    spec = VideoSpec(n=N, sar=Fraction(4, 3), pix_fmt="yuvj420p", color=(BT709, BT709, BT709, PC))
    src = make_video(tmp_path / "in.mp4", spec)
    settings = EncodeSettings(keyint=10)
    master = render_with_boxes(src, tmp_path / "master.mp4", {"endSequence": N, "sequence": []}, settings=settings)
    box = {"x1": 20, "x2": 180, "y1": 10, "y2": 130}
    doc = {"endSequence": N, "sequence": [{"seq": 15, "person": [box]}]}
    patched = patch_render(src, master.output, tmp_path / "patched.mp4", doc, [15], settings=settings)
    assert patched.reencoded == [(11, 20)]
    with av.open(str(patched.output)) as c:
        stream = c.streams.video[0]
        frames = [(f.colorspace, f.color_range, f.color_primaries) for f in c.decode(stream)]
        assert stream.sample_aspect_ratio == Fraction(4, 3)
    assert frames == [(BT709, PC, BT709)] * N


@pytest.mark.parametrize("rotation", [0, 90, 180, 270, -90])
def test_turning_the_planes_is_turning_the_picture(rotation: int) -> None:
    """A rotated video is painted in its I420 planes: turning them shows what turning the RGB picture shows."""
    rgb = pattern(7, 64, 48)
    i420 = np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420))
    turned = frame_to_i420(i420_frame(i420), rotation)
    assert np.array_equal(i420_to_rgb(turned), rotate(i420_to_rgb(i420), rotation))
