"""`python -m bench [NAME ...]`: run the named benchmarks (default: all) one after another."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

HERE = Path(__file__).parent
ALL = sorted(p.stem for p in HERE.glob("*.py") if not p.stem.startswith("_") and p.stem != "common")

names = sys.argv[1:] or ALL
for name in names:
    if name not in ALL:
        sys.exit(f"unknown benchmark {name!r}; choose from {', '.join(ALL)}")
    print(f"== bench {name}", file=sys.stderr)
    sys.argv = [f"bench.{name}"]
    runpy.run_module(f"bench.{name}", run_name="__main__")
