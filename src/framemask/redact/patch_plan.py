"""What a patch re-encodes: the target GOPs as runs (one encoder session each), grouped into chunks of work.

Kept apart from `patch_render` so the process pool of part files, the splice and the `segment` jobs share one
plan without importing the orchestration that drives them (no import cycle).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from framemask.errors import InputError
from framemask.redact.gops import GopMap, gops_of, keyint_of, master_gops

__all__ = ["CHUNK_SECONDS", "PatchPlan", "PatchResult", "plan_patch"]

CHUNK_SECONDS = 60.0
"""Default size of a unit of re-encoding work: about this much re-encoded video (`Settings.segment_seconds`)."""


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
    keyint = keyint or keyint_of(gops)
    return PatchPlan(gops, targets, _chunks(gops, _runs(gops, targets, keyint), chunk_seconds), keyint)


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
