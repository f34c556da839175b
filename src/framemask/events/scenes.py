"""Scene cuts with PySceneDetect's content detector, fed our own frames so cuts are real frame seqs."""

from __future__ import annotations

import os
from fractions import Fraction

import numpy as np
from scenedetect import ContentDetector
from scenedetect.common import FrameTimecode

from framemask.media import FrameIndex, iter_frames

ANALYSIS_WIDTH = 256
"""Frames are scaled to this width before comparison: cuts survive, decoding cost does not grow with size."""


def scene_starts(
    path: str | os.PathLike[str], index: FrameIndex, threshold: float = 27.0, min_scene_frames: int = 15
) -> list[int]:
    """First seq of every scene (always starting with 1)."""
    detector = ContentDetector(threshold=threshold, min_scene_len=min_scene_frames)
    rate = Fraction(index.fps).limit_denominator(1001) if index.fps > 0 else Fraction(25)
    starts = [1]
    for seq, frame in iter_frames(path):
        width = min(ANALYSIS_WIDTH, frame.width)
        height = max(2, round(frame.height * width / frame.width))
        bgr = frame.to_ndarray(format="bgr24", width=width, height=height)
        for cut in detector.process_frame(FrameTimecode(seq - 1, rate), np.ascontiguousarray(bgr)):
            starts.append(cut.frame_num + 1)
    return sorted(set(s for s in starts if 1 <= s <= index.end_sequence))
