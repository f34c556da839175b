"""Record an RTSP stream into MP4 files without re-encoding, written to a path or `s3://` while receiving.

Packets are received with PyAV over RTSP/TCP, their timestamps repaired (`timeline.Timeline`) and remuxed
as they arrive into fragmented MP4 (`frag_keyframe+empty_moov+default_base_moof`): the muxer never seeks
back, so the bytes go straight into `ObjectStore.open_write` (an S3 multipart upload with bounded memory,
or a local file published atomically at the end). Every finished file gets its own frame index, built from
the stored result and stored next to it as `<name>.index`.

When it stops:
- the server ends the stream (RTCP BYE; FFmpeg reports end of file) -> `ended`;
- `duration` seconds of media were recorded -> `duration`;
- `stop()` was called (the CLI calls it on Ctrl-C) -> `stopped`;
- the connection dropped and could not be re-established -> `dropped` (what was received is kept).

FFmpeg reports a dropped TCP connection exactly like an RTCP BYE (end of file), so the two are told apart
with the range the server announced: a file-backed stream that ends before its announced end has dropped,
and a live stream (open range) never ends normally. A dropped file stream is resumed by seeking to the last
written key frame (the overlap is recognised and skipped); a live stream is simply reconnected and its
timestamps shifted past the gap.
"""

from __future__ import annotations

import logging
import os
import queue
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO, Literal, cast

import av
import av.error

from framemask.errors import FramemaskError, InputError, NotAVideoError, StorageError
from framemask.media import FrameIndex, round_ms
from framemask.settings import Settings
from framemask.store.objects import ObjectStore, parse_target
from framemask.streams.timeline import Session, Stamped, Timeline

log = logging.getLogger(__name__)

__all__ = ["Recorder", "Recording", "SegmentInfo", "record", "segment_name"]

MP4_CODECS = frozenset({"h264", "hevc", "mpeg4", "vp9", "av1"})
"""Video codecs that fragmented MP4 carries and that arrive over RTSP."""
MOVFLAGS = "frag_keyframe+empty_moov+default_base_moof"
"""Fragmented MP4: a fragment per key frame, nothing written at the front afterwards (pipe/S3 safe)."""
Status = Literal["ended", "duration", "stopped", "dropped"]


@dataclass
class SegmentInfo:
    """One written file of a recording."""

    target: str
    frames: int
    start_ms: float
    """Time of its first frame, from the recording's first frame."""
    duration_ms: float
    """From its first frame to the end of its last frame."""
    bytes: int
    index_target: str | None = None
    indexed_frames: int | None = None


@dataclass
class Recording:
    """What a recording produced and why it stopped."""

    url: str
    status: Status
    segments: list[SegmentInfo] = field(default_factory=list)
    reconnects: int = 0
    repaired_timestamps: int = 0
    error: str | None = None
    media_seconds: float = 0.0
    """From the first to the last recorded frame's timestamp."""
    wall_seconds: float = 0.0
    """From the first to the last received packet, by the clock: exceeds `media_seconds` when receiving lags."""

    @property
    def frames(self) -> int:
        return sum(s.frames for s in self.segments)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["frames"] = self.frames
        return data


def segment_name(key: str, number: int | None) -> str:
    """`cam/rec.mp4` -> `cam/rec-00003.mp4` for segment 3; unchanged when not segmenting."""
    if number is None:
        return key
    head, dot, ext = key.rpartition(".")
    if not dot or "/" in ext:
        return f"{key}-{number:05d}"
    return f"{head}-{number:05d}.{ext}"


class _Output:
    """One fragmented-MP4 file being written into an object store."""

    def __init__(self, store: ObjectStore, bucket: str, key: str, template: Any, origin: int) -> None:
        self.store, self.bucket, self.key = store, bucket, key
        self.origin = origin
        self.frames = 0
        self.first_pts: int | None = None
        self.last_end: int | None = None
        self._cm = store.open_write(bucket, key)
        self._fh: BinaryIO = self._cm.__enter__()
        self._writer = _BackgroundWriter(self._fh)
        try:
            self._mux = av.open(self._writer, mode="w", format="mp4", options={"movflags": MOVFLAGS})
            self._stream = self._mux.add_stream_from_template(template)
        except BaseException as exc:
            self._writer.finish(discard=True)
            self._cm.__exit__(type(exc), exc, exc.__traceback__)
            raise

    def write(self, item: Stamped, duration: int) -> None:
        packet = cast("av.Packet[Any]", item.packet)  # the timeline carries packets without knowing PyAV
        packet.pts, packet.dts = item.pts - self.origin, item.dts - self.origin
        packet.duration = max(duration, 0)
        packet.stream = self._stream
        self._mux.mux(packet)
        self.frames += 1
        self.first_pts = item.pts if self.first_pts is None else min(self.first_pts, item.pts)
        end = item.pts + max(duration, 0)
        self.last_end = end if self.last_end is None else max(self.last_end, end)

    def close(self) -> int:
        """Finish the MP4 and publish the object; returns its size."""
        try:
            self._mux.close()
            self._writer.finish()
        except BaseException as exc:
            self._writer.finish(discard=True)
            self._cm.__exit__(type(exc), exc, exc.__traceback__)
            raise
        self._cm.__exit__(None, None, None)
        return self._writer.written

    def abort(self, exc: BaseException) -> None:
        """Drop the file (the store removes the partial object)."""
        try:
            self._mux.close()
        except Exception:
            log.debug("closing muxer after error", exc_info=True)
        self._writer.finish(discard=True)
        self._cm.__exit__(type(exc), exc, exc.__traceback__)


class _BackgroundWriter:
    """A non-seekable writer that hands bytes to the store from a thread.

    Non-seekable, so the muxer never goes back (an S3 upload cannot), and threaded, so a slow upload of an
    S3 part never stalls receiving; memory is bounded by the queue (backpressure beyond it).
    """

    CHUNK = 1024 * 1024
    QUEUE = 32

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh
        self.written = 0
        self._buf = bytearray()
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=self.QUEUE)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._drain, name="recording-upload", daemon=True)
        self._thread.start()

    def write(self, data: bytes) -> int:
        if self._error is not None:
            raise StorageError(f"writing the recording failed: {self._error}") from self._error
        self._buf += data
        self.written += len(data)
        if len(self._buf) >= self.CHUNK:
            self._queue.put(bytes(self._buf))
            self._buf.clear()
        return len(data)

    def writable(self) -> bool:
        return True

    def _drain(self) -> None:
        while (chunk := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._fh.write(chunk)
                except BaseException as exc:  # re-raised in the recording thread
                    self._error = exc

    def finish(self, discard: bool = False) -> None:
        """Hand over the rest and wait for the thread; raises what the store raised."""
        if self._buf and not discard:
            self._queue.put(bytes(self._buf))
        self._buf.clear()
        self._queue.put(None)
        self._thread.join()
        if self._error is not None and not discard:
            raise StorageError(f"writing the recording failed: {self._error}") from self._error


class _Drop(Exception):
    """The connection was lost (not a normal end)."""


@dataclass
class _Connection:
    container: Any
    stream: Any
    duration_s: float | None
    extradata: bytes


class Recorder:
    """Receive one RTSP stream and write it into `target` (a path or `s3://bucket/key`) while receiving."""

    def __init__(
        self,
        url: str,
        target: str | os.PathLike[str],
        *,
        segment_seconds: float | None = None,
        duration: float | None = None,
        timeout: float = 10.0,
        reconnect_attempts: int = 5,
        reconnect_delay: float = 1.0,
        store: tuple[ObjectStore, str, str] | None = None,
        settings: Settings | None = None,
        on_status: Callable[[str], None] | None = None,
        progress_seconds: float = 5.0,
    ) -> None:
        if not url.startswith(("rtsp://", "rtsps://")):
            raise InputError(f"not an RTSP URL: {url!r} (expected rtsp://host[:port]/path)")
        if segment_seconds is not None and segment_seconds <= 0:
            raise InputError("--segment-seconds must be positive")
        if duration is not None and duration <= 0:
            raise InputError("--duration must be positive")
        self.url = url
        self.target = str(target)
        self.settings = settings
        self.segment_seconds = segment_seconds
        self.duration = duration
        self.timeout = timeout
        self.reconnect_attempts = reconnect_attempts
        self.reconnect_delay = reconnect_delay
        self._store = store
        self._say = on_status or (lambda message: log.info("%s", message))
        self._progress_seconds = progress_seconds
        self._stop = threading.Event()
        self._timeline: Timeline | None = None
        self._out: _Output | None = None
        self._held: Stamped | None = None
        self._recording = Recording(url=url, status="ended")
        self._origin: int | None = None
        self._last_arrival = 0.0
        self._first_arrival: float | None = None
        self._last_key_pts: int | None = None
        self._template: Any = None
        self._failures = 0

    # --- public ---------------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the recorder to finish the file cleanly and return (thread-safe; takes effect on the next packet)."""
        self._stop.set()

    def run(self) -> Recording:
        """Record until the stream ends, `duration` is reached, `stop()` or an unrecoverable drop."""
        store, bucket, key = self._store or parse_target(self.target, self.settings)
        self._where = (store, bucket, key)
        conn = self._connect(first=True)
        self._timeline = Timeline(time_base=conn.stream.time_base or Fraction(1, 90000))
        self._template = conn.stream
        self._say(f"recording {self.url} -> {self.target} ({conn.stream.codec_context.name})")
        current: _Connection | None = conn
        try:
            while current is not None:
                try:
                    status = self._pump(current)
                    break
                except _Drop as drop:
                    self._close_quietly(current)
                    current = self._reconnect(current, str(drop))
                    if current is None:
                        status = "dropped"
                        self._recording.error = f"connection lost: {drop}"
            self._recording.status = status
            self._finish()
        except BaseException as exc:
            if self._out is not None:
                self._out.abort(exc)
                self._out = None
            raise
        finally:
            if current is not None:
                self._close_quietly(current)
        self._recording.repaired_timestamps = self._timeline.repaired
        self._recording.wall_seconds = round(self._last_arrival - (self._first_arrival or self._last_arrival), 3)
        if self._origin is not None and self._timeline.max_pts is not None:
            media = (self._timeline.max_pts - self._origin) * self._timeline.time_base
            self._recording.media_seconds = round(float(media), 3)
        self._say(self._summary())
        return self._recording

    # --- connection -----------------------------------------------------------------------------------------

    def _connect(self, first: bool) -> _Connection:
        started = time.monotonic()
        try:
            container = av.open(self.url, options={"rtsp_transport": "tcp"}, timeout=(self.timeout, self.timeout))
        except av.error.FFmpegError as exc:
            reason = _reason(exc)
            if isinstance(exc, av.error.InvalidDataError) and time.monotonic() - started >= self.timeout * 0.9:
                reason = f"no answer within {self.timeout:g} s"
            raise InputError(f"cannot open {self.url}: {reason}") from exc
        if not container.streams.video:
            container.close()
            raise NotAVideoError(f"{self.url}: the stream has no video")
        stream = container.streams.video[0]
        codec = stream.codec_context.name
        if first and codec not in MP4_CODECS:
            container.close()
            raise InputError(
                f"{self.url}: cannot record {codec!r} video into MP4 (supported: {', '.join(sorted(MP4_CODECS))})"
            )
        duration = container.duration / 1_000_000 if container.duration and container.duration > 0 else None
        extradata = bytes(stream.codec_context.extradata or b"")
        return _Connection(container=container, stream=stream, duration_s=duration, extradata=extradata)

    def _reconnect(self, old: _Connection, reason: str) -> _Connection | None:
        """Reconnect after a drop (never after a normal end); resume file streams at the last key frame."""
        assert self._timeline is not None
        while self._failures < self.reconnect_attempts:  # reset only once a reconnection delivers frames
            self._failures += 1
            attempt = self._failures
            if self._stop.is_set():
                return None
            delay = min(self.reconnect_delay * 2 ** (attempt - 1), 30.0)
            self._say(f"connection lost ({reason}); reconnecting in {delay:g} s ({attempt}/{self.reconnect_attempts})")
            if self._stop.wait(delay):
                return None
            try:
                conn = self._connect(first=False)
            except FramemaskError as exc:
                reason = str(exc)
                continue
            if conn.extradata != old.extradata:
                self._finish()  # new parameter sets: a new file keeps each MP4 self-consistent
            self._template = conn.stream  # the old stream's memory went with its container
            self._resume(conn)
            self._recording.reconnects += 1
            return conn
        return None

    def _resume(self, conn: _Connection) -> None:
        assert self._timeline is not None
        tb = self._timeline.time_base
        if conn.duration_s is not None and self._last_key_pts is not None:
            target_s = float(self._last_key_pts * tb) + 0.0005
            try:
                conn.container.seek(round(target_s * 1_000_000), backward=True)
                self._timeline.begin(Session.RESUMED)
                self._say(f"resumed at {target_s:.3f} s")
                return
            except av.error.FFmpegError as exc:
                log.debug("seek failed, continuing live: %s", exc)
        self._timeline.begin(Session.LIVE, gap_seconds=time.monotonic() - self._last_arrival)

    @staticmethod
    def _close_quietly(conn: _Connection) -> None:
        try:
            conn.container.close()
        except Exception:
            log.debug("closing RTSP input", exc_info=True)

    # --- receiving ------------------------------------------------------------------------------------------

    def _pump(self, conn: _Connection) -> Status:
        """Demux until the stream ends or something stops it; raise `_Drop` on a lost connection."""
        assert self._timeline is not None
        next_progress = time.monotonic() + self._progress_seconds
        try:
            for packet in conn.container.demux(conn.stream):
                if packet.size == 0:
                    continue
                self._last_arrival = time.monotonic()
                if self._first_arrival is None:
                    self._first_arrival = self._last_arrival
                key = packet.is_keyframe
                if not key and conn.stream.codec_context.name == "vp9" and _vp9_key(packet):
                    packet.is_keyframe = key = True  # FFmpeg's VP9 depacketizer leaves the flag unset
                for item in self._timeline.feed(packet, packet.pts, packet.dts, key):
                    if self._accept(item):
                        return "duration"
                if self._stop.is_set():
                    return "stopped"
                if self._last_arrival >= next_progress:
                    next_progress = self._last_arrival + self._progress_seconds
                    self._say(self._progress_line())
        except av.error.FFmpegError as exc:
            if self._stop.is_set():
                return "stopped"
            self._flush_timeline()
            raise _Drop(_reason(exc)) from exc
        if self._flush_timeline():
            return "duration"
        if self._stop.is_set():
            return "stopped"
        if self._ended_normally(conn):
            return "ended"
        raise _Drop("the stream ended before its announced end" if conn.duration_s else "end of a live stream")

    def _flush_timeline(self) -> bool:
        assert self._timeline is not None
        return any(self._accept(item) for item in self._timeline.flush())

    def _ended_normally(self, conn: _Connection) -> bool:
        """A file-backed stream that delivered frames up to its announced end; a live stream never ends.

        RTP does not carry the last frame's duration, so the stream's end (the last frame's start) may lie
        up to that duration before the announced end: within about a frame of it (and within the longest
        recent frame interval, for VFR files whose last frames are slow) is a normal end. A server that
        dies mid-stream looks the same to FFmpeg (a clean end of stream), so anything earlier is a drop.
        """
        assert self._timeline is not None
        if conn.duration_s is None or self._timeline.max_pts is None:
            return False
        tb = float(self._timeline.time_base)
        last = self._timeline.max_pts * tb
        slack = max(0.25, 3 * self._timeline.frame_ticks() * tb)
        if last > conn.duration_s + slack:
            return False  # past the announced end: the server loops, so this end is a drop
        last_frame = self._timeline.longest_recent_step() * tb + self._timeline.frame_ticks() * tb
        return last + max(slack, last_frame) >= conn.duration_s

    def _accept(self, item: Stamped) -> bool:
        """Write the held packet and hold `item`; True when `duration` is reached (item not written)."""
        assert self._timeline is not None
        tb = self._timeline.time_base
        if self._origin is None:
            self._origin = item.pts
        if self.duration is not None and (item.dts - self._origin) * tb >= self.duration:
            return True
        self._failures = 0
        held = self._held
        if held is not None:
            self._write(held, item.dts - held.dts)
        if item.key:
            self._last_key_pts = item.pts
            if self._due_for_cut(item):
                self._cut_segment()
        self._held = item
        return False

    def _due_for_cut(self, item: Stamped) -> bool:
        assert self._timeline is not None
        if self.segment_seconds is None or self._out is None or self._out.first_pts is None:
            return False
        return (item.pts - self._out.first_pts) * self._timeline.time_base >= self.segment_seconds

    def _write(self, item: Stamped, duration: int) -> None:
        if self._out is None:
            store, bucket, key = self._where
            number = len(self._recording.segments) if self.segment_seconds is not None else None
            if number is None and self._recording.segments:
                number = len(self._recording.segments)  # a forced second file (new parameter sets)
            self._out = _Output(store, bucket, segment_name(key, number), self._template, origin=item.pts)
        self._out.write(item, duration)

    # --- finishing ------------------------------------------------------------------------------------------

    def _cut_segment(self) -> None:
        """Close the current file (the held packet stays for the next one)."""
        if self._out is None:
            return
        out, self._out = self._out, None
        self._publish(out)

    def _finish(self) -> None:
        """Write the held packet (its duration: the typical frame interval) and close the file."""
        held, self._held = self._held, None
        if held is not None:
            assert self._timeline is not None
            self._write(held, self._timeline.frame_ticks())
        self._cut_segment()

    def _publish(self, out: _Output) -> None:
        assert self._timeline is not None and self._origin is not None
        size = out.close()
        tb = float(self._timeline.time_base)
        first = out.first_pts or 0
        info = SegmentInfo(
            target=_display(out.store, out.bucket, out.key, self.target),
            frames=out.frames,
            start_ms=round_ms((first - self._origin) * tb * 1000),
            duration_ms=round_ms(((out.last_end or first) - first) * tb * 1000),
            bytes=size,
        )
        self._index(out, info)
        self._recording.segments.append(info)
        self._say(f"wrote {info.target}: {info.frames} frames, {info.duration_ms / 1000:.2f} s, {size} bytes")

    def _index(self, out: _Output, info: SegmentInfo) -> None:
        """Build the frame index from the stored file and store it next to it as `<name>.index`."""
        with _local_copy(out.store, out.bucket, out.key) as path:
            index = FrameIndex.build(path)
        with out.store.open_write(out.bucket, f"{out.key}.index") as fh:
            fh.write(index.to_bytes())
        info.index_target = f"{info.target}.index"
        info.indexed_frames = index.end_sequence
        if index.end_sequence != info.frames:
            log.warning("%s: %d frames written but %d indexed", info.target, info.frames, index.end_sequence)

    def _progress_line(self) -> str:
        assert self._timeline is not None
        frames = sum(s.frames for s in self._recording.segments) + (self._out.frames if self._out else 0)
        seconds = 0.0
        if self._origin is not None and self._timeline.max_pts is not None:
            seconds = float((self._timeline.max_pts - self._origin) * self._timeline.time_base)
        return f"  {seconds:8.1f} s  {frames} frames  {len(self._recording.segments)} files done"

    def _summary(self) -> str:
        rec = self._recording
        files = len(rec.segments)
        return f"{rec.status}: {rec.frames} frames in {files} file{'s' if files != 1 else ''}" + (
            f", {rec.reconnects} reconnects" if rec.reconnects else ""
        )


def _display(store: ObjectStore, bucket: str, key: str, target: str) -> str:
    if target.startswith("s3://"):
        return f"s3://{bucket}/{key}"
    path = store.local_path(bucket, key)
    return str(path) if path is not None else key


@contextmanager
def _local_copy(store: ObjectStore, bucket: str, key: str) -> Iterator[Path]:
    """A local path with the object's bytes (the file itself for a local store)."""
    path = store.local_path(bucket, key)
    if path is not None:
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="fm-rec-") as tmp:
        local = Path(tmp) / Path(key).name
        store.get_file(bucket, key, local)
        yield local


def _vp9_key(packet: Any) -> bool:
    """Whether a VP9 frame is a key frame, from its uncompressed header's first byte."""
    data = memoryview(packet)
    if not len(data):
        return False
    byte = data[0]
    if byte >> 6 != 0b10:  # frame_marker
        return False
    profile = ((byte >> 5) & 1) | (((byte >> 4) & 1) << 1)
    bit = 3 if profile < 3 else 2  # profile 3 has a reserved zero bit before show_existing_frame
    show_existing = (byte >> bit) & 1
    frame_type = (byte >> (bit - 1)) & 1
    return not show_existing and frame_type == 0


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return str(text).split(":")[0].strip()


def record(url: str, target: str | os.PathLike[str], **options: Any) -> Recording:
    """Record `url` into `target`; see `Recorder` for the options."""
    return Recorder(url, target, **options).run()
