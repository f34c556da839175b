"""The stream route's event-loop audit writer keeps the SQLite WAL bounded on its own.

Its connection never checkpoints (a checkpoint would sync the database file on the event loop), so a server
that only streams originals by signed link, with no other writes, used to grow the WAL by a page per range
request until a restart. `StreamReads` now starts a passive checkpoint in a background thread every
`checkpoint_every` rows."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import func, select

from framemask.service.auth import audit, audit_values
from framemask.service.streaming import StreamReads, WouldBlock
from framemask.store import db as db_module
from framemask.store.db import Database
from framemask.store.models import AuditLog

ROWS = 400


def _write_rows(path: Path, checkpoint_every: int) -> tuple[int, int]:
    """(largest WAL size seen, rows stored) after `ROWS` audit rows written as the stream route writes them."""
    db = Database(f"sqlite:///{path}")
    try:
        reads = StreamReads(db, checkpoint_every=checkpoint_every)
        wal, largest = Path(f"{path}-wal"), 0
        for i in range(ROWS):
            detail = {"range": f"bytes={i}-{i + 1}"}
            try:
                reads.audit_nowait(audit_values(None, "original.stream", detail=detail))
            except WouldBlock:  # a checkpoint holds the lock: the route writes from a worker thread instead
                audit(db, None, "original.stream", detail=detail)
            time.sleep(0.005)  # requests a little apart, as players make them (a range every few hundred ms each)
            largest = max(largest, wal.stat().st_size)
        with db.session() as session:
            count = select(func.count()).select_from(AuditLog).where(AuditLog.action == "original.stream")
            stored = session.scalar(count)
        return largest, int(stored or 0)
    finally:
        db.dispose()


def test_event_loop_audit_rows_keep_the_wal_bounded(tmp_path: Path) -> None:
    unbounded, stored_before = _write_rows(tmp_path / "never.db", checkpoint_every=10**9)
    bounded, stored_after = _write_rows(tmp_path / "every50.db", checkpoint_every=50)
    assert stored_before == stored_after == ROWS  # every row committed either way
    assert unbounded > ROWS * 4096 * 0.9  # a page per row, never reused
    assert bounded < unbounded / 3, (bounded, unbounded)


def test_a_burst_of_audit_rows_leaves_no_large_wal_behind(tmp_path: Path, monkeypatch) -> None:
    """Rows written back to back (a busy moment) grow the WAL past its limit; once a checkpoint copied it all,
    the next write starts the WAL over and cuts the file back to the limit instead of keeping its size."""
    monkeypatch.setattr(db_module, "WAL_LIMIT_BYTES", 256 * 1024)
    path = tmp_path / "burst.db"
    db = Database(f"sqlite:///{path}")
    try:
        reads = StreamReads(db, checkpoint_every=10**9)  # no checkpoint during the burst
        wal = Path(f"{path}-wal")
        for i in range(300):
            reads.audit_nowait(audit_values(None, "original.stream", detail={"range": f"bytes={i}-"}))
        burst = wal.stat().st_size
        assert burst > 1024 * 1024, burst
        assert reads.checkpoint()  # nothing writes now: one passive checkpoint copies the whole WAL
        reads.audit_nowait(audit_values(None, "original.stream", detail={"range": "bytes=0-"}))
        assert wal.stat().st_size <= 256 * 1024, wal.stat().st_size
        with db.session() as session:
            count = select(func.count()).select_from(AuditLog).where(AuditLog.action == "original.stream")
            assert session.scalar(count) == 301  # every row kept
    finally:
        db.dispose()
