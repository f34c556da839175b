"""How a player must show a video's samples: the pixel aspect ratio and the colour description.

H.264 calls these the VUI's aspect ratio and video signal type; containers repeat them. They are not pixels,
so a re-encode drops them unless it carries them over: an anamorphic clip (DV, broadcast, some phones' slow
motion) then plays squeezed, a full-range clip with crushed blacks, and an HDR (HLG or PQ) phone clip with
washed-out colours. The codes are FFmpeg's (ITU-T H.273): 2 means unspecified.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

import av

from framemask.media.rotate import normalize_rotation

__all__ = ["RANGE_FULL", "RANGE_LIMITED", "RANGE_UNSPECIFIED", "UNSPECIFIED", "VideoSignal"]

UNSPECIFIED = 2
"""H.273's "unspecified" for primaries, transfer and matrix."""
RANGE_UNSPECIFIED, RANGE_LIMITED, RANGE_FULL = 0, 1, 2
"""FFmpeg's colour ranges: limited is "tv" (16-235), full is "pc" (0-255)."""
BT601_MATRIX = 6
"""smpte170m: the matrix of OpenCV's and swscale's default RGB <-> YUV conversions."""

_PRIMARIES = {1: "bt709", 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "film", 9: "bt2020",
              10: "smpte428", 11: "smpte431", 12: "smpte432", 22: "ebu3213"}  # fmt: skip
_TRANSFERS = {1: "bt709", 4: "gamma22", 5: "gamma28", 6: "smpte170m", 7: "smpte240m", 8: "linear", 11: "iec61966-2-4",
              13: "iec61966-2-1", 14: "bt2020-10", 15: "bt2020-12", 16: "smpte2084", 18: "arib-std-b67"}  # fmt: skip
_MATRICES = {0: "gbr", 1: "bt709", 4: "fcc", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "ycgco", 9: "bt2020nc",
             10: "bt2020c", 14: "ictcp"}  # fmt: skip
_RANGES = {RANGE_LIMITED: "tv", RANGE_FULL: "pc"}
MIN_SAR, MAX_SAR = Fraction(1, 4), Fraction(4)


@dataclass(frozen=True)
class VideoSignal:
    """A video's pixel aspect ratio (of the displayed orientation) and colour description."""

    sample_aspect_ratio: Fraction = Fraction(1)
    primaries: int = UNSPECIFIED
    transfer: int = UNSPECIFIED
    matrix: int = UNSPECIFIED
    range: int = RANGE_UNSPECIFIED

    @classmethod
    def of(cls, stream: av.VideoStream, frame: av.VideoFrame) -> VideoSignal:
        """The signal of a stream, from its first decoded frame; the aspect ratio as displayed (a portrait
        rotation turns a pixel on its side, so its ratio inverts)."""
        sar = _plausible(stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio)
        if normalize_rotation(frame.rotation) in (90, 270):
            sar = 1 / sar
        full = frame.color_range == RANGE_FULL or frame.format.name.startswith("yuvj")
        return cls(
            sample_aspect_ratio=sar,
            primaries=frame.color_primaries,
            transfer=frame.color_trc,
            matrix=frame.colorspace,
            range=RANGE_FULL if full else frame.color_range,
        )

    @classmethod
    def of_codec(cls, ctx: av.VideoCodecContext) -> VideoSignal:
        """The signal an encoder or decoder context carries (a master's, to re-encode its GOPs alike)."""
        return cls(
            sample_aspect_ratio=_plausible(ctx.sample_aspect_ratio),
            primaries=ctx.color_primaries,
            transfer=ctx.color_trc,
            matrix=ctx.colorspace,
            range=ctx.color_range,
        )

    def through_rgb(self) -> VideoSignal:
        """The signal of frames taken to RGB and back, as the RGB path of a render does.

        Decoding to RGB honours the matrix and range a frame is tagged with (untagged: BT.601, limited), and
        `redact.encode.rgb_to_frame` returns with BT.601 at limited range. So a tagged matrix becomes BT.601 and
        full range becomes limited; untagged stays untagged (the round trip gives back the same samples, which
        a player reads as it read the input's); primaries and transfer are the input's."""
        matrix = self.matrix if self.matrix == UNSPECIFIED else BT601_MATRIX
        return replace(self, matrix=matrix, range=RANGE_LIMITED if self.range == RANGE_FULL else self.range)

    def configure(self, ctx: av.VideoCodecContext) -> None:
        """Have an encoder write this signal (x264 puts it in every SPS; MP4 adds a `pasp` box for the ratio)."""
        if self.sample_aspect_ratio != 1:
            ctx.sample_aspect_ratio = self.sample_aspect_ratio
        ctx.color_primaries, ctx.color_trc = self.primaries, self.transfer
        ctx.colorspace, ctx.color_range = self.matrix, self.range

    def to_json(self) -> dict[str, Any]:
        """ffprobe's names (a number where it has none), and the aspect ratio as "num:den"."""
        sar = self.sample_aspect_ratio
        return {
            "sample_aspect_ratio": f"{sar.numerator}:{sar.denominator}",
            "color_primaries": _name(_PRIMARIES, self.primaries),
            "color_transfer": _name(_TRANSFERS, self.transfer),
            "color_space": _name(_MATRICES, self.matrix),
            "color_range": _RANGES.get(self.range, "unknown"),
        }


def _name(names: dict[int, str], code: int) -> str | int:
    return names.get(code, "unknown" if code == UNSPECIFIED else code)


def _plausible(sar: Fraction | None) -> Fraction:
    """A stored pixel aspect ratio, or square pixels where it is missing or absurd (real ones lie within
    about 0.7-2: DV, broadcast and anamorphic lenses; a corrupt header says anything)."""
    return Fraction(sar) if sar is not None and MIN_SAR <= sar <= MAX_SAR else Fraction(1)
