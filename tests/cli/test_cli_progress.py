"""Progress output of `framemask render | anonymize | audit`: a bar on a terminal, a few plain lines elsewhere.

When stderr is a pipe or a log file, tqdm's per-frame `\\r` updates turned into thousands of lines; now
there is one line per 10 % (issue 10).
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

FRAMEMASK = [sys.executable, "-m", "framemask"]


def _empty_boxes(path: Path, n: int) -> Path:
    doc = {"endSequence": n, "sequence": [{"seq": s, "person": [], "face": []} for s in range(1, n + 1)]}
    out = path.with_suffix(".boxes.json")
    out.write_text(json.dumps(doc))
    return out


def test_render_to_a_pipe_prints_one_line_per_ten_percent(make, tmp_path: Path) -> None:
    src = make("cfr")  # 90 frames
    boxes = _empty_boxes(tmp_path / "cfr", 90)
    out = tmp_path / "out.mp4"
    proc = subprocess.run(
        [*FRAMEMASK, "render", str(src), "--boxes", str(boxes), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["endSequence"] == 90
    assert "\r" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert 2 <= len(lines) <= 11, lines
    assert all(line.startswith("render: ") and line.endswith(" frames)") for line in lines), lines
    percents = [int(line.split()[1].rstrip("%")) for line in lines]
    assert percents == sorted(set(percents)) and percents[-1] == 100, percents
    assert lines[-1] == "render: 100% (90/90 frames)"


def test_no_progress_prints_nothing(make, tmp_path: Path) -> None:
    src = make("cfr")
    boxes = _empty_boxes(tmp_path / "cfr", 90)
    proc = subprocess.run(
        [*FRAMEMASK, "render", str(src), "--boxes", str(boxes), "-o", str(tmp_path / "o.mp4"), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


def test_render_on_a_terminal_still_draws_a_bar(make, tmp_path: Path) -> None:
    """With stderr on a pseudo-terminal the tqdm bar is kept (updates rewrite one line with `\\r`)."""
    src = make("cfr")
    boxes = _empty_boxes(tmp_path / "cfr", 90)
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a 100-column terminal
    try:
        proc = subprocess.Popen(
            [*FRAMEMASK, "render", str(src), "--boxes", str(boxes), "-o", str(tmp_path / "t.mp4")],
            stdout=subprocess.PIPE,
            stderr=slave,
        )
        os.close(slave)
        seen = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        assert proc.wait(timeout=300) == 0
    finally:
        os.close(master)
    assert b"\r" in seen and b"render" in seen
