"""What a video is: size as displayed, rotation, codec, timing and audio, from its container and first frame."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import Any

from framemask.errors import NotAVideoError
from framemask.media._av import MAX_DIMENSION, map_av_errors, open_video
from framemask.media.index import FrameIndex, round_ms
from framemask.media.rotate import displayed_size, normalize_rotation
from framemask.media.signal import VideoSignal

IMAGE_CONTAINERS = frozenset({"image2", "gif", "apng", "webp", "ico", "jpegxl_anim"})
"""FFmpeg demuxers of still (or animated) images; every `*_pipe` demuxer (png_pipe, jpeg_pipe, …) too."""
IMAGE_CODECS = frozenset(
    {"png", "apng", "mjpeg", "jpeg2000", "jpegls", "jpegxl", "bmp", "gif", "webp", "tiff", "qoi", "pam", "pbm",
     "pgm", "ppm", "pcx", "sgi", "targa", "xbm", "xpm", "xwd", "dds", "exr", "hdr", "psd", "sunrast", "pictor"}
)  # fmt: skip
"""Image codecs: refused in a one-frame file (a photo renamed .mp4, an audio file's cover art); MJPEG/PNG
video in AVI/MOV is fine."""


@dataclass(frozen=True)
class VideoInfo:
    """Probe facts of one video; `width`/`height` are as displayed (rotation applied).

    `rotation` is FFmpeg's display-matrix angle as ffprobe prints it (e.g. -90 for a portrait phone clip).
    `signal` is how a player shows the samples (pixel aspect ratio, colour): a render carries it over.
    """

    path: str
    width: int
    height: int
    coded_width: int
    coded_height: int
    rotation: int
    codec: str
    pix_fmt: str
    time_base: Fraction
    container: str
    end_sequence: int
    duration_ms: float
    fps: float
    vfr: bool
    has_audio: bool
    audio_codecs: list[str] = field(default_factory=list)
    signal: VideoSignal = field(default_factory=VideoSignal)
    index: FrameIndex | None = field(default=None, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        """The `framemask probe` JSON (seed naming: `endSequence`)."""
        data = asdict(self)
        data.pop("index")
        data.pop("signal")
        data.update(self.signal.to_json())
        data["time_base"] = f"{self.time_base.numerator}/{self.time_base.denominator}"
        data["endSequence"] = data.pop("end_sequence")
        data["duration_ms"] = round_ms(self.duration_ms)
        data["fps"] = round(self.fps, 4)
        return data


def refuse_images(info: VideoInfo, name: str | os.PathLike[str]) -> None:
    """NotAVideoError for a still or animated image (or the cover art of an audio file), whatever its file name
    says: the upload API and the library's renders apply the same rule."""
    container = info.container.split(",")[0]
    if (
        container in IMAGE_CONTAINERS
        or container.endswith("_pipe")
        or (info.end_sequence <= 1 and info.codec in IMAGE_CODECS)
    ):
        if info.has_audio and info.end_sequence <= 1:  # a song or a podcast with its cover art
            raise NotAVideoError(f"{name} is audio with a still picture ({info.codec}), not a video")
        raise NotAVideoError(f"{name} is an image ({info.codec} in {container}), not a video; give a video file")


def probe(path: str | os.PathLike[str], index: FrameIndex | None = None) -> VideoInfo:
    """Probe `path`, decoding its first frame to prove it is a video; builds the frame index if not given."""
    container = open_video(path)
    try:
        stream = container.streams.video[0]
        codec = stream.codec_context.name
        with map_av_errors(path):
            first = next(container.decode(stream), None)
        if first is None:
            raise NotAVideoError(f"{path}: the video has zero decodable frames")
        if not (0 < first.width <= MAX_DIMENSION and 0 < first.height <= MAX_DIMENSION):
            raise NotAVideoError(f"{path}: absurd frame size {first.width}x{first.height}")
        rotation = round(first.rotation or 0)
        audio = [a.codec_context.name for a in container.streams.audio]
        fmt = container.format.name
        time_base = stream.time_base or Fraction(1, 90000)
        pix_fmt = first.format.name
        coded = (first.width, first.height)
        signal = VideoSignal.of(stream, first)
    finally:
        container.close()
    index = index if index is not None else FrameIndex.build(path)
    width, height = displayed_size(*coded, normalize_rotation(rotation))
    return VideoInfo(
        path=str(path),
        width=width,
        height=height,
        coded_width=coded[0],
        coded_height=coded[1],
        rotation=rotation,
        codec=codec,
        pix_fmt=pix_fmt,
        time_base=time_base,
        container=fmt,
        end_sequence=index.end_sequence,
        duration_ms=index.duration_ms,
        fps=index.fps,
        vfr=index.vfr,
        has_audio=bool(audio),
        audio_codecs=audio,
        signal=signal,
        index=index,
    )
