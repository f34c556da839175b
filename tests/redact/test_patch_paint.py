"""A re-encoded GOP is painted exactly as the master render paints it (I420 planes, or RGB where the pipeline
uses RGB), so re-rendering a GOP whose boxes did not change gives the master's own frames.

x264 at `crf=0` is lossless, so what the decoder returns is exactly what the encoder was given: comparing the
decoded frames of a lossless master and of a lossless patch compares the painted frames each fed to x264.
Painting in RGB and converting back (the old patch path) moves pixels by a rounding step and fails here.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from conftest import ffprobe_count

from framemask.redact import EncodeSettings, render_with_boxes
from framemask.redact.encode import frame_to_i420
from framemask.redact.gops import master_gops
from framemask.redact.patch import patch_render

LOSSLESS = EncodeSettings(crf=0, keyint=10)
BOXES = [{"x1": 20, "x2": 180, "y1": 10, "y2": 130}, {"x1": 201, "x2": 263, "y1": 75, "y2": 151}]


def doc(n: int) -> dict:
    return {"endSequence": n, "sequence": [{"seq": s, "person": BOXES[:1], "face": BOXES[1:]} for s in range(1, n + 1)]}


def pixels(path: Path) -> list[np.ndarray]:
    """Every decoded frame as the encoder's own planes (I420) where it has them, else RGB."""
    with av.open(str(path)) as c:
        frames = list(c.decode(c.streams.video[0]))
    if frames[0].format.name == "yuv420p":
        return [frame_to_i420(f) for f in frames]
    return [f.to_ndarray(format="rgb24") for f in frames]


CASES = [("cfr", "mosaic"), ("cfr", "blur"), ("rotated", "mosaic"), ("odd", "fill")]


@pytest.mark.parametrize(("name", "style"), CASES)
def test_unchanged_boxes_reencode_to_the_masters_frames(make, tmp_path: Path, name: str, style: str) -> None:
    src = make(name)  # cfr and rotated (planes turned): the I420 path; odd (a 4:4:4 master): the RGB path
    n = ffprobe_count(src)
    master = render_with_boxes(src, tmp_path / "master.mp4", doc(n), settings=LOSSLESS, style=style).output
    assert master_gops(master).starts == list(range(1, n + 1, 10))
    changed = [n // 2, n]
    result = patch_render(src, master, tmp_path / "patched.mp4", doc(n), changed, settings=LOSSLESS, style=style)
    assert result.reencoded_frames >= 11
    before, after = pixels(master), pixels(result.output)
    assert len(after) == len(before) == n
    for first, last in result.reencoded:
        for seq in range(first, last + 1):
            assert np.array_equal(after[seq - 1], before[seq - 1]), f"frame {seq} painted differently"
