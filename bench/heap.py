"""Heap tuning benchmark (issue 13 target 1): `framemask anonymize` with glibc's allocator tuned for frame
buffers (`framemask.heap.keep_freed_memory`, the default) against the same command with glibc's defaults, and
the x264 transcode as the anchor, interleaved in each round on the 720p clips of `bench.throughput`.

The untuned run sets a harmless glibc tunable (`GLIBC_TUNABLES=glibc.malloc.perturb=0`), which
`keep_freed_memory` takes as the operator's own allocator settings and leaves alone. Reported per command:
wall, user and system CPU, minor page faults (the children's rusage), medians over the rounds, and each
anonymize's wall time over the transcode of its round.
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path
from typing import Any

from bench.anonymize import framemask_cmd, run_measured, transcode_cmd
from bench.common import WORK, write_results
from bench.throughput import clips_720p

ROUNDS = 5
UNTUNED = {"GLIBC_TUNABLES": "glibc.malloc.perturb=0"}


def measure(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, float]:
    """Wall seconds, user and system CPU seconds and minor faults of `cmd`'s process tree (`run_measured`)."""
    run = run_measured(cmd, env={**os.environ, **(env or {})})
    return {
        "wall": run["seconds"],
        "user": run["user_seconds"],
        "sys": run["system_seconds"],
        "minor_faults": run["minor_faults"],
    }


def bench_clip(name: str, path: Path, rounds: int) -> dict[str, Any]:
    runs: dict[str, list[dict[str, float]]] = {"transcode": [], "untuned": [], "tuned": []}
    for _ in range(rounds):
        runs["transcode"].append(measure(transcode_cmd(path, WORK / f"heap_{name}.ffmpeg.mp4")))
        out = WORK / f"heap_{name}.fm.mp4"
        runs["untuned"].append(measure(framemask_cmd(path, out, "person,face"), UNTUNED))
        runs["tuned"].append(measure(framemask_cmd(path, out, "person,face")))
        print(name, {k: v[-1]["wall"] for k, v in runs.items()}, flush=True)
    row: dict[str, Any] = {"clip": name, "runs": runs}
    for kind, measured in runs.items():
        row[kind] = {key: statistics.median(m[key] for m in measured) for key in measured[0]}
    for kind in ("untuned", "tuned"):
        ratios = [m["wall"] / t["wall"] for m, t in zip(runs[kind], runs["transcode"], strict=True)]
        row[kind]["vs_transcode_wall"] = round(statistics.median(ratios), 2)
    return row


def markdown(rows: list[dict[str, Any]], load: tuple[list[float], list[float]], rounds: int) -> str:
    lines = [
        "## Heap tuning: `framemask anonymize` with glibc's defaults and with `keep_freed_memory`, 720p",
        "",
        f"2 shared CPU cores; load average {load[0]} before, {load[1]} after. {rounds} rounds per clip, each a "
        "transcode, an untuned and a tuned anonymize (person,face) in that order; medians.",
        "",
        "| clip | command | wall s | / transcode (wall) | user s | system s | minor faults |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        for kind in ("transcode", "untuned", "tuned"):
            m = row[kind]
            ratio = f"**{m['vs_transcode_wall']}x**" if kind != "transcode" else "-"
            lines.append(
                f"| {row['clip']} | {kind} | {m['wall']} | {ratio} | {m['user']} | {m['sys']} | "
                f"{int(m['minor_faults'])} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    args = parser.parse_args()
    before = [round(x, 2) for x in os.getloadavg()]
    rows = [bench_clip(name, path, args.rounds) for name, path in clips_720p().items()]
    load = (before, [round(x, 2) for x in os.getloadavg()])
    data = {"rounds": args.rounds, "load_average": load, "rows": rows}
    write_results("heap", data, markdown(rows, load, args.rounds))


if __name__ == "__main__":
    main()
