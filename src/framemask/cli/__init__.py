"""The `framemask` command: one entry point, one sub-command module per capability.

Each module in `COMMAND_MODULES` exposes `register(subparsers)`, adding its sub-commands with
`set_defaults(func=...)`. Errors are mapped to exit codes here and only here: an `InputError`
(bad input a user can fix) exits 2 with one readable line, any other `FramemaskError` exits 1.
"""

from __future__ import annotations

import os

# Before numpy/scipy load OpenBLAS: its pools of spinning threads (two copies: numpy's and scipy's) only
# ever get the tracker's tiny matrices, and took ~1% of an anonymize run's CPU from x264 and the detectors.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import gc
import importlib
import logging
import sys
from typing import NoReturn

from framemask import __version__
from framemask.errors import FramemaskError, InputError
from framemask.heap import keep_freed_memory
from framemask.startup import collector_paused

COMMAND_MODULES = (
    "framemask.cli.media",
    "framemask.cli.detect",
    "framemask.cli.redact",
    "framemask.cli.events",
    "framemask.cli.streams",
    "framemask.cli.service",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="framemask",
        description="Frame-accurate video de-identification.",
    )
    parser.add_argument("--version", action="version", version=f"framemask {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a real missing dependency inside the module
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    with collector_paused():  # the command modules import numpy, PyAV, onnxruntime, pydantic...
        parser = build_parser()
        args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except FramemaskError as exc:
        return report(exc)
    except KeyboardInterrupt:
        print("framemask: interrupted", file=sys.stderr)
        return 130


def report(exc: FramemaskError, subject: str = "") -> int:
    """Print `exc` as the one line a user sees (about `subject`, e.g. one input of several) and return its
    exit code: 2 for input a user can fix (`InputError`), 1 for any other `FramemaskError`."""
    print(f"framemask: error: {f'{subject}: ' if subject else ''}{exc}", file=sys.stderr)
    return 2 if isinstance(exc, InputError) else 1


def run() -> NoReturn:
    """The process entry point (`framemask`, `python -m framemask`): `main`, then exit with its code.

    First the allocator is told to keep freed frame buffers (`heap.keep_freed_memory`): every command that
    reads video, the job workers and `serve` included, runs in this process.

    Before exiting, every object is moved out of the garbage collector's reach (`gc.freeze`): the
    interpreter's teardown otherwise runs a full collection over numpy, scipy, onnxruntime and the rest,
    which took 0.25-0.35 s of every command (an anonymize of a 10 s clip took about 5 s). Teardown still
    runs as usual: atexit handlers, thread joins, buffered files flushed."""
    keep_freed_memory()
    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    run()
