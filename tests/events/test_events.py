"""Event timeline and fixed-rate sampling: cuts at the real frame, presence from boxes, exact sample counts."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from fractions import Fraction

import pytest
from support.videos import vfr_times

from framemask.events import extract_events, presence_intervals
from framemask.media import FrameIndex
from framemask.media.sampling import fixed_rate_samples

CUT_TIMES = vfr_times(((40, 30), (30, 10)))
CUT_DURATION_MS = (CUT_TIMES[-1] + 1 / 30) * 1000  # the last frame lasts the median frame time (1/30 s)


@pytest.fixture(scope="module")
def cut_video(tmp_path_factory):
    """Two visually different shots on a VFR timeline: 40 frames at 30 fps, then 30 at 10 fps (cut at seq 41)."""
    from fractions import Fraction

    import av
    import numpy as np

    path = tmp_path_factory.mktemp("ev") / "cut.mp4"
    tb = Fraction(1, 90000)
    y, x = np.mgrid[0:240, 0:320]
    shot_a = np.stack([x * 255 // 319, y * 255 // 239, np.full_like(x, 60)], -1).astype(np.uint8)
    shot_b = np.stack([((x // 20 + y // 20) % 2) * 200, np.full_like(x, 30), y * 255 // 239], -1).astype(np.uint8)
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = 320, 240, "yuv420p"
        s.time_base = s.codec_context.time_base = tb
        for i, t in enumerate(vfr_times(((40, 30), (30, 10)))):
            img = (shot_a if i < 40 else shot_b).copy()
            img[:, (i * 4) % 300 : (i * 4) % 300 + 8] = 255
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = round(t / tb), tb
            out.mux(s.encode(frame))
        out.mux(s.encode(None))
    return path


def test_scene_cut_at_the_real_frame(cut_video):
    index = FrameIndex.build(cut_video)
    events = extract_events(cut_video, index=index)
    scenes = [e for e in events if e.kind == "scene"]
    assert [(e.start_seq, e.end_seq) for e in scenes] == [(1, 40), (41, 70)]
    assert scenes[1].start_ms == pytest.approx(40 / 30 * 1000, abs=0.05)
    assert scenes[1].end_ms == pytest.approx(CUT_DURATION_MS, abs=0.05)


def boxes_doc(n: int, present: set[int]) -> dict:
    box = {"x1": 1, "x2": 10, "y1": 1, "y2": 10}
    return {
        "endSequence": n,
        "sequence": [
            {"seq": s, "person": [box] * (2 if s == 25 else 1) if s in present else [], "face": []}
            for s in range(1, n + 1)
        ],
    }


def test_presence_bridges_short_gaps_and_drops_blips():
    doc = boxes_doc(60, set(range(10, 21)) | set(range(23, 31)) | {50})
    spans = presence_intervals(doc, max_gap=5, min_frames=3)
    assert [(p.start, p.end, p.peak_seq, p.peak_count) for p in spans] == [(10, 30, 25, 2)]


def test_presence_events_from_boxes(cut_video):
    index = FrameIndex.build(cut_video)
    events = extract_events(cut_video, boxes=boxes_doc(70, set(range(5, 16))), index=index)
    presence = [e for e in events if e.kind == "presence"]
    assert len(presence) == 1 and (presence[0].start_seq, presence[0].end_seq) == (5, 15)
    assert "1 person" in presence[0].description
    assert presence[0].key_ms == pytest.approx(CUT_TIMES[presence[0].key_seq - 1] * 1000, abs=1e-3)


@pytest.mark.parametrize(("rate", "count"), [(1, 4), (5, 20), (7.5, 30), (30, 120)])
def test_fixed_rate_sampling_has_exact_count_on_vfr(make, rate, count):
    """The `vfr` video: 30 frames at 30 fps, 10 at 10 fps, 60 at 30 fps = 4 s (its last frame lasts 1/30 s).

    Sample k lies at k / rate; it shows the last frame that started at or before then, worked out here in
    exact fractions from the times the video was generated with."""
    index = FrameIndex.build(make("vfr"))
    samples = fixed_rate_samples(index, rate)
    assert len(samples) == count
    starts = [Fraction(round(t * 90000), 90000) for t in vfr_times()]
    for k, s in enumerate(samples):
        at = Fraction(k) / Fraction(rate)
        seq = sum(1 for t in starts if t <= at)
        assert (s.k, s.seq) == (k, seq), f"sample {k} at {float(at):.4f} s"
        assert s.time_ms == pytest.approx(float(at) * 1000)
        assert s.frame_time_ms == pytest.approx(float(starts[seq - 1]) * 1000)


def test_events_and_sample_cli(cut_video, tmp_path):
    run = [sys.executable, "-m", "framemask"]
    out = subprocess.run(
        [*run, "events", str(cut_video), "--keyframes", str(tmp_path)], capture_output=True, text=True, check=True
    )
    data = json.loads(out.stdout)
    assert data["endSequence"] == 70 and len(data["events"]) == 2
    assert all((tmp_path / p.split("/")[-1]).exists() for p in (e["keyframe"] for e in data["events"]))
    out = subprocess.run([*run, "sample", str(cut_video), "--rate", "4"], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)["count"] == math.floor(CUT_DURATION_MS * 4 / 1000) == 17
    bad = subprocess.run([*run, "events", str(cut_video), "--boxes", str(cut_video)], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
