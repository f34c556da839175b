"""The same moment in two videos, frame-exact: compare a recording with its original, or sync two videos.

Times are on each file's presentation timeline (`time_ms` of `probe --frames` / `locate`: ms from the
file's first frame), so "the frame on screen at T" is `FrameIndex.frame_at(T)` in each file and the two
agree with `locate`. A recording is aligned to its original by their first frames (plus an optional
offset, e.g. a segment's `start_ms`). Inputs may be local paths or `s3://bucket/key`; a stored
`<key>.index` next to an object is used instead of re-indexing it.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from framemask.errors import InputError
from framemask.media import FrameIndex, FrameReader, round_ms
from framemask.settings import Settings
from framemask.store.layout import load_index, sidecar_index_key
from framemask.store.objects import ObjectStore, parse_target

log = logging.getLogger(__name__)

__all__ = ["MomentFrame", "compare", "opened", "psnr", "side_by_side", "sync"]

PSNR_IDENTICAL = 100.0
"""PSNR reported for identical frames (the true value is infinite, which JSON cannot carry)."""


@dataclass(frozen=True)
class MomentFrame:
    """The frame of one video that is on screen at a moment."""

    seq: int
    time_ms: float
    skipped: int
    """Frames before it (seq - 1): how many frames were passed to reach the moment."""

    def to_json(self, *, skipped: bool = False) -> dict[str, float | int]:
        data: dict[str, float | int] = {"seq": self.seq, "time_ms": round_ms(self.time_ms)}
        if skipped:
            data["skipped"] = self.skipped
        return data


def locate(index: FrameIndex, ms: float) -> MomentFrame:
    """The frame on screen at `ms` (clamped to the video), as `locate --mode at` reports it."""
    if not math.isfinite(ms):
        raise InputError(f"time must be a finite number of ms, got {ms}")
    seq = index.frame_at(ms)
    return MomentFrame(seq=seq, time_ms=index.time_of(seq), skipped=seq - 1)


@contextmanager
def opened(target: str | os.PathLike[str], settings: Settings | None = None) -> Iterator[tuple[Path, FrameIndex]]:
    """A local path and frame index for a file path or `s3://bucket/key` (downloaded to a temp file)."""
    text = str(target)
    if not text.startswith("s3://"):
        path = Path(text)
        yield path, FrameIndex.build(path)
        return
    store, bucket, key = parse_target(text, settings)
    local = store.local_path(bucket, key)
    if local is not None:
        yield local, _stored_index(store, bucket, key) or FrameIndex.build(local)
        return
    with tempfile.TemporaryDirectory(prefix="fm-cmp-") as tmp:
        path = Path(tmp) / Path(key).name
        store.get_file(bucket, key, path)
        yield path, _stored_index(store, bucket, key) or FrameIndex.build(path)


def _stored_index(store: ObjectStore, bucket: str, key: str) -> FrameIndex | None:
    return load_index(store, bucket, sidecar_index_key(key))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two uint8 images of one shape; `PSNR_IDENTICAL` if equal."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    if mse == 0.0:
        return PSNR_IDENTICAL
    return round(min(10.0 * math.log10(255.0**2 / mse), PSNR_IDENTICAL), 3)


def side_by_side(images: Sequence[np.ndarray], labels: Sequence[str]) -> Image.Image:
    """The images next to each other (tops aligned), each with a caption bar above it."""
    font = ImageFont.load_default(size=14)
    bar = 24
    width = sum(img.shape[1] for img in images) + 8 * (len(images) - 1)
    height = max(img.shape[0] for img in images) + bar
    canvas = Image.new("RGB", (width, height), (32, 32, 32))
    draw = ImageDraw.Draw(canvas)
    x = 0
    for img, label in zip(images, labels, strict=True):
        canvas.paste(Image.fromarray(img), (x, bar))
        draw.text((x + 4, 4), label, fill=(255, 255, 255), font=font)
        x += img.shape[1] + 8
    return canvas


def compare(
    original: str | os.PathLike[str],
    recorded: str | os.PathLike[str],
    ms: float,
    output: str | os.PathLike[str] | None = None,
    offset_ms: float = 0.0,
    settings: Settings | None = None,
) -> dict[str, object]:
    """The original's frame on screen at `ms` and the recording's matching frame, side by side.

    `offset_ms` is where the recording's first frame lies on the original's timeline (0 when the recording
    started with the stream; a segment's `start_ms` for later segments).
    """
    with opened(original, settings) as (path_o, index_o), opened(recorded, settings) as (path_r, index_r):
        at_o = locate(index_o, ms)
        at_r = locate(index_r, ms - offset_ms)
        with FrameReader(path_o, index_o) as reader_o, FrameReader(path_r, index_r) as reader_r:
            img_o, img_r = reader_o.frame(at_o.seq), reader_r.frame(at_r.seq)
    same_shape = img_o.shape == img_r.shape
    result: dict[str, object] = {
        "original": at_o.to_json(),
        "recorded": at_r.to_json(),
        "identical": bool(same_shape and np.array_equal(img_o, img_r)),
        "psnr": psnr(img_o, img_r) if same_shape else None,
    }
    if output is not None:
        labels = [
            f"original  seq {at_o.seq}  {at_o.time_ms:.3f} ms",
            f"recorded  seq {at_r.seq}  {at_r.time_ms:.3f} ms",
        ]
        _save(side_by_side([img_o, img_r], labels), output)
        result["image"] = str(output)
    return result


def sync(
    a: str | os.PathLike[str],
    b: str | os.PathLike[str],
    ms: float,
    snapshots: str | os.PathLike[str] | None = None,
    offset_ms: float = 0.0,
    settings: Settings | None = None,
) -> dict[str, object]:
    """The frame on screen at `ms` in `a` and at `ms - offset_ms` in `b`, with the frames skipped to get there.

    `offset_ms` is where `b`'s first frame lies on `a`'s timeline (see `align`); 0 pairs the first frames.
    Snapshots (each frame, and both side by side) go to `snapshots` when given.
    """
    with opened(a, settings) as (path_a, index_a), opened(b, settings) as (path_b, index_b):
        at_a, at_b = locate(index_a, ms), locate(index_b, ms - offset_ms)
        for name, at, index in (("a", at_a, index_a), ("b", at_b, index_b)):
            log.info(
                "%s: skipped %d of %d frames to reach seq %d (on screen %.3f ms .. %s)",
                name,
                at.skipped,
                index.end_sequence,
                at.seq,
                at.time_ms,
                _until(index, at.seq),
            )
        result: dict[str, object] = {"a": at_a.to_json(skipped=True), "b": at_b.to_json(skipped=True)}
        if snapshots is not None:
            result["snapshots"] = _snapshots(Path(snapshots), ms, (path_a, index_a, at_a), (path_b, index_b, at_b))
    return result


def _until(index: FrameIndex, seq: int) -> str:
    return f"{index.time_of(seq + 1):.3f} ms" if seq < index.end_sequence else "end"


def _snapshots(folder: Path, ms: float, *items: tuple[Path, FrameIndex, MomentFrame]) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    stamp = f"{ms:g}ms"
    images, labels, written = [], [], {}
    for name, (path, index, at) in zip("ab", items, strict=True):
        with FrameReader(path, index) as reader:
            image = reader.frame(at.seq)
        target = folder / f"sync_{stamp}_{name}_seq{at.seq}.png"
        _save(Image.fromarray(image), target)
        written[name] = str(target)
        images.append(image)
        labels.append(f"{name}: {path.name}  seq {at.seq}  {at.time_ms:.3f} ms  skipped {at.skipped}")
    pair = folder / f"sync_{stamp}.png"
    _save(side_by_side(images, labels), pair)
    written["pair"] = str(pair)
    return written


def _save(image: Image.Image, output: str | os.PathLike[str]) -> None:
    path = Path(output)
    if path.parent and not path.parent.is_dir():
        raise InputError(f"output folder {path.parent} does not exist")
    try:
        image.save(path)
    except (ValueError, KeyError) as exc:
        raise InputError(f"cannot write image {path}: {exc}") from exc
