"""`framemask events | sample`: the event timeline and fixed-rate sampling from the command line."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from framemask.errors import InputError
from framemask.media import FrameIndex, FrameReader, round_ms
from framemask.media.sampling import fixed_rate_samples


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("events", help="split a video into scenes and people-present intervals (JSON)")
    p.add_argument("file", help="video file (use the processed video when saving key frames)")
    p.add_argument("--boxes", help="boxes JSON in the seed format (from `anonymize --boxes`) for presence events")
    p.add_argument("--keyframes", metavar="DIR", help="write each event's key frame as DIR/<n>_<seq>.jpg")
    p.add_argument("--threshold", type=float, default=27.0, help="scene-cut threshold (PySceneDetect content)")
    p.set_defaults(func=cmd_events)

    p = subparsers.add_parser("sample", help="exactly duration x rate samples, each tied to its frame (JSON)")
    p.add_argument("file", help="video file")
    p.add_argument("--rate", type=float, required=True, help="samples per second")
    p.add_argument("--analyze", metavar="KIND", help="analyse each sample: `pose` (COCO keypoints per person)")
    p.add_argument("--boxes", help="with --analyze: tracked boxes JSON (`anonymize --boxes`) instead of detecting")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
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
    from framemask.events import extract_events, keyframe_jpeg  # scene detection: ~0.2 s, only here

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
    if args.analyze is not None:
        return _sample_pose(args)
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


def _sample_pose(args: argparse.Namespace) -> int:
    """`sample --analyze pose`: the samples with each person's 17 COCO keypoints (`framemask.events.sampled`)."""
    from framemask.cli.redact import _progress
    from framemask.detect.pose import KEYPOINTS, load_pose
    from framemask.events.sampled import DetectedPeople, PeopleSource, StoredPeople, pose_samples

    if args.analyze != "pose":
        raise InputError(f"--analyze {args.analyze}: unknown analysis; the one there is: pose")
    if not (math.isfinite(args.rate) and 0 < args.rate <= 1000):
        raise InputError(f"--rate must be in (0, 1000] samples per second, got {args.rate}")
    index = FrameIndex.build(args.file)
    boxes = load_boxes(args.boxes) if args.boxes else None
    if boxes is not None and int(boxes["endSequence"]) != index.end_sequence:
        raise InputError(f"{args.boxes}: endSequence {boxes['endSequence']} != the video's {index.end_sequence}")
    estimator = load_pose()
    source: PeopleSource
    if boxes is not None:
        source = StoredPeople.from_doc(boxes)
    else:
        from framemask.detect import Tracker, load_detectors

        source = DetectedPeople(load_detectors(("person",))[0], Tracker(fps=args.rate))
    with _progress(not args.no_progress, "pose") as progress:
        samples = pose_samples(args.file, args.rate, estimator, source, index=index, progress=progress)
    doc = {
        "rate": args.rate,
        "duration_ms": round_ms(index.duration_ms),
        "count": len(samples),
        "analyze": "pose",
        "model": estimator.name,
        "keypoint_names": list(KEYPOINTS),
        "samples": [s.to_json() for s in samples],
    }
    print(json.dumps(doc))
    return 0
