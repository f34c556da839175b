"""Skipping non-reference frames on the way to a random frame: every frame is still the sequential decode's.

The reader decodes forward from a key frame and skips the packets of non-reference frames shown before the
frame asked for. A wrong skip (a frame something is predicted from, or one later asked for from the cache)
shows up as pixels that differ from a plain sequential decode, so every order here compares all planes.
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import av
import numpy as np
import pytest
from support.videos import VideoSpec, make_video, vfr_times

import framemask.media.reader as reader_module
from framemask.api.frames import _C_FULL, _Y_FULL, frame_pixels
from framemask.media import FrameIndex, FrameReader, iter_frames

SPECS = {
    # CFR, 3 B-frames, B-frames used as references (b-pyramid): only the non-reference ones may be skipped
    "pyramid": VideoSpec(n=90, fps=25, gop=25, bframes=3, options={"b-pyramid": "normal"}),
    # variable frame rate with B-frames: targets are found by timestamp, not by position
    "vfr": VideoSpec(times=vfr_times(), gop=30, bframes=2),
    # open GOPs: B-frames after a key frame in decode order are shown before it and predicted from the
    # previous GOP too (fixed B-frame runs and a 24-frame GOP, so x264 does place such leading B-frames)
    "open_gop": VideoSpec(n=90, fps=25, gop=24, bframes=3, options={"x264-params": "open-gop=1:b-adapt=0"}),
    # P-frames only: nothing to skip
    "no_bframes": VideoSpec(n=90, fps=30, gop=30),
}


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("skip")
    return {name: make_video(folder / f"{name}.mp4", spec) for name, spec in SPECS.items()}


def structure(path: Path) -> tuple[int, int, int]:
    """(B-frames, non-reference frames, leading frames: after a key frame in decode order, shown before it)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = [(p.pts, p.is_keyframe) for p in container.demux(stream) if p.size]
    with av.open(str(path)) as container:
        b_frames = sum(f.pict_type == av.video.frame.PictureType.B for f in container.decode(video=0))
    with av.open(str(path)) as container:
        container.streams.video[0].codec_context.skip_frame = "NONREF"
        nonref = len(packets) - sum(1 for _ in container.decode(video=0))
    key_pts = [pts for pts, key in packets if key]
    leading, last_key = 0, None
    for pts, key in packets:
        last_key = pts if key else last_key
        leading += not key and last_key is not None and pts < last_key
    assert len(key_pts) > 2
    return b_frames, nonref, leading


def test_clips_are_what_they_claim(clips):
    """B-frames used as references, B-frames skipped, leading B-frames of open GOPs: or the tests prove less."""
    pyramid_b, pyramid_nonref, pyramid_leading = structure(clips["pyramid"])
    assert 0 < pyramid_nonref < pyramid_b and pyramid_leading == 0
    assert structure(clips["vfr"])[1] > 0
    open_b, open_nonref, open_leading = structure(clips["open_gop"])
    assert 0 < open_nonref < open_b and open_leading > 0
    assert structure(clips["no_bframes"]) == (0, 0, 0)


def planes(path: Path) -> list[np.ndarray]:
    """Every frame's Y, U, V samples (one array) from a plain sequential decode."""
    return [frame.to_ndarray() for _, frame in iter_frames(path)]


def orders(n: int, name: str) -> dict[str, list[int]]:
    """Random frames, every frame backwards, and forward runs of 20 frames taken last run first."""
    rng = random.Random(name)
    runs = [list(range(start, min(n, start + 19) + 1)) for start in range(1, n + 1, 20)]
    return {
        "random": [rng.randint(1, n) for _ in range(40)],
        "backward": list(range(n, 0, -1)),
        "runs backward": [s for run in reversed(runs) for s in run],
    }


@pytest.mark.parametrize("name", sorted(SPECS))
def test_frames_identical_to_sequential_decode(clips, name):
    path = clips[name]
    expected = planes(path)
    index = FrameIndex.build(path)
    assert len(index) == len(expected) and index.exact_pts
    rgb = [frame.to_ndarray(format="rgb24") for _, frame in iter_frames(path)]
    for order, seqs in orders(len(expected), name).items():
        with FrameReader(path, index) as reader:  # a fresh reader per order: no frames cached from another
            wrong = [s for s in seqs if not np.array_equal(reader.av_frame(s).to_ndarray(), expected[s - 1])]
        with FrameReader(path, index) as reader:
            wrong_rgb = [s for s in seqs if not np.array_equal(reader.frame(s), rgb[s - 1])]
        assert (order, wrong, wrong_rgb) == (order, [], [])


def decoded_to(path: Path, index: FrameIndex, seq: int) -> int:
    """Frames the decoder returned to reach `seq` from its key frame (the reader opened at frame 1)."""
    with FrameReader(path, index) as reader:
        reader.decoded = 0
        reader.av_frame(seq)
        return reader.decoded


def test_skip_path_taken(clips, monkeypatch):
    """The last frame of a GOP of the b-pyramid clip needs fewer decoded frames than there are before it."""
    path = clips["pyramid"]
    index = FrameIndex.build(path)
    seq = 75  # key frames at 1, 26, 51, 76: the last frame of the third GOP
    assert index.key_seq_before(seq) == 51
    skipping = decoded_to(path, index, seq)
    monkeypatch.setattr(reader_module, "SKIP_CODECS", frozenset())
    decoding_all = decoded_to(path, index, seq)
    assert decoding_all >= seq - 51 + 1
    assert skipping < decoding_all - 5


def test_stepping_back_after_a_jump_decodes_the_gop_once(clips):
    """The frames skipped on the way to a frame are missing from the reader's cache: the first step back onto
    one decodes its GOP whole (and keeps it), so stepping on back costs one GOP, not one per skipped frame."""
    path = clips["pyramid"]
    with FrameReader(path, FrameIndex.build(path)) as reader:
        reader.av_frame(75)
        reader.decoded = 0
        for seq in range(74, 50, -1):
            reader.av_frame(seq)
        assert reader.decoded <= 75 - 51


def test_jpeg_planes_are_the_sequential_frame_range_mapped(clips):
    """What /frame encodes for a frame reached by skipping: the sequential decode's planes, each sample mapped
    from limited to full range exactly as the lookup tables say (whatever applies them)."""
    path = clips["pyramid"]
    expected = planes(path)
    height = SPECS["pyramid"].size[1]
    with FrameReader(path, FrameIndex.build(path)) as reader:
        for seq in (75, 40, 12, 90):
            y, u, v = frame_pixels(reader, seq, None, "jpeg")
            sequential = expected[seq - 1]
            assert np.array_equal(y, _Y_FULL[sequential[:height]])
            chroma = _C_FULL[sequential[height:]].reshape(2, height // 2, -1)
            assert np.array_equal(u, chroma[0]) and np.array_equal(v, chroma[1])


def test_no_skip_without_exact_timestamps(clips):
    """Frames identified by counting from the key frame need every frame: no skipping, same pixels."""
    path = clips["pyramid"]
    expected = planes(path)
    index = dataclasses.replace(FrameIndex.build(path), exact_pts=False)
    assert decoded_to(path, index, 75) >= 75 - 51 + 1
    with FrameReader(path, index) as reader:
        seqs = orders(len(expected), "counted")["random"]
        assert [s for s in seqs if not np.array_equal(reader.av_frame(s).to_ndarray(), expected[s - 1])] == []
