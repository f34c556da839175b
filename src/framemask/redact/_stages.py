"""Threads joined by bounded queues: memory stays flat however long the video, failures reach the caller.

A `Stages` group owns the threads, their queues and one stop flag. A stage that fails records its
exception and sets the flag; every producer then returns at its next `put`, every consumer sees the end
of its input, and the caller's `check()` re-raises the first failure. Nothing blocks on a full queue.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["Pipe", "StageTimer", "Stages"]

_END = object()


class Pipe:
    """A bounded queue between two stages, closed by an end marker."""

    def __init__(self, maxsize: int, stop: threading.Event) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=maxsize)
        self._stop = stop

    def put(self, item: Any) -> bool:
        """Block until there is room; False when the pipeline is stopping (the producer should return)."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def close(self) -> None:
        """Put the end marker, making room if the pipeline is stopping and nobody reads any more."""
        while True:
            try:
                self._queue.put(_END, timeout=0.1)
                return
            except queue.Full:
                if self._stop.is_set():
                    with contextlib.suppress(queue.Empty):
                        self._queue.get_nowait()

    def __iter__(self) -> Iterator[Any]:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            yield item


class Stages:
    """A group of stage threads with one stop flag and the first failure."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self._threads: list[threading.Thread] = []

    def pipe(self, maxsize: int) -> Pipe:
        return Pipe(maxsize, self.stop)

    def start(self, name: str, target: Callable[[], None], out: Pipe) -> None:
        """Run `target` in a daemon thread; `out` is closed when it ends, whether it succeeded or not."""

        def run() -> None:
            try:
                target()
            except BaseException as exc:
                self.errors.append(exc)
                self.stop.set()
            finally:
                out.close()

        thread = threading.Thread(target=run, name=f"framemask-{name}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def check(self) -> None:
        """Re-raise the first stage failure, if any."""
        if self.errors:
            raise self.errors[0]

    def close(self) -> None:
        """Stop every stage and wait for the threads."""
        self.stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def __enter__(self) -> Stages:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class StageTimer:
    """Adds up the seconds each stage spends working (not waiting on queues)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._lock = threading.Lock()

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds

    def timed(self, stage: str, fn: Callable[..., Any], *args: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self.add(stage, time.perf_counter() - start)
