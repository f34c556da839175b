"""Exact frame access: the image of frame `seq`, found by seeking to its key frame and decoding forward.

Every decoded frame is identified against the frame index (by timestamp, or by position from a key frame
when the file's timestamps are unusable), so a seek that lands elsewhere than asked is detected and
corrected instead of returning a neighbouring frame, which is how frame-by-position readers go wrong.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Generator, Iterable, Iterator
from typing import Any

import av
import numpy as np

from framemask.errors import NotAVideoError
from framemask.media._av import map_av_errors, open_video
from framemask.media.index import FrameIndex
from framemask.media.rotate import displayed_size, normalize_rotation, rotate
from framemask.media.signal import VideoSignal

CACHE_FRAMES = 32
THREAD_TYPE = "AUTO"
"""Frame (and slice) threads, as many as FFmpeg picks. Measured on one 1080p seek to the far end of a GOP with
2 cores: ~1.4x faster than one thread (134 vs 186 ms) despite the frames the pipeline decodes past the
target; 3 or 4 frame threads are within noise of it, 2 slower, slice threads alone no faster than one (x264
writes one slice per frame)."""
SKIP_CODECS = frozenset({"h264"})
"""Codecs whose FFmpeg decoder drops a non-reference frame under `skip_frame = NONREF` without outputting
anything for it (HEVC's non-reference NAL types are only so within a temporal sub-layer: not here)."""


class FrameReader:
    """Random access to exact frames of one video. Not thread-safe: use one reader per thread."""

    def __init__(self, path: str | os.PathLike[str], index: FrameIndex | None = None, cache_frames: int = CACHE_FRAMES):
        self.path = path
        self.index = index if index is not None else FrameIndex.build(path)
        self._container = open_video(path)
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = THREAD_TYPE
        # skipping frames needs frames identified by timestamp: counting from the key frame needs every frame
        self._skips = self.index.exact_pts and self._stream.codec_context.name in SKIP_CODECS
        self._skip_before: int | None = None  # pts of the frame asked for: non-reference frames before it are skipped
        self.decoded = 0  # frames the decoder has returned (a skipped frame is not decoded)
        self._decoder: Iterator[av.VideoFrame] | None = None
        self._position = 0  # seq of the last frame the decoder returned (0: none)
        self._cache: OrderedDict[tuple[int, int | None], np.ndarray] = OrderedDict()
        self._cache_frames = cache_frames
        # the last frames decoded (a GOP decoded from its key frame on the way to a frame, and that frame):
        # stepping backwards, or asking again (other size, other format), then decodes nothing. Frames skipped
        # on the way are not here: the first step back onto one decodes the GOP whole (`_stepping_back`)
        self._passed: OrderedDict[int, av.VideoFrame] = OrderedDict()
        self.rotation = 0
        first = self._decode_at(1)
        self.rotation = normalize_rotation(first.rotation)
        self.signal = VideoSignal.of(self._stream, first)

    # --- public ---------------------------------------------------------------------------------------------

    def frame(self, seq: int, width: int | None = None) -> np.ndarray:
        """Frame `seq` as RGB uint8 (rotation applied), optionally scaled to `width` with the shape it is shown in
        (`scaled_size`: anamorphic pixels made square)."""
        seq = self.index.check_seq(seq)
        key = (seq, width)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        image = self._to_rgb(self._decode_at(seq), width)
        self._cache[key] = image
        if len(self._cache) > self._cache_frames:
            self._cache.popitem(last=False)
        return image

    def frame_at_ms(self, ms: float, width: int | None = None) -> np.ndarray:
        """The frame on screen at `ms`."""
        return self.frame(self.index.frame_at(ms), width)

    def av_frame(self, seq: int) -> av.VideoFrame:
        """The decoded `av.VideoFrame` of `seq` (stored orientation, not rotated)."""
        return self._decode_at(self.index.check_seq(seq))

    def thumbnails(self, seqs: Iterable[int], width: int) -> Iterator[tuple[int, np.ndarray]]:
        """Small RGB images of `seqs`, decoded in order so each GOP is decoded at most once."""
        for seq in sorted(set(seqs)):
            yield seq, self._to_rgb(self._decode_at(self.index.check_seq(seq)), width)

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> FrameReader:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- decoding -------------------------------------------------------------------------------------------

    def scaled_size(self, frame: av.VideoFrame, width: int) -> tuple[int, int]:
        """The stored-orientation size to scale `frame` to, so that turned upright it is `width` wide and has the
        shape a player shows (display rotation and pixel aspect ratio applied)."""
        shown_width, shown_height = displayed_size(frame.width, frame.height, self.rotation)
        height = max(2, round(shown_height * width / (shown_width * self.signal.sample_aspect_ratio)))
        return displayed_size(width, height, self.rotation)

    def _to_rgb(self, frame: av.VideoFrame, width: int | None) -> np.ndarray:
        if width:
            stored_width, stored_height = self.scaled_size(frame, width)
            rgb = frame.to_ndarray(format="rgb24", width=stored_width, height=stored_height)
        else:
            rgb = frame.to_ndarray(format="rgb24")
        return rotate(rgb, self.rotation)

    def _decode_at(self, seq: int) -> av.VideoFrame:
        passed = self._passed.get(seq)
        if passed is not None:
            return passed
        self._skip_before = int(self.index.pts[seq - 1]) if self._skips and not self._stepping_back(seq) else None
        if not (self._decoder is not None and self._position < seq and self._same_gop(seq)):
            self._seek_before(seq)
        for _attempt in range(3):
            frame = self._decode_forward(seq)
            if frame is not None:
                return frame
            self._seek_before(seq, earlier=True)
        raise NotAVideoError(f"{self.path}: frame {seq} could not be decoded")

    def _same_gop(self, seq: int) -> bool:
        """True when decoding forward from the current position reaches `seq` without passing a key frame."""
        return not self.index.keys[self._position : seq - 1].any()

    def _stepping_back(self, seq: int) -> bool:
        """True for a frame before the last one returned, in its GOP: likely the first of more steps back, so
        the GOP is decoded whole once (every frame passed is kept) rather than skipped again at each step."""
        return seq < self._position and not self.index.keys[seq : self._position].any()

    def _seek_before(self, seq: int, earlier: bool = False) -> None:
        key_seq = self.index.key_seq_before(seq)
        if earlier and key_seq > 1:
            key_seq = self.index.key_seq_before(key_seq - 1)
        self._seek_key = key_seq
        target = int(self.index.pts[key_seq - 1])
        with map_av_errors(self.path):
            self._container.seek(target, stream=self._stream, backward=True, any_frame=False)
        self._decoder = self._decode_packets()
        self._position = 0

    def _decode_packets(self) -> Iterator[av.VideoFrame]:
        """Decoded frames, packet by packet: a non-reference frame shown before the one asked for is never
        needed (no frame is predicted from it), so its packet is skipped instead of decoded. Frame threads
        copy `skip_frame` per submitted packet, so the setting follows each packet through the pipeline."""
        ctx = self._stream.codec_context
        for packet in self._container.demux(self._stream):
            skip = self._skip_before is not None and packet.pts is not None and packet.pts < self._skip_before
            ctx.skip_frame = "NONREF" if skip else "DEFAULT"
            for frame in ctx.decode(packet):
                self.decoded += 1
                yield frame

    def _decode_forward(self, seq: int) -> av.VideoFrame | None:
        """Decode until frame `seq`; None if the decoder overshot it (the seek landed too late)."""
        assert self._decoder is not None
        with map_av_errors(self.path):
            for frame in self._decoder:
                position = self._identify(frame)
                if position is None:
                    continue
                self._position = position
                if position > seq:
                    return None
                self._passed[position] = frame
                if len(self._passed) > self._cache_frames:
                    self._passed.popitem(last=False)
                if position == seq:
                    return frame
        self._decoder = None
        return None

    def _identify(self, frame: av.VideoFrame) -> int | None:
        """The seq of a freshly decoded frame, checked against the index."""
        if self.index.exact_pts:
            if frame.pts is None:
                return self._position + 1 if self._position else None
            lo = int(np.searchsorted(self.index.pts, frame.pts, side="left"))
            if lo >= len(self.index.pts) or self.index.pts[lo] != frame.pts:
                return None  # not a frame of the index (e.g. a broken leading frame after a seek)
            if self._position and self.index.pts[self._position - 1] == frame.pts:
                return self._position + 1  # a run of equal timestamps: count within it
            return lo + 1
        # timestamps unusable: count from the key frame the seek landed on
        return self._position + 1 if self._position else self._seek_key


def iter_frames(path: str | os.PathLike[str]) -> Generator[tuple[int, av.VideoFrame], None, None]:
    """Every frame in presentation order with its seq (1-based), decoded sequentially (stored orientation)."""
    container = open_video(path)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        with map_av_errors(path):
            yield from enumerate(container.decode(stream), start=1)
    finally:
        container.close()
