"""The processing pipeline of one upload, as plain library code (no database, queue or web imports).

probe + frame index -> detect/track + render the processed master (`framemask.redact.anonymize_file`)
-> the outcome the task layer stores. Progress is reported as (percent, stage).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from framemask.errors import FramemaskError
from framemask.media import FrameIndex, VideoInfo, probe

__all__ = ["ProcessOutcome", "Report", "process_video"]

Report = Callable[[float, str], None]

_PROBE_SHARE = 5.0  # percent of the job spent probing and indexing
_RENDER_SHARE = 85.0  # percent spent detecting and rendering; the rest is storing


@dataclass(frozen=True)
class ProcessOutcome:
    """What processing one video produced, ready to be stored."""

    info: VideoInfo
    index: FrameIndex
    processed: Path
    boxes: dict[str, Any]
    gop_starts: list[int]


def process_video(
    src: Path,
    work_dir: Path,
    *,
    targets: Sequence[str] = ("person", "face"),
    style: str = "mosaic",
    stride: int | None = None,
    audio: bool = True,
    report: Report | None = None,
) -> ProcessOutcome:
    """Probe, index and anonymize `src` into `work_dir/processed.mp4`."""
    from framemask.redact import DEFAULT_STRIDE, anonymize_file

    say = report or (lambda _pct, _stage: None)
    say(0.0, "probe")
    info = probe(src)
    index = info.index if info.index is not None else FrameIndex.build(src)
    say(_PROBE_SHARE, "anonymize")

    def on_frames(done: int, total: int) -> None:
        say(_PROBE_SHARE + _RENDER_SHARE * done / max(total, 1), "anonymize")

    dst = work_dir / "processed.mp4"
    result = anonymize_file(
        src,
        dst,
        targets=tuple(targets),
        style=style,
        stride=stride or DEFAULT_STRIDE,
        audio=audio,
        progress=on_frames,
        index=index,
    )
    if result.end_sequence != index.end_sequence:
        raise FramemaskError(f"processed video has {result.end_sequence} frames, the original {index.end_sequence}")
    say(_PROBE_SHARE + _RENDER_SHARE, "store")
    return ProcessOutcome(info, index, Path(result.output), result.boxes, list(result.gop_starts))
