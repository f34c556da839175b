"""Repair the timestamps of packets received over RTSP so they can be muxed, and keep them continuous.

FFmpeg hands RTSP packets over with gaps that a muxer refuses:
- the first packet of a session has neither pts nor dts (its parser loses them); its pts is the RTP base,
  i.e. the start of the PLAY range (0 for a fresh session);
- with B-frames, the first few packets have a pts but no dts (FFmpeg needs `has_b_frames` packets to guess it);
- after a reconnection the timestamps restart (live stream) or continue from where the server seeked
  (a file stream resumed by seeking to the last written key frame, which is then received twice).

`Timeline` turns every session into one continuous, strictly increasing dts sequence with dts <= pts, in the
recording's own timeline (ticks of the input time base), and drops packets already written.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from fractions import Fraction

import numpy as np

log = logging.getLogger(__name__)

__all__ = ["Session", "Stamped", "Timeline"]

_MAX_PENDING = 64
"""Packets held while waiting for FFmpeg to produce a dts; more than any real reorder depth."""
_REMEMBERED = 8192
"""How many written pts are kept to recognise packets a resumed session sends again (more than a GOP)."""
_RECENT = 64
"""Written pts used to estimate the frame interval."""


class Session(Enum):
    """How a connection's timestamps relate to what was already written."""

    FRESH = "fresh"  # the first connection: timestamps start at the PLAY range start (0)
    RESUMED = "resumed"  # a file stream seeked back to the last written key frame: same timeline, overlap
    LIVE = "live"  # a live stream reconnected: timestamps restart at 0, shifted past the gap


@dataclass
class Stamped:
    """A packet with repaired timestamps (input time base ticks, recording timeline)."""

    packet: object
    pts: int
    dts: int
    key: bool


@dataclass
class Timeline:
    """Stateful timestamp repair across the sessions of one recording."""

    time_base: Fraction
    last_dts: int | None = None
    max_pts: int | None = None
    repaired: int = 0
    duplicates: int = 0
    _written: deque[int] = field(default_factory=lambda: deque(maxlen=_REMEMBERED))
    _recent: deque[int] = field(default_factory=lambda: deque(maxlen=_RECENT))
    _pending: list[tuple[object, int, int | None, bool]] = field(default_factory=list)
    _session: Session = Session.FRESH
    _offset: int = 0
    _first: bool = True
    _seen_key: bool = False
    _overlap: bool = False
    _shifts: list[int] = field(default_factory=list)

    # --- sessions -------------------------------------------------------------------------------------------

    def begin(self, session: Session, gap_seconds: float = 0.0) -> None:
        """Start a new connection; `gap_seconds` is the wall-clock time since the last received packet."""
        self._pending.clear()
        self._session = session
        self._first = True
        self._seen_key = False
        self._overlap = session is Session.RESUMED and self.max_pts is not None
        self._shifts.clear()
        self._offset = 0
        if session is Session.LIVE and self.max_pts is not None:
            gap = max(round(gap_seconds / self.time_base), self.frame_ticks())
            self._offset = self.max_pts + gap

    def frame_ticks(self) -> int:
        """The typical frame interval so far (1 tick if unknown)."""
        if len(self._recent) < 2:
            return 1
        diffs = np.diff(np.sort(np.fromiter(self._recent, dtype=np.int64)))
        diffs = diffs[diffs > 0]
        return int(np.median(diffs)) if len(diffs) else 1

    def longest_recent_step(self) -> int:
        """The longest interval between neighbouring frames among the last written ones (0 if unknown).

        At the end of a file stream this bounds the last frame's duration, which RTP does not carry: a VFR
        file's last frame may last as long as its slowest recent stretch.
        """
        if len(self._recent) < 2:
            return 0
        return int(np.diff(np.sort(np.fromiter(self._recent, dtype=np.int64))).max())

    # --- packets --------------------------------------------------------------------------------------------

    def feed(self, packet: object, pts: int | None, dts: int | None, key: bool) -> list[Stamped]:
        """Take one received packet (FFmpeg's timestamps); return the packets now ready, in decode order."""
        if self._first:
            self._first = False
            if pts is None and dts is None:
                pts = 0  # the RTP base: exactly the PLAY range start, which FFmpeg's parser dropped
                if self._overlap:
                    self.duplicates += 1
                    self._seen_key = key  # the key frame we seeked back to: written already, decodable after
                    return []
        if not self._seen_key:
            if not key:
                return []  # nothing decodes before the first key frame of a session
            self._seen_key = True
        if pts is None and dts is not None:
            pts = dts
        if pts is None:
            self.repaired += 1
            return []  # no timestamp at all mid-stream: cannot be placed, drop (counted)
        if self._overlap and self._is_duplicate(pts):
            return []
        self._pending.append((packet, pts + self._offset, None if dts is None else dts + self._offset, key))
        if dts is None and len(self._pending) < _MAX_PENDING:
            return []
        return self._resolve()

    def flush(self) -> list[Stamped]:
        """Emit whatever is still held (end of a session)."""
        if not self._pending:
            return []
        return self._resolve(force=True)

    def _is_duplicate(self, pts: int) -> bool:
        """In a resumed session, match `pts` against what was written; learn the server's rounding shift."""
        tolerance = max(1, min(self.frame_ticks() * 4 // 10, round(Fraction(1, 500) / self.time_base)))
        written = np.fromiter(self._written, dtype=np.int64)
        if len(written):
            nearest = int(written[np.argmin(np.abs(written - pts))])
            if abs(nearest - pts) <= tolerance:
                self._shifts.append(nearest - pts)
                self.duplicates += 1
                return True
        self._overlap = False
        if self._shifts:  # the PLAY range start was rounded: align the rest with the written timeline
            self._offset += int(np.median(self._shifts))
        return False

    def _resolve(self, force: bool = False) -> list[Stamped]:
        """Give every pending packet a dts: interpolate to the next known dts, or extrapolate back."""
        known = [i for i, p in enumerate(self._pending) if p[2] is not None]
        if not known and not force and len(self._pending) < _MAX_PENDING:
            return []
        upto = known[-1] + 1 if known and not force else len(self._pending)
        batch, self._pending = self._pending[:upto], self._pending[upto:]
        dts = self._fill_dts(batch)
        return [self._emit(p, d) for p, d in zip(batch, dts, strict=True)]

    def _fill_dts(self, batch: list[tuple[object, int, int | None, bool]]) -> list[int]:
        pts = [p[1] for p in batch]
        dts: list[int | None] = [p[2] for p in batch]
        step = _min_step(pts + list(self._recent))
        next_known: int | None = None
        for i in range(len(batch) - 1, -1, -1):  # back from each known dts
            if dts[i] is not None:
                next_known = dts[i]
            elif next_known is not None:
                next_known = min(next_known - step, pts[i])
                dts[i] = next_known
        # trailing unknowns (forced flush): no reordering left to guess
        return [pts[i] if d is None else d for i, d in enumerate(dts)]

    def _emit(self, item: tuple[object, int, int | None, bool], dts: int) -> Stamped:
        packet, pts, _, key = item
        assert pts is not None
        if self.last_dts is not None and dts <= self.last_dts:
            dts = self.last_dts + 1
            self.repaired += 1
        if pts < dts:
            log.debug("pts %d before dts %d: moved", pts, dts)
            pts = dts
            self.repaired += 1
        self.last_dts = dts
        self.max_pts = pts if self.max_pts is None else max(self.max_pts, pts)
        self._written.append(pts)
        self._recent.append(pts)
        return Stamped(packet=packet, pts=pts, dts=dts, key=key)


def _min_step(values: Iterable[int]) -> int:
    arr = np.unique(np.fromiter(values, dtype=np.int64))
    diffs = np.diff(arr)
    return int(diffs.min()) if len(diffs) else 1
