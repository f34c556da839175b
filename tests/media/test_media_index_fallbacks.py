"""The frame index where one packet is not one frame: hidden VP8 frames, packed/not-coded MPEG-4 VOPs.

Oracles are independent of framemask: `ffprobe -count_frames` for the count, a plain PyAV decode from the
start for which picture is frame `seq`. Also `nearest`'s documented tie rule at exact midpoints.
"""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import SHARED_MEDIA, ffprobe_count

from framemask.media import FrameIndex, FrameReader

PACKED_AVI = SHARED_MEDIA / "mmaction2_test_ApplyEyeMakeup.avi"  # DivX-style packed B-frames + N-VOPs


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


@pytest.fixture(scope="module")
def vp8_hidden(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """VP8 with alt-ref frames (two-pass libvpx): hidden frames are packets that no decoder outputs."""
    folder = tmp_path_factory.mktemp("vp8")
    out, log = folder / "altref.webm", str(folder / "pass")
    source = ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-t", "4"]
    vp8 = ["-c:v", "libvpx", "-b:v", "300k", "-auto-alt-ref", "1", "-lag-in-frames", "16", "-arnr-maxframes", "7"]
    common = [*source, *vp8, "-g", "50", "-passlogfile", log]
    ffmpeg(*common, "-pass", "1", "-f", "null", "/dev/null")
    ffmpeg(*common, "-pass", "2", str(out))
    return out


@pytest.fixture(scope="module")
def packed_mkv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The packed-B-frame AVI remuxed into Matroska: packed VOPs and N-VOPs outside AVI."""
    if not PACKED_AVI.is_file():
        pytest.fail(f"shared test media missing: {PACKED_AVI}")
    out = tmp_path_factory.mktemp("packed") / "packed.mkv"
    ffmpeg("-fflags", "+genpts", "-i", str(PACKED_AVI), "-c", "copy", "-an", str(out))
    return out


def reference_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(container.streams.video[0])]


def test_hidden_vp8_frames_are_not_counted(vp8_hidden: Path) -> None:
    assert ffprobe_count(vp8_hidden, "packets") > ffprobe_count(vp8_hidden) == 100  # the file really hides frames
    assert FrameIndex.build(vp8_hidden).end_sequence == 100


def test_packed_mpeg4_vops_outside_avi(packed_mkv: Path) -> None:
    with av.open(str(packed_mkv)) as container:
        payloads = [bytes(p) for p in container.demux(container.streams.video[0]) if p.size]
    assert any(p.count(b"\x00\x00\x01\xb6") > 1 for p in payloads)  # packed: two VOPs in a packet
    assert FrameIndex.build(packed_mkv).end_sequence == ffprobe_count(packed_mkv) == ffprobe_count(PACKED_AVI)


@pytest.mark.parametrize("name", ["vp8_hidden", "packed_mkv", "packed_avi"])
def test_every_seq_is_the_decoders_frame(request: pytest.FixtureRequest, name: str) -> None:
    """Frame `seq` read by seeking is the seq-th picture a plain decode from the start outputs."""
    path = PACKED_AVI if name == "packed_avi" else request.getfixturevalue(name)
    if not path.is_file():
        pytest.fail(f"shared test media missing: {path}")
    want = reference_frames(path)
    with FrameReader(path) as reader:
        assert reader.index.end_sequence == len(want)
        for seq in [*range(len(want), 0, -9), 2, 1]:  # backwards: every read seeks
            assert np.array_equal(reader.frame(seq), want[seq - 1]), f"seq {seq}"


def test_nearest_ties_go_to_the_earlier_frame() -> None:
    index = FrameIndex(pts=np.array([0, 40, 80, 200]), keys=np.ones(4, dtype=bool), time_base=Fraction(1, 1000))
    assert [index.nearest(ms) for ms in (20.0, 60.0, 140.0)] == [1, 2, 3]  # exact midpoints
    assert [index.nearest(ms) for ms in (19.9, 20.1, 60.1, 139.9, 140.1)] == [1, 2, 3, 3, 4]
    assert [index.nearest(ms) for ms in (-5.0, 0.0, 200.0, 900.0)] == [1, 1, 4, 4]
