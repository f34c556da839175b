"""Session fixtures that start real servers on loopback and stop them afterwards.

`rgw_server` (Ceph radosgw, S3), `postgres_server` (a PostgreSQL 15 cluster), `redis_server`
(Redis, the Celery broker) and `postgres_db` (a fresh database per test). They need the Debian
packages listed in research/infra.md and root (PostgreSQL runs as the `postgres` user). A server
that cannot start fails the test loudly; nothing is skipped silently.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = ["S3Server", "free_port", "postgres_db", "postgres_server", "redis_server", "rgw_server"]

ROOT = Path(__file__).resolve().parents[2]
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes] | None, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    pytest.fail(f"{what} did not listen on 127.0.0.1:{port} within {timeout} s")


def _need(*binaries: str) -> None:
    missing = [b for b in binaries if shutil.which(b) is None and not Path(b).exists()]
    if missing:
        pytest.fail(f"server binaries missing: {missing} (install them as in research/infra.md)")


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"


@pytest.fixture(scope="session")
def rgw_server() -> Iterator[S3Server]:
    """Ceph radosgw (single mon + memstore OSD) via scripts/start_rgw.sh."""
    _need("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "uuidgen")
    workdir = Path(tempfile.mkdtemp(prefix="fm-rgw-"))
    port, mon_port = free_port(), free_port()
    script = ROOT / "scripts" / "start_rgw.sh"
    env = {**os.environ, "S3_ACCESS_KEY": "framemask", "S3_SECRET_KEY": "framemask-secret-key"}
    try:
        done = subprocess.run(
            [str(script), str(workdir / "ceph"), str(port), str(mon_port)],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        if done.returncode != 0:
            pytest.fail(f"radosgw failed to start: {done.stderr[-2000:]}")
        yield S3Server(f"http://127.0.0.1:{port}", env["S3_ACCESS_KEY"], env["S3_SECRET_KEY"])
    finally:
        subprocess.run([str(script), "--stop", str(workdir / "ceph")], check=False, timeout=60)
        shutil.rmtree(workdir, ignore_errors=True)


def _as_postgres(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


@contextlib.contextmanager
def run_postgres(bin_dir: Path, prefix: str) -> Iterator[str]:
    """A throwaway PostgreSQL cluster from `bin_dir` (initdb, pg_ctl) on a free loopback port, run as the
    `postgres` user when we are root (initdb refuses root); yields a SQLAlchemy URL (psycopg 3)."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    workdir.chmod(0o755)
    pgdata = workdir / "pgdata"
    pgdata.mkdir()
    if os.geteuid() == 0:
        shutil.chown(pgdata, "postgres", "postgres")
    port = free_port()
    ctl = [str(bin_dir / "pg_ctl"), "-D", str(pgdata)]
    try:
        init = _as_postgres(
            [str(bin_dir / "initdb"), "-D", str(pgdata), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"]
        )
        if init.returncode != 0:
            pytest.fail(f"initdb failed: {init.stderr[-2000:]}")
        opts = f"-p {port} -k {pgdata} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        start = _as_postgres([*ctl, "-o", opts, "-l", str(pgdata / "server.log"), "-w", "start"])
        if start.returncode != 0:
            pytest.fail(f"pg_ctl start failed: {start.stderr[-2000:]}")
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        _as_postgres([*ctl, "-m", "immediate", "stop"])
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A PostgreSQL 15 cluster (Debian's) for the session."""
    _need(str(PG_BIN / "initdb"), str(PG_BIN / "pg_ctl"))
    with run_postgres(PG_BIN, "fm-pg-") as url:
        yield url


@contextlib.contextmanager
def fresh_database(postgres_server: str, prefix: str = "fm") -> Iterator[str]:
    """A new, empty database on the session cluster (its SQLAlchemy URL), dropped afterwards."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = postgres_server.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield postgres_server.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_db(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database on the session cluster for one test; dropped afterwards."""
    with fresh_database(postgres_server) as url:
        yield url


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """redis-server on a free loopback port, no persistence; yields `redis://127.0.0.1:PORT/0`."""
    _need("redis-server")
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_port(port, proc, 20, "redis-server")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
