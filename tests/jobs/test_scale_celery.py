"""Segments across Celery workers on the real scale-out setup the suite starts: PostgreSQL, Ceph radosgw
(S3), Redis, and two `framemask worker` processes (each with its own data dir, like other machines). A clip
cut into 3 segments is processed by both workers and joined frame-exact; a worker SIGKILLed mid-segment
costs that segment one more attempt elsewhere, and the video still completes exactly once with no segment
object left behind."""

from __future__ import annotations

import os
import signal
import time

import pytest
from support.api import (
    ADMIN,
    PEOPLE_VIDEO,
    auth,
    celery_cluster,
    upload,
    wait_for,
)
from support.servers import fresh_database
from test_scale_segments import SPANS, check_segmented_result

from framemask.store.objects import S3Store

pytestmark = [pytest.mark.services, pytest.mark.slow]


@pytest.fixture(scope="module")
def pg_url(postgres_server: str):
    with fresh_database(postgres_server, "fm_scale") as url:
        yield url


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, pg_url: str, rgw_server, redis_server: str):
    """API in-process (enqueue only) + two Celery workers; long videos fan out in segments of 0.5 s."""
    with celery_cluster(
        tmp_path_factory.mktemp("scale"),
        database_url=pg_url,
        s3=rgw_server,
        broker_url=redis_server,
        job_lease_seconds=6.0,  # heartbeats every 2 s: a loaded 2-core CI box misses 3 s leases
        segment_jobs=2,
        segment_seconds=0.5,
        redact_stride=2,
    ) as cluster:
        yield cluster


def _s3(settings) -> S3Store:
    return S3Store(settings.s3_endpoint, settings.s3_access_key, settings.s3_secret_key.get_secret_value())


def _objects(settings, video_id: str) -> dict[str, list[str]]:
    store = _s3(settings)
    return {b: store.list(b, f"videos/{video_id}/") for b in (settings.bucket_raw, settings.bucket_processed)}


def _expected(settings, video_id: str) -> dict[str, list[str]]:
    names = ("original.index", "processed.index", "processed.mp4")
    return {
        settings.bucket_raw: [f"videos/{video_id}/original.mp4"],
        settings.bucket_processed: [f"videos/{video_id}/{n}" for n in names],
    }


def _pid(worker: str | None) -> int:
    assert worker is not None and worker.endswith(":celery"), worker
    return int(worker.split(":")[1])


def test_two_celery_workers_share_the_segments_of_one_upload(cluster) -> None:
    client, settings, _start, root = cluster
    services = client.app.state.services
    created = upload(client, PEOPLE_VIDEO).json()
    assert wait_for(client, created["id"])["status"] == "ready"
    processed = root / f"{created['id']}.mp4"
    _s3(settings).get_file(settings.bucket_processed, f"videos/{created['id']}/processed.mp4", processed)
    children = check_segmented_result(client, services, settings, created, processed)
    assert len({_pid(c.worker) for c in children}) == 2, [c.worker for c in children]  # both took segments
    assert _pid(services.queue.get(created["job_id"]).worker) > 0  # the join ran on a worker too
    assert _objects(settings, created["id"]) == _expected(settings, created["id"])  # no segment object left


def test_a_worker_killed_mid_segment_costs_one_retry_and_the_video_completes_once(cluster) -> None:
    client, settings, start, root = cluster
    services = client.app.state.services
    created = upload(client, PEOPLE_VIDEO, name="kill-mid-segment.mp4").json()
    deadline = time.monotonic() + 120
    victim = None
    while victim is None:
        assert time.monotonic() < deadline, "no segment got going"
        running = [
            c for c in services.queue.children(created["job_id"]) if c.status == "running" and 5 <= c.progress <= 80
        ]
        victim = running[0] if running else None
        time.sleep(0.02)
    pid = _pid(victim.worker)
    os.killpg(pid, signal.SIGKILL)  # the whole worker process, mid-segment: no goodbye
    start("worker-3")  # two workers alive again
    deadline = time.monotonic() + 240
    while (job := services.queue.get(created["job_id"])).status not in ("succeeded", "failed"):
        assert time.monotonic() < deadline, "the segment was not taken over"
        time.sleep(0.2)
    assert job.status == "succeeded", job.error
    retried = next(c for c in services.queue.children(job.id) if c.id == victim.id)
    assert (retried.status, retried.attempts, retried.completions) == ("succeeded", 2, 1)
    assert _pid(retried.worker) != pid
    processed = root / f"{created['id']}.mp4"
    _s3(settings).get_file(settings.bucket_processed, f"videos/{created['id']}/processed.mp4", processed)
    children = check_segmented_result(client, services, settings, created, processed)
    assert sum(c.attempts for c in children) == len(SPANS) + 1
    assert _objects(settings, created["id"]) == _expected(settings, created["id"])
    body = client.get(f"/api/jobs/{created['job_id']}", headers=auth(ADMIN)).json()
    assert [s["attempts"] for s in body["segments"]] == [c.attempts for c in children]
