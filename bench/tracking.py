"""Tracking benchmark (issue 8): are the stored boxes one tight box per person with a stable id, and does
the painted mask still cover everyone?

Clips with ground truth from the shared media: TUD-Campus (MOT15, 640x480, 71 frames; its don't-care
region covers the people seen through the glass facade, whom MOT15 does not annotate) and MOT17-04
frames 1-8 (1920x1080 night crowd seen from above; GT filtered to pedestrians in `bench/data`), and two made
from them: the throughput bench's 720p dense crowd and a wide shot (TUD-Campus at half size on a 1080p canvas).

Anchor, in the same run: the detector's own per-frame boxes at its operating point (score >= 0.35), no
tracking, no ids: what a per-frame tool stores. Scores:
- motmetrics: MOTA, IDF1, precision, recall, id switches (unmatched boxes at the frame border or inside
  the don't-care region are not false positives: those people are real, only unannotated);
- `shared/tools/trackcheck.py`, the team's acceptance scorer (it counts excused boxes in IDF1 and
  precision, so its IDF1 is lower), when the shared tools are present;
- boxes per annotated person; GT people >= 50% covered by the *painted* mask; leak audit of the output.
HOTA is not computed (TrackEval is not installed here).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import write_results
from framemask.detect import prepare_models
from framemask.redact import anonymize_file
from framemask.redact.audit import audit_file
from framemask.redact.pipeline import default_detectors
from framemask.redact.scoring import load_gt, load_regions, score_tracks

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared"
CLIPS = {
    "TUD-Campus": (
        SHARED / "media/TUD-Campus.mp4",
        SHARED / "media/TUD-Campus.gt.txt",
        SHARED / "media/TUD-Campus.ignore.txt",
    ),
    "MOT17-04 f1-8": (
        SHARED / "media/mmtracking_demo_MOT17-04_frames1-8.mp4",
        HERE / "data/MOT17-04-frames1-8.gt.txt",
        None,
    ),
}
ANCHOR_SCORE = 0.35


def dense_crowd(scratch: Path) -> tuple[Path, Path, None]:
    """The throughput bench's 720p dense-crowd clip (MOT17-04's 8 frames to and fro, 252 frames) and its ground
    truth: each frame's source frame's people, scaled from 1080p. 31 s of a crowd instead of 8 frames, so
    tracks have time to form; the people walk back and forth, so read its ID numbers loosely."""
    from bench.throughput import PINGPONG_CYCLE, pingpong
    from framemask.media import probe

    src = pingpong(CLIPS["MOT17-04 f1-8"][0], "mot17-04_720p")
    gt = load_gt(CLIPS["MOT17-04 f1-8"][1])
    lines = []
    for seq in range(1, probe(src).end_sequence + 1):
        for tid, (x1, y1, x2, y2) in gt[PINGPONG_CYCLE[(seq - 1) % len(PINGPONG_CYCLE)]]:
            left, top, w, h = (v * 2 / 3 for v in (x1, y1, x2 - x1, y2 - y1))
            lines.append(f"{seq},{tid},{left:.2f},{top:.2f},{w:.2f},{h:.2f},1,1,1")
    path = scratch / "mot17-04_720p.gt.txt"
    path.write_text("\n".join(lines) + "\n")
    return src, path, None


WIDE_CANVAS, WIDE_SCALE, WIDE_CORNER = (1920, 1080), 0.5, (800, 500)
"""The wide shot: TUD-Campus at half size on a grey 1080p canvas, its top-left corner at (800, 500)."""


def wide_shot(scratch: Path) -> tuple[Path, Path, Path]:
    """TUD-Campus seen from afar: its frames at half size (people 65-155 px tall) on a 1080p canvas, as a wide
    street shot shows its few distant people; ground truth and don't-care regions scaled and moved alike.
    The first look (416 px) sees those people 14-34 px tall, and they are too few for the crowd pass."""
    import subprocess

    (width, height), scale, (left, top) = WIDE_CANVAS, WIDE_SCALE, WIDE_CORNER
    src, gt_src, ignore_src = CLIPS["TUD-Campus"]
    assert ignore_src is not None
    clip = scratch / "tud_wide_1080p.mp4"
    if not clip.is_file():
        shrink = f"scale=iw*{scale}:ih*{scale},pad={width}:{height}:{left}:{top}:gray"
        run = ["ffmpeg", "-v", "error", "-y", "-i", str(src), "-vf", shrink, "-c:v", "libx264", "-crf", "18"]
        subprocess.run([*run, str(clip)], check=True)

    def moved(x1: float, y1: float, x2: float, y2: float) -> tuple[float, ...]:
        return (x1 * scale + left, y1 * scale + top, x2 * scale + left, y2 * scale + top)

    gt_lines = [
        f"{seq},{tid},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},1,-1,-1,-1"
        for seq, rows in sorted(load_gt(gt_src).items())
        for tid, box in rows
        for x1, y1, x2, y2 in [moved(*box)]
    ]
    gt = scratch / "tud_wide_1080p.gt.txt"
    gt.write_text("\n".join(gt_lines) + "\n")
    ignore = scratch / "tud_wide_1080p.ignore.txt"
    ignore.write_text("".join(",".join(f"{v:.2f}" for v in moved(*r)) + "\n" for r in load_regions(ignore_src)))
    return clip, gt, ignore


def trackcheck(doc: dict[str, Any], gt: Path, width: int, height: int, ignore: Path | None) -> dict[str, Any] | None:
    """The shared acceptance scorer's numbers, or None without the shared tools."""
    tool = SHARED / "tools/trackcheck.py"
    if not tool.is_file():
        return None
    spec = importlib.util.spec_from_file_location("trackcheck", tool)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "boxes.json"
        path.write_text(json.dumps(doc))
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            module.main(str(path), str(gt), (width, height), load_regions(ignore))
    return json.loads(out.getvalue())


def anchor_doc(src: Path, detectors: list) -> tuple[dict[str, Any], dict[int, np.ndarray]]:
    """Per-frame person boxes at the detector's operating point, no ids; painted = those boxes."""
    from framemask.media import iter_frames, probe, rotate
    from framemask.redact.encode import frame_to_rgb

    info = probe(src)
    person = detectors[0]
    sequence, painted = [], {}
    for seq, frame in iter_frames(src):
        dets = person.detect(rotate(frame_to_rgb(frame), info.rotation)).clip(info.width, info.height)
        keep = dets[dets.confidence >= ANCHOR_SCORE]
        boxes = [dict(zip(("x1", "y1", "x2", "y2"), (round(float(v)) for v in b), strict=True)) for b in keep.xyxy]
        sequence.append({"seq": seq, "person": boxes, "face": []})
        painted[seq] = np.array([[b["x1"], b["y1"], b["x2"], b["y2"]] for b in boxes]).reshape(-1, 4)
    return {"endSequence": info.end_sequence, "sequence": sequence}, painted


def run_clip(
    name: str,
    src: Path,
    gt_path: Path,
    ignore_path: Path | None,
    scratch: Path,
    detectors: list | None = None,
    anchor: bool = True,
) -> dict[str, Any]:
    """Anonymize `src` (with the default detectors unless `detectors` are given), score its tracks, audit it,
    and score the per-frame anchor unless `anchor` is False."""
    gt, ignore = load_gt(gt_path), load_regions(ignore_path)
    detectors = detectors or default_detectors(("person", "face"))
    started = time.perf_counter()
    result = anonymize_file(src, scratch / f"{'_'.join(name.replace(',', '').split())}.mp4", detectors=detectors)
    seconds = time.perf_counter() - started
    assert result.painted is not None and result.track is not None
    width, height = result.track.width, result.track.height
    painted = {s: result.painted.boxes(s) for s in range(1, result.end_sequence + 1)}
    ours = score_tracks(result.boxes, gt, width, height, ignore=ignore, painted=painted).to_json()
    audit = audit_file(result.output, original=src)
    row: dict[str, Any] = {
        "clip": name,
        "frames": result.end_sequence,
        "framemask": {
            **ours,
            "trackcheck": trackcheck(result.boxes, gt_path, width, height, ignore_path),
            "tracks": len(result.track.confirmed),
            "leaks": len(audit["leaks"]),
            "seconds": round(seconds, 2),
            "fps": round(result.end_sequence / seconds, 1),
        },
    }
    if anchor:
        doc, anchor_painted = anchor_doc(src, detectors)
        base = score_tracks(doc, gt, width, height, ignore=ignore, painted=anchor_painted).to_json()
        row["anchor"] = {**base, "trackcheck": trackcheck(doc, gt_path, width, height, ignore_path)}
    return row


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| clip | boxes | MOTA | IDF1 | HOTA (DetA / AssA) | precision | recall | ID sw. | boxes/GT person "
        "| GT >= 50% masked | trackcheck MOTA / IDF1 | tracks | leaks | fps |"
    )
    lines = [head, "|" + "---|" * 14]
    for row in rows:
        for who in ("framemask", "anchor"):
            s = row[who]
            tc = s.get("trackcheck")
            tcs = f"{tc['mota']:.3f} / {tc['idf1']:.3f}" if tc else "n/a"
            label = "framemask (tracks)" if who == "framemask" else f"anchor: per-frame detections >= {ANCHOR_SCORE}"
            hota = f"{s['hota']:.3f} ({s['deta']:.3f} / {s['assa']:.3f})" if "hota" in s else "n/a"
            lines.append(
                f"| {row['clip']} | {label} | {s['mota']:.3f} | {s['idf1']:.3f} | {hota} | {s['precision']:.3f} "
                f"| {s['recall']:.3f} | {s['id_switches']} | {s['boxes_per_gt']:.2f} | {s['gt_masked']:.3f} | {tcs} "
                f"| {s.get('tracks', '-')} | {s.get('leaks', '-')} | {s.get('fps', '-')} |"
            )
    return "\n".join(lines)


def main() -> None:
    prepare_models()
    scratch = HERE / "scratch" / "tracking"
    scratch.mkdir(parents=True, exist_ok=True)
    clips: dict[str, tuple[Path, Path, Path | None]] = {
        name: paths for name, paths in CLIPS.items() if paths[0].is_file() and paths[1].is_file()
    }
    if "MOT17-04 f1-8" in clips:
        clips["MOT17-04 dense clip, 720p"] = dense_crowd(scratch)
    if "TUD-Campus" in clips:
        clips["TUD-Campus wide shot, 1080p"] = wide_shot(scratch)
    rows = [run_clip(name, *paths, scratch) for name, paths in clips.items()]
    md = "\n".join(
        [
            "### Tracking vs ground truth (framemask's stored tracks vs per-frame detector boxes)",
            "",
            table(rows),
            "",
            "Targets on unseen street footage: MOTA >= 0.60, IDF1 >= 0.55, <= 1.3 boxes per annotated person,",
            ">= 99% of annotated people >= 50% masked, 0 audit leaks. TUD boxes per person include the people",
            "behind the glass facade (real, masked, unannotated). MOT17-04 is a dense overhead night crowd whose",
            "people are at the edge of the person detector's reach at 1080p: its crowd pass (a second look at",
            "640 px) finds about two thirds of them a frame, and recall is detector-bound. The wide shot is",
            "TUD-Campus at half size on a grey 1080p canvas: few people, all small, no crowd pass.",
        ]
    )
    write_results("tracking", {"clips": rows}, md)


if __name__ == "__main__":
    main()
