"""The frame-exact media core: probe, frame index, exact frame reader. Library code, no server."""

from framemask.media.index import TIME_TOLERANCE_MS, FrameIndex, round_ms
from framemask.media.probe import VideoInfo, probe, refuse_images
from framemask.media.reader import FrameReader, iter_frames
from framemask.media.rotate import displayed_size, normalize_rotation, rotate
from framemask.media.signal import VideoSignal
from framemask.media.tonemap import is_hdr, sdr_planes, sdr_view

__all__ = [
    "TIME_TOLERANCE_MS",
    "FrameIndex",
    "FrameReader",
    "VideoInfo",
    "VideoSignal",
    "displayed_size",
    "is_hdr",
    "iter_frames",
    "normalize_rotation",
    "probe",
    "refuse_images",
    "rotate",
    "round_ms",
    "sdr_planes",
    "sdr_view",
]
