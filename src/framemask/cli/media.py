"""`framemask probe | locate | frame`: the frame-exact media core from the command line."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from PIL import Image

from framemask.errors import InputError
from framemask.media import FrameIndex, FrameReader, probe, round_ms


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("probe", help="print a video's facts as JSON (real frame count as endSequence)")
    p.add_argument("file", help="video file")
    p.add_argument("--frames", action="store_true", help="add every frame's seq, time_ms and key flag")
    p.set_defaults(func=cmd_probe)

    p = subparsers.add_parser("locate", help="which frame is at a time: prints {seq, time_ms}")
    p.add_argument("file", help="video file")
    p.add_argument("--ms", type=float, required=True, help="time in ms from the first frame")
    p.add_argument(
        "--mode",
        choices=("at", "nearest"),
        default="at",
        help="at: the frame on screen at that time (default); nearest: the closest frame (slider snap)",
    )
    p.set_defaults(func=cmd_locate)

    p = subparsers.add_parser("frame", help="write one exact frame as an image (RGB, rotation applied)")
    p.add_argument("file", help="video file")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--seq", type=int, help="frame number, 1..endSequence")
    which.add_argument("--ms", type=float, help="the frame on screen at this time (ms)")
    p.add_argument("-o", "--output", required=True, help="image path (.png, .jpg, .webp)")
    p.add_argument(
        "--width", type=int, help="scale to this width in the shape a player shows (anamorphic pixels made square)"
    )
    p.set_defaults(func=cmd_frame)


def cmd_probe(args: argparse.Namespace) -> int:
    info = probe(args.file)
    data = info.to_json()
    if args.frames and info.index is not None:
        index = info.index
        data["frames"] = [
            {"seq": i + 1, "time_ms": round_ms(float(t)), "key": bool(k)}
            for i, (t, k) in enumerate(zip(index.time_ms, index.keys, strict=True))
        ]
    print(json.dumps(data))
    return 0


def cmd_locate(args: argparse.Namespace) -> int:
    index = FrameIndex.build(args.file)
    seq = index.frame_at(args.ms) if args.mode == "at" else index.nearest(args.ms)
    print(json.dumps({"seq": seq, "time_ms": round_ms(index.time_of(seq))}))
    return 0


def cmd_frame(args: argparse.Namespace) -> int:
    out = Path(args.output)
    if out.suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp"):
        raise InputError(f"{out}: output must end in .png, .jpg or .webp")
    if args.width is not None and args.width < 2:
        raise InputError("--width must be at least 2")
    with FrameReader(args.file) as reader:
        seq = reader.index.check_seq(args.seq) if args.seq is not None else reader.index.frame_at(args.ms)
        image = reader.frame(seq, width=args.width)
    try:
        Image.fromarray(image).save(out)
    except OSError as exc:
        raise InputError(f"{out}: cannot write ({exc.strerror or exc})") from exc
    print(json.dumps({"seq": seq, "time_ms": round_ms(reader.index.time_of(seq)), "output": str(out)}))
    return 0
