"""Where the CPU of one `anonymize` goes (issue 13: the profile behind the throughput ratios), against the
x264 transcode of the same clip in the same run.

Each clip runs once in a fresh child process (`--child`), as a CLI run would, with every Python thread's own
CPU time recorded when it ends (`time.thread_time`, by thread name). What no Python thread accounts for is the
native threads: x264's frame and lookahead threads, the decoder's and onnxruntime's. The child also reports
its start-up: the imports, and the time until the first frame reaches the encoder. The anchor is
`ffmpeg -c:v libx264` with the master's preset and crf (`bench.anonymize.transcode_cmd`), CPU of the process
tree per frame. `ROUNDS` rounds, alternating the two, medians reported.

Then, with py-spy installed (the dev extras), one more `framemask anonymize` of the crowded and the sparse clip
runs under py-spy (`bench/pyspy.py`), summarised by function: where the Python threads' samples are. Native
threads (x264, the decoder) hold no Python state and are not sampled: the CPU table above has them.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROUNDS = 3
PROFILED = ("tud_720p", "armwrestling_720p")
"""The clips of issue 13's target 1 (crowded, sparse), profiled by function after the measured rounds."""
THREADS = {
    "framemask-detector": "detectors (NanoDet + RetinaFace on detected frames)",
    "framemask-lookahead": "detected frames in flight (RGB for the detectors)",
    "framemask-detect": "tracking and interpolation",
    "framemask-mask": "mask policy and masking",
    "framemask-decode": "decoding hand-off (Python side)",
    "framemask-import-trackers": "the tracker library's import (once)",
    "main": "main thread: the encoder's calls; imports, probe and models before the first frame",
}


def child(src: str) -> None:
    """One anonymize of `src`, printing one JSON line: start-up, per-thread CPU, process CPU. (This module
    imports nothing of framemask or the other benches at its top, so the child's imports are timed here.)"""
    started, cpu_started = time.perf_counter(), time.process_time()
    from bench.common import WORK
    from framemask.detect.frame import detector_pool
    from framemask.redact import encode, pipeline

    imported = time.perf_counter() - started
    cpu: collections.Counter[str] = collections.Counter()
    run = threading.Thread.run

    def accounted(self: threading.Thread) -> None:
        try:
            run(self)
        finally:
            cpu[self.name.split("_")[0].rstrip("0123456789")] += time.thread_time()

    threading.Thread.run = accounted  # type: ignore[method-assign]
    first: list[float] = []
    write = encode.VideoWriter.write_i420

    def noted(self: encode.VideoWriter, *args: Any, **kwargs: Any) -> Any:
        if not first:
            first.append(time.perf_counter() - started)
        return write(self, *args, **kwargs)

    encode.VideoWriter.write_i420 = noted  # type: ignore[method-assign]
    result = pipeline.anonymize_file(src, str(WORK / "cpu_breakdown.mp4"))
    detector_pool().shutdown()
    pipeline._lookahead_pool().shutdown()
    cpu["main"] = time.thread_time()
    wall = time.perf_counter() - started
    print(
        json.dumps(
            {
                "frames": result.end_sequence,
                "imports_s": round(imported, 3),
                "first_frame_s": round(first[0], 3) if first else None,
                "wall_s": round(wall, 3),
                "process_cpu_s": round(time.process_time() - cpu_started, 3),
                "threads_cpu_s": {name: round(seconds, 3) for name, seconds in cpu.items()},
            }
        )
    )


def bench_clip(name: str, path: Path, rounds: int) -> dict[str, Any]:
    from bench.anonymize import run_measured, transcode_cmd
    from bench.common import WORK

    runs, anchors = [], []
    for _ in range(rounds):
        anchors.append(run_measured(transcode_cmd(path, WORK / f"{name}.cpu_anchor.mp4")))
        out = run_measured([sys.executable, "-m", "bench.cpu_breakdown", "--child", str(path)])
        runs.append(json.loads(out["stdout"].strip().splitlines()[-1]))
    frames = runs[0]["frames"]

    def per_frame(values: list[float]) -> float:
        return round(1000 * statistics.median(values) / frames, 2)

    threads = {t: per_frame([r["threads_cpu_s"].get(t, 0.0) for r in runs]) for t in THREADS}
    process = per_frame([r["process_cpu_s"] for r in runs])
    return {
        "clip": name,
        "frames": frames,
        "transcode_cpu_ms_per_frame": per_frame([a["cpu_seconds"] for a in anchors]),
        "transcode_wall_s": statistics.median(a["seconds"] for a in anchors),
        "process_cpu_ms_per_frame": process,
        "threads_cpu_ms_per_frame": threads,
        "native_cpu_ms_per_frame": round(process - sum(threads.values()), 2),
        "imports_s": statistics.median(r["imports_s"] for r in runs),
        "first_frame_s": statistics.median(r["first_frame_s"] for r in runs),
        "wall_s": statistics.median(r["wall_s"] for r in runs),
    }


def profile_clip(name: str, path: Path) -> dict[str, Any]:
    """py-spy's summary of one `framemask anonymize` of `path` (a fresh process, as a user runs it)."""
    from bench import pyspy
    from bench.common import WORK

    raw = WORK / f"{name}.profile.txt"
    cli = [sys.executable, "-m", "framemask", "anonymize", "--no-progress", "-o", str(WORK / f"{name}.profiled.mp4")]
    pyspy.run([*cli, str(path)], raw)
    return {"clip": name, **pyspy.summarise(raw)}


def markdown(rows: list[dict[str, Any]], load: dict[str, list[float]], rounds: int) -> str:
    names = [r["clip"] for r in rows]
    lines = [
        "## Where the CPU of one anonymize goes, against the x264 transcode",
        "",
        f"2 shared CPU cores; load average {load['before']} before, {load['after']} after. CPU ms per frame, "
        f"medians of {rounds} fresh processes per clip (`python -m bench.cpu_breakdown`). Python threads' own CPU "
        "by thread; *native threads* is the rest of the process: x264, the decoder, onnxruntime's own threads.",
        "",
        "| | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(rows),
        "| **x264 transcode, whole process tree (anchor)** | "
        + " | ".join(str(r["transcode_cpu_ms_per_frame"]) for r in rows)
        + " |",
        "| **anonymize, whole process** | " + " | ".join(str(r["process_cpu_ms_per_frame"]) for r in rows) + " |",
    ]
    for thread, what in THREADS.items():
        lines.append(f"| {what} | " + " | ".join(str(r["threads_cpu_ms_per_frame"][thread]) for r in rows) + " |")
    lines += [
        "| native threads (x264, decoder, onnxruntime) | "
        + " | ".join(str(r["native_cpu_ms_per_frame"]) for r in rows)
        + " |",
        "",
        "| clip | frames | transcode wall s | anonymize wall s | imports s | first frame to the encoder s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['clip']} | {r['frames']} | {r['transcode_wall_s']} | {r['wall_s']} | {r['imports_s']} "
            f"| {r['first_frame_s']} |"
        )
    lines.append(
        "\nThe anonymize times start when the child's `main` runs (the interpreter's own start, ~0.02 s, is not in "
        "them); `framemask anonymize` adds its argument parsing and exit."
    )
    return "\n".join(lines)


def profile_markdown(profiles: list[dict[str, Any]]) -> str:
    from bench import pyspy

    lines = ["", "## Profiles: `framemask anonymize` under py-spy, by function", ""]
    lines.append(
        "Python threads only (x264's and the decoder's native threads hold no Python state; their CPU is the "
        "*native threads* row above). `Session.run` is onnxruntime running a model in the calling thread."
    )
    lines.append("")
    for profile in profiles:
        lines += pyspy.markdown(profile, f"{profile['clip']}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", metavar="VIDEO", help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=ROUNDS, help=f"fresh processes per clip (default {ROUNDS})")
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy profiles after the rounds")
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    from bench.common import WORK, write_results
    from bench.throughput import clips_720p

    WORK.mkdir(parents=True, exist_ok=True)
    clips = clips_720p()
    load_before = os.getloadavg()
    rows = [bench_clip(name, path, args.rounds) for name, path in clips.items()]
    load = {"before": [round(v, 2) for v in load_before], "after": [round(v, 2) for v in os.getloadavg()]}
    from bench import pyspy

    profiles = []
    if not args.no_profile and pyspy.available():
        profiles = [profile_clip(name, clips[name]) for name in PROFILED if name in clips]
    data = {"clips": rows, "load_average": load, "rounds": args.rounds, "profiles": profiles}
    write_results("cpu_breakdown", data, markdown(rows, load, args.rounds) + profile_markdown(profiles))


if __name__ == "__main__":
    main()
