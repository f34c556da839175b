"""Scale-out benchmark (issue 11): one long 720p clip, serial vs `--jobs 2` vs two Celery workers.

The clip is TUD-Campus scaled to 720p and ping-pong looped (`bench.anonymize.make_clip`) to `--seconds`
(default 60; the issue's 10 minutes is `--seconds 600`). Measured on this machine:

- `serial`: `anonymize_file(jobs=1)`, wall time;
- `segments`: every segment of `--segment-seconds` rendered one after another in this process
  (`run_segment`): the per-segment cost, then the serial part of a segmented run: indexing the input,
  stitching + joining the parts by remux + copying the audio (`assemble_segments`) and indexing the master;
- `jobs2`: `anonymize_file(jobs=2)` (local process pool), wall time;
- `celery2`: `framemask serve`'s app in-process (enqueue only) + two `framemask worker` processes on Redis,
  SQLite and the local store sharing one data dir, segments as jobs (`FRAMEMASK_SEGMENT_MODE=queue`):
  upload accepted -> video ready, and the join's own timings from the job result.

The machine is shared with other work: numbers are indicative, the load average is recorded.
`python -m bench.scale [--seconds S] [--segment-seconds S] [--no-celery]`
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import WORK, write_results

SHARED = Path(__file__).resolve().parents[2] / "shared" / "media"


def _clip(seconds: float) -> tuple[Path, list[int], float, int]:
    """The looped clip, and how to map TUD-Campus's ground truth onto it (source frame per frame, scale, x)."""
    from bench.anonymize import make_clip

    passes = max(1, math.ceil(seconds * 25 / 70))
    return make_clip(f"scale_tud_720p_{passes}", SHARED / "TUD-Campus.mp4", passes)


def _tracking(boxes: dict[str, Any], sequence: list[int], scale: float, x0: int) -> dict[str, float]:
    """MOTA / IDF1 / HOTA of a run's person tracks against TUD-Campus's ground truth mapped onto the clip,
    with the GT's ignore regions (people behind the glass) excused: do tracks keep their ids across the
    segment joins? Each ping-pong pass is its own identity (a person reversing on the spot at a turn is not
    a street scene), so only id changes within a pass count, the joins' among them."""
    from framemask.redact.scoring import load_gt, load_regions, score_tracks

    def mapped(box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        return (box[0] * scale + x0, box[1] * scale, box[2] * scale + x0, box[3] * scale)

    source = load_gt(SHARED / "TUD-Campus.gt.txt")
    n = max(sequence) + 1  # source frames; passes: n frames, then n - 1 each way
    gt = {
        seq: [
            (pid + 1000 * (0 if seq <= n else 1 + (seq - n - 1) // (n - 1)), mapped(b))
            for pid, b in source.get(k + 1, [])
        ]
        for seq, k in enumerate(sequence, start=1)
    }
    ignore = [mapped(b) for b in load_regions(SHARED / "TUD-Campus.ignore.txt")]
    score = score_tracks(boxes, gt, 1280, 720, ignore=ignore)
    return {k: round(float(getattr(score, k)), 4) for k in ("mota", "idf1", "hota", "id_switches", "recall")}


def _serial(src: Path, out: Path, gt: tuple[list[int], float, int]) -> dict[str, Any]:
    from framemask.media import FrameIndex
    from framemask.redact import anonymize_file

    t0 = time.perf_counter()
    index = FrameIndex.build(src)
    t1 = time.perf_counter()
    result = anonymize_file(src, out, index=index)
    t2 = time.perf_counter()
    return {"index_s": round(t1 - t0, 2), "render_s": round(t2 - t1, 2), "wall_s": round(t2 - t0, 2),
            "frames": result.end_sequence, "tracking": _tracking(result.boxes, *gt)}  # fmt: skip


def _segments(src: Path, work: Path, seconds: float) -> dict[str, Any]:
    from framemask.media import FrameIndex, probe
    from framemask.redact import DEFAULT_STRIDE
    from framemask.redact.policy import MaskPolicy
    from framemask.redact.segments import SegmentJob, assemble_segments, plan_segments, run_segment, segment_encoder

    t0 = time.perf_counter()
    index = FrameIndex.build(src)
    info = probe(src, index=index)
    t1 = time.perf_counter()
    spans = plan_segments(index, seconds)
    settings, policy = segment_encoder(info.fps), MaskPolicy.for_fps(info.fps)
    outputs, costs = [], []
    for k, span in enumerate(spans):
        job = SegmentJob(str(src), str(work / f"part{k:04d}.mp4"), span, index.to_bytes(), ("person", "face"),
                         "mosaic", "rect", 1.0, DEFAULT_STRIDE, settings, policy)  # fmt: skip
        s = time.perf_counter()
        outputs.append(run_segment(job))
        costs.append({"frames": span.end - span.start + 1, "decoded": span.last - span.first + 1,
                      "seconds": round(time.perf_counter() - s, 2)})  # fmt: skip
    t2 = time.perf_counter()
    dst = work / "joined.mp4"
    assemble_segments(outputs, info, dst, src)
    t3 = time.perf_counter()
    FrameIndex.build(dst)
    t4 = time.perf_counter()
    return {"index_s": round(t1 - t0, 2), "segments": costs, "segments_s": round(t2 - t1, 2),
            "join_s": round(t3 - t2, 2), "index_master_s": round(t4 - t3, 2),
            "serial_part_s": round((t1 - t0) + (t4 - t2), 2)}  # fmt: skip


def _jobs2(src: Path, out: Path, seconds: float, gt: tuple[list[int], float, int]) -> dict[str, Any]:
    from framemask.redact import anonymize_file

    t0 = time.perf_counter()
    result = anonymize_file(src, out, jobs=2, segment_seconds=seconds)
    return {"wall_s": round(time.perf_counter() - t0, 2), "segments": result.timings.get("segments"),
            "tracking": _tracking(result.boxes, *gt)}  # fmt: skip


def _celery2(src: Path, root: Path, seconds: float) -> dict[str, Any]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from support.api import make_settings, service, settings_env, spawn_worker, stop_process, upload, wait_for
    from support.servers import free_port

    from framemask.store.models import Job

    port = free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no"], stdout=subprocess.DEVNULL)  # fmt: skip
    workers = []
    try:
        time.sleep(0.5)
        settings = make_settings(root / "data", workers=0, queue="celery", broker_url=f"redis://127.0.0.1:{port}/0",
                                 segment_jobs=2, segment_seconds=seconds, segment_mode="queue",
                                 job_lease_seconds=30.0, redact_stride=None)  # fmt: skip
        with service(settings) as client:
            env = settings_env(settings)
            workers = [spawn_worker(env, root / f"worker-{i}.log") for i in (1, 2)]
            time.sleep(8)  # both workers up before the clock starts
            t0 = time.perf_counter()
            created = upload(client, src).json()
            video = wait_for(client, created["id"], timeout=7200)
            wall = time.perf_counter() - t0
            assert video["status"] == "ready", video
            with client.app.state.services.db.session() as session:
                job = session.get(Job, created["job_id"])
                result = dict(job.result or {}) if job else {}
            return {"wall_s": round(wall, 2), "join": result}
    finally:
        for proc in workers:
            stop_process(proc)
        redis.terminate()
        redis.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--segment-seconds", type=float, default=10.0)
    parser.add_argument("--no-celery", action="store_true")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    src, *mapping = _clip(args.seconds)
    gt = (mapping[0], mapping[1], mapping[2])
    work = WORK / "scale"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    load = {"before": os.getloadavg()}
    serial = _serial(src, work / "serial.mp4", gt)
    segments = _segments(src, work, args.segment_seconds)
    jobs2 = _jobs2(src, work / "jobs2.mp4", args.segment_seconds, gt)
    celery = None if args.no_celery or not shutil.which("redis-server") else _celery2(src, work, args.segment_seconds)
    load["after"] = os.getloadavg()
    frames = serial["frames"]
    per_frame = sum(s["seconds"] for s in segments["segments"]) / max(1, sum(s["frames"] for s in segments["segments"]))
    data = {"clip": {"path": src.name, "frames": frames, "seconds": args.seconds, "size": "1280x720"},
            "segment_seconds": args.segment_seconds, "serial": serial, "segmented_in_one_process": segments,
            "jobs2": jobs2, "celery2": celery, "loadavg": load,
            "per_output_frame_s": round(per_frame, 5)}  # fmt: skip
    rows = [
        f"| serial (`anonymize`, 1 process) | {serial['wall_s']} | 1.00 | index {serial['index_s']} |",
        f"| segments one after another (1 process) | {segments['segments_s'] + segments['serial_part_s']} | "
        f"{serial['wall_s'] / (segments['segments_s'] + segments['serial_part_s']):.2f} | "
        f"index {segments['index_s']}, join+audio {segments['join_s']}, master index {segments['index_master_s']} |",
        f"| `--jobs 2` (process pool) | {jobs2['wall_s']} | {serial['wall_s'] / jobs2['wall_s']:.2f} | "
        f"{jobs2['segments']} segments |",
    ]
    if celery:
        speedup = serial["wall_s"] / celery["wall_s"]
        rows.append(f"| two Celery workers (segments as jobs) | {celery['wall_s']} | {speedup:.2f} | "
                    f"join step {celery['join'].get('timings')} |")  # fmt: skip
    md = (
        f"# Scale-out: {frames} frames of 720p ({args.seconds:g} s), segments of {args.segment_seconds:g} s\n\n"
        "Shared 2-core machine (load average before/after: "
        f"{load['before'][0]:.2f} / {load['after'][0]:.2f}); indicative numbers.\n\n"
        "| run | wall s | speed-up | serial part / notes |\n|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
        f"Per-segment cost: {per_frame * 1000:.1f} ms per output frame (context frames included); "
        f"serial part of a segmented run: {segments['serial_part_s']} s "
        f"({100 * segments['serial_part_s'] / serial['wall_s']:.1f} % of the serial wall time).\n\n"
        "Tracks across the joins (TUD-Campus ground truth mapped onto the clip, its ignore regions excused; "
        "target: IDF1 of `--jobs 2` within 0.05 of serial):\n\n"
        "| run | MOTA | IDF1 | HOTA | ID switches | recall |\n|---|---|---|---|---|---|\n"
        + "\n".join(
            f"| {name} | {t['mota']:.3f} | {t['idf1']:.3f} | {t['hota']:.3f} | {t['id_switches']:.0f} "
            f"| {t['recall']:.3f} |"
            for name, t in (("serial", serial["tracking"]), ("`--jobs 2` (joined segments)", jobs2["tracking"]))
        )
        + f"\n\nIDF1 difference (jobs 2 - serial): {jobs2['tracking']['idf1'] - serial['tracking']['idf1']:+.3f}.\n"
    )
    write_results("scale", data, md)


if __name__ == "__main__":
    main()
