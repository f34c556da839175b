"""A broker outage during an upload (issue 11, "operable"): the job row is the truth, the Celery message an
announcement. With Redis stopped the upload answers 201 (never 500), a client retrying with the same
`Idempotency-Key` gets the same video (never a second one), and once Redis is back the re-announce sweep
sends the job and a real Celery worker makes the video ready exactly once."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from support.api import (
    ADMIN,
    PEOPLE_VIDEO,
    auth,
    make_settings,
    service,
    settings_env,
    spawn_worker,
    stop_process,
    wait_for,
)
from support.servers import _need, _wait_port, free_port

from framemask.store.models import Job, ProcessedFrame, Video

pytestmark = [pytest.mark.services, pytest.mark.slow]


class Redis:
    """A redis-server that the test stops and starts again on the same port."""

    def __init__(self) -> None:
        _need("redis-server")
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        cmd = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_port(self.port, self.proc, 20, "redis-server")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None


@pytest.fixture
def redis() -> Iterator[Redis]:
    server = Redis()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _upload(client, key: str):
    with open(PEOPLE_VIDEO, "rb") as fh:
        files = {"file": (PEOPLE_VIDEO.name, fh, "video/mp4")}
        return client.post("/api/videos", files=files, headers={**auth(ADMIN), "Idempotency-Key": key})


def test_upload_during_a_broker_outage_is_201_and_ready_exactly_once(tmp_path: Path, redis: Redis) -> None:
    if not PEOPLE_VIDEO.is_file():
        pytest.fail(f"shared test media missing: {PEOPLE_VIDEO}")
    settings = make_settings(
        tmp_path / "data", workers=0, queue="celery", broker_url=redis.url, job_lease_seconds=3.0,
        reannounce_seconds=1.0,
    )  # fmt: skip
    with service(settings) as client:
        worker = spawn_worker(settings_env(settings), tmp_path / "worker.log")  # same SQLite and local store
        try:
            redis.stop()
            first = _upload(client, "retry-me-0001")
            assert first.status_code == 201, first.text
            created = first.json()
            again = _upload(client, "retry-me-0001")  # the client did not see the answer and retries
            assert again.status_code == 201, again.text
            assert again.json()["id"] == created["id"] and again.json()["job_id"] == created["job_id"]
            assert again.headers["idempotent-replayed"] == "true"
            time.sleep(2.0)  # sweeps run meanwhile and find no broker: the job stays queued
            assert client.get(f"/api/videos/{created['id']}", headers=auth(ADMIN)).json()["status"] == "queued"

            redis.start()
            video = wait_for(client, created["id"], timeout=240)
            assert video["status"] == "ready", (video, (tmp_path / "worker.log").read_text()[-3000:])
        finally:
            stop_process(worker)
        services = client.app.state.services
        with services.db.session() as session:
            assert session.scalar(select(func.count()).select_from(Video)) == 1
            jobs = session.scalars(select(Job).where(Job.video_id == created["id"])).all()
            frames = session.scalar(select(func.count()).where(ProcessedFrame.video_id == created["id"]))
        assert [(j.kind, j.status, j.attempts) for j in jobs] == [("process_video", "succeeded", 1)]
        assert frames == video["endSequence"]
        third = _upload(client, "retry-me-0001")  # a late retry still finds the same video
        assert third.status_code == 201 and third.json()["id"] == created["id"]
        assert third.json()["status"] == "ready"
