"""Opening containers with FFmpeg's errors translated into ours, in one place."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import av
import av.error

from framemask.errors import NotAVideoError, NotFoundError

MAX_DIMENSION = 16384
"""Frames wider or taller than this are rejected as absurd (8K is 7680)."""


@contextlib.contextmanager
def map_av_errors(path: str | os.PathLike[str]) -> Iterator[None]:
    """Translate PyAV/FFmpeg errors raised inside the block into `NotAVideoError`."""
    try:
        yield
    except av.error.FileNotFoundError as exc:
        raise NotFoundError(f"{path}: no such file") from exc
    except (av.error.FFmpegError, av.error.InvalidDataError, EOFError, ValueError) as exc:
        raise NotAVideoError(f"{path}: not a decodable video ({_reason(exc)})") from exc


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return text.split(";")[0].strip()


def open_video(path: str | os.PathLike[str]) -> av.container.InputContainer:
    """Open `path` for reading and check it has a video stream."""
    p = Path(path)
    if not p.exists():
        raise NotFoundError(f"{path}: no such file")
    if p.is_dir():
        raise NotAVideoError(f"{path}: is a directory, not a video")
    if p.stat().st_size == 0:
        raise NotAVideoError(f"{path}: empty file")
    with map_av_errors(path):
        container = av.open(str(p), mode="r")
    if not container.streams.video:
        container.close()
        raise NotAVideoError(f"{path}: no video stream")
    return container
