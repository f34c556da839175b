"""`framemask.heap.keep_freed_memory`: a queue of frames that fills and drains again takes its pages from the
process, not from the kernel, in every `framemask` process; an operator's glibc tunables win.

Each case runs in a fresh interpreter: the allocator's settings are per process and cannot be undone."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")

FRAME_PAGES = 720 * 1280 * 3 // 4096
"""Pages of one 720p RGB frame."""

CHURN = """
import resource
import numpy as np

def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

def churn():
    before = faults()
    for _ in range(20):  # a queue of ten 720p frames fills and drains
        queue = [np.ones((720, 1280, 3), np.uint8) for _ in range(10)]
        del queue
    return faults() - before
"""


def _run(body: str, env: dict[str, str] | None = None) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", CHURN + body],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_a_draining_frame_queue_reuses_its_pages():
    untuned = int(_run("print(churn())")[0])
    applied, tuned = _run("from framemask.heap import keep_freed_memory\nprint(keep_freed_memory(), churn())")
    assert applied == "True"
    assert untuned > 100 * FRAME_PAGES  # glibc's defaults: most rounds fault the queue in again
    assert int(tuned) < 15 * FRAME_PAGES  # tuned: the first round, and little more


def test_every_framemask_process_is_tuned_before_its_command_runs():
    body = """
import framemask.cli as cli
cli.main = lambda argv=None: print(churn()) or 0
cli.run()
"""
    assert int(_run(body)[0]) < 15 * FRAME_PAGES


def test_glibc_tunables_set_by_the_operator_win():
    env = {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=0"}
    applied, faults = _run("from framemask.heap import keep_freed_memory\nprint(keep_freed_memory(), churn())", env)
    assert applied == "False"
    assert int(faults) > 100 * FRAME_PAGES
