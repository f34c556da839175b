"""Review proxies: the same frames at the same times as a long-GOP original, each a short decode away."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support.videos import VideoSpec, frame_number, make_video, psnr, vfr_times

from framemask.media import FrameIndex, FrameReader, probe
from framemask.redact.proxy import longest_gop_ms, make_review_proxy, needs_proxy, proxy_settings


@pytest.mark.parametrize(
    ("gop", "fps", "longest", "needed"),
    [(10, 30, 333.3, False), (30, 30, 1000.0, False), (31, 30, 1033.3, True), (60, 30, 2000.0, True)],
)
def test_only_gops_longer_than_a_second_need_a_proxy(
    tmp_path: Path, gop: int, fps: int, longest: float, needed: bool
) -> None:
    index = FrameIndex.build(make_video(tmp_path / "v.mp4", VideoSpec(n=62, fps=fps, gop=gop)))
    assert longest_gop_ms(index) == pytest.approx(longest, abs=0.5)
    assert needs_proxy(index) is needed


def test_a_long_gop_vfr_original_keeps_every_frame_and_time(tmp_path: Path) -> None:
    """One 3 s GOP with B-frames, at 30, 10 and 60 fps in turn: the proxy has the original's 100 frames at the
    same times (frame numbers drawn into the pixels read back), key frames a third of a second's frames apart
    (counted in frames: what a random frame decodes first), and
    pixels within visually lossless distance of the original's own decode."""
    src = make_video(tmp_path / "long_gop.mp4", VideoSpec(times=vfr_times(), gop=250, bframes=2))
    original = FrameIndex.build(src)
    assert int(original.keys.sum()) == 1 and needs_proxy(original)

    made = make_review_proxy(src, tmp_path / "proxy.mp4", index=original)

    assert len(made) == len(original) == 100
    np.testing.assert_allclose(made.time_ms, original.time_ms, atol=0.001)
    keys = np.flatnonzero(made.keys)
    assert keys[0] == 0 and np.diff(keys).max() <= proxy_settings(probe(src).fps).keyint <= 12
    with FrameReader(src) as exact, FrameReader(tmp_path / "proxy.mp4") as proxy:
        for seq in range(1, 101, 3):
            shown, truth = proxy.frame(seq), exact.frame(seq)
            assert frame_number(shown) == seq - 1
            assert psnr(shown, truth) > 38.0, seq


def test_a_rotated_original_is_proxied_as_it_is_shown(tmp_path: Path) -> None:
    """A phone's portrait clip (stored landscape under a display rotation): the proxy's frames are what a player
    shows of the original, upright, with no rotation left to apply."""
    src = make_video(tmp_path / "portrait.mp4", VideoSpec(n=45, gop=45, rotation=90))
    make_review_proxy(src, tmp_path / "proxy.mp4")
    with FrameReader(src) as exact, FrameReader(tmp_path / "proxy.mp4") as proxy:
        assert exact.rotation != 0 and proxy.rotation == 0
        for seq in (1, 23, 45):
            shown, truth = proxy.frame(seq), exact.frame(seq)
            assert shown.shape == truth.shape == (320, 240, 3)
            assert psnr(shown, truth) > 38.0, seq
