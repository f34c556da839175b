"""Long videos in parallel: cut into segments at key frames, anonymize each in its own process, stitch the
tracks across the joins and join the segment videos by remux, frame-exact.

- **Segments from the index.** A segment starts on a key frame of the source, about `seconds` after the
  previous one, and is rendered as its own closed GOPs with identical encoder settings (no B-frames:
  with no reordering every packet's dts is its pts, so the joined stream's timestamps stay monotonic).
- **Context.** Each segment also decodes, detects and tracks about `OVERLAP_SECONDS` on each side of its
  frames, so a mask held over a join and a track crossing it are seen by both neighbours.
- **Stitching.** A track of segment k+1 takes the id of the track of segment k whose boxes it overlaps
  most over their shared frames; the rest get fresh ids. The stored boxes of each frame come from the
  segment that rendered it.
- **Join.** Video packets of the parts are copied in order with their own timestamps (the input's), the
  audio is copied once from the original. Frame count and every timestamp equal the input's.

The same `run_segment` runs in a local process pool (`anonymize_segmented(..., jobs=N)`) and can run as a
task of a distributed queue: its inputs and outputs are plain picklable data.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from scipy.optimize import linear_sum_assignment

from framemask.detect import box_iou
from framemask.detect.tracking import CONFIRM_HITS, LOST_SECONDS
from framemask.errors import NotAVideoError
from framemask.media import FrameIndex, probe
from framemask.redact.boxes import LABEL, TRACK, X1, Y2, BoxTrack
from framemask.redact.encode import AudioCopier, EncodeSettings, monotonic_pts
from framemask.redact.pipeline import AnonymizeResult, Progress, Span, anonymize_file
from framemask.redact.policy import MaskPolicy
from framemask.redact.process_pool import spawn_pool
from framemask.redact.tracklist import duplicate_tracks, static_weak_tracks

__all__ = [
    "OVERLAP_SECONDS",
    "SegmentJob",
    "SegmentOutput",
    "anonymize_segmented",
    "assemble_segments",
    "plan_segments",
    "run_segment",
    "segment_encoder",
]

OVERLAP_SECONDS = 1.0
STITCH_IOU = 0.5
"""Two tracks of neighbouring segments are one when their boxes overlap this much on their shared frames."""


def plan_segments(index: FrameIndex, seconds: float, overlap_seconds: float = OVERLAP_SECONDS) -> list[Span]:
    """Spans of about `seconds` starting on key frames (never mid-GOP), each with its context frames."""
    if seconds <= 0:
        raise ValueError(f"segment length must be positive, got {seconds}")
    time_ms, n = index.time_ms, index.end_sequence
    starts = [1]
    for key in index.key_seqs().tolist():
        if key > starts[-1] and time_ms[key - 1] - time_ms[starts[-1] - 1] >= seconds * 1000.0:
            starts.append(int(key))
    ends = [s - 1 for s in starts[1:]] + [n]
    spans = []
    for start, end in zip(starts, ends, strict=True):
        first = index.frame_at(max(0.0, float(time_ms[start - 1]) - overlap_seconds * 1000.0))
        last_ms = float(time_ms[end - 1]) + overlap_seconds * 1000.0
        last = index.frame_at(last_ms) if last_ms < time_ms[-1] else n
        spans.append(Span(min(first, start), max(last, end), start, end))
    return spans


@dataclass(frozen=True)
class SegmentJob:
    """Everything one segment needs, picklable: where to read and write, and how to render."""

    src: str
    part: str
    span: Span
    index: bytes
    targets: tuple[str, ...]
    style: str
    shape: str
    strength: float
    stride: int | None
    settings: EncodeSettings
    policy: MaskPolicy
    progress: Any = None
    """A queue (`multiprocessing.Manager().Queue()`) receiving (span.start, frames done), or None."""


@dataclass
class SegmentOutput:
    """What a segment produced: its part file and the stored/painted rows of its frames first..last."""

    span: Span
    part: str
    labels: list[str]
    rows: list[np.ndarray]
    painted: list[np.ndarray]
    hits: dict[int, int]
    gop_starts: list[int]
    stride: int | None
    timings: dict[str, float] = field(default_factory=dict)
    cuts: set[int] = field(default_factory=set)
    """Frames of first..last that start a new shot."""


def run_segment(job: SegmentJob) -> SegmentOutput:
    """Anonymize one segment into `job.part` (video only); rows for frames `first..last` (local ids)."""
    done = 0

    def report(frames: int, _total: int) -> None:
        nonlocal done
        if job.progress is not None and (frames - done >= 10 or frames == _total):
            job.progress.put((job.span.start, frames - done))
            done = frames

    result = anonymize_file(
        job.src,
        job.part,
        targets=job.targets,
        style=job.style,
        shape=job.shape,
        strength=job.strength,
        stride=job.stride,
        audio=False,
        settings=job.settings,
        index=FrameIndex.from_bytes(job.index),
        policy=job.policy,
        span=job.span,
        progress=report,
    )
    assert result.track is not None and result.painted is not None
    seqs = range(job.span.first, job.span.last + 1)
    return SegmentOutput(
        job.span,
        job.part,
        list(result.track.labels),
        [result.track.rows(s) for s in seqs],
        [result.painted.rows(s) for s in seqs],
        result.tracker_hits,
        result.gop_starts,
        result.stride,
        result.timings,
        set(result.track.cuts),
    )


def anonymize_segmented(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    jobs: int = 2,
    seconds: float = 60.0,
    targets: Sequence[str] = ("person", "face"),
    style: str = "mosaic",
    shape: str = "rect",
    strength: float = 1.0,
    stride: int | None = None,
    audio: bool = True,
    boxes_path: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
    settings: EncodeSettings | None = None,
    index: FrameIndex | None = None,
) -> AnonymizeResult:
    """`anonymize_file` over segments of about `seconds`, `jobs` at a time in worker processes."""
    started = time.perf_counter()
    info = probe(src, index=index)
    assert info.index is not None
    spans = plan_segments(info.index, seconds)
    settings = segment_encoder(info.fps, settings)
    policy = MaskPolicy.for_fps(info.fps)
    scratch = Path(tempfile.mkdtemp(prefix=".framemask-segments-", dir=Path(dst).parent))
    try:
        with multiprocessing.get_context("spawn").Manager() as manager:
            updates = manager.Queue() if progress is not None else None
            jobs_list = [
                SegmentJob(
                    str(src),
                    str(scratch / f"part{k:05d}.mp4"),
                    span,
                    info.index.to_bytes(),
                    tuple(targets),
                    style,
                    shape,
                    strength,
                    stride,
                    settings,
                    policy,
                    updates,
                )
                for k, span in enumerate(spans)
            ]
            outputs = _run_all(jobs_list, jobs, updates, progress, sum(s.last - s.first + 1 for s in spans))
        track, painted, gop_starts = assemble_segments(outputs, info, dst, src if audio else None)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if boxes_path is not None:
        track.write_json(boxes_path)
    total = time.perf_counter() - started
    timings: dict[str, float] = {}
    for out in outputs:
        for name, value in out.timings.items():
            if name not in ("total", "fps"):
                timings[name] = round(timings.get(name, 0.0) + value, 3)
    timings.update(total=round(total, 3), fps=round(info.end_sequence / max(total, 1e-9), 2), segments=len(spans))
    result = AnonymizeResult(
        Path(dst), info.end_sequence, gop_starts, timings, 0, track, painted, stride=outputs[0].stride, policy=policy
    )
    result.render = {
        "style": style,
        "shape": shape,
        "strength": strength,
        "policy": policy.to_dict(),
        "encoder": settings.to_dict(),
        "segments": [[s.start, s.end] for s in spans],
    }
    return result


def segment_encoder(fps: float, settings: EncodeSettings | None = None) -> EncodeSettings:
    """The encoder settings of every segment: `settings` (default: `EncodeSettings.for_fps`) without B-frames."""
    # no B-frames, so no B-pyramid either: every other setting as given
    return replace(settings or EncodeSettings.for_fps(fps), bframes=0, b_pyramid=None)


def assemble_segments(
    outputs: Sequence[SegmentOutput], info: Any, dst: str | os.PathLike[str], audio_from: str | os.PathLike[str] | None
) -> tuple[BoxTrack, BoxTrack, list[int]]:
    """Stitch the segments' tracks (confirmed, gaps filled) and join their parts into `dst` (audio from
    `audio_from` when the source has audio): (detected track, painted track, GOP starts). `outputs` are in
    timeline order; `info` is the source's probe (with its index)."""
    track, painted, hits = _stitch(list(outputs), info.width, info.height)
    track.confirmed = {tid for tid, n in hits.items() if n >= CONFIRM_HITS}
    track.confirmed -= duplicate_tracks(track) | static_weak_tracks(track)
    track.fill_gaps(info.index.time_ms, LOST_SECONDS * 1000.0)
    gop_starts = sorted(g for out in outputs for g in out.gop_starts)
    pts, time_base, _nudged = monotonic_pts(info.index.pts, info.index.time_base)
    parts = [(out.part, out.span) for out in outputs]
    join_parts(parts, dst, pts, time_base, audio_from if info.has_audio else None)
    return track, painted, gop_starts


def _run_all(
    jobs_list: list[SegmentJob], jobs: int, updates: Any, progress: Progress | None, total: int
) -> list[SegmentOutput]:
    """Run every segment (in `jobs` processes), reporting aggregated frame progress as it comes."""
    done = 0
    stop = threading.Event()

    def drain() -> None:
        nonlocal done
        while not stop.is_set() or (updates is not None and not updates.empty()):
            try:
                _start, frames = updates.get(timeout=0.2)
            except (queue.Empty, EOFError, OSError):
                continue
            done += frames
            if progress is not None:
                progress(min(done, total), total)

    watcher = threading.Thread(target=drain, daemon=True) if updates is not None else None
    if watcher is not None:
        watcher.start()
    try:
        with spawn_pool(jobs) as pool:
            return list(pool.map(run_segment, jobs_list))
    finally:
        stop.set()
        if watcher is not None:
            watcher.join(timeout=5)


def _stitch(outputs: list[SegmentOutput], width: int, height: int) -> tuple[BoxTrack, BoxTrack, dict[int, int]]:
    """One track of rows with global ids (each frame from the segment that rendered it), its painting,
    and the detected-frame count of every global id."""
    track, painted = BoxTrack(width, height), BoxTrack(width, height)
    hits: dict[int, int] = {}
    previous: SegmentOutput | None = None
    mapping: dict[int, int] = {}
    next_id = 1
    for out in outputs:
        matched = _match(previous, mapping, out) if previous is not None else {}
        mapping = {}
        for tid in sorted({int(t) for rows in out.rows for t in rows[:, TRACK] if t >= 0}):
            if tid in matched:
                mapping[tid] = matched[tid]
            else:
                mapping[tid], next_id = next_id, next_id + 1
        for tid, n in out.hits.items():
            if tid in mapping:
                hits[mapping[tid]] = max(hits.get(mapping[tid], 0), n)  # a sum would count overlaps twice
        track.cuts |= {seq for seq in out.cuts if out.span.start <= seq <= out.span.end}
        for seq in range(out.span.start, out.span.end + 1):
            rows = _relabel(out.rows[seq - out.span.first], out.labels, track)
            ids = rows[:, TRACK]
            rows[:, TRACK] = np.array([mapping.get(int(t), -1) if t >= 0 else -1 for t in ids], np.int32)
            track.append_rows(rows)
            painted.append_rows(_relabel(out.painted[seq - out.span.first], out.labels, painted))
        previous = out
    return track, painted, hits


def _relabel(rows: np.ndarray, labels: list[str], into: BoxTrack) -> np.ndarray:
    """`rows` with label indexes of `labels` renumbered to `into`'s."""
    rows = rows.copy()
    if len(rows):
        rows[:, LABEL] = [into.label_index(labels[int(i)]) for i in rows[:, LABEL]]
    return rows


def _match(before: SegmentOutput, ids: dict[int, int], after: SegmentOutput) -> dict[int, int]:
    """Local ids of `after` -> global ids of `before`'s tracks they continue (over their shared frames)."""
    first, last = max(before.span.first, after.span.first), min(before.span.last, after.span.last)
    score: dict[tuple[int, int], float] = {}
    for seq in range(first, last + 1):
        a = before.rows[seq - before.span.first]
        b = after.rows[seq - after.span.first]
        a, b = a[a[:, TRACK] >= 0], b[b[:, TRACK] >= 0]
        if not len(a) or not len(b):
            continue
        iou = box_iou(a[:, X1 : Y2 + 1], b[:, X1 : Y2 + 1])
        for i, j in zip(*np.nonzero(iou > 0), strict=True):
            if before.labels[int(a[i, LABEL])] == after.labels[int(b[j, LABEL])]:
                key = (int(a[i, TRACK]), int(b[j, TRACK]))
                score[key] = score.get(key, 0.0) + float(iou[i, j])
    if not score:
        return {}
    left = sorted({k[0] for k in score})
    right = sorted({k[1] for k in score})
    frames = max(1, last - first + 1)
    weights = np.zeros((len(left), len(right)))
    for (x, y), total in score.items():
        weights[left.index(x), right.index(y)] = total / frames
    rows, cols = linear_sum_assignment(-weights)
    return {
        right[c]: ids[left[r]]
        for r, c in zip(rows, cols, strict=True)
        if weights[r, c] >= STITCH_IOU and left[r] in ids
    }


def join_parts(
    parts: Sequence[tuple[str | os.PathLike[str], Span]],
    dst: str | os.PathLike[str],
    pts: np.ndarray,
    time_base: Fraction,
    audio_from: str | os.PathLike[str] | None,
) -> None:
    """Concatenate the parts' video packets into `dst` with the input's own timestamps, audio copied once.

    Parts have no B-frames, so their packets come in presentation order: the i-th packet of the part
    holding frames start..end is frame start + i, and gets exactly that frame's `pts` (the part file's
    own timestamps may have been shifted by its muxer's edit list, rounded to its movie time scale)."""
    target = Path(dst)
    tmp = target.with_name(f".{target.stem}.{os.getpid()}.partial{target.suffix}")
    try:
        with av.open(str(tmp), mode="w", format="mp4") as out:
            with av.open(str(parts[0][0])) as first:
                video = out.add_stream_from_template(first.streams.video[0])
            video.time_base = time_base
            video.metadata.clear()
            audio = AudioCopier(audio_from, out) if audio_from is not None else None
            for part, span in parts:
                seq = span.start
                with av.open(str(part)) as container:
                    for packet in container.demux(container.streams.video[0]):
                        if packet.size == 0:
                            continue
                        if seq > span.end:
                            raise NotAVideoError(f"{part}: more packets than frames {span.start}-{span.end}")
                        packet.pts = packet.dts = int(pts[seq - 1])
                        packet.time_base = time_base
                        packet.stream = video
                        if audio is not None:
                            audio.copy_until(float(packet.dts * time_base))
                        out.mux(packet)
                        seq += 1
                if seq != span.end + 1:
                    raise NotAVideoError(f"{part}: {seq - span.start} packets for frames {span.start}-{span.end}")
            if audio is not None:
                audio.copy_until(float("inf"))
                audio.close()
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
