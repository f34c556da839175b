"""The stream and frame endpoints' database reads as two plain statements, cheap enough for the event loop.

A video player fetches a 1 MiB range per request (an editor one frame per step), so the token and video
look-ups run on every one of them. Through the ORM they cost ~0.35 ms of CPU (session, identity map,
object construction) plus a worker-thread hop; as Core selects of the needed columns ~0.06 ms, and on a
SQLite file through a dedicated connection ~0.01 ms. Every request still reads the rows (a revoked token
or a deleted video fails at once); only the machinery around the read is gone.

`StreamReads.rows_nowait` answers from the event loop's thread on an embedded SQLite database: a WAL
reader never waits for writers, and its connection has no busy timeout, so a rare lock (checkpoint,
WAL recovery) raises `WouldBlock` at once and the caller retries with `rows` in a worker thread.
PostgreSQL reads always go through `rows` (a network round trip must not stall the loop).

`StreamReads.audit_nowait` writes the audit row of an original the same way: on embedded SQLite (WAL,
synchronous=NORMAL) a commit appends to the WAL without an fsync, ~0.05 ms against a worker-thread hop's
~0.3 ms of CPU; a held write lock raises `WouldBlock` at once and the caller writes through `audit` in a
worker thread. The row's values are converted by the same SQLAlchemy types as `audit`'s insert, so both
paths store the same bytes. That connection never checkpoints (a checkpoint syncs the database file): every
`CHECKPOINT_EVERY` rows it writes, passive checkpoints run in a background thread on a pooled connection until
one completes, so the WAL stays bounded even when nothing else writes (a server streaming originals by signed
link only).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, insert, select
from sqlalchemy.engine import Dialect

from framemask.store.db import Database
from framemask.store.models import ApiToken, AuditLog, Video

__all__ = ["StreamReads", "StreamRows", "StreamToken", "StreamVideo", "WouldBlock"]


@dataclass(frozen=True, slots=True)
class StreamToken:
    """The columns of an API token a stream request needs."""

    id: int
    name: str
    role: str
    revoked: bool


@dataclass(frozen=True, slots=True)
class StreamVideo:
    """The columns of a video a stream or frame request needs: where each variant's bytes and the original's
    frame index live (what a frame reader opens on), and the status."""

    id: str
    status: str
    raw_bucket: str
    raw_key: str
    processed_key: str | None
    final_key: str | None
    index_key: str | None
    proxy_key: str | None


@dataclass(frozen=True, slots=True)
class StreamRows:
    """The token (looked up by hash or by id; None if unknown or not asked) and the video (None if gone)."""

    token: StreamToken | None
    video: StreamVideo | None


class WouldBlock(Exception):
    """The event-loop read met a lock: retry with `StreamReads.rows` in a worker thread."""


_TOKEN_COLUMNS = (ApiToken.id, ApiToken.name, ApiToken.role, ApiToken.revoked)
_VIDEO_COLUMNS = (
    Video.id,
    Video.status,
    Video.raw_bucket,
    Video.raw_key,
    Video.processed_key,
    Video.final_key,
    Video.index_key,
    Video.proxy_key,
)
_TOKEN_BY_HASH = select(*_TOKEN_COLUMNS).where(ApiToken.token_hash == bindparam("value"))
_TOKEN_BY_ID = select(*_TOKEN_COLUMNS).where(ApiToken.id == bindparam("value"))
_VIDEO_BY_ID = select(*_VIDEO_COLUMNS).where(Video.id == bindparam("value"))
_QUERIES = {"token_hash": _TOKEN_BY_HASH, "token_id": _TOKEN_BY_ID, "video": _VIDEO_BY_ID}
_AUDIT_COLUMNS = tuple(column for column in AuditLog.__table__.columns if column.key != "id")


def _token(row: Any) -> StreamToken | None:
    return None if row is None else StreamToken(row[0], row[1], row[2], bool(row[3]))


def _video(row: Any) -> StreamVideo | None:
    return None if row is None else StreamVideo(*row)


def _sqlite_file(db: Database) -> bool:
    url = db.engine.url
    return url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")


CHECKPOINT_EVERY = 1000
"""Audit rows written on the event loop between two background WAL checkpoints (~13 MB of WAL: three pages a
row; a checkpoint every second or so at full speed)."""


class StreamReads:
    """The look-ups of one database, by the cheapest safe route (see the module docstring)."""

    def __init__(self, db: Database, checkpoint_every: int = CHECKPOINT_EVERY) -> None:
        self.db = db
        self.checkpoint_every = checkpoint_every
        self._written = 0  # rows committed by `audit_nowait` since the last checkpoint was started
        self._checkpoint: threading.Thread | None = None
        self.on_loop = _sqlite_file(db)
        """Whether `rows_nowait` may be tried (an embedded SQLite file)."""
        self._local = threading.local()
        self._sql = {name: str(q.compile(dialect=db.engine.dialect)) for name, q in _QUERIES.items()}
        self._audit_sql, self._audit_binds = _audit_insert(db.engine.dialect)

    def rows(self, *, token_hash: str | None, token_id: int | None, video_id: str) -> StreamRows:
        """Token and video in two Core selects on one pooled connection (may block: a worker thread)."""
        with self.db.engine.connect() as conn:
            token = None
            for name, value in _token_key(token_hash, token_id):
                token = _token(conn.execute(_QUERIES[name], {"value": value}).first())
            video = _video(conn.execute(_VIDEO_BY_ID, {"value": video_id}).first())
        return StreamRows(token, video)

    def rows_nowait(self, *, token_hash: str | None, token_id: int | None, video_id: str) -> StreamRows:
        """The same rows from this thread's own SQLite connection, never waiting (`WouldBlock` instead)."""
        try:
            cursor = self._connection().cursor()
            try:
                token = None
                for name, value in _token_key(token_hash, token_id):
                    token = _token(self._one(cursor, name, value))
                video = _video(self._one(cursor, "video", video_id))
            finally:
                cursor.close()
        except sqlite3.Error as exc:  # busy, locked, or anything else: the pooled path decides
            self._local.__dict__.clear()  # a fresh connection next time
            raise WouldBlock(str(exc)) from exc
        return StreamRows(token, video)

    def audit_nowait(self, values: Mapping[str, Any]) -> None:
        """Insert one audit row (`auth.audit_values`) and commit it from this thread's connection, never
        waiting for the write lock (`WouldBlock`, nothing written, if another connection holds it)."""
        params = [(convert(values[key]) if convert else values[key]) for key, convert in self._audit_binds]
        try:
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute(self._audit_sql, params)
                conn.execute("COMMIT")
            except sqlite3.Error:
                if conn.in_transaction:
                    conn.rollback()
                raise
        except sqlite3.Error as exc:
            self._local.__dict__.clear()
            raise WouldBlock(str(exc)) from exc
        self._written += 1
        if self._written >= self.checkpoint_every and not (self._checkpoint and self._checkpoint.is_alive()):
            self._written = 0
            self._checkpoint = threading.Thread(target=self.checkpoint, name="framemask-wal-checkpoint", daemon=True)
            self._checkpoint.start()

    def checkpoint(self, attempts: int = 500, pause: float = 0.01) -> bool:
        """Passive WAL checkpoints on a pooled connection until one copies the whole WAL into the database file
        (True; the next writer then starts the WAL from its beginning), at most `attempts`, `pause` seconds
        apart. A passive checkpoint never takes the write lock, so requests never wait for it; each attempt copies
        only what the last one left, so it catches up in the first short pause between writes (under writes
        back to back, as in a benchmark, the WAL grows until they pause). A blocking (RESTART) checkpoint made
        range requests of originals wait for the lock: p99 250 ms instead of 61 ms in `bench/service.py`."""
        for attempt in range(attempts):
            if attempt:
                time.sleep(pause)
            with self.db.engine.connect() as conn:
                busy, log, done = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
            if not busy and done == log:
                return True
        return False

    def _one(self, cursor: sqlite3.Cursor, name: str, value: object) -> Any:
        # fetchall: the statement is reset at once, so no read snapshot outlives this call
        rows = cursor.execute(self._sql[name], (value,)).fetchall()
        return rows[0] if rows else None

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection (the engine's pragmas, WAL), with no busy timeout."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            pooled = self.db.engine.raw_connection()
            pooled.detach()  # ours for good: the pool opens another in its place
            conn = pooled.dbapi_connection  # type: ignore[assignment]
            assert isinstance(conn, sqlite3.Connection)
            conn.execute("PRAGMA busy_timeout=0")
            # its commits never run the WAL checkpoint (an fsync, on the event loop): `audit_nowait` starts one
            # in a background thread every `checkpoint_every` rows, and the pooled connections' commits run it
            conn.execute("PRAGMA wal_autocheckpoint=0")
            self._local.pooled = pooled  # the proxy stays referenced while its connection is in use
            self._local.conn = conn
        return conn


def _audit_insert(dialect: Dialect) -> tuple[str, list[tuple[str, Callable[[Any], Any] | None]]]:
    """The audit row's INSERT in `dialect`'s SQL, and per placeholder its column and the bind conversion
    SQLAlchemy applies to it (datetime to text, JSON serialisation, ...)."""
    compiled = insert(AuditLog).compile(dialect=dialect, column_keys=[column.key for column in _AUDIT_COLUMNS])
    types = {column.key: column.type.dialect_impl(dialect) for column in _AUDIT_COLUMNS}
    order = compiled.positiontup or []
    return str(compiled), [(key, types[key].bind_processor(dialect)) for key in order]


def _token_key(token_hash: str | None, token_id: int | None) -> list[tuple[str, object]]:
    """Which token look-up a request needs: by hash (bearer), by id (signed URL), or none."""
    if token_hash is not None:
        return [("token_hash", token_hash)]
    return [("token_id", token_id)] if token_id is not None else []
