"""The database handle: engine, sessions and migrations (Alembic, run programmatically at start-up).

SQLite (the embedded default) runs in WAL mode with a busy timeout so the API, the worker threads
and worker processes can share one file; PostgreSQL needs nothing special.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from framemask.errors import StorageError

__all__ = ["Database", "upgrade"]

MIGRATIONS = Path(__file__).with_name("migrations")
_upgrade_lock = threading.Lock()
WAL_LIMIT_BYTES = 64 * 1024 * 1024
"""What an SQLite WAL file is cut back to once it was checkpointed and starts over. A burst of writes (a player
streaming an original writes an audit row per range) grows the WAL until a checkpoint completes, and without a
limit the file keeps its largest size on disk for good (390 MB after 15 s of 50 clients in `bench/service.py`).
The cut is one `ftruncate` in whichever connection writes first after that checkpoint, once per burst (390 to
64 MB took 60 ms on this project's disks)."""


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA journal_size_limit={int(WAL_LIMIT_BYTES)}")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite gets its parent directory created and concurrency pragmas."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the schema at `url` to `revision` (`alembic upgrade head`)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    with _upgrade_lock, _migration_lock(url):
        try:
            command.upgrade(config, revision)
        except SQLAlchemyError as exc:
            raise StorageError(f"database migration failed: {exc}") from exc


MIGRATION_LOCK_KEY = 0x666D_6D69  # "fmmi": the PostgreSQL advisory lock every migrator takes


@contextmanager
def _migration_lock(url: str) -> Iterator[None]:
    """One migrator at a time across processes: `serve` and any number of workers starting together on an
    empty PostgreSQL database wait for each other here (the first one migrates, the rest find the schema
    at head), instead of racing on `alembic_version`. SQLite serializes its writers itself."""
    if not url.startswith("postgresql"):
        yield
        return
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
                conn.commit()
    except SQLAlchemyError as exc:
        raise StorageError(f"database migration failed: {exc}") from exc
    finally:
        engine.dispose()


class Database:
    """One engine and its session factory."""

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = url
        if migrate:
            upgrade(url)
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def session(self) -> Session:
        return self._sessions()

    @contextmanager
    def begin(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on error."""
        with self._sessions() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
