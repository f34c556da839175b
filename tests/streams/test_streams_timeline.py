"""RTSP timestamp repair (`streams.timeline.Timeline`) as a unit: fed packets as FFmpeg hands them over.

Expectations are written out by hand (90 kHz ticks, 25 fps = 3600 ticks per frame), not recomputed.
"""

from __future__ import annotations

from fractions import Fraction
from itertools import pairwise

from framemask.streams.timeline import Session, Timeline

TB = Fraction(1, 90000)
FRAME = 3600  # ticks per frame at 25 fps


def feed_session(timeline: Timeline, packets: list[tuple[int | None, int | None, bool]]) -> list[tuple[int, int]]:
    """Feed (pts, dts, key) packets, flush; the (pts, dts) written, in order."""
    out = []
    for n, (pts, dts, key) in enumerate(packets):
        out += timeline.feed(n, pts, dts, key)
    out += timeline.flush()
    return [(s.pts, s.dts) for s in out]


def simple(count: int, start: int = 0) -> list[tuple[int | None, int | None, bool]]:
    """I/P-only packets: pts == dts, a key frame first; the very first has no timestamps (RTP base)."""
    packets: list[tuple[int | None, int | None, bool]] = [(None, None, True)]
    packets += [(start + i * FRAME, start + i * FRAME, False) for i in range(1, count)]
    return packets


def test_a_fresh_session_starts_at_zero_and_keeps_the_first_packet() -> None:
    timeline = Timeline(TB)
    written = feed_session(timeline, simple(5))
    assert written == [(0, 0), (3600, 3600), (7200, 7200), (10800, 10800), (14400, 14400)]


def test_a_live_reconnect_continues_after_the_gap_instead_of_restarting_at_zero() -> None:
    timeline = Timeline(TB)
    feed_session(timeline, simple(10))  # last pts 32400
    timeline.begin(Session.LIVE, gap_seconds=2.0)
    written = feed_session(timeline, simple(3))  # the server restarts its timestamps at 0
    assert written == [(32400 + 180000, 32400 + 180000), (216000, 216000), (219600, 219600)]


def test_a_live_reconnect_without_a_measurable_gap_still_moves_forward_one_frame() -> None:
    timeline = Timeline(TB)
    feed_session(timeline, simple(4))  # last pts 10800
    timeline.begin(Session.LIVE, gap_seconds=0.0)
    assert feed_session(timeline, simple(2)) == [(14400, 14400), (18000, 18000)]


def test_a_resumed_file_stream_drops_what_was_written_and_continues() -> None:
    timeline = Timeline(TB)
    feed_session(timeline, simple(10))  # 0 .. 32400 written
    timeline.begin(Session.RESUMED)
    # the server seeked back to the key frame at 21600: it is sent again (first packet, no timestamps)
    again = [(None, None, True), (25200, 25200, False), (28800, 28800, False), (32400, 32400, False)]
    new = [(36000, 36000, False), (39600, 39600, False)]
    assert feed_session(timeline, again + new) == [(36000, 36000), (39600, 39600)]
    assert timeline.duplicates == 4


def test_b_frames_without_dts_get_increasing_dts_not_after_pts() -> None:
    timeline = Timeline(TB)
    # decode order I0 P3 B1 B2 P6 B4 B5; FFmpeg gives no dts for the first packets
    packets = [(None, None, True), (3 * FRAME, None, False), (FRAME, None, False), (2 * FRAME, 0, False)]
    packets += [(6 * FRAME, FRAME, False), (4 * FRAME, 2 * FRAME, False), (5 * FRAME, 3 * FRAME, False)]
    written = feed_session(timeline, packets)
    assert [p for p, _ in written] == [0, 10800, 3600, 7200, 21600, 14400, 18000]
    dts = [d for _, d in written]
    assert all(b > a for a, b in pairwise(dts))
    assert all(d <= p for p, d in written)


def test_nothing_before_the_first_key_frame_of_a_session() -> None:
    timeline = Timeline(TB)
    packets = [(None, None, False), (FRAME, FRAME, False), (2 * FRAME, 2 * FRAME, True), (3 * FRAME, 3 * FRAME, False)]
    assert feed_session(timeline, packets) == [(7200, 7200), (10800, 10800)]
