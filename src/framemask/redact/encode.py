"""The processed master: H.264 in MP4 that keeps every input timestamp and is built for GOP patching.

- **Timestamps**: each frame is written with the input frame's own pts in the input stream's time base
  (the MP4 muxer only rescales to a finer timescale), so frame count and every timestamp survive and VFR
  stays VFR. Inputs whose timestamps repeat (webcam recordings do) cannot be stored as-is in MP4; those
  frames move by one microsecond each (`nudged` counts them), the smallest step that keeps them distinct.
- **Orientation**: pixels are written as displayed (rotation applied, no rotation side data), because masks
  are computed in displayed coordinates and every later consumer (browser, exact reader, re-render) then
  sees the same pixels without having to honour a display matrix.
- **GOPs**: closed, exactly `keyint` frames (`KEY_SECONDS`, half a second), no scene-cut key frames, SPS/PPS
  repeated in-band at every IDR and signalled as `avc3`, so a corrected GOP re-encoded later can be spliced in
  alone. Half-second GOPs halve what the editor's random frame access decodes and what one correction
  re-encodes, for about 10-15% more bytes than one-second GOPs at the same quality (`docs/benchmarks.md`).
  No B-pyramid makes that access cheaper still (`EncodeSettings.b_pyramid`).
- **Audio** is stream-copied when MP4 can hold its codec, otherwise re-encoded to AAC; or dropped. With
  muted spans (a reviewer's `mutedRanges`) it is decoded, silenced or replaced by a 1 kHz tone over exactly
  those spans (sample-accurate), and re-encoded to AAC; untouched samples pass through the codec unchanged.
- **Signal**: the input's pixel aspect ratio and colour description (`media.VideoSignal`) are written into the
  SPS and the MP4, as they hold for the samples written: I420 planes (every even-sized video, rotated or not)
  pass through unchanged; frames painted in RGB (odd sizes) come back in BT.601 at limited range.
- **Metadata**: nothing else is copied from the input container or streams (GPS, make/model, creation time).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, cast

import av
import cv2
import numpy as np

from framemask.media.rotate import rotate
from framemask.media.signal import RANGE_FULL, VideoSignal

__all__ = [
    "COPYABLE_AUDIO",
    "TONE_HZ",
    "TONE_LEVEL",
    "AudioCopier",
    "EncodeSettings",
    "MutedSpan",
    "VideoWriter",
    "frame_to_i420",
    "frame_to_rgb",
    "gop_starts_for",
    "i420_frame",
    "i420_to_rgb",
    "monotonic_pts",
    "redact_audio_frame",
    "rgb_to_frame",
]

log = logging.getLogger(__name__)

COPYABLE_AUDIO = frozenset({"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"})
"""Audio codecs MP4 holds as they are; anything else is re-encoded to AAC."""

NUDGE_SCALE = 1000
"""Repeated timestamps are separated in a time base this much finer than the input's."""
KEY_SECONDS = 0.5
"""A processed master's GOP length in seconds (its key-frame interval)."""
TONE_HZ = 1000.0
TONE_LEVEL = 0.1
"""Amplitude of the replacement tone (full scale 1.0): -20 dBFS, clearly audible, never loud."""


_B_PYRAMID = {"0": "none", "1": "strict", "2": "normal"}
"""x264's recorded `b_pyramid` values as its `b-pyramid` option names them."""


@dataclass(frozen=True)
class EncodeSettings:
    """x264 settings of the processed master (a re-render of single GOPs must use the same ones)."""

    crf: int = 23
    preset: str = "veryfast"
    keyint: int = 30
    threads: int = 0
    bframes: int | None = None
    """None: the preset's. 0 for segmented renders: with no reordering every packet's dts is its pts, so
    segments encoded apart join by remux with monotonic timestamps."""
    b_pyramid: str | None = None
    """None: the preset's ("normal": the middle B-frame of a run is a reference). New masters use "none": every
    B-frame is then a non-reference frame the exact reader can skip on its way to a frame (random access decodes
    the key frame and the P-frames only), for under 1% more bytes. Recorded with the video, so a re-render of an
    older master keeps its structure."""
    tune: str | None = None
    """x264's `tune` (None: none). Review proxies use "fastdecode" (no CABAC, deblocking or weighted prediction):
    every frame decodes in about half the time, for more bytes at the same quality."""

    @classmethod
    def for_fps(cls, fps: float) -> EncodeSettings:
        """A master's default settings at frame rate `fps`: one key frame every `KEY_SECONDS`."""
        return cls(keyint=max(1, round((fps if fps > 0 else 25.0) * KEY_SECONDS)), b_pyramid="none")

    @classmethod
    def from_x264_options(cls, options: Mapping[str, str], keyint: int) -> EncodeSettings:
        """Settings that rebuild the GOPs of a master x264 wrote with `options` (its own record of them,
        `gops.x264_options`): the GOP length and the B-frame layout, the inverse of `x264_params`."""
        bframes = options.get("bframes", "")
        return cls(
            keyint=keyint,
            bframes=int(bframes) if bframes.isdigit() else None,
            b_pyramid=_B_PYRAMID.get(options.get("b_pyramid", "")),
        )

    def x264_params(self) -> str:
        k = max(1, self.keyint)
        params = f"keyint={k}:min-keyint={k}:scenecut=0:open-gop=0:repeat-headers=1"
        if self.bframes is not None:
            params += f":bframes={self.bframes}"
        if self.b_pyramid is not None:
            params += f":b-pyramid={self.b_pyramid}"
        return params

    def configure(self, ctx: av.VideoCodecContext) -> None:
        """Set up an x264 encoder context: the one configuration of masters and re-encoded GOPs."""
        ctx.gop_size = max(1, self.keyint)
        ctx.thread_count = self.threads
        ctx.thread_type = "FRAME"  # x264 frame threads, as the ffmpeg CLI uses (PyAV's default is ~1.5x slower)
        ctx.options = {"preset": self.preset, "crf": str(self.crf), "x264-params": self.x264_params()}
        if self.tune is not None:
            ctx.options = {**ctx.options, "tune": self.tune}

    def to_dict(self) -> dict[str, Any]:
        """What a re-render needs to encode GOPs the same way (recorded with the video)."""
        out: dict[str, Any] = {"crf": self.crf, "preset": self.preset, "keyint": self.keyint}
        if self.bframes is not None:
            out["bframes"] = self.bframes
        if self.b_pyramid is not None:
            out["b_pyramid"] = self.b_pyramid
        if self.tune is not None:
            out["tune"] = self.tune
        return out


def monotonic_pts(pts: np.ndarray, time_base: Fraction) -> tuple[np.ndarray, Fraction, int]:
    """Strictly increasing timestamps for the muxer: unchanged if already so, else nudged in a finer base.

    Returns (pts, time_base, number of frames moved).
    """
    pts = np.asarray(pts, dtype=np.int64)
    if len(pts) < 2 or bool(np.all(np.diff(pts) > 0)):
        return pts, time_base, 0
    fine = pts * NUDGE_SCALE
    out = fine.copy()
    for i in range(1, len(out)):
        out[i] = max(out[i], out[i - 1] + 1)
    return out, time_base / NUDGE_SCALE, int(np.count_nonzero(out != fine))


def gop_starts_for(end_sequence: int, keyint: int) -> list[int]:
    """First seq of every GOP for a fixed `keyint` (what the encoder is configured to produce)."""
    return list(range(1, end_sequence + 1, max(1, keyint)))


def rgb_to_frame(rgb: np.ndarray, pix_fmt: str) -> av.VideoFrame:
    """An encoder frame from RGB. 4:2:0 goes through OpenCV (SIMD, about 4x faster than swscale here, and
    the exact inverse of `frame_to_rgb`), anything else through swscale."""
    if pix_fmt == "yuv420p" and rgb.shape[0] % 2 == 0 and rgb.shape[1] % 2 == 0:
        return i420_frame(np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420), np.uint8))
    return av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=pix_fmt)


def i420_frame(i420: np.ndarray) -> av.VideoFrame:
    """An encoder frame over an I420 array's own memory, not a copy of it (`from_ndarray` copies it twice,
    ~1 ms a 720p frame). The frame holds a reference to the array, which must not change afterwards:
    libavcodec keeps the frame until the encoder has taken its pixels."""
    return av.VideoFrame.from_numpy_buffer(np.ascontiguousarray(i420), format="yuv420p")


def frame_to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """RGB pixels of a decoded frame (stored orientation); limited-range 4:2:0 via OpenCV, the rest via swscale
    (which honours the frame's range and matrix)."""
    if frame.format.name == "yuv420p" and frame.color_range != RANGE_FULL and frame.width % 2 == 0 == frame.height % 2:
        return i420_to_rgb(frame_to_i420(frame))
    return frame.to_ndarray(format="rgb24")


def frame_to_i420(frame: av.VideoFrame, rotation: int = 0) -> np.ndarray:
    """A decoded frame of even size as one contiguous, writable I420 array ((H*3/2) x W: Y, U, V planes),
    turned counter-clockwise by `rotation` degrees as `media.rotate` turns an RGB image.

    4:2:0 frames are copied plane by plane (the decoder's buffers may still be reference frames, so
    they are never written to); other formats are converted by swscale first. A rotation turns each plane on
    its own while it is copied: samples move but are never converted (a portrait phone clip keeps its colours
    exactly, and skips the two colour conversions a frame of the RGB path)."""
    if frame.width % 2 or frame.height % 2:
        raise ValueError(f"I420 needs an even frame size, got {frame.width}x{frame.height}")
    if frame.format.name != "yuv420p":
        frame = frame.reformat(format="yuv420p")
    planes = [np.frombuffer(memoryview(p), np.uint8).reshape(p.height, p.line_size)[:, : p.width] for p in frame.planes]
    turned = [rotate(plane, rotation) for plane in planes]
    return np.concatenate([plane.reshape(-1) for plane in turned]).reshape(-1, turned[0].shape[1])


def i420_to_rgb(i420: np.ndarray) -> np.ndarray:
    """RGB of an I420 array (OpenCV; the exact inverse of the conversion `rgb_to_frame` uses)."""
    return cv2.cvtColor(i420, cv2.COLOR_YUV2RGB_I420)


def _rate(fps: float) -> Fraction:
    return Fraction(fps).limit_denominator(1001) if fps > 0 else Fraction(25)


@dataclass
class VideoWriter:
    """Writes RGB frames with given timestamps to an MP4 master; `close()` returns the GOP map.

    Use as a context manager; on an exception the partial output is deleted.
    """

    dst: str | os.PathLike[str]
    width: int
    height: int
    time_base: Fraction
    fps: float
    settings: EncodeSettings = field(default_factory=EncodeSettings)
    audio_from: str | os.PathLike[str] | None = None
    signal: VideoSignal = field(default_factory=VideoSignal)
    """The input's signal: written as it is with I420 frames, `through_rgb` with RGB ones."""
    gop_starts: list[int] = field(default_factory=list, init=False)
    frames: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self._out = av.open(str(self.dst), mode="w", format="mp4")
        self._video = self._add_video_stream()
        self._audio = AudioCopier(self.audio_from, self._out) if self.audio_from is not None else None
        self._seq_of_pts: dict[int, int] = {}

    def _add_video_stream(self) -> av.VideoStream:
        odd = self.width % 2 or self.height % 2
        stream = self._out.add_stream("libx264", rate=_rate(self.fps))
        stream.width, stream.height = self.width, self.height
        stream.pix_fmt = "yuv444p" if odd else "yuv420p"  # x264 4:2:0 needs even sizes; keep the size
        stream.time_base = self.time_base
        ctx = stream.codec_context
        ctx.time_base = self.time_base
        ctx.codec_tag = "avc3"
        self.settings.configure(ctx)
        return stream

    @property
    def pix_fmt(self) -> str:
        """The encoder's pixel format: yuv420p, or yuv444p for odd sizes."""
        return str(self._video.pix_fmt)

    def write(self, rgb: np.ndarray, pts: int) -> None:
        """Encode one displayed-orientation RGB frame with timestamp `pts` (in `time_base`)."""
        if not self.frames:
            self.signal.through_rgb().configure(self._video.codec_context)
        frame = rgb_to_frame(rgb, self.pix_fmt)
        frame.pts = int(pts)
        frame.time_base = self.time_base
        self.frames += 1
        self._seq_of_pts[int(pts)] = self.frames
        self._mux(self._video.encode(frame))

    def write_i420(self, i420: np.ndarray, pts: int) -> None:
        """Encode one displayed-orientation I420 frame (`frame_to_i420`) as it is: no colour conversion."""
        if self._video.pix_fmt != "yuv420p":
            raise ValueError(f"this master is {self._video.pix_fmt}; write RGB frames")
        if not self.frames:
            self.signal.configure(self._video.codec_context)
        frame = i420_frame(i420)
        frame.pts = int(pts)
        frame.time_base = self.time_base
        self.frames += 1
        self._seq_of_pts[int(pts)] = self.frames
        self._mux(self._video.encode(frame))

    def _mux(self, packets: list[av.Packet[Any]]) -> None:
        for packet in packets:
            if packet.is_keyframe and packet.pts is not None:
                self.gop_starts.append(self._seq_of_pts.get(int(packet.pts), -1))
            if self._audio is not None and packet.dts is not None:
                self._audio.copy_until(float(packet.dts * self.time_base))
            self._out.mux(packet)

    def close(self) -> list[int]:
        """Flush encoder and audio, finish the file; the first seq of every GOP."""
        self._mux(self._video.encode(None))
        if self._audio is not None:
            self._audio.copy_until(float("inf"))
            self._audio.close()
        self._out.close()
        self.gop_starts.sort()
        return self.gop_starts

    def abort(self) -> None:
        """Close without flushing and delete the partial file."""
        try:
            if self._audio is not None:
                self._audio.close()
            self._out.close()
        except av.error.FFmpegError:
            pass
        Path(self.dst).unlink(missing_ok=True)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is not None:
            self.abort()


@dataclass(frozen=True)
class MutedSpan:
    """Audio replaced over [start, end) seconds of the container timeline: silence, or a 1 kHz tone."""

    start: float
    end: float
    mode: str = "mute"


def redact_audio_frame(frame: av.AudioFrame, spans: Sequence[MutedSpan]) -> av.AudioFrame:
    """`frame` with every sample whose time falls in a span silenced (`mute`) or replaced by a tone.

    A sample's time is the frame's pts plus its index over the sample rate; the tone's phase follows that
    absolute time, so it is continuous across frames. Frames no span touches come back as they are.
    """
    if frame.pts is None or frame.time_base is None or not spans:
        return frame
    rate, n = frame.sample_rate, frame.samples
    t0 = float(frame.pts * frame.time_base)
    t1 = t0 + n / rate
    hits = [s for s in spans if s.start < t1 and s.end > t0]
    if not hits:
        return frame
    if frame.format.name == "fltp":
        data = np.array(frame.to_ndarray(), dtype=np.float32, copy=True).reshape(-1, n)
    else:  # PCM and other sample formats: planar float first (same rate and layout, so the same samples)
        resampler = av.AudioResampler(format="fltp", layout=frame.layout, rate=rate)
        data = np.concatenate([f.to_ndarray() for f in resampler.resample(frame)], axis=1).astype(np.float32)
    for span in hits:
        a = min(max(int(np.ceil((span.start - t0) * rate - 1e-6)), 0), n)
        b = min(max(int(np.ceil((span.end - t0) * rate - 1e-6)), 0), n)
        if a >= b:
            continue
        if span.mode == "tone":
            t = (np.arange(a, b) + round(t0 * rate)) / rate
            data[:, a:b] = (TONE_LEVEL * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.float32)
        else:
            data[:, a:b] = 0.0
    out = av.AudioFrame.from_ndarray(data, format="fltp", layout=frame.layout.name)
    out.sample_rate, out.pts, out.time_base = rate, frame.pts, frame.time_base
    return out


class AudioCopier:
    """Moves the source's first audio stream into the output, interleaved with the video by time.

    With `muted` spans the audio is decoded, redacted (`redact_audio_frame`) and re-encoded to AAC, keeping
    every frame's timestamp; without, it is copied byte for byte when MP4 holds the codec.
    """

    def __init__(
        self, src: str | os.PathLike[str], out: av.container.OutputContainer, muted: Sequence[MutedSpan] = ()
    ) -> None:
        self._in = av.open(str(src), mode="r")
        self._src = self._in.streams.audio[0] if self._in.streams.audio else None
        self._pending: av.Packet[av.AudioStream] | None = None
        self._last_dts: int | None = None
        self._packets: Iterator[av.Packet[av.AudioStream]] = iter(())
        self._muted = tuple(muted)
        if self._src is None:
            return
        self._copy = self._src.codec_context.codec.canonical_name in COPYABLE_AUDIO and not self._muted
        if self._copy:
            self._dst = out.add_stream_from_template(self._src)
        else:
            if not self._muted:
                log.info("audio codec %s is re-encoded to AAC", self._src.codec_context.name)
            channels = self._src.codec_context.layout.nb_channels
            layout = {1: "mono", 6: "5.1"}.get(channels, "stereo")  # anything else is mixed to stereo
            self._dst = out.add_stream("aac", rate=self._src.codec_context.sample_rate or 48000, layout=layout)
            if self._muted:
                self._dst.bit_rate = max(int(self._src.codec_context.bit_rate or 0), 64000 * min(channels, 2))
        self._dst.metadata.clear()
        self._out = out
        self._packets = self._demux()

    @property
    def reencoded(self) -> bool:
        """True when the audio is decoded and encoded again (not a byte copy)."""
        return self._src is not None and not self._copy

    @property
    def present(self) -> bool:
        return self._src is not None

    def _demux(self) -> Iterator[av.Packet[av.AudioStream]]:
        try:
            for packet in self._in.demux(self._src):
                if packet.dts is None and packet.pts is None:
                    continue
                yield cast("av.Packet[av.AudioStream]", packet)  # demuxing the audio stream alone
        except av.error.FFmpegError as exc:  # a damaged audio tail must not lose the video
            log.warning("audio copy stopped early: %s", exc)

    def copy_until(self, seconds: float) -> None:
        """Mux audio packets up to `seconds` (+0.5 s of lead, as muxers interleave)."""
        while True:
            packet = self._pending if self._pending is not None else next(self._packets, None)
            self._pending = None
            if packet is None:
                return
            t = packet.dts if packet.dts is not None else packet.pts
            if t is not None and packet.time_base is not None and float(t * packet.time_base) > seconds + 0.5:
                self._pending = packet
                return
            self._write(packet)

    def _write(self, packet: av.Packet[av.AudioStream]) -> None:
        if self._copy:
            self._fix_dts(packet)
            packet.stream = self._dst
            self._out.mux(packet)
            return
        try:
            for frame in packet.decode():
                if self._muted:  # keep each frame's time: the spans are placed by it
                    frame = redact_audio_frame(frame, self._muted)
                else:
                    frame.pts = None
                self._out.mux(self._dst.encode(frame))
        except av.error.FFmpegError as exc:
            log.warning("skipping undecodable audio packet: %s", exc)

    def _fix_dts(self, packet: av.Packet[av.AudioStream]) -> None:
        """Repeated audio dts (webcam recordings have them) move up one tick, as the ffmpeg CLI does."""
        if packet.dts is None:
            packet.dts = packet.pts
        if self._last_dts is not None and packet.dts is not None and packet.dts <= self._last_dts:
            packet.dts = self._last_dts + 1
            if packet.pts is not None and packet.pts < packet.dts:
                packet.pts = packet.dts
        self._last_dts = packet.dts

    def close(self) -> None:
        if self._src is not None and not self._copy:  # flush the encoder
            with contextlib.suppress(av.error.FFmpegError):
                self._out.mux(self._dst.encode(None))
        self._in.close()
