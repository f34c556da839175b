"""Operating the scale-out topology: migrators that start together on an empty PostgreSQL, readiness and
outages (503, not 500), a stalled job in the job JSON, bounded worker caches of originals that follow
deletes, and docs/service.md listing every endpoint of the OpenAPI document."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import psycopg
from sqlalchemy import inspect, update
from support.api import ADMIN, auth, make_settings, service, settings_env
from support.servers import free_port

from framemask.jobs.context import Services
from framemask.jobs.housekeeping import CACHE_IN_USE_SECONDS, sweep_video_cache
from framemask.store.models import Job, Video, utcnow

ROOT = Path(__file__).resolve().parents[2]
CLI = Path(sys.executable).with_name("framemask")


def test_migrators_starting_together_on_an_empty_postgres_all_succeed(postgres_db: str, tmp_path: Path) -> None:
    env = settings_env(make_settings(tmp_path / "data", database_url=postgres_db))
    procs = [
        subprocess.Popen([str(CLI), "db", "upgrade"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(4)
    ]
    outcomes = [(p.wait(120), p.stderr.read().decode()[-500:] if p.stderr else "") for p in procs]
    assert [rc for rc, _ in outcomes] == [0, 0, 0, 0], outcomes
    with psycopg.connect(postgres_db.replace("postgresql+psycopg://", "postgresql://")) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(_head(),)]
    services = Services.create(make_settings(tmp_path / "data2", database_url=postgres_db))
    try:
        columns = {c["name"] for c in inspect(services.db.engine).get_columns("job")}
        assert {"parent_id", "part"} <= columns
    finally:
        services.close()


def _head() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from framemask.store.db import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    (head,) = ScriptDirectory.from_config(config).get_heads()
    return str(head)


def test_readiness_follows_the_database_and_outages_answer_503(postgres_db: str, tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", database_url=postgres_db, workers=0)
    with service(settings) as client:
        health = client.get("/healthz")
        assert health.status_code == 200 and health.json()["checks"] == {"database": "ok", "store": "ok"}
        assert client.get("/api/videos", headers=auth(ADMIN)).status_code == 200
        admin = postgres_db.rsplit("/", 1)[0] + "/postgres"
        with psycopg.connect(admin.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{postgres_db.rsplit("/", 1)[1]}" WITH (FORCE)')  # the database is gone
        health = client.get("/healthz")
        assert health.status_code == 503 and health.headers["retry-after"] == "5", health.text
        body = health.json()
        assert body["status"] == "unavailable" and body["checks"]["database"].startswith("error")
        assert body["checks"]["store"] == "ok"
        resp = client.get("/api/videos", headers=auth(ADMIN))
        assert resp.status_code == 503 and "database unavailable" in resp.json()["detail"], resp.text


def test_readiness_reports_a_broker_nobody_answers(tmp_path: Path) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    settings = make_settings(tmp_path / "data", queue="celery", broker_url=dead, workers=0)
    with service(settings) as client:
        health = client.get("/healthz")
        assert health.status_code == 503
        checks = health.json()["checks"]
        assert checks["database"] == "ok" and checks["store"] == "ok" and checks["broker"].startswith("error")


def test_a_job_whose_lease_lapsed_shows_stalled_and_its_worker(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", workers=0)
    with service(settings) as client:
        queue = client.app.state.services.queue
        job_id = queue.enqueue("process_video")
        claim = queue.claim(job_id, "edge-7:4242:t0")
        assert claim is not None
        body = client.get(f"/api/jobs/{job_id}", headers=auth(ADMIN)).json()
        assert (body["status"], body["worker"], body["stalled"], body["segments"]) == (
            "running",
            "edge-7:4242:t0",
            False,
            None,
        )
        with queue.db.begin() as session:
            session.execute(update(Job).where(Job.id == job_id).values(lease_until=utcnow() - timedelta(seconds=5)))
        body = client.get(f"/api/jobs/{job_id}", headers=auth(ADMIN)).json()
        assert body["stalled"] is True and body["worker"] == "edge-7:4242:t0"


def _cached(root: Path, video_id: str, size: int, used: float) -> Path:
    path = root / video_id / "original.mp4"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * size)
    os.utime(path, (used, used))
    os.utime(path.parent, (used, used))
    return path


def test_worker_cache_of_originals_follows_deletes_and_stays_bounded(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", video_cache_mb=1)
    services = Services.create(settings)
    try:
        with services.db.begin() as session:
            for vid in ("a" * 32, "b" * 32, "c" * 32):
                session.add(Video(id=vid, filename="x.mp4", raw_bucket="raw", raw_key=f"videos/{vid}/original.mp4"))
        root = settings.cache_dir / "videos"
        now = 1_000_000.0
        _cached(root, "a" * 32, 600_000, now - 3600)  # oldest: evicted for space
        _cached(root, "b" * 32, 600_000, now - 1800)
        _cached(root, "c" * 32, 600_000, now - CACHE_IN_USE_SECONDS / 2)  # in use: kept even over the limit
        _cached(root, "d" * 32, 10, now)  # no such video (deleted elsewhere): removed at once
        assert sweep_video_cache(services, now) == 3
        assert sorted(p.name for p in root.iterdir()) == ["c" * 32]
        assert sweep_video_cache(services, now) == 0
    finally:
        services.close()


def _documented(doc: str) -> set[tuple[str, str]]:
    """(method, path with `{}` for parameters) of every row of docs/service.md's endpoint tables."""
    found = set()
    for line in doc.replace("\\|", "/").splitlines():
        if not line.startswith("| `"):
            continue
        for methods, path in re.findall(r"`((?:[A-Z]+/?)+) (/[^`?\[ ]*)", line.split(" | ")[0]):
            for method in methods.split("/"):
                found.add((method, re.sub(r"\{[^}]*\}", "{}", path)))
    return found


def test_service_docs_list_every_endpoint(tmp_path: Path) -> None:
    from framemask.api.app import create_app

    spec = create_app(make_settings(tmp_path / "data")).openapi()
    documented = _documented((ROOT / "docs" / "service.md").read_text())
    missing = [
        f"{method.upper()} {path}"
        for path, ops in spec["paths"].items()
        for method in ops
        if (method.upper(), re.sub(r"\{[^}]*\}", "{}", path)) not in documented
    ]
    assert not missing, f"docs/service.md misses {missing}"
