"""Helpers shared by the benchmarks: machine facts, percentiles, result files, a portrait clip."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import av
import numpy as np

RESULTS = Path(__file__).parent / "results"
WORK = Path(__file__).parent / "scratch"


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q)) if values else float("nan")


def write_results(name: str, data: dict[str, Any], markdown: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = {"benchmark": name, "machine": machine(), **data}
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")
    (RESULTS / f"{name}.md").write_text(markdown.rstrip() + "\n")
    print(markdown)


def with_display_rotation(src: Path, dst: Path, rotation: int = -90) -> Path:
    """`src`'s video packets remuxed into `dst` under a display rotation (no re-encode): a landscape clip turned
    into the portrait clip a phone records (stored landscape, shown upright by its display matrix)."""
    tmp = dst.with_suffix(".tmp" + dst.suffix)
    with av.open(str(src)) as source, av.open(str(tmp), "w") as out:
        stream = out.add_stream_from_template(source.streams.video[0])
        stream.set_display_rotation(rotation)
        for packet in source.demux(source.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    tmp.replace(dst)
    return dst
