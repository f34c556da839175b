"""Helpers for the service tests: settings for a temp data dir, an in-process client, polling, tokens."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import SHARED_MEDIA
from fastapi.testclient import TestClient
from PIL import Image

from framemask.api.app import create_app
from framemask.settings import Settings
from framemask.store.models import Job, Video

ADMIN = "admin-token-for-tests-0123456789"
PEOPLE_VIDEO = SHARED_MEDIA / "TUD-Campus.mp4"  # 71 frames, 640x480, 4-6 walking people


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Embedded-default settings in a temp dir, tuned for quick tests (short leases, fast polling)."""
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "admin_token": ADMIN,
        "workers": 1,
        "job_lease_seconds": 10.0,
        "job_poll_seconds": 0.1,
        "job_retry_base_seconds": 0.2,
        "redact_stride": 4,
        # proxies have their own tests (tests/jobs/test_review_proxy.py); elsewhere a second encode per
        # long-GOP upload would only slow the suite down
        "review_proxy": False,
    }
    values.update(overrides)
    return Settings(**values)


@contextmanager
def service(settings: Settings) -> Iterator[TestClient]:
    """The app with its lifespan (migrations, buckets, embedded workers) running."""
    with TestClient(create_app(settings)) as client:
        yield client


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def new_token(client: TestClient, role: str) -> str:
    resp = client.post("/api/tokens", json={"role": role, "name": f"test {role}"}, headers=auth(ADMIN))
    assert resp.status_code == 201, resp.text
    return str(resp.json()["token"])


def upload(client: TestClient, path: Path, token: str = ADMIN, name: str | None = None) -> Any:
    with open(path, "rb") as fh:
        return client.post("/api/videos", files={"file": (name or path.name, fh, "video/mp4")}, headers=auth(token))


def upload_as_processed(client: TestClient, path: Path) -> str:
    """Upload `path` (workers off) and record a copy of it as the video's processed file: a video whose
    processed, original and stream paths all work without running the detectors. Its id."""
    resp = upload(client, path)
    assert resp.status_code == 201, resp.text
    vid: str = resp.json()["id"]
    services = client.app.state.services
    with services.db.begin() as session:
        video = session.get(Video, vid)
        raw = services.store.local_path(video.raw_bucket, video.raw_key)
        video.processed_key = f"videos/{vid}/processed.mp4"
        services.store.put_file(services.settings.bucket_processed, video.processed_key, raw)
    return vid


def upload_processed(client: TestClient, path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Upload `path` as admin and wait for its processing: (the 201 body, the video's final JSON)."""
    resp = upload(client, path)
    assert resp.status_code == 201, resp.text
    created = resp.json()
    assert resp.headers["location"] == f"/api/videos/{created['id']}"
    return created, wait_for(client, created["id"])


def wait_for(client: TestClient, video_id: str, timeout: float = 240.0, token: str = ADMIN) -> dict[str, Any]:
    """Poll until the video is ready or failed; returns its JSON."""
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(f"/api/videos/{video_id}", headers=auth(token)).json()
        if body["status"] in ("ready", "failed") or time.monotonic() > deadline:
            return body
        time.sleep(0.2)


def wait_job(client: TestClient, job_id: str, timeout: float = 180.0) -> dict[str, Any]:
    """Poll `GET /api/jobs/{id}` until the job succeeded or failed; returns its JSON."""
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = client.get(f"/api/jobs/{job_id}", headers=auth(ADMIN)).json()
        if job["status"] in ("succeeded", "failed") or time.monotonic() > deadline:
            return job
        time.sleep(0.2)


def decode_image(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def stored_files(data_dir: Path) -> list[str]:
    """Every object in the local store (relative paths), i.e. what a DELETE must remove."""
    root = data_dir / "objects"
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) if root.is_dir() else []


def settings_env(settings: Settings) -> dict[str, str]:
    """The FRAMEMASK_* environment that reproduces `settings` in a subprocess (a worker elsewhere)."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAMEMASK_")}
    for name, value in settings.model_dump(exclude_none=True).items():
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        if isinstance(value, tuple | list):
            value = json.dumps(list(value))
        env[f"FRAMEMASK_{name.upper()}"] = str(value)
    env["FRAMEMASK_DATABASE_URL"] = settings.db_url
    env["FRAMEMASK_DATA_DIR"] = str(Path(settings.data_dir).resolve())
    return env


def spawn_worker(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """`framemask worker` in its own process (so a test can SIGKILL it)."""
    cli = Path(sys.executable).with_name("framemask")
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [str(cli), "-v", "worker", "--concurrency", "1"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_running(services, job_id: str, timeout: float = 120.0, min_progress: float = 6.0) -> Job:
    """Poll until the job is mid-render (past probing, progress recorded) and return it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = services.queue.get(job_id)
        assert job is not None
        if job.status == "running" and job.progress >= min_progress:
            return job
        assert job.status in ("queued", "running"), (job.status, job.error)
        time.sleep(0.02)
    pytest.fail(f"job {job_id} never got going")


@contextmanager
def celery_cluster(root: Path, *, database_url: str, s3: Any, broker_url: str, **overrides: Any) -> Iterator[Any]:
    """The API in-process (enqueue only) and two Celery worker processes on their own data dirs, sharing
    PostgreSQL, the S3 server `s3` (fresh buckets) and the broker. Yields (client, settings, start, root);
    `start(name)` adds a worker."""
    import uuid

    suffix = uuid.uuid4().hex[:6]
    settings = make_settings(
        root / "api",
        workers=0,
        queue="celery",
        broker_url=broker_url,
        database_url=database_url,
        s3_endpoint=s3.endpoint,
        s3_access_key=s3.access_key,
        s3_secret_key=s3.secret_key,
        bucket_raw=f"raw-{suffix}",
        bucket_processed=f"processed-{suffix}",
        bucket_thumbnails=f"thumbs-{suffix}",
        **overrides,
    )
    workers: dict[str, subprocess.Popen[bytes]] = {}

    def start(name: str) -> subprocess.Popen[bytes]:
        env = {**settings_env(settings), "FRAMEMASK_DATA_DIR": str(root / name)}
        workers[name] = spawn_worker(env, root / f"{name}.log")
        return workers[name]

    with service(settings) as client:
        start("worker-1")
        start("worker-2")
        try:
            yield client, settings, start, root
        finally:
            for proc in workers.values():
                stop_process(proc)
