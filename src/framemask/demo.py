"""`./dev demo [VIDEO]`: the main job on the embedded default, end to end, with no external service.

probe -> anonymize (detect, track, mask, encode) -> leak audit -> event timeline, written under
`data/demo/`. Without VIDEO it uses the shared sample clip with people (TUD-Campus: `samples.sample_video`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from framemask.cli import main as cli
from framemask.samples import REPO, SAMPLE, sample_video


def step(title: str, argv: list[str]) -> None:
    print(f"\n== {title}: framemask {' '.join(argv)}", file=sys.stderr, flush=True)
    code = cli(argv)
    if code:
        sys.exit(code)


def main(argv: list[str]) -> int:
    if argv:
        video = Path(argv[0])
    else:
        found = sample_video()
        if found is None:
            print(f"framemask demo: no {SAMPLE} here; run ./dev demo path/to/video.mp4", file=sys.stderr)
            return 2
        video = found
    out = REPO / "data" / "demo"
    out.mkdir(parents=True, exist_ok=True)
    processed, boxes = out / f"{video.stem}.anonymized.mp4", out / f"{video.stem}.boxes.json"
    step("probe", ["probe", str(video)])
    step("anonymize", ["anonymize", str(video), "-o", str(processed), "--boxes", str(boxes)])
    step("leak audit", ["audit", str(processed), "--original", str(video)])
    step("events", ["events", str(processed), "--boxes", str(boxes), "--keyframes", str(out / "keyframes")])
    print(
        f"\nDone. Processed video: {processed}\nBoxes (seed format): {boxes}\n"
        f"Serve it with the editor and API: .venv/bin/framemask serve  (see README)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
