"""The processing pipeline of one upload, as plain library code (no database, queue or web imports).

probe + frame index -> detect/track + render the processed master (`framemask.redact.anonymize_file`)
-> the processed master's frame index -> the outcome the task layer stores. Progress is reported as
(percent, stage). Each file is indexed once: the original's index comes in when the upload already
built it, the processed master is indexed here and every later step (events, readers) uses that.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from framemask.errors import FramemaskError
from framemask.media import FrameIndex, VideoInfo, probe
from framemask.redact import DEFAULT_STRIDE, anonymize_file
from framemask.redact.tracklist import summarize_tracks

__all__ = ["ProcessOutcome", "Report", "outcome_of", "process_video"]

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
    processed_index: FrameIndex
    """The processed master's own index (same frames and times as `index`, its own timestamps)."""
    tracks: list[dict[str, Any]] = field(default_factory=list)
    """The confirmed tracks with their review hints (`framemask.redact.tracklist`)."""
    render: dict[str, Any] = field(default_factory=dict)
    """How the master was painted and encoded (re-renders must match it)."""


def process_video(
    src: Path,
    work_dir: Path,
    *,
    targets: Sequence[str] = ("person", "face"),
    style: str = "mosaic",
    stride: int | None = None,
    audio: bool = True,
    report: Report | None = None,
    index: FrameIndex | None = None,
    jobs: int = 1,
    segment_seconds: float = 60.0,
) -> ProcessOutcome:
    """Probe and anonymize `src` into `work_dir/processed.mp4`, then index the processed master.

    `index` is the original's stored index (built at upload); without it the original is indexed here.
    """
    say = report or (lambda _pct, _stage: None)
    say(0.0, "probe")
    info = probe(src, index=index)
    assert info.index is not None  # probe returns the index it was given or built
    index = info.index
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
        jobs=jobs,
        segment_seconds=segment_seconds,
    )
    say(_PROBE_SHARE + _RENDER_SHARE, "store")
    return outcome_of(result, info)


def outcome_of(result: Any, info: VideoInfo) -> ProcessOutcome:
    """The outcome of a finished render (`AnonymizeResult`, serial or joined from segments) of the video
    `info` describes: the processed master indexed once and checked against the original, tracks summarized."""
    index = info.index
    assert index is not None and result.track is not None
    processed_index = FrameIndex.build(result.output)
    for frames in (result.end_sequence, processed_index.end_sequence):
        if frames != index.end_sequence:
            raise FramemaskError(f"processed video has {frames} frames, the original {index.end_sequence}")
    tracks = [t.to_json() for t in summarize_tracks(result.track, info.fps)]
    return ProcessOutcome(
        info,
        index,
        Path(result.output),
        result.boxes,
        list(result.gop_starts),
        processed_index,
        tracks=tracks,
        render=result.render,
    )
