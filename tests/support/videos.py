"""Test videos made with PyAV: every frame shows its own number, so a wrong frame is visible in pixels."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

TIME_BASE = Fraction(1, 90000)


@dataclass(frozen=True)
class VideoSpec:
    """What to generate; `times` (seconds) overrides `n`/`fps` for variable frame rates."""

    n: int = 60
    fps: int = 30
    times: tuple[float, ...] | None = None
    size: tuple[int, int] = (320, 240)
    codec: str = "libx264"
    pix_fmt: str = "yuv420p"
    gop: int = 30
    bframes: int = 0
    rotation: int = 0
    start: float = 0.0
    audio: bool = False
    options: dict[str, str] = field(default_factory=dict)
    sar: Fraction | None = None
    cuts: tuple[int, ...] = ()
    """Frames (0-based) that start a new shot: from each, the background's gradients run the other way round (a
    hard cut to `ShotCuts`), every second shot."""
    color: tuple[int, int, int, int] | None = None
    """Primaries, transfer, matrix, range (FFmpeg's codes) written into the stream; the samples follow the
    matrix and range (swscale converts the RGB pattern with them)."""

    def frame_times(self) -> list[float]:
        return list(self.times) if self.times is not None else [i / self.fps for i in range(self.n)]


def vfr_times(sections: tuple[tuple[int, int], ...] = ((30, 30), (10, 10), (60, 30))) -> tuple[float, ...]:
    """Frame times for (count, fps) sections played one after the other."""
    times, t = [], 0.0
    for count, fps in sections:
        for _ in range(count):
            times.append(t)
            t += 1.0 / fps
    return tuple(times)


def pattern(i: int, width: int, height: int, turned: bool = False) -> np.ndarray:
    """A frame that encodes `i`: a gradient background (`turned`: both gradients the other way round), a moving
    bar, and 8 binary blocks of the number. The blue level rises and falls by 7 a frame (a saw-tooth's drop from
    255 to 0 would be a hard cut: `ShotCuts`)."""
    y, x = np.mgrid[0:height, 0:width]
    if turned:
        y, x = height - 1 - y, width - 1 - x
    img = np.empty((height, width, 3), dtype=np.uint8)
    img[..., 0] = (x * 255 // max(width - 1, 1)).astype(np.uint8)
    img[..., 1] = (y * 255 // max(height - 1, 1)).astype(np.uint8)
    img[..., 2] = abs((i * 7) % 510 - 255)
    bar = (i * 5) % max(width - 8, 1)
    img[:, bar : bar + 8] = 255
    block = max(width // 10, 4)
    for bit in range(8):
        on = (i >> bit) & 1
        img[0:block, bit * block : (bit + 1) * block] = 255 if on else 0
    return img


def frame_number(rgb: np.ndarray) -> int:
    """The number `pattern` drew into the top-left blocks (read back from decoded pixels)."""
    block = max(rgb.shape[1] // 10, 4)
    bits = [rgb[2 : block - 2, b * block + 2 : (b + 1) * block - 2].mean() > 128 for b in range(8)]
    return sum(1 << b for b, on in enumerate(bits) if on)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two uint8 images (dB; 99 for identical ones)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def make_video(path: Path, spec: VideoSpec) -> Path:
    """Encode `spec` into `path` (container from the suffix)."""
    width, height = spec.size
    tb = TIME_BASE if spec.codec != "mpeg4" else Fraction(1, 600)  # MPEG-4 part 2 allows denominators < 65536
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream(spec.codec, rate=spec.fps)
        stream.width, stream.height, stream.pix_fmt = width, height, spec.pix_fmt
        stream.time_base = tb
        stream.codec_context.time_base = tb
        stream.codec_context.gop_size = spec.gop
        stream.codec_context.max_b_frames = spec.bframes
        if spec.codec == "libx264":
            stream.options = {
                "bf": str(spec.bframes),
                "preset": "ultrafast" if not spec.bframes else "veryfast",
                "sc_threshold": "0",
                **spec.options,
            }
        if spec.rotation:
            stream.set_display_rotation(spec.rotation)
        if spec.sar is not None:
            stream.codec_context.sample_aspect_ratio = spec.sar
        if spec.color is not None:
            ctx = stream.codec_context
            ctx.color_primaries, ctx.color_trc, ctx.colorspace, ctx.color_range = spec.color
        audio = out.add_stream("aac", rate=48000) if spec.audio else None
        for i, t in enumerate(spec.frame_times()):
            turned = sum(i >= c for c in spec.cuts) % 2 == 1
            frame = av.VideoFrame.from_ndarray(pattern(i, width, height, turned), format="rgb24")
            if spec.color is not None:
                frame = frame.reformat(format=spec.pix_fmt, dst_colorspace=spec.color[2], dst_color_range=spec.color[3])
            frame.pts = round((t + spec.start) / tb)
            frame.time_base = tb
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
        if audio is not None:
            _write_tone(out, audio, spec.frame_times()[-1] + 1 / spec.fps)
    return path


def _write_tone(out: av.container.OutputContainer, stream: av.AudioStream, seconds: float) -> None:
    rate, samples = 48000, 1024
    t0 = 0
    while t0 < seconds * rate:
        t = (np.arange(samples) + t0) / rate
        data = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(data, format="fltp", layout="mono")
        frame.sample_rate, frame.pts = rate, t0
        out.mux(stream.encode(frame))
        t0 += samples
    out.mux(stream.encode(None))


def ffprobe_count(path: Path, unit: str = "frames") -> int:
    """Frames counted by decoding with ffprobe (the reference count), or with `unit="packets"` its video packets."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", f"-count_{unit}", "-select_streams", "v:0",
         "-show_entries", f"stream=nb_read_{unit}", "-of", "default=nw=1:nk=1", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout  # fmt: skip
    return int(out.split()[0])
