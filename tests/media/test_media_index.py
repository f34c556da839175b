"""Frame index: counts equal ffprobe's, time <-> frame is exact and clamped, the blob round-trips."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from conftest import GENERATED, ffprobe_count, shared_media
from support.videos import vfr_times

from framemask.errors import FrameRangeError
from framemask.media import FrameIndex, probe


@pytest.mark.parametrize("path", shared_media(), ids=lambda p: p.name)
def test_shared_media_count_equals_ffprobe(path, require_ffprobe):
    assert FrameIndex.build(path).end_sequence == ffprobe_count(path)


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_generated_count_equals_ffprobe(make, name, require_ffprobe):
    path = make(name)
    index = FrameIndex.build(path)
    assert index.end_sequence == ffprobe_count(path) == len(GENERATED[name].frame_times())


def test_shared_media_is_present():
    assert len(shared_media()) >= 10, "the shared test media folder is missing"


def ffprobe_pts_ms(path) -> np.ndarray:
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pts_time",
            "-of",
            "csv=p=0",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    t = np.sort(np.array([float(v) for v in out if v not in ("", "N/A")]))
    return (t - t[0]) * 1000


def test_vfr_times_match_the_encoded_times(make):
    index = FrameIndex.build(make("vfr"))
    expected = np.array(vfr_times()) * 1000
    assert index.vfr is True
    assert np.abs(index.time_ms - expected).max() < 0.05
    assert np.abs(index.time_ms - ffprobe_pts_ms(make("vfr"))).max() < 0.05


def test_cfr_is_not_vfr_and_fps_is_average(make):
    index = FrameIndex.build(make("cfr"))
    assert index.vfr is False
    assert index.fps == pytest.approx(30.0, rel=1e-6)


def test_bframes_index_is_in_presentation_order(make):
    index = FrameIndex.build(make("bframes"))
    assert np.all(np.diff(index.pts) > 0)
    assert index.keys[0] and index.key_seqs().tolist() == [1, 26, 51, 76]


def test_late_start_is_relative_to_first_frame(make):
    index = FrameIndex.build(make("late_start"))
    assert index.time_ms[0] == 0.0
    assert index.time_of(2) == pytest.approx(1000 / 15, abs=0.02)


@pytest.mark.parametrize(
    "path", [p for p in shared_media() if "vfr" in p.name or p.suffix == ".webm"], ids=lambda p: p.name
)
def test_round_trip_on_real_vfr(path):
    index = FrameIndex.build(path)
    for seq in range(1, index.end_sequence + 1):
        t = index.time_of(seq)
        # duplicate timestamps exist in real webcam files: the last frame at t is on screen
        assert index.time_of(index.frame_at(t)) == t
        assert index.time_of(index.nearest(t)) == t
        assert index.frame_at(t) >= seq


def test_frame_at_and_nearest_on_vfr(make):
    index = FrameIndex.build(make("vfr"))
    # 30 frames at 30 fps (0..966.7 ms), then 10 at 10 fps from 1000 ms, then 60 fps from 2000 ms
    assert index.frame_at(1000) == 31
    assert index.frame_at(1099.9) == 31
    assert index.frame_at(1100) == 32
    assert index.nearest(1040) == 31
    assert index.nearest(1060) == 32
    assert index.frame_at(-5) == 1 and index.nearest(-5) == 1
    assert index.frame_at(1e9) == index.end_sequence and index.nearest(1e9) == index.end_sequence


def test_time_of_is_range_checked(make):
    index = FrameIndex.build(make("cfr"))
    assert index.time_of(1) == 0.0
    with pytest.raises(FrameRangeError):
        index.time_of(0)
    with pytest.raises(FrameRangeError):
        index.time_of(index.end_sequence + 1)


@pytest.mark.parametrize("path", shared_media()[:4] + shared_media()[-3:], ids=lambda p: p.name)
def test_blob_round_trip(path):
    index = FrameIndex.build(path)
    blob = index.to_bytes()
    again = FrameIndex.from_bytes(blob)
    assert np.array_equal(again.pts, index.pts) and np.array_equal(again.keys, index.keys)
    assert again.time_base == index.time_base and again.exact_pts == index.exact_pts
    assert len(blob) < 100 + 2 * index.end_sequence


def test_probe_facts(make):
    info = probe(make("rotated"))
    assert (info.width, info.height, info.coded_width, info.coded_height) == (240, 320, 320, 240)
    assert info.rotation in (90, -270)
    assert info.end_sequence == 30 and info.codec == "h264" and not info.has_audio
    assert probe(make("audio")).has_audio is True
    odd = probe(make("odd"))
    assert (odd.width, odd.height) == (321, 241)
