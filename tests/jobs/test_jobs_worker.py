"""A worker killed mid-job: its lease lapses, another worker takes the job over, and the job's
results land exactly once. Embedded queue (SQLite job table, standalone `framemask worker` processes)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from sqlalchemy import func, select
from support.api import (
    PEOPLE_VIDEO,
    make_settings,
    service,
    settings_env,
    spawn_worker,
    stop_process,
    upload,
    wait_for,
    wait_running,
)

from framemask.media import FrameIndex
from framemask.store.models import Job, ProcessedFrame


def kill_and_take_over(client, settings, job_id: str, tmp_path: Path) -> Job:
    services = client.app.state.services
    env = settings_env(settings)
    first = spawn_worker(env, tmp_path / "worker-a.log")
    second = None
    try:
        job = wait_running(services, job_id)
        assert job.worker is not None and f":{first.pid}" in job.worker and job.attempts == 1
        os.killpg(first.pid, signal.SIGKILL)  # no cleanup, no goodbye: the lease must expire
        first.wait()
        second = spawn_worker(env, tmp_path / "worker-b.log")
        deadline = time.monotonic() + 240
        while (job := services.queue.get(job_id)).status not in ("succeeded", "failed"):
            assert time.monotonic() < deadline, "the job was not taken over"
            time.sleep(0.2)
        assert job.status == "succeeded", (job.error, (tmp_path / "worker-b.log").read_text()[-3000:])
        assert f":{second.pid}" in (job.worker or "")
        return job
    finally:
        stop_process(first)
        if second is not None:
            stop_process(second)


def test_killed_worker_job_finishes_exactly_once(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", workers=0, job_lease_seconds=2.0, redact_stride=1)
    with service(settings) as client:
        created = upload(client, PEOPLE_VIDEO).json()
        job = kill_and_take_over(client, settings, created["job_id"], tmp_path)
        assert (job.attempts, job.completions, job.progress, job.error) == (2, 1, 100.0, None)
        video = wait_for(client, created["id"], timeout=5)
        assert video["status"] == "ready" and video["endSequence"] == 71
        services = client.app.state.services
        with services.db.session() as session:
            seqs = session.scalars(select(ProcessedFrame.seq).where(ProcessedFrame.video_id == created["id"])).all()
            assert sorted(seqs) == list(range(1, 72))  # every frame once, no duplicates from the dead attempt
            assert session.scalar(select(func.count()).select_from(Job)) == 1
        processed = services.store.local_path(settings.bucket_processed, f"videos/{created['id']}/processed.mp4")
        assert FrameIndex.build(processed).end_sequence == 71
        leftovers = list((settings.cache_dir / "jobs").glob("*")) if (settings.cache_dir / "jobs").exists() else []
        assert len(leftovers) <= 1  # only the killed attempt's scratch dir can remain


def test_a_starting_worker_builds_the_default_detectors_before_its_first_job() -> None:
    from framemask.jobs.worker import warm_up
    from framemask.redact import pipeline

    pipeline._BUILT.clear()
    warm_up().join(120)
    (built,) = pipeline._BUILT.values()
    first_job = pipeline.default_detectors(("person", "face"))
    assert [id(d) for d in first_job] == [id(d) for d in built]  # served by the warm-up's detectors
