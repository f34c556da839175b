"""The process pools that render segments and re-encode chunks of a correction."""

from __future__ import annotations

import concurrent.futures
import multiprocessing

from framemask.heap import keep_freed_memory

__all__ = ["spawn_pool"]


def spawn_pool(workers: int) -> concurrent.futures.ProcessPoolExecutor:
    """Up to `workers` fresh interpreters (spawned: a fork would copy the parent's threads' locks), each with
    the allocator tuned as the `framemask` process that starts them (`heap.keep_freed_memory`)."""
    context = multiprocessing.get_context("spawn")
    return concurrent.futures.ProcessPoolExecutor(
        max_workers=max(1, workers), mp_context=context, initializer=keep_freed_memory
    )
