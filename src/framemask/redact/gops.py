"""The GOP map of a processed master: its video packets grouped into closed GOPs, found by demuxing alone.

A patch replaces whole GOPs, so the plan, the encoder, the part files and the splice all address the master by
GOP and decode position through one `GopMap`. The NAL framing helpers live here too: packets spliced into the
master must be framed as its samples are (length-prefixed in MP4), not as x264 emits them (Annex B).
"""

from __future__ import annotations

import bisect
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

from framemask.errors import FramemaskError, InputError, NotAVideoError
from framemask.media._av import map_av_errors

__all__ = [
    "GopMap",
    "annexb_to_avcc",
    "avcc_length_size",
    "gops_of",
    "keyint_of",
    "master_gops",
    "master_size",
    "x264_options",
]


@dataclass(frozen=True)
class GopMap:
    """The master's video packets in decode order and how they group into closed GOPs.

    `pts`/`dts` are in the master stream's `time_base`; `seq_pts[seq - 1]` is the pts of frame `seq`;
    `starts[g]` is the first seq of GOP g and `packet_ranges[g]` its packets' decode positions [a, b).
    """

    time_base: Fraction
    pts: np.ndarray
    dts: np.ndarray
    seq_pts: np.ndarray
    starts: list[int]
    packet_ranges: list[tuple[int, int]]

    @property
    def end_sequence(self) -> int:
        return len(self.seq_pts)

    def gop_of(self, seq: int) -> int:
        """Index of the GOP holding frame `seq`."""
        return bisect.bisect_right(self.starts, seq) - 1

    def seqs(self, gop: int) -> range:
        """The frames of GOP `gop` (1-based seqs)."""
        end = self.starts[gop + 1] if gop + 1 < len(self.starts) else self.end_sequence + 1
        return range(self.starts[gop], end)

    def seconds(self, gop: int) -> float:
        """How long GOP `gop` shows: to the next GOP's first frame (the last GOP: its frames at the mean rate)."""
        seqs = self.seqs(gop)
        if seqs.stop <= self.end_sequence:
            return float((self.seq_pts[seqs.stop - 1] - self.seq_pts[seqs.start - 1]) * self.time_base)
        span = float((self.seq_pts[-1] - self.seq_pts[0]) * self.time_base)
        return len(seqs) * span / max(self.end_sequence - 1, 1)


def master_gops(master: str | os.PathLike[str]) -> GopMap:
    """Demux the master's video packets (no decoding) and check it is built of closed GOPs."""
    with map_av_errors(master), av.open(str(master)) as container:
        if not container.streams.video:
            raise NotAVideoError(f"{master}: no video stream")
        stream = container.streams.video[0]
        if stream.codec_context.name != "h264":
            raise InputError(f"{master}: not a processed master (video is {stream.codec_context.name}, not H.264)")
        rows = [(p.pts, p.dts, p.is_keyframe) for p in container.demux(stream) if p.size and p.pts is not None]
        time_base = stream.time_base
    if time_base is None:
        raise InputError(f"{master}: the video stream has no time base")
    if not rows or not rows[0][2]:
        raise InputError(f"{master}: not a processed master (empty, or it does not start with a key frame)")
    pts = np.array([r[0] for r in rows], np.int64)
    dts = np.array([r[1] if r[1] is not None else r[0] for r in rows], np.int64)
    keys = [i for i, r in enumerate(rows) if r[2]]
    seq_pts = np.sort(pts)
    seq_of = {int(p): i + 1 for i, p in enumerate(seq_pts)}
    if len(seq_of) != len(pts):
        raise InputError(f"{master}: repeated timestamps; not a processed master")
    ranges = list(zip(keys, [*keys[1:], len(rows)], strict=True))
    starts, expected = [], 1
    for a, b in ranges:
        if sorted(seq_of[int(p)] for p in pts[a:b]) != list(range(expected, expected + b - a)):
            raise InputError(f"{master}: the GOP at packet {a} is not closed; it cannot be patched alone")
        starts.append(expected)
        expected += b - a
    return GopMap(time_base, pts, dts, seq_pts, starts, ranges)


def gops_of(gops: GopMap, seqs: Iterable[int]) -> list[int]:
    """Sorted indices of the GOPs holding any of `seqs` (seqs outside the video are an InputError)."""
    out = set()
    for seq in seqs:
        if not 1 <= seq <= gops.end_sequence:
            raise InputError(f"changed frame {seq} is outside 1..{gops.end_sequence}")
        out.add(gops.gop_of(seq))
    return sorted(out)


def keyint_of(gops: GopMap) -> int:
    """The master's configured GOP length: the longest GOP (only the last one may be shorter)."""
    return max(gops.seqs(g).stop - gops.seqs(g).start for g in range(len(gops.starts)))


def master_size(master: str | os.PathLike[str]) -> tuple[int, int]:
    """The master's frame size (the displayed size: the master is written upright)."""
    with map_av_errors(master), av.open(str(master)) as container:
        ctx = container.streams.video[0].codec_context
        return ctx.width, ctx.height


_X264_SEI = re.compile(rb"x264 - core \d+.*? options: ([ -~]*)")


def x264_options(master: str | os.PathLike[str]) -> dict[str, str]:
    """The options x264 wrote into the master's first frame (its user-data SEI), e.g. `b_pyramid`: {} if none.

    They say how the master's GOPs are built where nothing else records it (masters rendered before their
    encoder settings were stored, or a master given to `patch_render` without them)."""
    with map_av_errors(master), av.open(str(master)) as container:
        stream = container.streams.video[0]
        first = next((p for p in container.demux(stream) if p.size), None)
    found = _X264_SEI.search(bytes(first)) if first is not None else None
    if found is None:
        return {}
    pairs = (item.split("=", 1) for item in found.group(1).decode("ascii").split() if "=" in item)
    return {key: value for key, value in pairs}


def avcc_length_size(extradata: bytes | None) -> int:
    """NAL length-prefix size of an `avcC` record; 0 when the stream carries Annex B start codes."""
    if not extradata or extradata[0] != 1 or len(extradata) < 5:
        return 0
    return (extradata[4] & 0x03) + 1


def annexb_to_avcc(data: bytes, length_size: int = 4) -> bytes:
    """Annex B NAL units (start codes, what x264 emits) -> length-prefixed ones (what MP4 samples hold).

    The mp4 muxer converts only when the stream's own extradata is Annex B; a stream copied from an MP4
    has an `avcC` record instead, so freshly encoded packets must be converted here.
    """
    starts = []
    i = data.find(b"\x00\x00\x01")
    while i >= 0:
        starts.append(i + 3)
        i = data.find(b"\x00\x00\x01", i + 3)
    if not starts:
        raise FramemaskError("encoder packet without an Annex B start code")
    parts = []
    for begin, end in zip(starts, [*starts[1:], len(data) + 3], strict=True):
        nal = data[begin : end - 3].rstrip(b"\x00")  # drops the zero_byte of 4-byte start codes too
        parts.append(len(nal).to_bytes(length_size, "big") + nal)
    return b"".join(parts)
