"""`framemask anonymize | render | audit`: de-identify a video, re-render it from boxes, prove nothing leaked."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO

from tqdm import tqdm

from framemask.redact import (
    DEFAULT_STRIDE,
    DETECT_HZ,
    SHAPES,
    STYLES,
    AnonymizeResult,
    anonymize_file,
    load_boxes_doc,
    render_with_boxes,
)
from framemask.redact.audit import audit_file


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("anonymize", help="detect people and faces, mask them, write an H.264 MP4")
    p.add_argument("input", help="video file")
    p.add_argument("-o", "--output", required=True, help="output .mp4 (same frames and timestamps as the input)")
    p.add_argument(
        "--boxes",
        help="also write the detected boxes of every frame as seed-format JSON (one tight box per person/face "
        "with its track id and score; unconfirmed detections under 'candidates')",
    )
    p.add_argument("--targets", default="person,face", help="what to mask: person, face or person,face (default)")
    p.add_argument(
        "--stride",
        type=int,
        default=DEFAULT_STRIDE,
        help="detect on every K-th frame, track and interpolate in between (default: about "
        f"{DETECT_HZ['person']:g} detections per second of video, {DETECT_HZ['face']:g} with faces only)",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="processes to use: a video longer than one segment is cut at key frames and its segments run "
        "side by side, joined frame-exact (default 1)",
    )
    p.add_argument("--segment-seconds", type=float, default=60.0, help="segment length for --jobs (default 60)")
    _style_args(p)
    p.set_defaults(func=cmd_anonymize)

    p = subparsers.add_parser(
        "render",
        help="mask the boxes of a seed-format JSON (no detection): detections (with a score) through the mask "
        "policy (padding, holding lost tracks), boxes without a score exactly as given",
    )
    p.add_argument("input", help="video file")
    p.add_argument("--boxes", required=True, help="seed-format JSON ({endSequence, sequence: [{seq, person: [...]}]})")
    p.add_argument("-o", "--output", required=True, help="output .mp4")
    _style_args(p)
    p.set_defaults(func=cmd_render)

    p = subparsers.add_parser("audit", help="run the detectors on a processed video and print leaks as JSON")
    p.add_argument("processed", help="the processed video")
    basis = p.add_mutually_exclusive_group()
    basis.add_argument("--original", help="the original video: leaks are judged by comparing pixels (recommended)")
    basis.add_argument("--boxes", help="the boxes JSON of the processed video: leaks are detections outside them")
    p.add_argument("--stride", type=int, default=1, help="check every K-th frame (default: every frame)")
    p.add_argument("--targets", default="person,face", help="what to look for (default person,face)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_audit)


def _style_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--style", choices=STYLES, default="mosaic", help="how to mask (default mosaic)")
    p.add_argument("--shape", choices=SHAPES, default="rect", help="mask shape (default rect)")
    p.add_argument(
        "--strength",
        type=float,
        default=1.0,
        help="coarsen the mask by this factor (>= 1; 1 is the minimum safe strength)",
    )
    p.add_argument("--no-audio", action="store_true", help="drop the audio (it is copied unchanged by default)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


PLAIN_STEP_PERCENT = 10
"""Without a terminal, progress is one plain line per this many percent (no per-frame `\\r` updates)."""


@contextmanager
def _progress(enabled: bool, what: str) -> Iterator[Callable[[int, int], None] | None]:
    """Progress on stderr driven by (done, total) callbacks, shown from the first frame on (so an input
    error stays the only line on stderr): a tqdm bar on a terminal, else one line per 10 % (logs, pipes)."""
    if not enabled:
        yield None
        return
    if not _is_tty(sys.stderr):
        yield _plain_progress(what)
        return
    bars: list[tqdm] = []

    def update(done: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(desc=what, total=total, unit="frame", file=sys.stderr, dynamic_ncols=True, leave=False))
        bars[0].update(done - bars[0].n)

    try:
        yield update
    finally:
        for bar in bars:
            bar.close()


def _is_tty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _plain_progress(what: str) -> Callable[[int, int], None]:
    """`what: 30% (123/410 frames)` each time another `PLAIN_STEP_PERCENT` is complete."""
    shown = [-1]

    def update(done: int, total: int) -> None:
        if total <= 0:
            return
        step = min(100, done * 100 // total) // PLAIN_STEP_PERCENT * PLAIN_STEP_PERCENT
        if step > shown[0]:
            shown[0] = step
            print(f"{what}: {step}% ({done}/{total} frames)", file=sys.stderr, flush=True)

    return update


def _targets(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def cmd_anonymize(args: argparse.Namespace) -> int:
    with _progress(not args.no_progress, "anonymize") as progress:
        result = anonymize_file(
            args.input,
            args.output,
            targets=_targets(args.targets),
            style=args.style,
            shape=args.shape,
            strength=args.strength,
            stride=args.stride,
            audio=not args.no_audio,
            boxes_path=args.boxes,
            progress=progress,
            jobs=args.jobs,
            segment_seconds=args.segment_seconds,
        )
    print(json.dumps(_summary(result)))
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    doc = load_boxes_doc(args.boxes)
    with _progress(not args.no_progress, "render") as progress:
        result = render_with_boxes(
            args.input,
            args.output,
            doc,
            style=args.style,
            shape=args.shape,
            strength=args.strength,
            audio=not args.no_audio,
            progress=progress,
        )
    print(json.dumps(_summary(result)))
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    doc = load_boxes_doc(args.boxes) if args.boxes else None
    with _progress(not args.no_progress, "audit") as progress:
        report = audit_file(
            args.processed,
            original=args.original,
            boxes_doc=doc,
            stride=args.stride,
            targets=_targets(args.targets),
            progress=progress,
        )
    print(json.dumps(report))
    return 0


def _summary(result: AnonymizeResult) -> dict[str, object]:
    return {
        "output": str(result.output),
        "endSequence": result.end_sequence,
        "gop_starts": result.gop_starts,
        "nudged_timestamps": result.nudged_timestamps,
        "stride": result.stride,
        "tracks": len(result.track.confirmed) if result.track is not None else None,
        "timings": result.timings,
    }
