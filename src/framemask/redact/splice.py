"""The splice: the master's packets copied byte for byte, with re-encoded GOP runs at their decode positions.

The runs come as `RunPackets`, from an encoder session or from stored parts alike, so every render path
ends in this one streaming remux; the audio is interleaved by time, copied or redacted over muted spans.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import av

from framemask.errors import FramemaskError, InputError
from framemask.media._av import map_av_errors
from framemask.redact.encode import AudioCopier, MutedSpan
from framemask.redact.gops import GopMap
from framemask.redact.patch_plan import PatchPlan

_S = TypeVar("_S", bound=av.stream.Stream)

__all__ = ["Progress", "RunPackets", "check_dst", "splice"]

Progress = Callable[[int, int], None]
RunPackets = Callable[[list[int]], "Generator[av.Packet[Any]]"]
"""The re-encoded packets of one run of GOPs, in decode order (an encoder session, or a stored part)."""


def check_dst(master: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """Refuse to write over the master: the splice still reads it while writing `dst`."""
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
    check_dst(master, dst)
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
