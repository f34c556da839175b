"""Portrait phone clips (issue 13 target 1): `framemask anonymize` of a 1080p clip stored landscape with a
display rotation, as phones record portrait video, against the x264 transcode of the same clip (which ffmpeg
turns upright too), interleaved in each round. `--before REF` adds the code of commit REF to every round.

The clip: TUD-Campus played 4 times and scaled to 1920x1080 (`throughput.encode_once`), its packets remuxed
under a -90 degree display matrix (no re-encode): 284 frames shown 1080x1920.
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path
from typing import Any

from bench.anonymize import SHARED, before_env, framemask_cmd, transcode_cmd
from bench.common import WORK, with_display_rotation, write_results
from bench.heap import measure
from bench.throughput import encode_once

ROUNDS = 4
ROTATION = -90


def portrait_clip() -> Path:
    """The portrait 1080p clip under bench/scratch, made once."""
    path = WORK / "portrait_1080p.mp4"
    if path.exists():
        return path
    four_times = "loop=loop=3:size=71,setpts=N/FRAME_RATE/TB,scale=1920:1080"  # TUD-Campus has 71 frames
    landscape = encode_once(SHARED / "TUD-Campus.mp4", "tud_1080p_x4", ["-vf", four_times, "-an"])
    return with_display_rotation(landscape, path, ROTATION)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--before", metavar="REF", help="also run the code of this commit in every round")
    args = parser.parse_args()
    load_before = [round(x, 2) for x in os.getloadavg()]
    clip = portrait_clip()
    kinds = {"transcode": None, "anonymize": None}
    if args.before:
        kinds = {"transcode": None, f"anonymize at {args.before}": before_env(args.before), "anonymize": None}
    runs: dict[str, list[dict[str, float]]] = {kind: [] for kind in kinds}
    for _ in range(args.rounds):
        for kind, env in kinds.items():
            if kind == "transcode":
                cmd = transcode_cmd(clip, WORK / "portrait.ffmpeg.mp4")
            else:
                cmd = framemask_cmd(clip, WORK / "portrait.fm.mp4", "person,face")
            runs[kind].append(measure(cmd, env))
        print({k: v[-1]["wall"] for k, v in runs.items()}, flush=True)
    medians = {k: {key: round(statistics.median(m[key] for m in v), 3) for key in v[0]} for k, v in runs.items()}
    ratios = {
        kind: [round(m["wall"] / t["wall"], 2) for m, t in zip(runs[kind], runs["transcode"], strict=True)]
        for kind in kinds
        if kind != "transcode"
    }
    load = (load_before, [round(x, 2) for x in os.getloadavg()])
    data = {"rounds": args.rounds, "load_average": load, "runs": runs, "medians": medians, "ratios": ratios}
    write_results("portrait", data, markdown(medians, ratios, load, args.rounds))


def markdown(medians: dict[str, Any], ratios: dict[str, list[float]], load: Any, rounds: int) -> str:
    lines = [
        "## A portrait phone clip: 1080p stored landscape with a -90 degree display rotation (284 frames)",
        "",
        f"2 shared CPU cores; load average {load[0]} before, {load[1]} after. {rounds} rounds, each command in "
        "the order of the table; medians, and each anonymize's wall time over the transcode of its round.",
        "",
        "| command | wall s | / transcode (wall), median (each round) | user s | system s |",
        "|---|---|---|---|---|",
    ]
    for kind, m in medians.items():
        each = ratios.get(kind)
        ratio = f"**{statistics.median(each):.2f}x** ({', '.join(f'{r:.2f}' for r in each)})" if each else "-"
        lines.append(f"| {kind} | {m['wall']} | {ratio} | {m['user']} | {m['sys']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
