"""Every time framemask prints or shows maps back to its own frame through `frame_at` (issue 10).

Printed times are rounded to µs (`round_ms`); `frame_at` tolerates half of that, and no more.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from conftest import shared_media
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from framemask.cli import main as cli_main
from framemask.media import TIME_TOLERANCE_MS, FrameIndex, round_ms

REPO = Path(__file__).resolve().parents[2]
FRAMEMASK = Path(sys.executable).with_name("framemask")
TIMELINE_TS = REPO / "web" / "src" / "lib" / "timeline.ts"
TYPESCRIPT = REPO / "web" / "node_modules" / "typescript"

SHARED = shared_media()


def _probe_frames(path: Path) -> list[dict]:
    out = subprocess.run([str(FRAMEMASK), "probe", str(path), "--frames"], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)["frames"]


def _expected_seq(index: FrameIndex, seq: int) -> int:
    """`seq`, unless its timestamp equals the next frame's: a zero-length frame is never on screen, and the
    frame at that time is the last of the equal ones (only `seq` can address the others)."""
    t = index.time_ms[seq - 1]
    return int(np.searchsorted(index.time_ms, t, side="right"))


@pytest.mark.skipif(not SHARED, reason="shared media not present")
@pytest.mark.parametrize("path", SHARED, ids=lambda p: p.name)
def test_printed_frame_times_map_back_to_their_frame(path: Path) -> None:
    """probe --frames time_ms -> frame_at (what `locate --ms` and `GET /frame?ms=` use) -> the same seq."""
    frames = _probe_frames(path)
    index = FrameIndex.build(path)
    assert [f["seq"] for f in frames] == list(range(1, index.end_sequence + 1))
    wrong = [
        (f["seq"], f["time_ms"], index.frame_at(f["time_ms"]))
        for f in frames
        if index.frame_at(f["time_ms"]) != _expected_seq(index, f["seq"])
    ]
    assert wrong == []
    # only frames whose timestamp equals their successor's are excepted (ts-ebml_chrome52.webm has 10)
    zero_length = int(np.sum(np.diff(index.pts) == 0))
    assert sum(_expected_seq(index, f["seq"]) != f["seq"] for f in frames) == zero_length
    # the printed time lies within half the printed precision before (or after) the frame's own time
    assert max(abs(f["time_ms"] - t) for f, t in zip(frames, index.time_ms, strict=True)) <= TIME_TOLERANCE_MS + 1e-9


@pytest.mark.skipif(not SHARED, reason="shared media not present")
def test_locate_cli_round_trip_on_a_vfr_file(capsys: pytest.CaptureFixture[str]) -> None:
    """`locate --ms` with each printed time of the VFR NASA clip (10 of its 50 frames used to come back one early)."""
    path = next((p for p in SHARED if p.name == "torchcodec_nasa_13013_vfr.mp4"), None)
    if path is None:
        pytest.skip("torchcodec_nasa_13013_vfr.mp4 not in shared media")
    for frame in _probe_frames(path):
        assert cli_main(["locate", str(path), "--ms", repr(frame["time_ms"])]) == 0
        located = json.loads(capsys.readouterr().out)
        assert located == {"seq": frame["seq"], "time_ms": frame["time_ms"]}


def _format_time_js(times: list[float]) -> list[str]:
    """The editor's own `formatTime` (web/src/lib/timeline.ts, transpiled with the editor's TypeScript)."""
    script = r"""
const fs = require('fs'); const ts = require(process.argv[1]);
const src = ts.transpileModule(fs.readFileSync(process.argv[2], 'utf8'),
  { compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2020 } }).outputText;
const mod = { exports: {} }; new Function('module', 'exports', 'require', src)(mod, mod.exports, require);
const times = JSON.parse(fs.readFileSync(0, 'utf8'));
process.stdout.write(JSON.stringify(times.map((t) => mod.exports.formatTime(t))));
"""
    out = subprocess.run(
        ["node", "-e", script, str(TYPESCRIPT), str(TIMELINE_TS)],
        input=json.dumps(times),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def _parse_shown(text: str) -> float:
    """ms of a shown `[h:]m:ss.ffffff` time, as a user would type it into `?ms=` (exact decimal arithmetic)."""
    m = re.fullmatch(r"(?:(\d+):)?(\d+):(\d\d)\.(\d{6})", text)
    assert m, text
    h, mins, s, micro = int(m[1] or 0), int(m[2]), int(m[3]), int(m[4])
    return float(Fraction(((h * 60 + mins) * 60 + s) * 1_000_000 + micro, 1000))


@pytest.mark.skipif(not (SHARED and TYPESCRIPT.is_dir()), reason="shared media or web/node_modules not present")
def test_editor_shown_time_maps_back_to_its_frame() -> None:
    """The time the editor shows for each frame (from the API's `time_ms`) resolves to that frame again."""
    for path in SHARED:
        index = FrameIndex.build(path)
        api_times = [round_ms(t) for t in index.time_ms]  # what GET /index sends the editor
        shown = _format_time_js(api_times)
        wrong = [
            (seq, text)
            for seq, text in enumerate(shown, start=1)
            if index.frame_at(_parse_shown(text)) != _expected_seq(index, seq)
        ]
        assert wrong == [], path.name


# --- properties -------------------------------------------------------------------------------------------

TIME_BASES = st.sampled_from(
    [
        Fraction(1, 90000),
        Fraction(1, 1000),
        Fraction(1, 30000),
        Fraction(1001, 30000),
        Fraction(1, 12800),
        Fraction(1, 15360),
        Fraction(1, 600),
        Fraction(1, 25),
        Fraction(1, 1_000_000),
    ]
) | st.builds(Fraction, st.integers(1, 1000), st.integers(1, 10**6))


@st.composite
def indexes(draw: st.DrawFn, min_gap_ms: float = 0.0) -> FrameIndex:
    """A frame index with gaps of at least `min_gap_ms` (0: duplicate timestamps allowed)."""
    tb = draw(TIME_BASES)
    min_ticks = max(0, int(np.ceil(min_gap_ms / 1000 / tb))) if min_gap_ms else 0
    if min_gap_ms and min_ticks * tb * 1000 <= min_gap_ms:
        min_ticks += 1
    deltas = draw(st.lists(st.integers(min_ticks, min_ticks + 10**7), min_size=0, max_size=60))
    start = draw(st.integers(-(10**9), 10**12))
    pts = np.array([start, *(start + np.cumsum(deltas, dtype=np.int64))], dtype=np.int64)
    keys = np.array(draw(st.lists(st.booleans(), min_size=len(pts), max_size=len(pts))), dtype=np.bool_)
    return FrameIndex(pts=pts, keys=keys, time_base=tb, exact_pts=draw(st.booleans()))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(indexes(min_gap_ms=2 * TIME_TOLERANCE_MS + 1e-6))
def test_property_printed_time_maps_to_its_frame(index: FrameIndex) -> None:
    for seq in range(1, index.end_sequence + 1):
        assert index.frame_at(round_ms(index.time_of(seq))) == seq
        assert index.frame_at(index.time_of(seq)) == seq
        assert index.nearest(round_ms(index.time_of(seq))) == seq


@settings(max_examples=300, deadline=None)
@given(indexes(min_gap_ms=2 * TIME_TOLERANCE_MS + 1e-6), st.floats(1e-6, 1.0))
def test_property_tolerance_is_no_wider_than_half_the_printed_precision(index: FrameIndex, beyond: float) -> None:
    """A time truly further than the tolerance before a frame belongs to the frame before it."""
    for seq in range(2, index.end_sequence + 1):
        t = index.time_of(seq)
        gap = t - index.time_of(seq - 1)
        ms = t - TIME_TOLERANCE_MS - min(beyond, gap / 2)
        if index.time_ms[-1] < 1e8 and ms > index.time_of(seq - 1):
            assert index.frame_at(ms) == seq - 1, (t, ms)


@settings(max_examples=200, deadline=None)
@given(indexes(min_gap_ms=0.0))
def test_property_equal_timestamps_give_the_last_of_them(index: FrameIndex) -> None:
    for seq in range(1, index.end_sequence + 1):
        assert index.frame_at(round_ms(index.time_of(seq))) == _expected_seq(index, seq)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(-(2**61), 2**61), min_size=1, max_size=200),
    st.data(),
    TIME_BASES,
    st.booleans(),
)
@example([0], None, Fraction(1, 90000), True)
def test_property_index_serialisation_round_trip(
    pts: list[int], data: st.DataObject | None, tb: Fraction, exact: bool
) -> None:
    n = len(pts)
    keys = [True] * n if data is None else data.draw(st.lists(st.booleans(), min_size=n, max_size=n))
    index = FrameIndex(
        pts=np.array(pts, dtype=np.int64), keys=np.array(keys, dtype=np.bool_), time_base=tb, exact_pts=exact
    )
    back = FrameIndex.from_bytes(index.to_bytes())
    assert back.pts.dtype == np.int64 and back.keys.dtype == np.bool_
    assert back.pts.tolist() == pts
    assert back.keys.tolist() == keys
    assert back.time_base == tb and back.exact_pts == exact
    assert np.array_equal(back.time_ms, index.time_ms)


def test_json_times_carry_no_float_noise() -> None:
    assert round_ms(2840.0000000000005) == 2840.0
    assert json.dumps(round_ms(-0.0000001)) == "0.0"
    assert round_ms(33.36666666666633) == 33.367
