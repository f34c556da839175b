"""Start-up benchmark (issue 13 target 1, the sparse clip): what a single `framemask anonymize` pays before
and around its frames, against the transcode of the sparse 720p clip in the same run.

Per round: the x264 transcode of the sparse clip (the anchor), `framemask anonymize` of that clip, and of its
first 2 frames (almost all start-up: interpreter, imports, models, probe, encoder set-up, teardown). Then the
import profile: `python -X importtime` of the CLI's anonymize command module and of the tracker library, each
in a fresh interpreter, summarised as the cumulative milliseconds of the modules that dominate it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from typing import Any

from bench.anonymize import framemask_cmd, transcode_cmd
from bench.common import WORK, write_results
from bench.heap import measure
from bench.throughput import clips_720p, encode_once

ROUNDS = 5
IMPORTS = {  # what is imported, and the modules of its tree worth naming
    "framemask.cli.redact": ("framemask.settings", "numpy", "av", "cv2", "framemask.redact.pipeline"),
    "trackers": ("supervision", "supervision.annotators.core", "scipy.interpolate", "scipy.optimize", "scipy.special"),
    "scenedetect": ("scenedetect.platform", "scenedetect.output", "scenedetect.output.video"),
}
"""Each library whole, as a plain `import` loads it."""
PARTS = (  # what the anonymizer imports of them (`framemask.partial_import`), after numpy and OpenCV
    "framemask.detect.tracking._import_trackers",
    "framemask.media.cuts._import_detector",
)


def import_profile(module: str, named: tuple[str, ...]) -> dict[str, float]:
    """Cumulative import milliseconds of `module` and of each of `named` in its tree (fresh interpreter)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"], capture_output=True, text=True, check=True
    )
    cumulative: dict[str, float] = {}
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cum, name = line.removeprefix("import time:").split("|")
        cumulative[name.strip()] = int(cum) / 1000
    return {name: round(cumulative.get(name, 0.0), 1) for name in (module, *named)}


def parts_profile(function: str) -> dict[str, float]:
    """Milliseconds of calling `function` (module.name) in a fresh interpreter, numpy and OpenCV imported first."""
    module, _, name = function.rpartition(".")
    code = (
        "import time, numpy, cv2\n"
        f"from {module} import {name}\n"
        f"t = time.perf_counter(); {name}(); print(round((time.perf_counter() - t) * 1000, 1))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return {function: float(done.stdout.split()[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    args = parser.parse_args()
    before = [round(x, 2) for x in os.getloadavg()]
    sparse = clips_720p()["armwrestling_720p"]
    tiny = encode_once(sparse, "startup_2frames", ["-frames:v", "2"])
    runs: dict[str, list[dict[str, float]]] = {"transcode": [], "anonymize": [], "anonymize_2_frames": []}
    for _ in range(args.rounds):
        runs["transcode"].append(measure(transcode_cmd(sparse, WORK / "startup.ffmpeg.mp4")))
        runs["anonymize"].append(measure(framemask_cmd(sparse, WORK / "startup.fm.mp4", "person,face")))
        runs["anonymize_2_frames"].append(measure(framemask_cmd(tiny, WORK / "startup.tiny.mp4", "person,face")))
        print({k: v[-1]["wall"] for k, v in runs.items()}, flush=True)
    medians = {k: {key: statistics.median(m[key] for m in v) for key in v[0]} for k, v in runs.items()}
    profiles = [import_profile(module, named) for module, named in IMPORTS.items()]
    profiles += [parts_profile(function) for function in PARTS]
    load = (before, [round(x, 2) for x in os.getloadavg()])
    write_results(
        "startup",
        {"rounds": args.rounds, "load_average": load, "runs": runs, "medians": medians, "imports": profiles},
        markdown(medians, profiles, load, args.rounds),
    )


def markdown(medians: dict[str, Any], profiles: list[dict[str, float]], load: Any, rounds: int) -> str:
    anchor = medians["transcode"]["wall"]
    lines = [
        "## Start-up of a single `framemask anonymize` (sparse 720p clip)",
        "",
        f"2 shared CPU cores; load average {load[0]} before, {load[1]} after. {rounds} rounds of the transcode, "
        "the anonymize of the sparse clip and of its first 2 frames; medians.",
        "",
        "| run | wall s | / transcode (wall) | user s | system s |",
        "|---|---|---|---|---|",
    ]
    for kind, m in medians.items():
        ratio = "-" if kind == "transcode" else f"{m['wall'] / anchor:.2f}x"
        lines.append(f"| {kind} | {m['wall']} | {ratio} | {m['user']} | {m['sys']} |")
    without = medians["anonymize"]["wall"] - medians["anonymize_2_frames"]["wall"]
    lines += [
        "",
        f"Without the 2-frame run's time the anonymize would take {without:.2f} s, "
        f"{without / anchor:.2f}x the transcode.",
        "",
        "Import profile (`python -X importtime`, fresh interpreter, cumulative ms): the CLI's command module, "
        "the tracker library and PySceneDetect each whole, then what the anonymizer imports of the last two "
        "(`framemask.partial_import`; the call's own milliseconds, numpy and OpenCV imported before):",
        "",
        "| import | module in its tree | cumulative ms |",
        "|---|---|---|",
    ]
    for profile in profiles:
        (top, *rest) = profile
        lines.append(f"| `{top}` | {'(the call)' if top in PARTS else '(all)'} | {profile[top]} |")
        lines += [f"| | `{name}` | {profile[name]} |" for name in rest]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
