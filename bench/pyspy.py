"""Sampling profiles of a running process with py-spy, summarised for a results file (issue 13: where a target
is missed, say what the profile shows).

`record` attaches py-spy to a process for a while (non-blocking: the process is never paused, so the profile
costs it little); `summarise` reads py-spy's raw (collapsed-stack) output into shares of samples: by thread,
by function where the time is spent (self), and by framemask function including what it calls.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

RATE_HZ = 100


def available() -> str | None:
    """The py-spy executable (beside this interpreter first, as `./dev setup` installs it), or None."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.is_file() else shutil.which("py-spy")


def _record_cmd(out: Path) -> list[str]:
    exe = available()
    if exe is None:
        raise RuntimeError("py-spy is not installed (./dev setup installs it with the dev extras)")
    flags = ["--nonblocking", "--threads", "--full-filenames", "-r", str(RATE_HZ), "-f", "raw", "-o", str(out)]
    return [exe, "record", *flags]


def record(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    """Start sampling `pid` for `seconds` into `out` (raw collapsed stacks, one line per distinct stack)."""
    cmd = [*_record_cmd(out), "-d", str(max(1, round(seconds))), "-p", str(pid)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def run(command: list[str], out: Path) -> None:
    """Run `command` to its end under py-spy, its samples in `out`; raises if either fails."""
    done = subprocess.run([*_record_cmd(out), "--", *command], capture_output=True, text=True)
    if done.returncode != 0 or not out.is_file():
        raise RuntimeError(f"profiled run failed: {(done.stderr or done.stdout).strip()[-300:]}")


def _frame_name(frame: str, own: str | None = None) -> str:
    """`function (path/to/module.py:line)` -> `function (module.py)`: lines of one function add up. With
    `own`, the path from that package on (`framemask/service/streaming.py`)."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    if own is not None and f"{own}/" in path:
        return f"{name} ({own}/{path.rsplit(f'{own}/', 1)[1]})"
    return f"{name} ({Path(path).name})" if path else name


def _is_own(frame: str, own: str) -> bool:
    """A frame of `own`'s code, not its command line (whose `serve` holds the whole event loop)."""
    where = frame.partition(" (")[2]
    return (where.startswith(f"{own}/") or f"/{own}/" in where) and f"{own}/cli/" not in where


def summarise(raw: Path, top: int = 12, own: str = "framemask") -> dict[str, Any]:
    """Shares of samples (percent) from a py-spy raw profile: `threads`, `self` (where samples ended) and
    `inclusive` (`own` code's functions, with all they call, its command line left out)."""
    threads: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        thread, calls = frames[0], frames[1:]
        total += n
        threads[thread.split(": ", 1)[-1] if ": " in thread else "a native thread holding Python state"] += n
        self_time[_frame_name(calls[-1]) if calls else "(no Python frame: native code)"] += n
        for name in {_frame_name(f, own) for f in calls if _is_own(f, own)}:
            inclusive[name] += n

    def shares(counter: Counter[str]) -> list[list[Any]]:
        return [[name, round(100.0 * n / max(total, 1), 1)] for name, n in counter.most_common(top)]

    return {
        "samples": total,
        "rate_hz": RATE_HZ,
        "threads": shares(threads),
        "self": shares(self_time),
        "inclusive": shares(inclusive),
    }


def markdown(summary: dict[str, Any], title: str) -> list[str]:
    """The summary as markdown lines: one table per view."""
    lines = [f"### {title}", "", f"py-spy, {summary['rate_hz']} Hz, {summary['samples']} samples (all threads).", ""]
    for key, heading in (
        ("threads", "thread"),
        ("self", "where the samples were (self)"),
        ("inclusive", "framemask function, with what it calls"),
    ):
        lines += [f"| {heading} | share of samples |", "|---|---:|"]
        lines += [f"| `{name}` | {share}% |" for name, share in summary[key]]
        lines.append("")
    return lines
