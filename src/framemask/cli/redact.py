"""`framemask anonymize | render | audit`: de-identify a video, re-render it from boxes, prove nothing leaked."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from tqdm import tqdm

from framemask.cli import report
from framemask.errors import FramemaskError, InputError
from framemask.model_settings import small_faces
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
    p = subparsers.add_parser(
        "anonymize",
        help="detect people and faces, mask them, write an H.264 MP4",
        description="Detect people and faces, mask them, write an H.264 MP4. Several inputs run one after the "
        "other in one process (models loaded once) into the folder -o names; a bad input is reported and "
        "skipped, the exit code says that one failed. Small people: where ten or more are found (a crowd), or "
        "two or more and nearly all small (a wide shot), the person detector looks again at 640 px "
        "(FRAMEMASK_CROWD_PASS=0: one look); FRAMEMASK_SMALL_FACES=1 "
        "also looks for faces at full resolution (slower; see docs/service.md).",
    )
    p.add_argument("input", nargs="+", help="video file(s)")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        help="output .mp4 (same frames and timestamps as the input); with several inputs a folder, which gets "
        "<input name>.mp4 for each",
    )
    p.add_argument(
        "--boxes",
        help="also write the detected boxes of every frame as seed-format JSON (one tight box per person/face "
        "with its track id and score; unconfirmed detections under 'candidates'); with several inputs a folder, "
        "which gets <input name>.json for each",
    )
    p.add_argument("--targets", default="person,face", help="what to mask: person, face or person,face (default)")
    p.add_argument(
        "--stride",
        type=int,
        default=DEFAULT_STRIDE,
        help="detect on every K-th frame (and on both sides of a hard cut), track and interpolate in between "
        "(default: about "
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
    """One input: as given. Several: one after another in this process, so imports and models are paid once
    (about 1.5 s of a CLI run); an input that fails is reported on its own line and the rest still run."""
    if len(args.input) == 1:
        print(json.dumps(_summary(_anonymize_one(args, args.input[0], args.output, args.boxes))))
        return 0
    _targets(args.targets)  # a bad option is one error, not one per input
    plan = _batch_plan(args.input, args.output, args.boxes)
    code = 0
    for src, dst, boxes in plan:
        try:
            result = _anonymize_one(args, src, dst, boxes)
        except FramemaskError as exc:
            code = max(code, report(exc, src))
            continue
        print(json.dumps({"input": src, **_summary(result)}), flush=True)
    return code


def _anonymize_one(args: argparse.Namespace, src: str, dst: str, boxes: str | None) -> AnonymizeResult:
    what = f"anonymize {Path(src).name}" if len(args.input) > 1 else "anonymize"
    with _progress(not args.no_progress, what) as progress:
        return anonymize_file(
            src,
            dst,
            targets=_targets(args.targets),
            style=args.style,
            shape=args.shape,
            strength=args.strength,
            stride=args.stride,
            audio=not args.no_audio,
            boxes_path=boxes,
            progress=progress,
            jobs=args.jobs,
            segment_seconds=args.segment_seconds,
        )


def _batch_plan(inputs: list[str], output: str, boxes: str | None) -> list[tuple[str, str, str | None]]:
    """(input, output .mp4, boxes .json or None) for each input, in the folders `output` and `boxes`.
    Refused before any work: an output or boxes path that is an existing file, two inputs of one name."""
    folders = [Path(output)] + ([Path(boxes)] if boxes else [])
    for folder in folders:
        if folder.exists() and not folder.is_dir():
            raise InputError(f"with several inputs, {folder} must be a folder (it is a file)")
    stems: dict[str, str] = {}
    for src in inputs:
        stem = Path(src).stem
        if stem in stems:
            raise InputError(f"{stems[stem]} and {src} would both write {stem}.mp4")
        stems[stem] = src
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    return [
        (src, str(Path(output) / f"{stem}.mp4"), str(Path(boxes) / f"{stem}.json") if boxes else None)
        for stem, src in stems.items()
    ]


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
    faces = sum(1 for leak in report["leaks"] if leak["label"] == "face")
    if faces and not small_faces():  # a hint on stderr; stdout stays the JSON report
        print(
            f"framemask: {faces} face(s) left unmasked; where they are in a crowd whose people were not detected, "
            "anonymizing with FRAMEMASK_SMALL_FACES=1 looks for faces at full resolution (slower)",
            file=sys.stderr,
        )
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
