"""`framemask events | sample`: the event timeline and fixed-rate sampling from the command line."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from framemask.errors import InputError
from framemask.events import extract_events, keyframe_jpeg
from framemask.media import FrameIndex, FrameReader, round_ms
from framemask.media.sampling import fixed_rate_samples


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("events", help="split a video into scenes and people-present intervals (JSON)")
    p.add_argument("file", help="video file (use the processed video when saving key frames)")
    p.add_argument("--boxes", help="boxes JSON in the seed format (from `anonymize --boxes`) for presence events")
    p.add_argument("--keyframes", metavar="DIR", help="write each event's key frame as DIR/<n>_<seq>.jpg")
    p.add_argument("--threshold", type=float, default=27.0, help="scene-cut threshold (PySceneDetect content)")
    p.set_defaults(func=cmd_events)

    p = subparsers.add_parser("sample", help="exactly duration x rate samples, each tied to its frame (JSON)")
    p.add_argument("file", help="video file")
    p.add_argument("--rate", type=float, required=True, help="samples per second")
    p.set_defaults(func=cmd_sample)


def load_boxes(path: str) -> dict[str, Any]:
    try:
        doc = json.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise InputError(f"{path}: no such file") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("sequence"), list) or "endSequence" not in doc:
        raise InputError(f"{path}: not a boxes document (needs endSequence and sequence)")
    return doc


def cmd_events(args: argparse.Namespace) -> int:
    index = FrameIndex.build(args.file)
    boxes = load_boxes(args.boxes) if args.boxes else None
    if boxes is not None and int(boxes["endSequence"]) != index.end_sequence:
        raise InputError(f"{args.boxes}: endSequence {boxes['endSequence']} != the video's {index.end_sequence}")
    events = extract_events(args.file, boxes=boxes, index=index, scene_threshold=args.threshold)
    out = [e.to_json() for e in events]
    if args.keyframes:
        folder = Path(args.keyframes)
        folder.mkdir(parents=True, exist_ok=True)
        with FrameReader(args.file, index) as reader:
            for n, (event, data) in enumerate(zip(events, out, strict=True), start=1):
                path = folder / f"{n:04d}_{event.key_seq}.jpg"
                path.write_bytes(keyframe_jpeg(reader, event.key_seq))
                data["keyframe"] = str(path)
    print(json.dumps({"endSequence": index.end_sequence, "events": out}))
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    index = FrameIndex.build(args.file)
    samples = fixed_rate_samples(index, args.rate)
    print(
        json.dumps(
            {
                "rate": args.rate,
                "duration_ms": round_ms(index.duration_ms),
                "count": len(samples),
                "samples": [
                    {"k": s.k, "time_ms": round_ms(s.time_ms), "seq": s.seq, "frame_time_ms": round_ms(s.frame_time_ms)}
                    for s in samples
                ],
            }
        )
    )
    return 0
