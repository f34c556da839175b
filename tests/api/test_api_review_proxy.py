"""The service makes a review proxy of a long-GOP original after processing it, and serves the editor's
original frames from it: the same frame (number and time), audited like the original, deleted with the video."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from sqlalchemy import delete, func, select
from support.api import (
    ADMIN,
    auth,
    decode_image,
    make_settings,
    service,
    settings_env,
    stored_files,
    upload_processed,
    wait_job,
)
from support.videos import VideoSpec, frame_number, make_video, psnr, vfr_times

from framemask.jobs.proxy_step import PROXY_KIND, queue_missing_proxies, queue_proxy
from framemask.jobs.run import AfterCommit, TaskRun
from framemask.media import FrameIndex, FrameReader
from framemask.store.models import AuditLog, Job, Video


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("proxy")
    with service(make_settings(root / "data", review_proxy=True)) as client:
        yield client, root


def _jobs(client, vid: str) -> list[Job]:
    with client.app.state.services.db.session() as session:
        return list(session.scalars(select(Job).where(Job.video_id == vid).order_by(Job.created_at)))


def _settled(client, vid: str) -> None:
    """Wait for every job of the video (its processing, then its proxy)."""
    for job in _jobs(client, vid):
        wait_job(client, job.id)


def test_a_long_gop_original_gets_a_proxy_that_serves_its_frames(svc) -> None:
    client, root = svc
    src = make_video(root / "phone.mp4", VideoSpec(times=vfr_times(), gop=250, bframes=2))
    created, video = upload_processed(client, src)
    vid = created["id"]
    assert video["status"] == "ready"
    proxy_jobs = [j for j in _jobs(client, vid) if j.kind == PROXY_KIND]
    assert len(proxy_jobs) == 1
    assert wait_job(client, proxy_jobs[0].id)["status"] == "succeeded"
    shown = client.get(f"/api/videos/{vid}", headers=auth(ADMIN)).json()
    # the video's job stays its processing (the proxy job came later, as background work)
    assert shown["proxy"] is True and shown["job"]["id"] == created["job_id"]
    assert shown["job"]["kind"] == "process_video"
    services = client.app.state.services
    with services.db.session() as session:
        row = session.get(Video, vid)
        assert row is not None and row.proxy_key == f"videos/{vid}/proxy.mp4"
        raw = services.store.local_path(row.raw_bucket, row.raw_key)

    with FrameReader(raw) as exact:
        for seq in (1, 37, 64, 100):
            url = f"/api/videos/{vid}/frame?seq={seq}&variant=original&format=png"
            proxied = client.get(url, headers=auth(ADMIN))
            decoded = client.get(url + "&exact=true", headers=auth(ADMIN))
            assert proxied.status_code == decoded.status_code == 200
            assert proxied.headers["X-Frame-Source"] == "proxy" and decoded.headers["X-Frame-Source"] == "original"
            assert proxied.headers["X-Frame-Time-Ms"] == decoded.headers["X-Frame-Time-Ms"]
            truth = exact.frame(seq)
            assert np.array_equal(decode_image(decoded.content), truth)  # exact=true: the original's own pixels
            shown = decode_image(proxied.content)
            assert frame_number(shown) == seq - 1 and psnr(shown, truth) > 38.0
        # a time picks the same frame from either file (the 10 fps section: frame 31 is on screen 1040 ms in)
        by_time = [
            client.get(f"/api/videos/{vid}/frame?ms=1040&variant=original{x}", headers=auth(ADMIN))
            for x in ("", "&exact=true")
        ]
        assert [r.headers["X-Frame-Seq"] for r in by_time] == ["31", "31"]
    with services.db.session() as session:
        audited = session.scalar(
            select(func.count()).where(AuditLog.video_id == vid, AuditLog.action == "original.frame")
        )
    assert audited == 10  # every original frame shown is audited, from the proxy or not
    thumbs = client.get(f"/api/videos/{vid}/thumbnails?every=25&variant=original", headers=auth(ADMIN))
    assert thumbs.status_code == 200 and thumbs.headers["X-Thumbnail-Seqs"] == "1,26,51,76"

    assert client.delete(f"/api/videos/{vid}", headers=auth(ADMIN)).status_code == 204
    assert [f for f in stored_files(root / "data") if vid in f] == []


def test_a_short_gop_original_is_served_as_it_is(svc) -> None:
    client, root = svc
    src = make_video(root / "short.mp4", VideoSpec(n=40, gop=15))
    created, video = upload_processed(client, src)
    vid = created["id"]
    assert video["status"] == "ready"
    assert [j.kind for j in _jobs(client, vid)] == ["process_video"]
    assert video["proxy"] is False
    resp = client.get(f"/api/videos/{vid}/frame?seq=20&variant=original", headers=auth(ADMIN))
    assert resp.status_code == 200 and resp.headers["X-Frame-Source"] == "original"


def test_the_proxy_job_joins_a_finalize_that_tidies_up_after_commit(svc) -> None:
    """A segmented run's finalize already carries an after-commit step (deleting its segment objects): the
    proxy job is queued in the same transaction and announced after that step, which still runs once."""
    client, root = svc
    src = make_video(root / "segmented.mp4", VideoSpec(n=40, gop=40))
    created, _video = upload_processed(client, src)
    vid = created["id"]
    services = client.app.state.services
    index = FrameIndex.build(src)
    wrote, tidied = [], []
    earlier = AfterCommit(lambda session: wrote.append(vid), lambda: tidied.append(vid))
    run = TaskRun(services, "job-under-test", 1, vid, {}, lambda *_: None, root / "work")
    joined = queue_proxy(run, earlier, index)
    before = {j.id for j in _jobs(client, vid)}
    with services.db.begin() as session:
        joined(session)
    joined.after_commit()
    added = [j for j in _jobs(client, vid) if j.id not in before]
    assert wrote == tidied == [vid]
    assert [j.kind for j in added] == [PROXY_KIND]
    assert wait_job(client, added[0].id)["status"] == "succeeded"
    # a short-GOP original queues nothing and hands the finalize back as it was
    short = FrameIndex.build(make_video(root / "short2.mp4", VideoSpec(n=40, gop=10)))
    assert queue_proxy(run, earlier, short) is earlier


def test_db_proxies_queues_the_proxies_older_videos_lack(svc) -> None:
    """Videos processed before proxies existed (here: a proxy forgotten by hand) get theirs from `framemask db
    proxies`; a short-GOP original gets none, and a second run queues nothing while the first jobs are pending."""
    client, root = svc
    services = client.app.state.services
    old = upload_processed(client, make_video(root / "old.mp4", VideoSpec(n=45, gop=45)))[0]["id"]
    short = upload_processed(client, make_video(root / "old_short.mp4", VideoSpec(n=45, gop=9)))[0]["id"]
    _settled(client, old)
    with services.db.begin() as session:  # as every video processed before this release: no proxy, no proxy job
        for row in session.scalars(select(Video).where(Video.proxy_key.is_not(None))):
            row.proxy_key = None
        session.execute(delete(Job).where(Job.kind == PROXY_KIND))
    env = settings_env(services.settings)
    done = subprocess.run(
        [sys.executable, "-m", "framemask", "db", "proxies"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    queued = int(done.stdout.split()[1])
    added = [j for j in _jobs(client, old) if j.kind == PROXY_KIND]
    assert len(added) == 1 and [j.kind for j in _jobs(client, short)] == ["process_video"]
    assert queued >= 1  # this video's, and those of the module's other long-GOP uploads
    again = subprocess.run(
        [sys.executable, "-m", "framemask", "db", "proxies"], env=env, capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 0, again.stderr
    assert len([j for j in _jobs(client, old) if j.kind == PROXY_KIND]) == 1
    assert wait_job(client, added[0].id)["status"] == "succeeded"
    with services.db.session() as session:
        assert session.get(Video, old).proxy_key == f"videos/{old}/proxy.mp4"
        assert session.get(Video, short).proxy_key is None
    # a proxy job that succeeded without a proxy (its timeline at odds with the original's) is not asked again
    with services.db.begin() as session:
        session.get(Video, old).proxy_key = None
    queue_missing_proxies(services)
    assert len([j for j in _jobs(client, old) if j.kind == PROXY_KIND]) == 1


def test_a_lost_proxy_falls_back_to_the_original(svc) -> None:
    """A proxy whose object is gone (a storage fault) costs speed, not frames: the original itself is read."""
    client, root = svc
    src = make_video(root / "lost.mp4", VideoSpec(n=45, gop=45))
    vid = upload_processed(client, src)[0]["id"]
    _settled(client, vid)
    services = client.app.state.services
    with services.db.session() as session:
        key = session.get(Video, vid).proxy_key
    assert key is not None
    services.store.delete(services.settings.bucket_processed, key)
    resp = client.get(f"/api/videos/{vid}/frame?seq=30&variant=original&format=png", headers=auth(ADMIN))
    assert resp.status_code == 200 and resp.headers["X-Frame-Source"] == "original"
    assert frame_number(decode_image(resp.content)) == 29
    sprite = client.get(f"/api/videos/{vid}/thumbnails?every=20&width=64&variant=original", headers=auth(ADMIN))
    assert sprite.status_code == 200 and sprite.headers["X-Thumbnail-Seqs"] == "1,21,41"
    processed = client.get(f"/api/videos/{vid}/frame?seq=30&format=png", headers=auth(ADMIN))
    assert processed.status_code == 200 and processed.headers["X-Frame-Source"] == "processed"


def test_a_frame_past_the_end_is_refused_from_the_proxy_too(svc) -> None:
    client, root = svc
    vid = upload_processed(client, make_video(root / "ends.mp4", VideoSpec(n=40, gop=40)))[0]["id"]
    _settled(client, vid)
    url = f"/api/videos/{vid}/frame?variant=original&seq="
    assert client.get(url + "40", headers=auth(ADMIN)).headers["X-Frame-Source"] == "proxy"
    past = client.get(url + "41", headers=auth(ADMIN))
    assert past.status_code == 422 and "41" in past.json()["detail"]


def test_a_replayed_upload_answers_with_its_processing_job_not_the_proxy_job(svc) -> None:
    """A client retrying an idempotent upload after the video was processed (and its proxy queued) is told the
    job its upload queued, as the first answer said."""
    client, root = svc
    src = make_video(root / "retried.mp4", VideoSpec(n=45, gop=45))

    def post():
        with open(src, "rb") as fh:
            files = {"file": ("retried.mp4", fh, "video/mp4")}
            return client.post("/api/videos", files=files, headers={**auth(ADMIN), "Idempotency-Key": "retry-proxy-1"})

    created = post().json()
    _settled(client, created["id"])
    assert [j.kind for j in _jobs(client, created["id"])] == ["process_video", PROXY_KIND]
    again = post()
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json()["job_id"] == created["job_id"] and again.json()["status"] == "ready"
