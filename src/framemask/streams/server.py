"""An RTSP server for video files, built on GStreamer's RTSP server (gst-rtsp-server) from Python.

Each file is mounted at `rtsp://HOST:PORT/<file stem>`. The packets are taken from the container as they
are (no re-encoding): the demuxer's presentation timestamps become RTP timestamps, so a variable-frame-rate
file stays variable over the wire and GStreamer paces delivery in real time from those timestamps. Every
client gets its own pipeline (`set_shared(False)`), plays the file once from the start and then receives an
RTCP BYE (FFmpeg/PyAV see end of stream); with `loop=True` a segment seek at the end repeats the file with
continuous timestamps instead.

PyGObject is the optional `rtsp` extra; it is imported on first use so the rest of framemask works without it.
"""

from __future__ import annotations

import itertools
import logging
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote

from framemask.errors import FramemaskError, InputError
from framemask.media import FrameIndex
from framemask.media._av import map_av_errors, open_video

log = logging.getLogger(__name__)

__all__ = ["Mount", "RtspFileServer", "plan_mount"]

DEMUXERS = {
    "mov,mp4,m4a,3gp,3g2,mj2": "qtdemux",
    "matroska,webm": "matroskademux",
    "mpegts": "tsdemux",
}
"""FFmpeg container name -> the GStreamer demuxer that reads it."""

PAYLOADERS: dict[str, tuple[tuple[str, dict[str, Any]], ...]] = {
    # The parser re-inserts SPS/PPS before every key frame (config-interval=-1) so a client can start
    # decoding at any IDR. Setting config-interval on rtph264pay as well makes FFmpeg see each key frame as
    # two packets (the parameter sets as a separate access unit), which breaks the frame count.
    "h264": (("h264parse", {"config-interval": -1}), ("rtph264pay", {})),
    "hevc": (("h265parse", {"config-interval": -1}), ("rtph265pay", {})),
    "mpeg4": (("mpeg4videoparse", {"config-interval": -1}), ("rtpmp4vpay", {})),
    "vp8": (("rtpvp8pay", {}),),
    "vp9": (("rtpvp9pay", {}),),
}
"""Codec -> (parser..., payloader) elements with their properties; the last one becomes `pay0`."""

_DEMUX_VIDEO_PAD = re.compile(r"^video")


@dataclass(frozen=True)
class Mount:
    """One served file: its mount name, the demuxer and the elements that packetize its video."""

    name: str
    path: Path
    container: str
    codec: str

    @property
    def demuxer(self) -> str:
        return DEMUXERS[self.container]

    @property
    def elements(self) -> tuple[tuple[str, dict[str, Any]], ...]:
        return PAYLOADERS[self.codec]


def plan_mount(path: str | Path, name: str | None = None) -> Mount:
    """Check that `path` can be served and choose its demuxer and payloader; raises `InputError`."""
    path = Path(path).resolve()
    container = open_video(path)
    try:
        with map_av_errors(path):
            fmt = container.format.name
            codec = container.streams.video[0].codec_context.name
    finally:
        container.close()
    if fmt not in DEMUXERS:
        raise InputError(f"{path}: cannot serve a {fmt!r} container over RTSP (MP4/MOV, MKV/WebM or MPEG-TS)")
    if codec not in PAYLOADERS:
        supported = ", ".join(sorted(PAYLOADERS))
        raise InputError(f"{path}: cannot serve {codec!r} video over RTSP (supported: {supported})")
    mount = name if name is not None else path.stem
    if not mount or "/" in mount:
        raise InputError(f"invalid mount name {mount!r}")
    return Mount(name=mount, path=path, container=fmt, codec=codec)


@cache
def _gst() -> tuple[ModuleType, ModuleType, ModuleType]:
    """Import GStreamer through PyGObject (the optional `rtsp` extra) once."""
    try:
        import gi

        gi.require_version("Gst", "1.0")
        gi.require_version("GstRtspServer", "1.0")
        from gi.repository import GLib, Gst, GstRtspServer
    except (ImportError, ValueError) as exc:
        raise FramemaskError(
            "the RTSP server needs PyGObject and gst-rtsp-server: pip install 'framemask[rtsp]' and "
            "apt-get install gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-{good,bad}"
        ) from exc
    Gst.init(None)
    return Gst, GstRtspServer, GLib


@cache
def _classes() -> tuple[type, type]:
    """The GObject subclasses (defined after the lazy import): a looping media and a file factory."""
    Gst, GstRtspServer, _ = _gst()

    class LoopingMedia(GstRtspServer.RTSPMedia):  # type: ignore[misc, name-defined]
        """A media that, when its factory asks for it, plays its file again at each segment end."""

        loop = False
        looping = False

        def do_handle_message(self, message: Any) -> bool:
            if self.loop and not self.looping and _is_stream_blocking(message):
                # Prerolled, still "preparing" (clients wait). A flushing segment seek now makes the demuxer
                # end each pass with SEGMENT_DONE instead of EOS; the stream blocks again after it and that
                # message marks the media prepared. Seeking after "prepared" races client requests: a PLAY
                # answered between the flush and the new segment aborts gst-rtsp-server 1.22 (an assertion
                # in gst_rtsp_media_get_rates).
                self.looping = True
                self.get_element().seek(
                    1.0,
                    Gst.Format.TIME,
                    Gst.SeekFlags.FLUSH | Gst.SeekFlags.SEGMENT,
                    Gst.SeekType.SET,
                    0,
                    Gst.SeekType.NONE,
                    -1,
                )
                return True
            if self.loop and message.type == Gst.MessageType.SEGMENT_DONE:
                # a non-flushing segment seek: RTP time continues across passes
                self.get_element().seek(
                    1.0, Gst.Format.TIME, Gst.SeekFlags.SEGMENT, Gst.SeekType.SET, 0, Gst.SeekType.NONE, -1
                )
                return True
            return bool(GstRtspServer.RTSPMedia.do_handle_message(self, message))

    class FileFactory(GstRtspServer.RTSPMediaFactory):  # type: ignore[misc, name-defined]
        """Builds `filesrc ! demuxer ! [parser] ! payloader(pay0)` for one file, per client."""

        def __init__(self, mount: Mount, loop_period_ns: int | None) -> None:
            super().__init__()
            self.mount, self.loop_period_ns = mount, loop_period_ns
            self.set_shared(False)
            self.set_media_gtype(LoopingMedia)
            self.connect("media-configure", self._configure)

        def _configure(self, _factory: Any, media: Any) -> None:
            media.loop = self.loop_period_ns is not None

        def do_create_element(self, _url: Any) -> Any:
            return _build_bin(Gst, self.mount, self.loop_period_ns)

    return LoopingMedia, FileFactory


def _make(Gst: Any, factory: str, name: str | None = None, **props: Any) -> Any:
    element = Gst.ElementFactory.make(factory, name)
    if element is None:
        raise FramemaskError(f"GStreamer element {factory!r} is missing (install gstreamer1.0-plugins-good/bad)")
    for key, value in props.items():
        element.set_property(key.replace("_", "-"), value)
    return element


def _build_bin(Gst: Any, mount: Mount, loop_period_ns: int | None = None) -> Any:
    """The per-client bin; the demuxer's video pad is linked when it appears (and timed, when looping)."""
    bin_ = Gst.Bin.new(None)
    src = _make(Gst, "filesrc", location=str(mount.path))
    demux = _make(Gst, mount.demuxer)
    chain = [_make(Gst, factory, **props) for factory, props in mount.elements[:-1]]
    pay_factory, pay_props = mount.elements[-1]
    chain.append(_make(Gst, pay_factory, "pay0", pt=96, **pay_props))
    for element in (src, demux, *chain):
        bin_.add(element)
    src.link(demux)
    for upstream, downstream in itertools.pairwise(chain):
        upstream.link(downstream)
    sink = chain[0].get_static_pad("sink")

    def on_pad_added(_demux: Any, pad: Any) -> None:
        if _DEMUX_VIDEO_PAD.match(pad.get_name()) and not sink.is_linked():
            pad.link(sink)
            if loop_period_ns is not None:
                pad.add_probe(Gst.PadProbeType.EVENT_DOWNSTREAM, _loop_timing(Gst, loop_period_ns))

    demux.connect("pad-added", on_pad_added)
    return bin_


def _loop_period_ns(path: Path) -> int:
    """Length of one pass: the last frame's time plus a typical frame interval (`FrameIndex.duration_ms`)."""
    return round(FrameIndex.build(path).duration_ms * 1e6)


def _is_stream_blocking(message: Any) -> bool:
    structure = message.get_structure()
    return structure is not None and structure.get_name() == "GstRTSPStreamBlocking"


def _loop_timing(Gst: Any, period_ns: int) -> Any:
    """A probe that starts pass k of a looping file exactly k periods after the first frame.

    A non-flushing segment seek continues running time from the last frame's *start* (the demuxer's
    position), so each pass would begin one frame early, on the last frame's timestamp. The pad offset
    moves every later pass to k * period; the demuxer's pad re-sends its segment with the new offset
    before the next buffer.
    """

    def probe(pad: Any, info: Any) -> Any:
        event = info.get_event()
        if event is not None and event.type == Gst.EventType.SEGMENT:
            base = event.parse_segment().base
            passes = round(base / period_ns)
            wanted = passes * period_ns - base
            if wanted != pad.get_offset():
                pad.set_offset(wanted)
        return Gst.PadProbeReturn.OK

    return probe


class RtspFileServer:
    """Serve video files over RTSP; usable as a context manager (runs in a background thread).

    `port=0` picks a free port (see `.port` after `start()`).
    """

    def __init__(
        self, files: Sequence[str | Path], host: str = "127.0.0.1", port: int = 8554, loop: bool = False
    ) -> None:
        if not files:
            raise InputError("give at least one video file to serve")
        self.mounts: dict[str, Mount] = {}
        for path in files:
            mount = plan_mount(path)
            if mount.name in self.mounts:
                raise InputError(f"two files would be served at /{mount.name}: rename one of them")
            self.mounts[mount.name] = mount
        self.host, self.port, self.loop = host, port, loop
        self._context: Any = None
        self._mainloop: Any = None
        self._server: Any = None
        self._source_id = 0
        self._thread: threading.Thread | None = None

    def url(self, name: str) -> str:
        """The RTSP URL of a mount (its file stem)."""
        if name not in self.mounts:
            raise InputError(f"no mount {name!r} (have: {', '.join(self.mounts)})")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"rtsp://{host}:{self.port}/{quote(name)}"

    def urls(self) -> dict[str, str]:
        return {name: self.url(name) for name in self.mounts}

    def _bind(self, own_context: bool) -> None:
        _, GstRtspServer, GLib = _gst()
        _, factory_cls = _classes()
        # the default context when serving from the main thread: PyGObject wakes it for Python signal handlers
        self._context = GLib.MainContext.new() if own_context else GLib.MainContext.default()
        server = GstRtspServer.RTSPServer()
        # clients served in this context's own thread: `_teardown` then closes their connections on the thread
        # that watches them (closed from the server's thread while a pool thread dispatched their watch, a
        # connection could be left with its streams gone and its watch spinning on them, CPU and log alike)
        server.get_thread_pool().set_max_threads(0)
        server.set_address(self.host)
        server.set_service(str(self.port))
        mounts = server.get_mount_points()
        for mount in self.mounts.values():
            period = _loop_period_ns(mount.path) if self.loop else None
            mounts.add_factory(f"/{mount.name}", factory_cls(mount, period))
        self._source_id = server.attach(self._context)
        if not self._source_id:
            raise InputError(f"cannot listen on {self.host}:{self.port} (address in use or not local)")
        self.port = int(server.get_bound_port())
        self._server = server
        self._mainloop = GLib.MainLoop.new(self._context, False)

    def start(self) -> RtspFileServer:
        """Listen and serve from a background thread; returns once the port is bound."""
        if self._thread is not None:
            return self
        self._bind(own_context=True)
        self._thread = threading.Thread(target=self._mainloop.run, name="rtsp-server", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self, ready: Callable[[RtspFileServer], None] | None = None) -> None:
        """Listen and serve in this thread until `stop()` (or Ctrl-C in the caller)."""
        self._bind(own_context=False)
        if ready is not None:
            ready(self)
        try:
            self._mainloop.run()
        finally:
            self._teardown()

    def stop(self) -> None:
        """Disconnect every client, stop listening and end the main loop."""
        if self._mainloop is None:
            return
        _, _, GLib = _gst()
        done = threading.Event()

        def shutdown() -> bool:
            self._teardown()
            done.set()
            return bool(GLib.SOURCE_REMOVE)

        self._context.invoke_full(GLib.PRIORITY_DEFAULT, shutdown)
        if self._thread is not None:
            done.wait(10)
            self._thread.join(10)
            self._thread = None

    def _teardown(self) -> None:
        _, GstRtspServer, _ = _gst()
        if self._server is not None:
            self._server.client_filter(lambda _s, client: GstRtspServer.RTSPFilterResult.REMOVE)
            # and their sessions: a session's media (a looping pipeline) would otherwise keep playing on the
            # thread pool's threads after the server stopped
            remove = GstRtspServer.RTSPFilterResult.REMOVE
            self._server.get_session_pool().filter(lambda _pool, _session: remove)
            source = self._context.find_source_by_id(self._source_id)
            if source is not None:
                source.destroy()
            self._server = None
        if self._mainloop is not None and self._mainloop.is_running():
            self._mainloop.quit()

    def __enter__(self) -> RtspFileServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
