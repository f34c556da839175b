"""Importing large libraries without the cycle collector running over them.

Importing numpy, scipy, PyAV, onnxruntime, supervision and the rest creates about 175,000 long-lived
objects. While they are created, the cycle collector runs again and again, and each full collection walks
every object created so far. That took about 0.19 s of an anonymize command's start (measured with
`gc.callbacks`: 2 full, 22 middle and 241 young collections, all before the first frame). Those objects are
never garbage. So the heavy imports run with collection paused, and what they created is then frozen
(`gc.freeze`), which keeps later collections from walking it again.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["collector_paused"]

_lock = threading.Lock()
_depth = 0
_resume = False


@contextmanager
def collector_paused() -> Iterator[None]:
    """Run the block without cyclic garbage collection, then freeze what exists and collect again.

    Reference counting still frees everything that is not in a cycle. Nested or concurrent uses (the CLI
    imports its commands while a thread imports the tracker library) share one pause. The last to leave
    turns collection back on, and only if it was on when the first one entered: a caller that turned
    collection off itself keeps it off."""
    global _depth, _resume
    with _lock:
        if _depth == 0:
            _resume = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _resume:
                gc.freeze()
                gc.enable()
