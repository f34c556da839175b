"""`framemask rtsp serve | rtsp record | compare | sync | align`: RTSP ingest and frame-exact alignment."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from framemask.errors import FramemaskError, InputError

if TYPE_CHECKING:
    from framemask.settings import Settings


def _settings() -> Settings:
    """The service's settings, imported where a command uses them: `framemask.settings` imports pydantic-settings
    (50 ms), which no other command's start should pay."""
    from framemask.settings import get_settings

    return get_settings()


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rtsp = subparsers.add_parser("rtsp", help="serve video files over RTSP, record RTSP streams")
    actions = rtsp.add_subparsers(dest="rtsp_command", metavar="ACTION", required=True)

    p = actions.add_parser("serve", help="serve files at rtsp://HOST:PORT/<file stem> (original timestamps)")
    p.add_argument("files", nargs="+", metavar="FILE", help="MP4/MOV, MKV/WebM or MPEG-TS files")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8554, help="RTSP port (default 8554; 0 picks a free one)")
    p.add_argument("--loop", action="store_true", help="repeat each file instead of ending the stream")
    p.set_defaults(func=cmd_serve)

    p = actions.add_parser("record", help="record a stream into MP4 (no re-encoding) while receiving")
    p.add_argument("url", help="rtsp://host:port/path")
    p.add_argument("-o", "--output", required=True, help="file path or s3://bucket/key.mp4")
    p.add_argument("--segment-seconds", type=float, help="start a new file at the first key frame after S s")
    p.add_argument("--duration", type=float, help="stop after S seconds of media")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the server (default 10)")
    p.add_argument("--reconnect", type=int, default=5, help="reconnection attempts after a drop (default 5)")
    p.set_defaults(func=cmd_record)

    p = subparsers.add_parser("compare", help="the frame at T ms in an original and its recording, side by side")
    p.add_argument("original", help="original video (path or s3://bucket/key)")
    p.add_argument("recorded", help="recording of it (path or s3://bucket/key)")
    p.add_argument("--ms", type=float, required=True, help="time on the original's timeline (ms from frame 1)")
    p.add_argument("--offset-ms", type=float, default=0.0, help="where the recording starts on that timeline")
    p.add_argument("-o", "--output", required=True, help="side-by-side image (.png)")
    p.set_defaults(func=cmd_compare)

    p = subparsers.add_parser("sync", help="the same moment T in two videos: frames skipped in each, snapshots")
    p.add_argument("a", help="first video (path or s3://bucket/key)")
    p.add_argument("b", help="second video (path or s3://bucket/key)")
    p.add_argument("--ms", type=float, required=True, help="the moment, ms from each video's first frame")
    p.add_argument("--offset-ms", type=float, default=0.0, help="where b starts on a's timeline (see align)")
    p.add_argument("--snapshots", default="snapshots", help="folder for the snapshot PNGs (default ./snapshots)")
    p.set_defaults(func=cmd_sync)

    p = subparsers.add_parser("align", help="estimate the offset between two recordings from their content")
    p.add_argument("a", help="first video")
    p.add_argument("b", help="second video")
    p.add_argument("--max-seconds", type=float, help="analyse only the first S seconds of each")
    p.set_defaults(func=cmd_align)


def _status(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cmd_serve(args: argparse.Namespace) -> int:
    from framemask.streams.server import RtspFileServer

    if not 0 <= args.port <= 65535:
        raise InputError(f"--port {args.port} is not a TCP port")
    server = RtspFileServer(args.files, host=args.host, port=args.port, loop=args.loop)

    def ready(srv: RtspFileServer) -> None:
        for name, url in srv.urls().items():
            _status(f"serving {srv.mounts[name].path} at {url}")
        _status("press Ctrl-C to stop")

    with _stop_on_signals(server.stop):
        server.serve_forever(ready=ready)
    return 0


def cmd_record(args: argparse.Namespace) -> int:
    from framemask.streams.recorder import Recorder

    if args.reconnect < 0:
        raise InputError("--reconnect must be 0 or more")
    recorder = Recorder(
        args.url,
        args.output,
        segment_seconds=args.segment_seconds,
        duration=args.duration,
        timeout=args.timeout,
        reconnect_attempts=args.reconnect,
        settings=_settings(),
        on_status=_status,
    )
    with _stop_on_signals(recorder.stop):
        result = recorder.run()
    print(json.dumps(result.to_json()))
    if result.status == "dropped":
        kept = ", ".join(s.target for s in result.segments) or "nothing"
        raise FramemaskError(f"{result.error}; kept {result.frames} frames ({kept})")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from framemask.streams.compare import compare

    print(
        json.dumps(
            compare(args.original, args.recorded, args.ms, args.output, offset_ms=args.offset_ms, settings=_settings())
        )
    )
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    from framemask.streams.compare import sync

    with _log_to_stderr("framemask.streams.compare"):
        result = sync(args.a, args.b, args.ms, args.snapshots, offset_ms=args.offset_ms, settings=_settings())
    print(json.dumps(result))
    return 0


def cmd_align(args: argparse.Namespace) -> int:
    from framemask.streams.align import align

    print(json.dumps(align(args.a, args.b, max_seconds=args.max_seconds).to_json()))
    return 0


@contextmanager
def _stop_on_signals(stop: Any) -> Iterator[None]:
    """SIGINT/SIGTERM ask for a clean stop (files finished, not aborted) instead of raising."""
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    asked: list[int] = []

    def handler(signum: int, _frame: object) -> None:
        if asked:  # a second signal: give up without finishing
            raise KeyboardInterrupt
        asked.append(signum)
        _status(f"{signal.Signals(signum).name}: finishing cleanly (again to abort)")
        stop()

    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextmanager
def _log_to_stderr(name: str) -> Iterator[None]:
    """Show one module's INFO lines (the sync log) on stderr without changing the global level."""
    logger = logging.getLogger(name)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    old = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old[0])
        logger.propagate = old[1]
