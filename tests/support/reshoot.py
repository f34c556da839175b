"""TUD-Campus re-shot through an ffmpeg filter, its ground truth moved alike: the same annotated walkers as
footage the shared media lack (anamorphic pixels, a street seen from afar)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from framemask.redact.scoring import load_gt, load_regions

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Reshoot:
    """An ffmpeg video filter and where it puts a point of the 640x480 original: scaled, then offset."""

    filters: str
    size: tuple[int, int]
    scale: tuple[float, float]
    offset: tuple[float, float] = (0.0, 0.0)

    def move(self, box: Box) -> Box:
        (sx, sy), (ox, oy) = self.scale, self.offset
        return (box[0] * sx + ox, box[1] * sy + oy, box[2] * sx + ox, box[3] * sy + oy)


ANAMORPHIC = Reshoot("scale=480:480,setsar=4/3", (480, 480), (0.75, 1.0))
"""Squeezed to 480x480 with 4:3 pixels: shown 640x480, as DV or anamorphic broadcast is."""
WIDE_SHOT = Reshoot("scale=320:240,pad=1920:1080:800:500:gray", (1920, 1080), (0.5, 0.5), (800.0, 500.0))
"""At half size on a grey 1080p canvas: a street seen from afar, its walkers 65-155 px tall."""


@dataclass(frozen=True)
class Reshot:
    path: Path
    size: tuple[int, int]
    gt: dict[int, list[tuple[int, Box]]]
    ignore: list[Box]


def reshoot(media: Path, how: Reshoot, path: Path) -> Reshot:
    """TUD-Campus from the shared `media` through `how` into `path` (x264, crf 18), with its ground truth and
    don't-care regions moved alike."""
    run = ["ffmpeg", "-v", "error", "-i", str(media / "TUD-Campus.mp4"), "-vf", how.filters]
    subprocess.run([*run, "-c:v", "libx264", "-crf", "18", str(path)], check=True)
    gt = {f: [(t, how.move(box)) for t, box in rows] for f, rows in load_gt(media / "TUD-Campus.gt.txt").items()}
    return Reshot(path, how.size, gt, [how.move(r) for r in load_regions(media / "TUD-Campus.ignore.txt")])
