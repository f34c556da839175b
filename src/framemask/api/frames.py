"""Serving exact frames: local copies of a video's files, a small pool of open FrameReaders, encoding.

A FrameReader is not thread-safe, so the pool keeps a few open readers (one lock each) keyed by video and
variant; a deleted video's readers are dropped. Readers open on the stored frame index of their file
(`video_index`) instead of indexing it again.
"""

from __future__ import annotations

import io
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import av
import cv2
import numpy as np
import simplejpeg
from PIL import Image

from framemask.errors import FramemaskError, NotFoundError
from framemask.jobs.context import Services
from framemask.media import FrameIndex, FrameReader, rotate, sdr_planes, sdr_view
from framemask.media.signal import RANGE_FULL, UNSPECIFIED
from framemask.service.streaming import StreamVideo
from framemask.store.layout import Variant, index_key, load_index, local_copy, save_index, sidecar_index_key
from framemask.store.models import Video

__all__ = [
    "ReaderPool",
    "encode_image",
    "encode_pixels",
    "final_index",
    "frame_pixels",
    "frame_source",
    "open_reader",
    "readable_source",
    "reader_key",
    "source_reader",
    "sprite",
    "variant_file",
    "video_index",
]

log = logging.getLogger(__name__)

VideoFiles = Video | StreamVideo
"""A video row, or the lean columns of one (`StreamVideo`: the frame route's look-up) - enough to open a reader."""

IMAGE_TYPES = {"jpeg": ("JPEG", "image/jpeg"), "webp": ("WEBP", "image/webp"), "png": ("PNG", "image/png")}


@dataclass
class _Entry:
    lock: threading.Lock = field(default_factory=threading.Lock)
    reader: FrameReader | None = None
    dead: bool = False

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
            self.reader = None


class ReaderPool:
    """Up to `size` open FrameReaders, least recently used evicted first."""

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self._guard = threading.Lock()
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()

    @contextmanager
    def reader(self, key: tuple[str, str], open_reader: Callable[[], FrameReader]) -> Iterator[FrameReader]:
        with self._guard:
            entry = self._entries.setdefault(key, _Entry())
            self._entries.move_to_end(key)
            evicted = [self._entries.popitem(last=False)[1] for _ in range(len(self._entries) - self.size)]
        for old in evicted:
            old.dead = True
            with old.lock:
                old.close()
        with entry.lock:
            if entry.reader is None:
                entry.reader = open_reader()
            try:
                yield entry.reader
            finally:
                if entry.dead:
                    entry.close()

    def drop_video(self, video_id: str) -> None:
        with self._guard:
            keys = [k for k in self._entries if k[0] == video_id]
            entries = [self._entries.pop(k) for k in keys]
        for entry in entries:
            entry.dead = True
            with entry.lock:
                entry.close()

    def close(self) -> None:
        with self._guard:
            entries = list(self._entries.values())
            self._entries.clear()
        for entry in entries:
            with entry.lock:
                entry.close()


def frame_source(video: VideoFiles, variant: str, exact: bool = False) -> str:
    """Which file a frame of `variant` is read from: an original's frames come from its review proxy once it
    has one (`framemask.redact.proxy`: the same frames, each a short decode away), unless `exact` asks for
    the original's own pixels."""
    return "proxy" if variant == "original" and video.proxy_key and not exact else variant


def variant_file(services: Services, video: VideoFiles, variant: str) -> Path:
    """A local file holding the video's original, processed, (current) final or proxy bytes."""
    settings = services.settings
    cache = settings.cache_dir / "videos" / video.id
    if variant == "original":
        return local_copy(services.store, video.raw_bucket, video.raw_key, cache / Path(video.raw_key).name)
    if variant == "proxy":
        if video.proxy_key is None:
            raise NotFoundError(f"video {video.id} has no review proxy")
        return local_copy(services.store, settings.bucket_processed, video.proxy_key, cache / "proxy.mp4")
    if variant == "final":
        if video.final_key is None:
            raise NotFoundError(f"video {video.id} has no final render yet")
        final = video.final_key
        return local_copy(services.store, settings.bucket_processed, final, cache / Path(final).name)
    if video.processed_key is None:
        raise NotFoundError(f"video {video.id} has no processed version yet (status {video.status})")
    return local_copy(services.store, settings.bucket_processed, video.processed_key, cache / "processed.mp4")


def _index_key(video: VideoFiles, variant: Variant) -> str:
    # the original's key is on the row (older rows name it differently); the others are derived
    if variant == "original":
        return video.index_key or index_key(video.id)
    return index_key(video.id, variant)


def video_index(services: Services, video: VideoFiles, variant: Variant = "original") -> FrameIndex:
    """The frame index of the video's original, processed or proxy file: the stored blob, else built once and
    stored."""
    bucket = services.settings.bucket_processed
    key = _index_key(video, variant)
    index = load_index(services.store, bucket, key)
    if index is None:  # only videos processed before the processed index was stored (or a lost blob)
        index = FrameIndex.build(variant_file(services, video, variant))
        save_index(services.store, bucket, key, index)
    return index


def final_index(services: Services, video: VideoFiles) -> FrameIndex:
    """The frame index of the current final video: stored next to it (`<final key>.index`), built once.

    A final keeps the master's timestamps, but it is its own file, so it gets its own blob (removed with the
    final when a later render replaces it)."""
    if video.final_key is None:
        raise NotFoundError(f"video {video.id} has no final render yet")
    bucket = services.settings.bucket_processed
    key = sidecar_index_key(video.final_key)
    index = load_index(services.store, bucket, key)
    if index is None:
        index = FrameIndex.build(variant_file(services, video, "final"))
        save_index(services.store, bucket, key, index)
    return index


def reader_key(video: VideoFiles, variant: str) -> tuple[str, str]:
    """The pool key of a video's reader: a final is keyed by its object, so a new render opens a new reader."""
    return (video.id, f"final:{video.final_key}" if variant == "final" else variant)


_STORED_INDEX: dict[str, Variant] = {"processed": "processed", "proxy": "proxy"}
"""The stored frame index a reader of each variant opens on (`final` has its own sidecar; the rest, the
original's)."""


def open_reader(services: Services, video: VideoFiles, variant: str) -> FrameReader:
    path = variant_file(services, video, variant)
    if variant == "final":
        return FrameReader(path, index=final_index(services, video))
    return FrameReader(path, index=video_index(services, video, _STORED_INDEX.get(variant, "original")))


@contextmanager
def source_reader(
    pool: ReaderPool, services: Services, video: VideoFiles, source: str
) -> Iterator[tuple[str, FrameReader]]:
    """The pooled reader of `source` as `readable_source` settles it, and the source it settled on."""
    source = readable_source(pool, services, video, source)
    with pool.reader(reader_key(video, source), partial(open_reader, services, video, source)) as reader:
        yield source, reader


def readable_source(pool: ReaderPool, services: Services, video: VideoFiles, source: str) -> str:
    """`source`, or `original` when it is a review proxy that cannot be opened (its object lost): the frames
    then come from the original itself, and say so."""
    if source != "proxy":
        return source
    try:
        with pool.reader(reader_key(video, source), partial(open_reader, services, video, source)):
            return source
    except FramemaskError as exc:
        log.warning("video %s: review proxy unreadable (%s); decoding the original", video.id, exc)
        return "original"


def encode_image(rgb: np.ndarray, fmt: str, quality: int | None = None) -> tuple[bytes, str]:
    """JPEG, WebP or (lossless, for exact comparisons) PNG bytes of an RGB image, and the media type."""
    pil_format, media_type = IMAGE_TYPES[fmt]
    buf = io.BytesIO()
    if fmt == "png":
        Image.fromarray(rgb).save(buf, pil_format, compress_level=1)
    elif fmt == "webp":  # method 0: ~4x faster than the default for a few % more bytes (the editor steps on it)
        Image.fromarray(rgb).save(buf, pil_format, quality=quality or 80, method=0)
    else:
        Image.fromarray(rgb).save(buf, pil_format, quality=quality or 85)
    return buf.getvalue(), media_type


# limited-range (video) to full-range (JPEG/JFIF) YCbCr: JPEG decoders read samples as full range
_Y_FULL = np.clip(np.round((np.arange(256) - 16) * 255 / 219), 0, 255).astype(np.uint8)
_C_FULL = np.clip(np.round((np.arange(256) - 128) * 255 / 224 + 128), 0, 255).astype(np.uint8)
_YUV420 = {"yuv420p": False, "yuvj420p": True}  # format -> samples already full range


def _plane(frame: av.VideoFrame, i: int, lut: np.ndarray | None) -> np.ndarray:
    """Plane `i` as a new contiguous array, mapped through `lut` when given. `cv2.LUT` reads the strided rows
    in place and is ~8x faster than numpy's fancy indexing (4.4 vs 0.5 ms for a 1080p luma plane)."""
    plane = frame.planes[i]
    rows = np.frombuffer(memoryview(plane), np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width]
    return cv2.LUT(rows, lut) if lut is not None else np.ascontiguousarray(rows)


def jpeg_planes(
    frame: av.VideoFrame, size: tuple[int, int] | None = None, rotation: int = 0, transfer: int = UNSPECIFIED
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Full-range Y, U, V planes of a 4:2:0 frame as displayed (scaled to `size` in the stored orientation, then
    turned by `rotation`; an HDR `transfer` tone-mapped for an SDR screen), or None for other pixel formats.

    A JPEG is YCbCr 4:2:0 itself, so encoding the decoder's planes skips the YUV->RGB conversion and the
    encoder's RGB->YCbCr conversion of the RGB path: at 1080p that is most of a frame request. A portrait
    phone clip's planes are turned one by one, as a render turns them."""
    full = _YUV420.get(frame.format.name)
    if full is None:
        return None
    full = full or frame.color_range == RANGE_FULL  # a 4:2:0 decoder without a yuvj format (VP9, AV1) tags it
    if size is not None and size != (frame.width, frame.height):
        frame = frame.reformat(width=size[0], height=size[1], format=frame.format.name)
    y_lut, c_lut = (None, None) if full else (_Y_FULL, _C_FULL)
    y, u, v = sdr_planes(_plane(frame, 0, y_lut), _plane(frame, 1, c_lut), _plane(frame, 2, c_lut), transfer)
    return rotate(y, rotation), rotate(u, rotation), rotate(v, rotation)


Pixels = np.ndarray | tuple[np.ndarray, np.ndarray, np.ndarray]
"""An RGB image, or the full-range Y, U, V planes of a 4:2:0 one."""


def frame_pixels(reader: FrameReader, seq: int, width: int | None, fmt: str) -> Pixels:
    """What `encode_pixels` needs of frame `seq`: YUV planes for a JPEG of a 4:2:0 video, else RGB; an HDR
    video's tone-mapped for an SDR screen either way (`media.tonemap`). Copies, so the reader's lock can be
    released before the encode."""
    if fmt == "jpeg":
        frame = reader.av_frame(seq)
        size = reader.scaled_size(frame, width) if width else None
        planes = jpeg_planes(frame, size, reader.rotation, reader.signal.transfer)
        if planes is not None:
            return planes
    return sdr_view(reader.frame(seq, width), reader.signal)


def encode_pixels(pixels: Pixels, fmt: str, quality: int | None = None) -> tuple[bytes, str]:
    """A JPEG straight from YUV planes (libjpeg-turbo via simplejpeg: no YUV->RGB->YCbCr round trip, the
    larger part of a 1080p frame request), otherwise `encode_image` of the RGB image."""
    if isinstance(pixels, tuple):
        return simplejpeg.encode_jpeg_yuv_planes(*pixels, quality=quality or 85), IMAGE_TYPES["jpeg"][1]
    return encode_image(pixels, fmt, quality)


def sprite(tiles: list[np.ndarray], columns: int) -> np.ndarray:
    """Tiles (same size) laid out row by row into one image; the last row is padded black."""
    height, width = tiles[0].shape[:2]
    rows = -(-len(tiles) // columns)
    canvas = np.zeros((rows * height, columns * width, 3), dtype=np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        canvas[r * height : (r + 1) * height, c * width : (c + 1) * width] = tile[:height, :width]
    return canvas
