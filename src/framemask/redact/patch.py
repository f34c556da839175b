"""Re-render only the corrected stretches of a processed master: GOP patching ("smart rendering").

The master (`encode.VideoWriter`) is H.264 with closed GOPs, parameter sets repeated in-band (`avc3`) and
every input timestamp kept. A correction therefore needs only the GOPs that hold changed frames: those are
decoded again from the *original* (never from the lossy master, so corrections never add generation
loss), masked with the new boxes by the same masker, encoded with the same `EncodeSettings`, and spliced
between the untouched GOPs, whose packets are copied byte for byte. Audio packets are copied too (from
`audio_from` when given: a re-render takes them from the processed master, whose audio no earlier
correction touched). With muted spans (`muted`, ms from the first frame) the audio is decoded, silenced or
replaced by a tone over exactly those spans and re-encoded to AAC (`encode.redact_audio_frame`). Cost is
one demux/remux pass over the file plus the re-encoded frames: proportional to the edit, not the video.

Why the splice is safe:
- closed GOPs reference nothing outside themselves, so a GOP can be replaced alone (checked: every GOP
  must hold a contiguous run of frames in presentation order, else the master is refused);
- the decoder takes SPS/PPS from each IDR (`avc3`), so a fresh encoder's headers cannot break the frames
  after the splice (the mp4 `avc1` pitfall of smart-cut tools);
- timestamps: every re-encoded frame gets the master's pts for its seq, and each new packet takes the
  master's dts at the same decode position. x264 derives dts from the sorted pts shifted by its fixed
  reorder delay, so those are the dts a continuous encode produces; a fresh encoder would extrapolate the
  first ones and could collide with the previous GOP. `dts <= pts` is verified for every packet.

Painting: a re-encoded frame is painted exactly as the master render painted it (in the decoder's I420 planes
where the pipeline does, else in RGB; the pipeline's own decision), so unchanged boxes give the master's frames.

Scale: `plan_patch` groups the runs into chunks of about `chunk_seconds` of re-encoded video; `encode_runs`
re-encodes one chunk into a part file (packets with the master's timestamps, checked by `read_parts`), and
`splice` remuxes the master with the runs taken from an encoder or from parts. `patch_render` encodes the
chunks serially (streaming: no parts) or in a process pool; `jobs.rerender` can hand them to `segment` jobs.
"""

from __future__ import annotations

import bisect
import concurrent.futures
import contextlib
import json
import multiprocessing
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

import av
import numpy as np

from framemask.errors import FramemaskError, InputError, NotAVideoError
from framemask.media import FrameIndex, FrameReader, probe, rotate
from framemask.media._av import map_av_errors
from framemask.redact._stages import Pipe
from framemask.redact.boxes import BoxTrack
from framemask.redact.encode import (
    AudioCopier,
    EncodeSettings,
    MutedSpan,
    frame_to_i420,
    frame_to_rgb,
    rgb_to_frame,
)
from framemask.redact.pipeline import paints_i420  # the master render's own decision
from framemask.redact.policy import DEFAULT_POLICY, MaskPolicy, painted_from_doc
from framemask.redact.styles import make_masker

_S = TypeVar("_S", bound=av.stream.Stream)

__all__ = [
    "CHUNK_SECONDS",
    "GopMap",
    "GopTask",
    "PatchPlan",
    "PatchResult",
    "changed_seqs",
    "encode_runs",
    "gops_of",
    "master_gops",
    "patch_render",
    "plan_patch",
    "read_parts",
    "splice",
]

Progress = Callable[[int, int], None]
RunPackets = Callable[[list[int]], "Generator[av.Packet[Any]]"]
"""The re-encoded packets of one run of GOPs, in decode order (an encoder session, or a stored part)."""
CHUNK_SECONDS = 60.0
"""Default size of a unit of re-encoding work: about this much re-encoded video (`Settings.segment_seconds`)."""


@dataclass(frozen=True)
class GopMap:
    """The master's video packets in decode order and how they group into closed GOPs.

    `pts`/`dts` are in the master stream's `time_base`; `seq_pts[seq - 1]` is the pts of frame `seq`;
    `starts[g]` is the first seq of GOP g and `packet_ranges[g]` its packets' decode positions [a, b).
    """

    time_base: Fraction
    pts: np.ndarray
    dts: np.ndarray
    seq_pts: np.ndarray
    starts: list[int]
    packet_ranges: list[tuple[int, int]]

    @property
    def end_sequence(self) -> int:
        return len(self.seq_pts)

    def gop_of(self, seq: int) -> int:
        """Index of the GOP holding frame `seq`."""
        return bisect.bisect_right(self.starts, seq) - 1

    def seqs(self, gop: int) -> range:
        """The frames of GOP `gop` (1-based seqs)."""
        end = self.starts[gop + 1] if gop + 1 < len(self.starts) else self.end_sequence + 1
        return range(self.starts[gop], end)

    def seconds(self, gop: int) -> float:
        """How long GOP `gop` shows: to the next GOP's first frame (the last GOP: its frames at the mean rate)."""
        seqs = self.seqs(gop)
        if seqs.stop <= self.end_sequence:
            return float((self.seq_pts[seqs.stop - 1] - self.seq_pts[seqs.start - 1]) * self.time_base)
        span = float((self.seq_pts[-1] - self.seq_pts[0]) * self.time_base)
        return len(seqs) * span / max(self.end_sequence - 1, 1)


@dataclass(frozen=True)
class PatchPlan:
    """What a patch re-encodes: the target GOPs as runs (one encoder session each), grouped into chunks.

    A chunk is the unit of work handed to a process or a `segment` job: about `chunk_seconds` of re-encoded
    video. A run crossing a chunk's end is cut there, at a GOP boundary (closed GOPs make each piece a valid
    session of its own); every path cuts the same way, so serial, pool and queue renders run the same encoder
    sessions on the same painted frames (x264 itself is not bit-reproducible from run to run here: the same
    session may differ in a few bits, never in what it shows beyond encoder noise).
    """

    gops: GopMap
    targets: list[int]
    chunks: list[list[list[int]]]
    keyint: int
    """The master's configured GOP length (given, or its longest GOP)."""

    @property
    def runs(self) -> list[list[int]]:
        return [run for chunk in self.chunks for run in chunk]

    def frames(self, runs: Iterable[list[int]]) -> int:
        """Frames in `runs`."""
        return sum(len(self.gops.seqs(g)) for run in runs for g in run)

    def span(self, chunk: list[list[int]]) -> tuple[int, int]:
        """First and last seq a chunk re-encodes."""
        return self.gops.seqs(chunk[0][0])[0], self.gops.seqs(chunk[-1][-1])[-1]

    def result(self, output: Path, timer: dict[str, float], audio: str) -> PatchResult:
        """The `PatchResult` of this plan spliced into `output`."""
        gops = self.gops
        reencoded = [(gops.seqs(g)[0], gops.seqs(g)[-1]) for g in self.targets]
        timings = {k: round(v, 3) for k, v in timer.items()}
        copied = len(gops.starts) - len(self.targets)
        return PatchResult(output, gops.end_sequence, list(gops.starts), reencoded, copied, timings, audio)


@dataclass
class PatchResult:
    """What a patch wrote: the new file, its GOP map, which GOPs were re-encoded, timings (seconds)."""

    output: Path
    end_sequence: int
    gop_starts: list[int]
    reencoded: list[tuple[int, int]]
    """(first seq, last seq) of every re-encoded GOP; every other GOP was copied."""
    copied_gops: int
    timings: dict[str, float] = field(default_factory=dict)
    audio: str = "none"
    """What happened to the audio: `copied` (byte for byte), `reencoded` (muted spans) or `none`."""

    @property
    def reencoded_frames(self) -> int:
        return sum(b - a + 1 for a, b in self.reencoded)


def master_gops(master: str | os.PathLike[str]) -> GopMap:
    """Demux the master's video packets (no decoding) and check it is built of closed GOPs."""
    with map_av_errors(master), av.open(str(master)) as container:
        if not container.streams.video:
            raise NotAVideoError(f"{master}: no video stream")
        stream = container.streams.video[0]
        if stream.codec_context.name != "h264":
            raise InputError(f"{master}: not a processed master (video is {stream.codec_context.name}, not H.264)")
        rows = [(p.pts, p.dts, p.is_keyframe) for p in container.demux(stream) if p.size and p.pts is not None]
        time_base = stream.time_base
    if time_base is None:
        raise InputError(f"{master}: the video stream has no time base")
    if not rows or not rows[0][2]:
        raise InputError(f"{master}: not a processed master (empty, or it does not start with a key frame)")
    pts = np.array([r[0] for r in rows], np.int64)
    dts = np.array([r[1] if r[1] is not None else r[0] for r in rows], np.int64)
    keys = [i for i, r in enumerate(rows) if r[2]]
    seq_pts = np.sort(pts)
    seq_of = {int(p): i + 1 for i, p in enumerate(seq_pts)}
    if len(seq_of) != len(pts):
        raise InputError(f"{master}: repeated timestamps; not a processed master")
    ranges = list(zip(keys, [*keys[1:], len(rows)], strict=True))
    starts, expected = [], 1
    for a, b in ranges:
        if sorted(seq_of[int(p)] for p in pts[a:b]) != list(range(expected, expected + b - a)):
            raise InputError(f"{master}: the GOP at packet {a} is not closed; it cannot be patched alone")
        starts.append(expected)
        expected += b - a
    return GopMap(time_base, pts, dts, seq_pts, starts, ranges)


def gops_of(gops: GopMap, seqs: Iterable[int]) -> list[int]:
    """Sorted indices of the GOPs holding any of `seqs` (seqs outside the video are an InputError)."""
    out = set()
    for seq in seqs:
        if not 1 <= seq <= gops.end_sequence:
            raise InputError(f"changed frame {seq} is outside 1..{gops.end_sequence}")
        out.add(gops.gop_of(seq))
    return sorted(out)


def changed_seqs(before: BoxTrack, after: BoxTrack) -> list[int]:
    """Frames whose masked regions differ between two box tracks of the same video."""
    if len(before) != len(after):
        raise InputError(f"box tracks cover {len(before)} and {len(after)} frames")
    return [seq for seq in range(1, len(after) + 1) if not _same_regions(before.rows(seq), after.rows(seq))]


def _same_regions(a: np.ndarray, b: np.ndarray) -> bool:
    """Same set of (label, box) rows, whatever their order."""
    if a.shape != b.shape:
        return False
    return bool(np.array_equal(np.unique(a, axis=0), np.unique(b, axis=0)))


def plan_patch(
    master: str | os.PathLike[str],
    changed: Iterable[int],
    *,
    gop_starts: Sequence[int] | None = None,
    keyint: int | None = None,
    chunk_seconds: float = CHUNK_SECONDS,
) -> PatchPlan:
    """Which GOPs of `master` a change of frames `changed` re-encodes, as runs and chunks (see `PatchPlan`).

    `gop_starts`, if given, must match the master (a guard against a stale GOP map); `keyint` is the
    master's configured GOP length (default: its longest GOP)."""
    if chunk_seconds <= 0:
        raise InputError(f"chunk seconds must be positive, got {chunk_seconds}")
    gops = master_gops(master)
    if gop_starts is not None and list(gop_starts) != gops.starts:
        raise InputError(f"{master}: the GOP map given does not match the file ({len(gops.starts)} GOPs)")
    targets = gops_of(gops, changed)
    keyint = keyint or _keyint(gops)
    return PatchPlan(gops, targets, _chunks(gops, _runs(gops, targets, keyint), chunk_seconds), keyint)


def patch_render(
    src: str | os.PathLike[str],
    master: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    boxes_doc: Mapping[str, Any] | None,
    changed: Iterable[int],
    *,
    gop_starts: Sequence[int] | None = None,
    style: str = "mosaic",
    shape: str = "rect",
    strength: float = 1.0,
    settings: EncodeSettings | None = None,
    index: FrameIndex | None = None,
    progress: Progress | None = None,
    policy: MaskPolicy = DEFAULT_POLICY,
    painted: BoxTrack | None = None,
    audio_from: str | os.PathLike[str] | None = None,
    muted: Sequence[tuple[float, float, str]] = (),
    jobs: int = 1,
    chunk_seconds: float = CHUNK_SECONDS,
) -> PatchResult:
    """Write `dst`: `master` with every GOP holding a `changed` frame re-rendered from `src` and `boxes_doc`.

    `boxes_doc` is the complete seed document of what must be masked (not only the changed frames: a GOP is
    re-encoded whole); `policy` paints it, and must be the one the master was rendered with. A caller that
    already has that painting (a re-render compares revisions by it) passes it as `painted` instead.
    `gop_starts`, if given, must match the master (a guard against a stale GOP map).
    `settings` must be the ones the master was encoded with; by default they are derived from its GOP length.
    `audio_from` is the file whose first audio stream goes into `dst` (default: `master`'s); `muted` lists
    (start ms, end ms, "mute" | "tone") spans measured from the first frame, as the frame index counts.
    With `jobs` > 1 and more than one chunk of about `chunk_seconds` to re-encode, the chunks are encoded
    in that many processes (`encode_runs`) and spliced from their parts; the output is the same.
    """
    started = time.perf_counter()
    keyint = settings.keyint if settings is not None else None
    plan = plan_patch(master, changed, gop_starts=gop_starts, keyint=keyint, chunk_seconds=chunk_seconds)
    gops = plan.gops
    settings = settings or EncodeSettings(keyint=plan.keyint)
    make_masker(style, shape, strength)  # a bad style is an InputError before any work
    _check_dst(master, dst)
    if painted is None:
        if boxes_doc is None:
            raise InputError("patch_render needs the boxes document or its painting")
        painted = painted_from_doc(boxes_doc, gops.end_sequence, *_size(master), policy)
    task = GopTask(str(src), str(master), "", [], painted, style, shape, strength, settings, index, gops)
    timer: dict[str, float] = {}
    splice_args: dict[str, Any] = {"audio_from": audio_from, "muted": muted}
    if jobs > 1 and len(plan.chunks) > 1:
        scratch = Path(tempfile.mkdtemp(prefix=".framemask-gops-", dir=Path(dst).parent))
        try:
            parts = _encode_pool(plan, task, scratch, jobs, progress, timer)
            audio = splice(master, dst, plan, read_parts(parts, gops), **splice_args)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    else:
        with _GopEncoder(task, timer) as encoder:
            audio = splice(master, dst, plan, encoder.run, progress=progress, **splice_args)
    timer["total"] = time.perf_counter() - started
    return plan.result(Path(dst), timer, audio)


def _check_dst(master: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    if Path(dst).resolve() == Path(master).resolve():
        raise InputError(f"{dst}: write the patched video to a new file, not over the master")


def splice(
    master: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    plan: PatchPlan,
    packets: RunPackets,
    *,
    progress: Progress | None = None,
    audio_from: str | os.PathLike[str] | None = None,
    muted: Sequence[tuple[float, float, str]] = (),
) -> str:
    """Write `dst`: the master's packets, with the runs of `plan` taken from `packets` (an encoder or
    `read_parts`), and the audio of `audio_from` (default: the master's), redacted over `muted` (ms from the
    first frame). Returns what happened to the audio (`PatchResult.audio`)."""
    _check_dst(master, dst)
    out = Path(dst)
    gops = plan.gops
    origin = float(gops.seq_pts[0] * gops.time_base)  # the first frame's time on the container timeline
    spans = [MutedSpan(origin + a / 1000.0, origin + b / 1000.0, mode) for a, b, mode in muted if b > a]
    tmp = out.with_name(f".{out.stem}.{os.getpid()}.partial{out.suffix}")
    try:
        audio = _remux(master, tmp, gops, plan.runs, packets, progress, audio_from or master, spans)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return audio


def _size(master: str | os.PathLike[str]) -> tuple[int, int]:
    """The master's frame size (the displayed size: the master is written upright)."""
    with map_av_errors(master), av.open(str(master)) as container:
        ctx = container.streams.video[0].codec_context
        return ctx.width, ctx.height


def _keyint(gops: GopMap) -> int:
    """The master's configured GOP length: the longest GOP (only the last one may be shorter)."""
    return max(gops.seqs(g).stop - gops.seqs(g).start for g in range(len(gops.starts)))


def _runs(gops: GopMap, targets: Sequence[int], keyint: int) -> list[list[int]]:
    """Target GOPs grouped into runs that one encoder session reproduces GOP for GOP: consecutive GOPs
    where each but the last has exactly `keyint` frames, so the encoder's IDRs fall on the master's."""
    runs: list[list[int]] = []
    for g in targets:
        if runs and runs[-1][-1] == g - 1 and len(gops.seqs(g - 1)) == keyint:
            runs[-1].append(g)
        else:
            runs.append([g])
    return runs


def _chunks(gops: GopMap, runs: list[list[int]], seconds: float) -> list[list[list[int]]]:
    """Runs grouped into chunks of about `seconds` of re-encoded video; a run is cut where a chunk fills."""
    chunks: list[list[list[int]]] = [[]]
    filled = 0.0
    for run in runs:
        piece: list[int] = []
        for g in run:
            if filled >= seconds:
                if piece:
                    chunks[-1].append(piece)
                    piece = []
                chunks.append([])
                filled = 0.0
            piece.append(g)
            filled += gops.seconds(g)
        chunks[-1].append(piece)
    return [chunk for chunk in chunks if chunk]


def _remux(
    master: str | os.PathLike[str],
    dst: Path,
    gops: GopMap,
    runs: list[list[int]],
    packets: RunPackets,
    progress: Progress | None,
    audio_from: str | os.PathLike[str],
    muted: Sequence[MutedSpan] = (),
) -> str:
    """Copy the master's video packet by packet; inside target GOPs, take the re-encoded packet of the same
    decode position instead. The audio of `audio_from` is interleaved by time (copied, or redacted over
    `muted`). Streaming every side keeps memory flat. Returns what happened to the audio."""
    starts, ends = {run[0]: run for run in runs}, {run[-1] for run in runs}
    targets = {g for run in runs for g in run}
    total, done = sum(len(gops.seqs(g)) for g in targets), 0
    fresh: Generator[av.Packet[Any]] | None = None
    with (
        map_av_errors(master),
        av.open(str(master)) as source,
        av.open(str(dst), "w", format="mp4") as out,
    ):
        video = source.streams.video[0]
        mapping = {video.index: _copy_stream(out, video)}
        audio = AudioCopier(audio_from, out, muted)
        position, gop = -1, -1
        try:
            for packet in source.demux(video):
                if packet.dts is None and packet.pts is None:
                    continue  # demuxer flush packets
                t = packet.dts if packet.dts is not None else packet.pts
                assert t is not None
                audio.copy_until(float(t * gops.time_base))
                position += 1
                if gop + 1 < len(gops.starts) and position == gops.packet_ranges[gop + 1][0]:
                    gop += 1
                    if gop in starts:
                        fresh = packets(starts[gop])
                if gop in targets:
                    assert fresh is not None
                    fresh_packet = next(fresh, None)
                    if fresh_packet is None:
                        raise FramemaskError(f"GOP {gop}: the encoder ended early")
                    packet = fresh_packet
                    if position + 1 == gops.packet_ranges[gop][1]:
                        done += len(gops.seqs(gop))
                        if progress is not None:
                            progress(done, total)
                        if gop in ends and next(fresh, None) is not None:
                            raise FramemaskError(f"GOP {gop}: the encoder produced more packets than frames")
                packet.stream = mapping[video.index]
                out.mux(packet)
            audio.copy_until(float("inf"))
        finally:
            if fresh is not None:
                fresh.close()
            audio.close()
        if position + 1 != len(gops.pts):
            raise FramemaskError(f"{master}: changed while patching ({position + 1} packets, {len(gops.pts)} before)")
    return "none" if not audio.present else "reencoded" if audio.reencoded else "copied"


def _copy_stream(out: av.container.OutputContainer, stream: _S) -> _S:
    copy = out.add_stream_from_template(stream)
    copy.metadata.clear()
    if stream.type == "video":
        copy.codec_context.codec_tag = stream.codec_context.codec_tag  # keep avc3 (in-band parameter sets)
    return copy


def _avcc_length_size(extradata: bytes | None) -> int:
    """NAL length-prefix size of an `avcC` record; 0 when the stream carries Annex B start codes."""
    if not extradata or extradata[0] != 1 or len(extradata) < 5:
        return 0
    return (extradata[4] & 0x03) + 1


def annexb_to_avcc(data: bytes, length_size: int = 4) -> bytes:
    """Annex B NAL units (start codes, what x264 emits) -> length-prefixed ones (what MP4 samples hold).

    The mp4 muxer converts only when the stream's own extradata is Annex B; a stream copied from an MP4
    has an `avcC` record instead, so freshly encoded packets must be converted here.
    """
    starts = []
    i = data.find(b"\x00\x00\x01")
    while i >= 0:
        starts.append(i + 3)
        i = data.find(b"\x00\x00\x01", i + 3)
    if not starts:
        raise FramemaskError("encoder packet without an Annex B start code")
    parts = []
    for begin, end in zip(starts, [*starts[1:], len(data) + 3], strict=True):
        nal = data[begin : end - 3].rstrip(b"\x00")  # drops the zero_byte of 4-byte start codes too
        parts.append(len(nal).to_bytes(length_size, "big") + nal)
    return b"".join(parts)


# --- a unit of re-encoding work: chunks in processes or jobs, stored as parts -----------------------------------


@dataclass(frozen=True)
class GopTask:
    """Everything re-encoding some runs needs, picklable (a process pool's argument, rebuilt by a job)."""

    src: str
    master: str
    part: str
    """Where `encode_runs` writes the part (unused when the runs are spliced straight from the encoder)."""
    runs: list[list[int]]
    painted: BoxTrack
    style: str
    shape: str
    strength: float
    settings: EncodeSettings
    index: FrameIndex | None = None
    """The original's frame index (built again when None)."""
    gops: GopMap | None = None
    """The master's GOP map (demuxed again when None)."""


def encode_runs(task: GopTask, progress: Progress | None = None) -> dict[str, float]:
    """Re-encode `task.runs` into the part file `task.part`; returns the stage timings (seconds).

    A part holds the runs' packets exactly as the splice muxes them (the master's pts, dts and decode
    positions, length-prefixed NAL units), as an npz of plain arrays (loaded without pickle), so a part
    made by another process or worker splices like the encoder's own output (`read_parts` checks it)."""
    timer: dict[str, float] = {}
    rows: list[tuple[int, int, int, int]] = []
    data: list[bytes] = []
    with _GopEncoder(task, timer) as encoder:
        total = sum(len(encoder.gops.seqs(g)) for run in task.runs for g in run)
        done = 0
        for run in task.runs:
            start = encoder.gops.packet_ranges[run[0]][0]
            for position, packet in enumerate(encoder.run(run), start):
                assert packet.pts is not None and packet.dts is not None  # `_retime` set both
                rows.append((position, packet.pts, packet.dts, int(packet.is_keyframe)))
                data.append(bytes(packet))
            done += sum(len(encoder.gops.seqs(g)) for g in run)
            if progress is not None:
                progress(done, total)
        time_base = encoder.gops.time_base
    with open(task.part, "wb") as fh:
        np.savez(
            fh,
            runs=np.array(json.dumps(task.runs)),
            time_base=np.array([time_base.numerator, time_base.denominator], np.int64),
            rows=np.array(rows, np.int64).reshape(-1, 4),
            sizes=np.array([len(d) for d in data], np.int64),
            data=np.frombuffer(b"".join(data), np.uint8),
        )
    return timer


def read_parts(parts: Sequence[str | os.PathLike[str]], gops: GopMap) -> RunPackets:
    """The runs stored in `parts` (`encode_runs`) as `RunPackets` for `splice`, each part checked against
    the master's GOP map first (a stale or foreign part is refused, never spliced)."""
    owner: dict[int, tuple[Path, list[int]]] = {}
    for part in parts:
        with np.load(part, allow_pickle=False) as data:
            for run in json.loads(str(data["runs"])):
                owner[run[0]] = (Path(part), run)
    loaded: dict[Path, _Part] = {}

    def packets(run: list[int]) -> Generator[av.Packet[Any]]:
        path, stored = owner.get(run[0], (None, None))
        if path is None or stored != run:
            raise FramemaskError(f"GOPs {run[0]}-{run[-1]}: no stored part holds exactly this run")
        if path not in loaded:
            loaded.clear()  # runs come in order: one part in memory at a time
            loaded[path] = _Part.load(path, gops)
        yield from loaded[path].packets(run, gops)

    return packets


@dataclass(frozen=True)
class _Part:
    """A loaded part: rows (decode position, pts, dts, key) and their packets' bytes."""

    rows: np.ndarray
    offsets: np.ndarray
    data: np.ndarray

    @classmethod
    def load(cls, path: Path, gops: GopMap) -> _Part:
        with np.load(path, allow_pickle=False) as stored:
            if Fraction(*(int(v) for v in stored["time_base"])) != gops.time_base:
                raise FramemaskError(f"{path.name}: not encoded for this master (time base)")
            rows, sizes = stored["rows"], stored["sizes"]
            part = cls(rows, np.concatenate([[0], np.cumsum(sizes)]), stored["data"])
            for run in json.loads(str(stored["runs"])):
                part.check(run, gops, path.name)
        return part

    def select(self, run: list[int], gops: GopMap) -> np.ndarray:
        a, b = gops.packet_ranges[run[0]][0], gops.packet_ranges[run[-1]][1]
        return np.flatnonzero((self.rows[:, 0] >= a) & (self.rows[:, 0] < b))

    def check(self, run: list[int], gops: GopMap, name: str) -> None:
        """The run's packets sit at exactly the master's decode positions, with its dts, the pts of the run's
        frames and key frames where its GOPs start."""
        a, b = gops.packet_ranges[run[0]][0], gops.packet_ranges[run[-1]][1]
        rows = self.rows[self.select(run, gops)]
        first, last = gops.seqs(run[0])[0], gops.seqs(run[-1])[-1]
        keys = {gops.packet_ranges[g][0] for g in run}
        ok = (
            rows[:, 0].tolist() == list(range(a, b))
            and np.array_equal(rows[:, 2], gops.dts[a:b])
            and np.array_equal(np.sort(rows[:, 1]), gops.seq_pts[first - 1 : last])
            and [bool(k) for k in rows[:, 3]] == [p in keys for p in range(a, b)]
        )
        if not ok:
            raise FramemaskError(f"{name}: GOPs {run[0]}-{run[-1]} do not match the master's packets")

    def packets(self, run: list[int], gops: GopMap) -> Iterator[av.Packet[Any]]:
        for i in self.select(run, gops):
            _position, pts, dts, key = (int(v) for v in self.rows[i])
            packet = av.Packet(self.data[self.offsets[i] : self.offsets[i + 1]].tobytes())
            packet.pts, packet.dts, packet.is_keyframe, packet.time_base = pts, dts, bool(key), gops.time_base
            yield packet


def _encode_pool(
    plan: PatchPlan, task: GopTask, scratch: Path, jobs: int, progress: Progress | None, timer: dict[str, float]
) -> list[Path]:
    """Every chunk of `plan` encoded by `encode_runs` in up to `jobs` processes; the parts, in order."""
    tasks = [replace(task, part=str(scratch / f"part{k:05d}.npz"), runs=c) for k, c in enumerate(plan.chunks)]
    total, done = plan.frames(plan.runs), 0
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=min(jobs, len(tasks)), mp_context=context) as pool:
        futures = {pool.submit(encode_runs, t): t for t in tasks}
        try:
            for future in concurrent.futures.as_completed(futures):
                for stage, seconds in future.result().items():
                    timer[stage] = timer.get(stage, 0.0) + seconds
                done += plan.frames(futures[future].runs)
                if progress is not None:
                    progress(done, total)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return [Path(t.part) for t in tasks]


class _Prefetch:
    """Runs an iterator in a daemon thread, a few items ahead, so producing and consuming overlap.

    Built on the render pipeline's `Pipe`; errors reach the consumer; closing stops the producer at its next item."""

    def __init__(self, source: Iterator[Any], size: int = 6) -> None:
        self._source = source
        self._stop = threading.Event()
        self._pipe = Pipe(size, self._stop)
        self._thread = threading.Thread(target=self._produce, name="framemask-patch-decode", daemon=True)
        self._thread.start()

    def _produce(self) -> None:
        try:
            for item in self._source:
                if not self._pipe.put(item):
                    return
        except BaseException as exc:
            self._pipe.put(_Failed(exc))
        self._pipe.close()

    def __iter__(self) -> Iterator[Any]:
        for item in self._pipe:
            if isinstance(item, _Failed):
                raise item.error
            yield item

    def __enter__(self) -> _Prefetch:
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


@dataclass(frozen=True)
class _Failed:
    error: BaseException


class _GopEncoder:
    """Re-renders single GOPs: exact original frames -> new masks -> x264 with the master's settings.

    Frames are painted exactly as the master render paints them (`pipeline._render`): in the decoder's I420
    planes when the pipeline would (`paints_i420`: even size, no rotation, a 4:2:0 master), else in RGB, so
    a re-encoded GOP with unchanged boxes gets the very frames the master's encoder got."""

    def __init__(self, task: GopTask, timer: dict[str, float]) -> None:
        self.gops = gops = task.gops or master_gops(task.master)
        self._masker = make_masker(task.style, task.shape, task.strength)
        self._settings, self._timer = task.settings, timer
        with map_av_errors(task.master), av.open(task.master) as container:
            ctx = container.streams.video[0].codec_context
            if ctx.format is None:
                raise InputError(f"{task.master}: the video stream has no pixel format")
            self._width, self._height, self._pix_fmt = ctx.width, ctx.height, ctx.format.name
            self._nal_length = _avcc_length_size(ctx.extradata)
        self._reader = FrameReader(task.src, index=task.index)
        try:
            if self._reader.index.end_sequence != gops.end_sequence:
                raise InputError(
                    f"{task.src} has {self._reader.index.end_sequence} frames, the master {gops.end_sequence}"
                )
            painted = task.painted
            if (painted.width, painted.height, len(painted)) != (self._width, self._height, gops.end_sequence):
                raise InputError(
                    f"the regions to paint cover {len(painted)} frames of {painted.width}x{painted.height}"
                )
            info = probe(task.src, index=self._reader.index)
        except BaseException:
            self._reader.close()
            raise
        self._painted = painted
        self._i420 = self._pix_fmt == "yuv420p" and paints_i420(info)

    def run(self, run: list[int]) -> Generator[av.Packet[Any]]:
        """Packets of the consecutive GOPs `run`, re-rendered, in decode order with the master's dts.

        Original frames are decoded and masked in a second thread while x264 encodes in this one.
        """
        first, last = self.gops.seqs(run[0])[0], self.gops.seqs(run[-1])[-1]
        a, b = self.gops.packet_ranges[run[0]][0], self.gops.packet_ranges[run[-1]][1]
        keys = {self.gops.packet_ranges[g][0] for g in run}
        codec = self._codec()
        position = a
        with _Prefetch(self._frames(first, last)) as frames:
            for frame in frames:
                for packet in self._timed("encode", codec.encode, frame):
                    yield self._retime(packet, position, keys)
                    position += 1
        for packet in self._timed("encode", codec.encode, None):
            yield self._retime(packet, position, keys)
            position += 1
        if position != b:
            raise FramemaskError(f"frames {first}-{last}: encoder produced {position - a} packets for {b - a} frames")

    def _frames(self, first: int, last: int) -> Iterator[av.VideoFrame]:
        """Encoder frames of seqs first..last: the original's pixels with the new masks, the master's pts."""
        for seq in range(first, last + 1):
            frame = self.painted_frame(seq)
            frame.pts = int(self.gops.seq_pts[seq - 1])
            frame.time_base = self.gops.time_base
            yield frame

    def painted_frame(self, seq: int) -> av.VideoFrame:
        """Frame `seq` of the original with its regions painted, as x264 is given it (`VideoWriter.write_i420`
        or `.write`, the master writer's own conversions)."""
        boxes = self._painted.boxes(seq)
        if self._i420:
            i420 = self._timed("decode", self._decoded, seq)
            self._timed("mask", self._masker.apply_i420, i420, boxes)
            return av.VideoFrame.from_ndarray(i420, format="yuv420p")
        rgb = self._timed("decode", self._decoded, seq)
        self._timed("mask", self._masker.apply, rgb, boxes)
        return rgb_to_frame(rgb, self._pix_fmt)

    def _codec(self) -> av.VideoCodecContext:
        codec = av.CodecContext.create("libx264", "w")
        codec.width, codec.height, codec.pix_fmt = self._width, self._height, self._pix_fmt
        codec.time_base = self.gops.time_base
        self._settings.configure(codec)
        return codec

    def _decoded(self, seq: int) -> np.ndarray:
        """Frame `seq` of the original as a fresh array (masking writes into it): I420 planes, or RGB in the
        displayed orientation."""
        frame = self._reader.av_frame(seq)
        if self._i420:
            size = (frame.width, frame.height)
            array = frame_to_i420(frame) if size == (self._width, self._height) else None
        else:
            array = np.ascontiguousarray(rotate(frame_to_rgb(frame), self._reader.rotation))
            size = (array.shape[1], array.shape[0])
        if array is None or size != (self._width, self._height):
            raise NotAVideoError(
                f"frame {seq} of the original is {size[0]}x{size[1]}, the master {self._width}x{self._height}"
            )
        return array

    def _retime(self, packet: av.Packet[Any], position: int, keys: set[int]) -> av.Packet[Any]:
        """The master's dts at the same decode position; IDRs exactly where the master has them."""
        if packet.is_keyframe != (position in keys):
            raise FramemaskError(f"packet {position}: key frames do not line up with the master's GOPs")
        dts = int(self.gops.dts[position])
        if packet.pts is None or dts > packet.pts:
            raise FramemaskError(f"packet {position}: cannot splice (dts {dts} after pts {packet.pts})")
        data = bytes(packet)
        new = av.Packet(annexb_to_avcc(data, self._nal_length) if self._nal_length else data)
        new.pts, new.dts, new.is_keyframe = packet.pts, dts, packet.is_keyframe
        new.time_base = self.gops.time_base
        return new

    def _timed(self, stage: str, fn: Callable[..., Any], *args: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self._timer[stage] = self._timer.get(stage, 0.0) + time.perf_counter() - start

    def close(self) -> None:
        with contextlib.suppress(av.error.FFmpegError):
            self._reader.close()

    def __enter__(self) -> _GopEncoder:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
