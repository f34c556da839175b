"""Re-encoding GOP runs: the original's frames decoded again, painted as the master render painted them,
encoded with the master's settings and given the master's timestamps, so they splice in place of its GOPs.

Decoding and painting run a thread ahead of x264 (`_Prefetch`): the two overlap instead of taking turns.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any

import av
import numpy as np

from framemask.errors import FramemaskError, InputError, NotAVideoError
from framemask.media import FrameIndex, FrameReader, displayed_size, rotate
from framemask.media._av import map_av_errors
from framemask.media.signal import VideoSignal
from framemask.redact._stages import Pipe
from framemask.redact.boxes import BoxTrack
from framemask.redact.encode import (
    EncodeSettings,
    frame_to_i420,
    frame_to_rgb,
    i420_frame,
    rgb_to_frame,
)
from framemask.redact.gops import GopMap, annexb_to_avcc, avcc_length_size, master_gops
from framemask.redact.pipeline import paints_i420  # the master render's own decision
from framemask.redact.styles import make_masker

__all__ = ["GopEncoder", "GopTask"]


@dataclass(frozen=True)
class GopTask:
    """Everything re-encoding some runs needs, picklable (a process pool's argument, rebuilt by a job)."""

    src: str
    master: str
    part: str
    """Where `encode_runs` writes the part (unused when the runs are spliced straight from the encoder)."""
    runs: list[list[int]]
    painted: BoxTrack
    style: str
    shape: str
    strength: float
    settings: EncodeSettings
    index: FrameIndex | None = None
    """The original's frame index (built again when None)."""
    gops: GopMap | None = None
    """The master's GOP map (demuxed again when None)."""


class _Prefetch:
    """Runs an iterator in a daemon thread, a few items ahead, so producing and consuming overlap.

    Built on the render pipeline's `Pipe`; errors reach the consumer; closing stops the producer at its next item."""

    def __init__(self, source: Iterator[Any], size: int = 6) -> None:
        self._source = source
        self._stop = threading.Event()
        self._pipe = Pipe(size, self._stop)
        self._thread = threading.Thread(target=self._produce, name="framemask-patch-decode", daemon=True)
        self._thread.start()

    def _produce(self) -> None:
        try:
            for item in self._source:
                if not self._pipe.put(item):
                    return
        except BaseException as exc:
            self._pipe.put(_Failed(exc))
        self._pipe.close()

    def __iter__(self) -> Iterator[Any]:
        for item in self._pipe:
            if isinstance(item, _Failed):
                raise item.error
            yield item

    def __enter__(self) -> _Prefetch:
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


@dataclass(frozen=True)
class _Failed:
    error: BaseException


class GopEncoder:
    """Re-renders single GOPs: exact original frames -> new masks -> x264 with the master's settings.

    Frames are painted exactly as the master render paints them (`pipeline._render`): in the decoder's I420
    planes when the pipeline would (`paints_i420`: even size, a 4:2:0 master), else in RGB, so
    a re-encoded GOP with unchanged boxes gets the very frames the master's encoder got."""

    def __init__(self, task: GopTask, timer: dict[str, float]) -> None:
        self.gops = gops = task.gops or master_gops(task.master)
        self._masker = make_masker(task.style, task.shape, task.strength)
        self._settings, self._timer = task.settings, timer
        with map_av_errors(task.master), av.open(task.master) as container:
            ctx = container.streams.video[0].codec_context
            if ctx.format is None:
                raise InputError(f"{task.master}: the video stream has no pixel format")
            self._width, self._height, self._pix_fmt = ctx.width, ctx.height, ctx.format.name
            self._signal = VideoSignal.of_codec(ctx)  # the master's SPS says it; re-encoded GOPs say the same
            self._nal_length = avcc_length_size(ctx.extradata)
        self._reader = FrameReader(task.src, index=task.index)
        try:
            if self._reader.index.end_sequence != gops.end_sequence:
                raise InputError(
                    f"{task.src} has {self._reader.index.end_sequence} frames, the master {gops.end_sequence}"
                )
            painted = task.painted
            if (painted.width, painted.height, len(painted)) != (self._width, self._height, gops.end_sequence):
                raise InputError(
                    f"the regions to paint cover {len(painted)} frames of {painted.width}x{painted.height}"
                )
        except BaseException:
            self._reader.close()
            raise
        self._painted = painted
        # the master is the original as displayed, so its size decides as the master render did
        self._i420 = self._pix_fmt == "yuv420p" and paints_i420(self._width, self._height)

    def run(self, run: list[int]) -> Generator[av.Packet[Any]]:
        """Packets of the consecutive GOPs `run`, re-rendered, in decode order with the master's dts.

        Original frames are decoded and masked in a second thread while x264 encodes in this one.
        """
        first, last = self.gops.seqs(run[0])[0], self.gops.seqs(run[-1])[-1]
        a, b = self.gops.packet_ranges[run[0]][0], self.gops.packet_ranges[run[-1]][1]
        keys = {self.gops.packet_ranges[g][0] for g in run}
        codec = self._codec()
        position = a
        with _Prefetch(self._frames(first, last)) as frames:
            for frame in frames:
                for packet in self._timed("encode", codec.encode, frame):
                    yield self._retime(packet, position, keys)
                    position += 1
        for packet in self._timed("encode", codec.encode, None):
            yield self._retime(packet, position, keys)
            position += 1
        if position != b:
            raise FramemaskError(f"frames {first}-{last}: encoder produced {position - a} packets for {b - a} frames")

    def _frames(self, first: int, last: int) -> Iterator[av.VideoFrame]:
        """Encoder frames of seqs first..last: the original's pixels with the new masks, the master's pts."""
        for seq in range(first, last + 1):
            frame = self.painted_frame(seq)
            frame.pts = int(self.gops.seq_pts[seq - 1])
            frame.time_base = self.gops.time_base
            yield frame

    def painted_frame(self, seq: int) -> av.VideoFrame:
        """Frame `seq` of the original with its regions painted, as x264 is given it (`VideoWriter.write_i420`
        or `.write`, the master writer's own conversions)."""
        boxes = self._painted.boxes(seq)
        if self._i420:
            i420 = self._timed("decode", self._decoded, seq)
            self._timed("mask", self._masker.apply_i420, i420, boxes)
            return i420_frame(i420)
        rgb = self._timed("decode", self._decoded, seq)
        self._timed("mask", self._masker.apply, rgb, boxes)
        return rgb_to_frame(rgb, self._pix_fmt)

    def _codec(self) -> av.VideoCodecContext:
        codec = av.CodecContext.create("libx264", "w")
        codec.width, codec.height, codec.pix_fmt = self._width, self._height, self._pix_fmt
        codec.time_base = self.gops.time_base
        self._settings.configure(codec)
        self._signal.configure(codec)
        return codec

    def _decoded(self, seq: int) -> np.ndarray:
        """Frame `seq` of the original as a fresh array (masking writes into it): I420 planes, or RGB in the
        displayed orientation."""
        frame = self._reader.av_frame(seq)
        if self._i420:
            size = displayed_size(frame.width, frame.height, self._reader.rotation)
            fits = size == (self._width, self._height)
            array = frame_to_i420(frame, self._reader.rotation) if fits else None
        else:
            array = np.ascontiguousarray(rotate(frame_to_rgb(frame), self._reader.rotation))
            size = (array.shape[1], array.shape[0])
        if array is None or size != (self._width, self._height):
            raise NotAVideoError(
                f"frame {seq} of the original is {size[0]}x{size[1]}, the master {self._width}x{self._height}"
            )
        return array

    def _retime(self, packet: av.Packet[Any], position: int, keys: set[int]) -> av.Packet[Any]:
        """The master's dts at the same decode position; IDRs exactly where the master has them."""
        if packet.is_keyframe != (position in keys):
            raise FramemaskError(f"packet {position}: key frames do not line up with the master's GOPs")
        dts = int(self.gops.dts[position])
        if packet.pts is None or dts > packet.pts:
            raise FramemaskError(f"packet {position}: cannot splice (dts {dts} after pts {packet.pts})")
        data = bytes(packet)
        new = av.Packet(annexb_to_avcc(data, self._nal_length) if self._nal_length else data)
        new.pts, new.dts, new.is_keyframe = packet.pts, dts, packet.is_keyframe
        new.time_base = self.gops.time_base
        return new

    def _timed(self, stage: str, fn: Callable[..., Any], *args: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self._timer[stage] = self._timer.get(stage, 0.0) + time.perf_counter() - start

    def close(self) -> None:
        with contextlib.suppress(av.error.FFmpegError):
            self._reader.close()

    def __enter__(self) -> GopEncoder:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
