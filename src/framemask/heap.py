"""Keeping freed frame buffers in the process instead of handing them back to the kernel.

A video passes through queues of frame-sized arrays (decoded frames, detector inputs, masked copies). By
default glibc serves such blocks from the heap only once it has seen one freed (its dynamic threshold), and
gives the top of a heap back to the kernel whenever more than twice that block is free there. A queue that
drains does exactly that, so the next frames fault their pages in again and the kernel zeroes every one of
them. On these 2 cores (a virtual machine, where a page handed back costs the host a fault too) zeroing pages
was 8% of an anonymize run's CPU and its system time was 1.5-2.5 s of 10 s. With blocks up to
`MMAP_THRESHOLD` always on the heap and up to `TRIM_THRESHOLD` of free heap kept, it is about half of that
and 0.5 s, for the same peak memory.
"""

from __future__ import annotations

import ctypes
import os

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "keep_freed_memory"]

MMAP_THRESHOLD = 32 << 20
"""Blocks up to this size come from the heap: a 4K RGB frame is 25 MiB (glibc's own ceiling for its dynamic
threshold on 64-bit)."""
TRIM_THRESHOLD = 128 << 20
"""Free memory at the top of a heap kept for reuse before it is returned to the kernel."""

_M_TRIM_THRESHOLD = -1  # glibc's <malloc.h> parameter numbers
_M_MMAP_THRESHOLD = -3


def keep_freed_memory() -> bool:
    """Tune glibc's allocator for frame-sized blocks, once per process, before the first video is read.

    Returns False, changing nothing, where the C library has no `mallopt` (musl, macOS) or where the
    operator set glibc's malloc tunables (`GLIBC_TUNABLES=glibc.malloc...`): theirs win."""
    if "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
