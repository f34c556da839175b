"""The frame index: every frame's presentation timestamp and key flag, in presentation order.

Everything in framemask speaks in `seq` (1..end_sequence) and these real timestamps; nothing computes
frame = time x fps. The index is built by demuxing packets, which is fast and exact for codecs where one
packet is one frame and the container gives every packet a timestamp. Where that does not hold (missing or
duplicate timestamps, discarded packets, packed B-frames, codecs with hidden frames) the video is decoded
instead, so the count is what a decoder really outputs (what `ffprobe -count_frames` reports).
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import av
import numpy as np

from framemask.errors import FrameRangeError, NotAVideoError
from framemask.media._av import map_av_errors, open_video

log = logging.getLogger(__name__)

ONE_PACKET_ONE_FRAME = frozenset(
    {"h264", "hevc", "av1", "vp8", "mpeg4", "mjpeg", "prores", "dnxhd", "ffv1", "png", "rawvideo"}
)
"""Codecs whose packets each hold one frame once hidden (VP8) and not-coded or packed (MPEG-4) ones are
ruled out per packet; VP9 superframes may hold several."""

_VOP_START = b"\x00\x00\x01\xb6"
_NOT_CODED_VOP_MAX = 32
"""A not-coded MPEG-4 VOP (no frame output) is a bare header of a few bytes; coded VOPs are larger."""

NO_REORDERING = frozenset({"vp8", "mjpeg", "png", "ffv1", "rawvideo", "prores", "dnxhd"})
"""Intra-only or forward-only codecs: packet order is display order, so equal timestamps keep their order."""

_Packet = tuple[int | None, bool, int | None, int, bool, bool]
"""What the index keeps of a demuxed packet: pts, key, dts, size, discard, shows exactly one frame."""

TIME_DECIMALS = 3
"""Every time framemask prints or stores in JSON is rounded to this many decimals of a ms (1 µs)."""
TIME_TOLERANCE_MS = 0.5 * 10.0**-TIME_DECIMALS
"""Half the printed precision: a printed time lies at most this far before the frame it was printed for,
so `frame_at` reaches that frame from it. A time truly further before a frame never maps to it."""


def round_ms(ms: float) -> float:
    """A time as framemask prints it: rounded to `TIME_DECIMALS` decimals of a ms (no float noise, no -0.0)."""
    return round(float(ms), TIME_DECIMALS) + 0.0


def _float_slack(ms: float) -> float:
    """Float64 noise of a time and of its rounding (a few ulps), far below `TIME_TOLERANCE_MS`."""
    return 1e-9 + abs(ms) * 1e-15


FORMAT_VERSION = 1
_MAGIC = b"FMIX"
_HEADER = struct.Struct("<4sHQqqBq")


@dataclass(frozen=True, eq=False)
class FrameIndex:
    """Presentation timestamps (stream time base) and key-frame flags of every frame, in display order."""

    pts: np.ndarray
    keys: np.ndarray
    time_base: Fraction
    exact_pts: bool = True
    """False when the decoder's timestamps were unusable and `pts` had to be reordered; the reader then
    verifies frames by position from a key frame instead of by timestamp."""
    time_ms: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.pts.ndim != 1 or self.pts.shape != self.keys.shape:
            raise ValueError(f"pts {self.pts.shape} and keys {self.keys.shape} must be equal 1-D shapes")
        if len(self.pts) == 0:
            raise NotAVideoError("the video has zero frames")
        rel = (self.pts - self.pts[0]).astype(np.float64) * float(self.time_base) * 1000.0
        object.__setattr__(self, "time_ms", rel)

    # --- building -------------------------------------------------------------------------------------------

    @classmethod
    def build(cls, path: str | os.PathLike[str]) -> FrameIndex:
        """Index `path`: demux when packets are trustworthy, decode otherwise."""
        container = open_video(path)
        try:
            stream = container.streams.video[0]
            time_base = stream.time_base or Fraction(1, 90000)
            with map_av_errors(path):
                packets = _demux(container, stream, path)
            if _packets_reliable(packets, stream.codec_context.name, container.format.name):
                pts = np.array([p[0] for p in packets], dtype=np.int64)
                keys = np.array([p[1] for p in packets], dtype=np.bool_)
                order = np.argsort(pts, kind="stable")
                return cls(pts=pts[order], keys=keys[order], time_base=time_base)
        finally:
            container.close()
        log.debug("%s: packet timestamps unreliable, decoding to index", path)
        return cls._build_by_decoding(path)

    @classmethod
    def _build_by_decoding(cls, path: str | os.PathLike[str]) -> FrameIndex:
        container = open_video(path)
        try:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            time_base = stream.time_base or Fraction(1, 90000)
            pts_list: list[int | None] = []
            keys: list[bool] = []
            with map_av_errors(path):
                for frame in container.decode(stream):
                    pts_list.append(frame.pts)
                    keys.append(bool(frame.key_frame))
        finally:
            container.close()
        if not pts_list:
            raise NotAVideoError(f"{path}: the video has zero decodable frames")
        pts, exact = _repair_pts(pts_list)
        return cls(pts=pts, keys=np.array(keys, dtype=np.bool_), time_base=time_base, exact_pts=exact)

    # --- storage --------------------------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """A compact blob: a fixed header, then zlib of the pts deltas and packed key flags.

        Regular videos compress to a few bytes per thousand frames; VFR to about a byte per frame.
        """
        n = len(self.pts)
        header = _HEADER.pack(
            _MAGIC,
            FORMAT_VERSION,
            n,
            self.time_base.numerator,
            self.time_base.denominator,
            int(self.exact_pts),
            int(self.pts[0]),
        )
        body = np.diff(self.pts).astype("<i8").tobytes() + np.packbits(self.keys).tobytes()
        return header + zlib.compress(body, 9)

    @classmethod
    def from_bytes(cls, blob: bytes) -> FrameIndex:
        try:
            magic, version, n, num, den, exact, pts0 = _HEADER.unpack_from(blob)
            body = zlib.decompress(blob[_HEADER.size :])
        except (struct.error, zlib.error) as exc:
            raise ValueError("not a frame index blob") from exc
        if magic != _MAGIC or version != FORMAT_VERSION:
            raise ValueError("not a frame index blob of this version")
        dpts = np.frombuffer(body[: 8 * (n - 1)], dtype="<i8")
        pts = np.concatenate([[pts0], pts0 + np.cumsum(dpts)]).astype(np.int64)
        keys = np.unpackbits(np.frombuffer(body[8 * (n - 1) :], dtype=np.uint8))[:n].astype(np.bool_)
        return cls(pts=pts, keys=keys, time_base=Fraction(num, den), exact_pts=bool(exact))

    # --- time <-> frame -------------------------------------------------------------------------------------

    @property
    def end_sequence(self) -> int:
        """The real number of frames; `seq` runs 1..end_sequence."""
        return len(self.pts)

    def __len__(self) -> int:
        return len(self.pts)

    def check_seq(self, seq: int) -> int:
        if not 1 <= seq <= self.end_sequence:
            raise FrameRangeError(f"seq {seq} is outside 1..{self.end_sequence}")
        return int(seq)

    def time_of(self, seq: int) -> float:
        """Start of frame `seq`'s display interval, in ms from the first frame."""
        return float(self.time_ms[self.check_seq(seq) - 1])

    def frame_at(self, ms: float) -> int:
        """The frame on screen at `ms`: the last frame whose time is <= ms, clamped to 1..end_sequence.

        A time up to `TIME_TOLERANCE_MS` before a frame counts as that frame, so every time framemask
        prints (`round_ms`) maps back to its own frame. Frames with equal timestamps are never on screen
        except the last of them, which is the one returned.
        """
        ms = float(ms)
        i = int(np.searchsorted(self.time_ms, ms + TIME_TOLERANCE_MS + _float_slack(ms), side="right"))
        return min(max(i, 1), self.end_sequence)

    def nearest(self, ms: float) -> int:
        """The frame whose time is closest to `ms` (ties go to the earlier frame), clamped."""
        i = int(np.searchsorted(self.time_ms, ms, side="left"))
        if i <= 0:
            return 1
        if i >= self.end_sequence:
            return self.end_sequence
        before, after = self.time_ms[i - 1], self.time_ms[i]
        return i if ms - before <= after - ms else i + 1

    def key_seq_before(self, seq: int) -> int:
        """The last key frame at or before `seq` (1 if there is none)."""
        keys = np.flatnonzero(self.keys[: self.check_seq(seq)])
        return int(keys[-1]) + 1 if len(keys) else 1

    def key_seqs(self) -> np.ndarray:
        """1-based seqs of every key frame."""
        return np.flatnonzero(self.keys) + 1

    @property
    def duration_ms(self) -> float:
        """First frame to the end of the last frame (the last frame lasts as long as the median frame)."""
        return float(self.time_ms[-1] + self.median_frame_ms)

    @property
    def median_frame_ms(self) -> float:
        if len(self.time_ms) < 2:
            return 0.0
        return float(np.median(np.diff(self.time_ms)))

    @property
    def fps(self) -> float:
        """Average frame rate over the whole video."""
        if len(self.time_ms) < 2 or self.time_ms[-1] <= 0:
            return 0.0
        return float((len(self.time_ms) - 1) * 1000.0 / self.time_ms[-1])

    @property
    def vfr(self) -> bool:
        """True when frame durations differ by more than timestamp rounding (one tick, at least 1 ms)."""
        if len(self.pts) < 3:
            return False
        d = np.diff(self.pts)
        tolerance = max(1, int(np.ceil(0.001 / float(self.time_base))))
        return bool(d.max() - d.min() > tolerance)


def _demux(container: av.container.InputContainer, stream: av.VideoStream, path: object) -> list[_Packet]:
    """(pts, key, dts, size, discard) of every video packet; raises on a truncated or corrupt file."""
    packets: list[_Packet] = []
    for packet in container.demux(stream):
        if packet.size == 0 and packet.pts is None and packet.dts is None:
            continue  # the flush packet at the end
        shown = _one_shown_frame(packet)
        packets.append((packet.pts, packet.is_keyframe, packet.dts, packet.size, packet.is_discard, shown))
    if not packets:
        raise NotAVideoError(f"{path}: the video has zero frames")
    declared = stream.frames
    if declared and len(packets) < declared:
        raise NotAVideoError(f"{path}: truncated ({len(packets)} of {declared} frames present)")
    return packets


def _one_shown_frame(packet: av.Packet[Any]) -> bool:
    """False when a packet may not decode to exactly one displayed frame (then the video is decoded)."""
    codec = packet.stream.codec_context.name
    if codec == "vp8" and packet.size:
        return bool(bytes(packet)[0] & 0x10)  # VP8 frame tag: show_frame bit; hidden frames are never output
    if codec == "mpeg4":
        # packed B-frames hold two VOPs; a not-coded VOP (a bare header) outputs no frame
        return packet.size > _NOT_CODED_VOP_MAX and bytes(packet).count(_VOP_START) == 1
    return True


def _packets_reliable(packets: list[_Packet], codec: str, container_format: str) -> bool:
    if codec not in ONE_PACKET_ONE_FRAME or "avi" in container_format:
        return False
    pts = [p[0] for p in packets]
    if any(v is None for v in pts) or any(p[3] == 0 or p[4] or not p[5] for p in packets):
        return False
    return codec in NO_REORDERING or len(set(pts)) == len(pts)


def _repair_pts(pts_list: list[int | None]) -> tuple[np.ndarray, bool]:
    """Decoded timestamps in output order; fill gaps and, if they are not monotonic, reorder them."""
    known = [p for p in pts_list if p is not None]
    if len(known) != len(pts_list):
        step = int(np.median(np.diff(known))) if len(known) > 1 else 1
        filled, last = [], (known[0] - step) if known else -step
        for p in pts_list:
            last = p if p is not None else last + step
            filled.append(last)
        return np.array(filled, dtype=np.int64), False
    arr = np.array(known, dtype=np.int64)
    if np.all(np.diff(arr) >= 0):
        return arr, True
    return np.sort(arr), False
