"""The scale-out configuration against real servers started by the test setup: PostgreSQL, Ceph radosgw
(S3) and Redis with Celery workers in their own processes (each with its own data dir, like other
machines). Same upload flow as the embedded tests, presigned redirects that expire, and a Celery
worker SIGKILLed mid-job whose job still finishes exactly once."""

from __future__ import annotations

import os
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select
from support.api import (
    ADMIN,
    PEOPLE_VIDEO,
    auth,
    celery_cluster,
    decode_image,
    new_token,
    upload,
    wait_for,
    wait_running,
)
from support.servers import fresh_database

from framemask.media import FrameIndex, FrameReader
from framemask.store.models import AuditLog, Job, ProcessedFrame
from framemask.store.objects import S3Store

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def pg_url(postgres_server: str):
    with fresh_database(postgres_server, "fm_services") as url:
        yield url


@pytest.fixture(scope="module")
def scaled(tmp_path_factory: pytest.TempPathFactory, pg_url: str, rgw_server, redis_server: str):
    """API in-process (enqueue only) + two Celery worker processes on other data dirs."""
    with celery_cluster(
        tmp_path_factory.mktemp("scaled"),
        database_url=pg_url,
        s3=rgw_server,
        broker_url=redis_server,
        job_lease_seconds=6.0,  # heartbeats every 2 s: a loaded 2-core CI box misses 3 s leases
        signed_url_seconds=3,
    ) as cluster:
        yield cluster


def _s3(settings) -> S3Store:
    return S3Store(settings.s3_endpoint, settings.s3_access_key, settings.s3_secret_key.get_secret_value())


def _processed_copy(settings, video_id: str, tmp_path: Path) -> Path:
    path = tmp_path / f"{video_id}.mp4"
    _s3(settings).get_file(settings.bucket_processed, f"videos/{video_id}/processed.mp4", path)
    return path


@pytest.fixture(scope="module")
def processed(scaled):
    client, _settings, _start, _root = scaled
    created = upload(client, PEOPLE_VIDEO).json()
    video = wait_for(client, created["id"])
    return created, video


def test_upload_flow_on_postgres_s3_celery(scaled, processed, tmp_path: Path) -> None:
    client, settings, _start, _root = scaled
    created, video = processed
    assert video["status"] == "ready", video
    assert video["endSequence"] == 71 and video["job"]["attempts"] == 1
    job = client.app.state.services.queue.get(created["job_id"])
    assert job is not None and job.worker is not None and job.worker.endswith(":celery")
    store = _s3(settings)
    assert store.list(settings.bucket_raw, f"videos/{created['id']}/") == [f"videos/{created['id']}/original.mp4"]
    assert store.list(settings.bucket_processed, f"videos/{created['id']}/") == [
        f"videos/{created['id']}/original.index",
        f"videos/{created['id']}/processed.index",
        f"videos/{created['id']}/processed.mp4",
    ]
    doc = client.get(f"/api/videos/{created['id']}/frames", headers=auth(ADMIN)).json()
    assert [e["seq"] for e in doc["sequence"]] == list(range(1, 72))
    assert sum(1 for e in doc["sequence"] if e.get("person")) > 50
    for variant, source in (
        ("original", PEOPLE_VIDEO),
        ("processed", _processed_copy(settings, created["id"], tmp_path)),
    ):
        resp = client.get(f"/api/videos/{created['id']}/frame?seq=42&variant={variant}&format=png", headers=auth(ADMIN))
        assert resp.status_code == 200
        with FrameReader(source) as reader:
            assert np.array_equal(decode_image(resp.content), reader.frame(42)), variant


def test_stream_redirects_to_a_presigned_url_that_expires(scaled, processed, tmp_path: Path) -> None:
    client, settings, _start, _root = scaled
    created, _video = processed
    vid = created["id"]
    data = _processed_copy(settings, vid, tmp_path).read_bytes()
    resp = client.get(f"/api/videos/{vid}/stream", headers=auth(ADMIN), follow_redirects=False)
    assert resp.status_code == 307
    url = resp.headers["location"]
    assert url.startswith(settings.s3_endpoint) and "X-Amz-Signature" in url and "X-Amz-Expires=3" in url
    with urllib.request.urlopen(urllib.request.Request(url, headers={"Range": "bytes=1000-1999"})) as got:
        assert got.status == 206 and got.read() == data[1000:2000]
        assert got.headers["Content-Range"] == f"bytes 1000-1999/{len(data)}"
        assert got.headers["Cache-Control"] == resp.headers["cache-control"]  # S3 answers as the API would
    time.sleep(4.5)
    with pytest.raises(urllib.error.HTTPError) as expired:
        urllib.request.urlopen(url)
    assert expired.value.code == 403
    viewer, editor = new_token(client, "viewer"), new_token(client, "editor")
    url_path = f"/api/videos/{vid}/stream?variant=original"
    assert client.get(url_path, headers=auth(viewer), follow_redirects=False).status_code == 403
    resp = client.get(url_path, headers=auth(editor), follow_redirects=False)
    assert resp.status_code == 307
    with urllib.request.urlopen(resp.headers["location"]) as got:
        assert got.read() == PEOPLE_VIDEO.read_bytes()
        assert "no-store" in got.headers["Cache-Control"]  # unmasked pixels: not kept by a browser or proxy
    with client.app.state.services.db.session() as session:
        actions = session.scalars(select(AuditLog.action).where(AuditLog.actor == "test editor")).all()
    assert "original.stream" in actions


def test_killed_celery_worker_job_finishes_exactly_once(scaled) -> None:
    client, settings, start, root = scaled
    services = client.app.state.services
    created = upload(client, PEOPLE_VIDEO, name="kill-me.mp4").json()
    job = wait_running(services, created["job_id"])
    pid = int(job.worker.split(":")[1])
    os.killpg(pid, signal.SIGKILL)  # the whole worker process, mid-render
    start("worker-3")  # keep two workers alive for the rest of the module
    deadline = time.monotonic() + 240
    while (job := services.queue.get(created["job_id"])).status not in ("succeeded", "failed"):
        assert time.monotonic() < deadline, "the job was not taken over"
        time.sleep(0.2)
    assert job.status == "succeeded", job.error
    assert (job.attempts, job.completions) == (2, 1)
    assert int(job.worker.split(":")[1]) != pid
    video = wait_for(client, created["id"], timeout=5)
    assert video["status"] == "ready" and video["endSequence"] == 71
    with services.db.session() as session:
        seqs = session.scalars(select(ProcessedFrame.seq).where(ProcessedFrame.video_id == created["id"])).all()
    assert sorted(seqs) == list(range(1, 72))
    path = root / "check.mp4"
    _s3(settings).get_file(settings.bucket_processed, f"videos/{created['id']}/processed.mp4", path)
    assert FrameIndex.build(path).end_sequence == 71


def test_s3_event_hook_and_delete_leave_no_object(scaled, make) -> None:
    client, settings, _start, _root = scaled
    store = _s3(settings)
    store.put_file(settings.bucket_raw, "cams/north gate.mp4", make("vfr"))
    event = {
        "EventName": "s3:ObjectCreated:Put",
        "Records": [
            {
                "eventName": "s3:ObjectCreated:CompleteMultipartUpload",
                "s3": {"bucket": {"name": settings.bucket_raw}, "object": {"key": "cams/north+gate.mp4"}},
            }
        ],
    }
    accepted = client.post("/api/hooks/s3", json=event, headers=auth(ADMIN)).json()["accepted"]
    assert len(accepted) == 1
    vid = accepted[0]["id"]
    video = wait_for(client, vid)
    assert video["status"] == "ready" and video["vfr"] is True
    client.get(f"/api/videos/{vid}/thumbnails?every=20", headers=auth(ADMIN))
    assert store.list(settings.bucket_thumbnails, f"videos/{vid}/")
    assert client.delete(f"/api/videos/{vid}", headers=auth(ADMIN)).status_code == 204
    assert not store.exists(settings.bucket_raw, "cams/north gate.mp4")
    for bucket in settings.buckets:
        assert store.list(bucket, f"videos/{vid}/") == []
    with client.app.state.services.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Job).where(Job.video_id == vid)) == 0
