"""Segments: a long video cut at key frames, anonymized in worker processes, joined frame-exact, with
tracks stitched across the joins (`framemask.redact.segments`)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from conftest import SHARED_MEDIA, ffprobe_count
from support.videos import VideoSpec, frame_number, make_video, vfr_times

from framemask.media import FrameIndex, iter_frames
from framemask.redact import anonymize_file
from framemask.redact.encode import frame_to_rgb
from framemask.redact.scoring import load_gt
from framemask.redact.segments import plan_segments

CFR = VideoSpec(n=120, fps=25, size=(160, 120), gop=25, audio=True)
VFR = VideoSpec(times=vfr_times(((40, 30), (20, 10), (60, 60))), size=(160, 120), gop=30)
OPEN_GOP = VideoSpec(n=100, fps=25, size=(160, 120), gop=20, bframes=2, options={"x264-params": "open-gop=1"})


@pytest.mark.parametrize("spec", [CFR, VFR, OPEN_GOP], ids=["cfr", "vfr", "open-gop"])
def test_segments_start_on_key_frames_and_cover_every_frame_once(tmp_path: Path, spec: VideoSpec) -> None:
    index = FrameIndex.build(make_video(tmp_path / "in.mp4", spec))
    spans = plan_segments(index, 1.0)
    assert len(spans) >= 3
    keys = set(index.key_seqs().tolist())
    assert spans[0].start == 1 and all(s.start in keys for s in spans)
    covered = [seq for s in spans for seq in range(s.start, s.end + 1)]
    assert covered == list(range(1, index.end_sequence + 1))  # every frame rendered exactly once
    for span in spans:  # about a second of context on each side, within the video
        assert 1 <= span.first <= span.start <= span.end <= span.last <= index.end_sequence
        if span.first > 1:
            assert index.time_of(span.start) - index.time_of(span.first) >= 900
        if span.last < index.end_sequence:
            assert index.time_of(span.last) - index.time_of(span.end) >= 900


@pytest.mark.slow
@pytest.mark.parametrize("spec", [CFR, VFR, OPEN_GOP], ids=["cfr", "vfr", "open-gop"])
def test_the_join_is_frame_exact(tmp_path: Path, spec: VideoSpec) -> None:
    src = make_video(tmp_path / "in.mp4", spec)
    result = anonymize_file(src, tmp_path / "out.mp4", jobs=2, segment_seconds=1.0)
    assert result.timings["segments"] >= 3
    before, after = FrameIndex.build(src), FrameIndex.build(result.output)
    assert ffprobe_count(result.output) == before.end_sequence == after.end_sequence
    np.testing.assert_allclose(after.time_ms, before.time_ms, atol=1e-3)  # every timestamp, VFR included
    shown = [frame_number(frame_to_rgb(frame)) for _, frame in iter_frames(result.output)]
    assert shown == list(range(before.end_sequence))  # each output frame is the source frame at its place
    assert result.gop_starts[0] == 1 and set(result.gop_starts) >= {s for s, _ in result.render["segments"]}
    if spec.audio:
        with av.open(str(src)) as a, av.open(str(result.output)) as b:
            ours = [bytes(p) for p in b.demux(b.streams.audio[0]) if p.size]
            theirs = [bytes(p) for p in a.demux(a.streams.audio[0]) if p.size]
        assert ours == theirs  # the audio is copied once, unchanged


@pytest.mark.slow
def test_a_person_walking_across_a_join_keeps_one_id(tmp_path: Path) -> None:
    """TUD-Campus in segments of 1.5 s (joins near frames 38): the walkers present on both sides of a
    join are matched to the same track id just before and just after it."""
    result = anonymize_file(SHARED_MEDIA / "TUD-Campus.mp4", tmp_path / "out.mp4", jobs=2, segment_seconds=1.5)
    joins = [start for start, _ in result.render["segments"][1:]]
    assert joins
    gt = load_gt(SHARED_MEDIA / "TUD-Campus.gt.txt")
    doc = result.boxes["sequence"]

    def matched(seq: int, box: tuple[float, ...]) -> int | None:
        from framemask.detect import box_iou

        people = doc[seq - 1]["person"]
        if not people:
            return None
        iou = box_iou([box], [[p["x1"], p["y1"], p["x2"], p["y2"]] for p in people])[0]
        return people[int(np.argmax(iou))]["track"] if iou.max() >= 0.5 else None

    kept = crossed = 0
    for join in joins:
        before = {gid: matched(join - 1, b) for gid, b in gt.get(join - 1, [])}
        after = {gid: matched(join, b) for gid, b in gt.get(join, [])}
        for gid, tid in before.items():
            if tid is not None and after.get(gid) is not None:
                crossed += 1
                kept += tid == after[gid]
    assert crossed >= 3 and kept == crossed
