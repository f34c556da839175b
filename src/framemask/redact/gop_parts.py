"""A unit of re-encoding work stored as a part file: chunks encoded in processes or by `segment` jobs.

A part holds a chunk's packets exactly as the splice muxes them, so it can be made anywhere and spliced
later; `read_parts` checks every part against the master's GOP map first, so a stale one is never spliced.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from framemask.errors import FramemaskError
from framemask.redact.gop_encoder import GopEncoder, GopTask
from framemask.redact.gops import GopMap
from framemask.redact.patch_plan import PatchPlan
from framemask.redact.process_pool import spawn_pool
from framemask.redact.splice import Progress, RunPackets

__all__ = ["encode_pool", "encode_runs", "read_parts"]


def encode_runs(task: GopTask, progress: Progress | None = None) -> dict[str, float]:
    """Re-encode `task.runs` into the part file `task.part`; returns the stage timings (seconds).

    A part holds the runs' packets exactly as the splice muxes them (the master's pts, dts and decode
    positions, length-prefixed NAL units), as an npz of plain arrays (loaded without pickle), so a part
    made by another process or worker splices like the encoder's own output (`read_parts` checks it)."""
    timer: dict[str, float] = {}
    rows: list[tuple[int, int, int, int]] = []
    data: list[bytes] = []
    with GopEncoder(task, timer) as encoder:
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


def encode_pool(
    plan: PatchPlan, task: GopTask, scratch: Path, jobs: int, progress: Progress | None, timer: dict[str, float]
) -> list[Path]:
    """Every chunk of `plan` encoded by `encode_runs` in up to `jobs` processes; the parts, in order."""
    tasks = [replace(task, part=str(scratch / f"part{k:05d}.npz"), runs=c) for k, c in enumerate(plan.chunks)]
    total, done = plan.frames(plan.runs), 0
    with spawn_pool(min(jobs, len(tasks))) as pool:
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
