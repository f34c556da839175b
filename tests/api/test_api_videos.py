"""The embedded default end to end: upload -> ready -> boxes -> exact frames -> Range stream -> delete.

One real video with people (TUD-Campus) is processed once per module by the real pipeline
(`framemask.redact.anonymize_file`, real detectors) in the app's own worker thread.
"""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import ffprobe_count
from sqlalchemy import func, select
from support.api import (
    ADMIN,
    PEOPLE_VIDEO,
    auth,
    decode_image,
    make_settings,
    new_token,
    service,
    stored_files,
    upload,
    upload_processed,
    wait_for,
)

from framemask.media import FrameIndex, FrameReader
from framemask.store.models import AuditLog, Job, ProcessedFrame


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory):
    """A running service with the people video uploaded and processed."""
    if not PEOPLE_VIDEO.is_file():
        pytest.fail(f"shared test media missing: {PEOPLE_VIDEO}")
    data = tmp_path_factory.mktemp("svc") / "data"
    settings = make_settings(data)
    with service(settings) as client:
        created, video = upload_processed(client, PEOPLE_VIDEO)
        yield client, settings, created, video


def _services(client):
    return client.app.state.services


def test_upload_is_processed_to_ready(svc) -> None:
    client, _settings, created, video = svc
    assert created["status"] == "queued" and len(created["id"]) == 32
    assert video["status"] == "ready", video
    assert video["endSequence"] == ffprobe_count(PEOPLE_VIDEO) == 71
    assert (video["width"], video["height"], video["rotation"]) == (640, 480, 0)
    assert video["sample_aspect_ratio"] == "1:1"  # square pixels, as probed
    assert video["processed"] is True and video["error"] is None
    job = video["job"]
    assert job["id"] == created["job_id"]
    assert (job["status"], job["progress"], job["attempts"], job["error"]) == ("succeeded", 100.0, 1, None)
    listing = client.get("/api/videos", headers=auth(ADMIN)).json()
    assert [v["id"] for v in listing["items"]] == [created["id"]] and listing["total"] == 1
    polled = client.get(f"/api/jobs/{job['id']}", headers=auth(ADMIN)).json()
    assert polled["status"] == "succeeded" and polled["video_id"] == created["id"]


def test_boxes_in_the_seed_format(svc) -> None:
    client, _settings, created, _video = svc
    doc = client.get(f"/api/videos/{created['id']}/frames", headers=auth(ADMIN)).json()
    assert doc["endSequence"] == 71
    assert [entry["seq"] for entry in doc["sequence"]] == list(range(1, 72))
    with_people = [e for e in doc["sequence"] if e.get("person")]
    assert len(with_people) > 50  # 4-6 people walk through every frame
    box = with_people[0]["person"][0]
    assert set(box) - {"filled"} == {"x1", "x2", "y1", "y2", "track", "score"} and 0 <= box["x1"] < box["x2"] <= 640
    assert isinstance(box["track"], int) and 0 < box["score"] <= 1
    part = client.get(f"/api/videos/{created['id']}/frames?from=10&to=12", headers=auth(ADMIN)).json()
    assert part["sequence"] == doc["sequence"][9:12]
    with _services(client).db.session() as session:
        count = session.scalar(select(func.count()).where(ProcessedFrame.video_id == created["id"]))
    assert count == 71


def _processed_path(client, video_id: str) -> Path:
    services = _services(client)
    path = services.store.local_path(services.settings.bucket_processed, f"videos/{video_id}/processed.mp4")
    assert path is not None and path.is_file()
    return path


@pytest.mark.parametrize("seq", [1, 37, 71])
def test_exact_frames_match_the_frame_reader(svc, seq: int) -> None:
    client, _settings, created, _video = svc
    vid = created["id"]
    resp = client.get(f"/api/videos/{vid}/frame?seq={seq}&variant=original&format=png", headers=auth(ADMIN))
    assert resp.status_code == 200 and resp.headers["content-type"] == "image/png"
    assert resp.headers["x-frame-seq"] == str(seq)
    with FrameReader(PEOPLE_VIDEO) as reader:
        expected = reader.frame(seq)
        assert float(resp.headers["x-frame-time-ms"]) == pytest.approx(reader.index.time_of(seq), abs=1e-3)
    assert np.array_equal(decode_image(resp.content), expected)
    resp = client.get(f"/api/videos/{vid}/frame?seq={seq}&variant=processed&format=png", headers=auth(ADMIN))
    with FrameReader(_processed_path(client, vid)) as reader:
        assert np.array_equal(decode_image(resp.content), reader.frame(seq))


def test_frame_by_time_and_compressed_formats(svc) -> None:
    client, _settings, created, _video = svc
    vid = created["id"]
    index = FrameIndex.build(PEOPLE_VIDEO)
    for ms in (0.0, 39.9, 40.0, 1234.5, 99999.0):
        resp = client.get(f"/api/videos/{vid}/frame?ms={ms}&format=webp&width=320", headers=auth(ADMIN))
        assert resp.status_code == 200 and resp.headers["content-type"] == "image/webp"
        assert int(resp.headers["x-frame-seq"]) == index.frame_at(ms)
        assert decode_image(resp.content).shape == (240, 320, 3)
    resp = client.get(f"/api/videos/{vid}/frame?seq=5", headers=auth(ADMIN))
    assert resp.headers["content-type"] == "image/jpeg" and decode_image(resp.content).shape == (480, 640, 3)


def test_masked_regions_differ_from_the_original(svc) -> None:
    client, _settings, created, _video = svc
    vid = created["id"]
    doc = client.get(f"/api/videos/{vid}/frames?from=20&to=20", headers=auth(ADMIN)).json()
    box = max(doc["sequence"][0]["person"], key=lambda b: (b["x2"] - b["x1"]) * (b["y2"] - b["y1"]))
    frames = [
        decode_image(client.get(f"/api/videos/{vid}/frame?seq=20&variant={v}&format=png", headers=auth(ADMIN)).content)
        for v in ("original", "processed")
    ]
    diff = np.abs(frames[0].astype(int) - frames[1].astype(int)).mean(axis=2)
    inside = diff[box["y1"] : box["y2"], box["x1"] : box["x2"]].mean()
    assert inside > 3 * diff.mean() / 2 and inside > 5.0


def test_index_matches_the_frame_index(svc) -> None:
    client, _settings, created, _video = svc
    doc = client.get(f"/api/videos/{created['id']}/index", headers=auth(ADMIN)).json()
    index = FrameIndex.build(PEOPLE_VIDEO)
    assert doc["endSequence"] == index.end_sequence == len(doc["frames"])
    assert [f["seq"] for f in doc["frames"]] == list(range(1, 72))
    assert [f["time_ms"] for f in doc["frames"]] == pytest.approx(index.time_ms.tolist(), abs=1e-3)
    assert [f["key"] for f in doc["frames"]] == index.keys.tolist()
    part = client.get(f"/api/videos/{created['id']}/index?from=70", headers=auth(ADMIN)).json()
    assert [f["seq"] for f in part["frames"]] == [70, 71]


def test_range_stream_returns_exact_bytes(svc) -> None:
    client, _settings, created, _video = svc
    vid = created["id"]
    data = _processed_path(client, vid).read_bytes()
    url = f"/api/videos/{vid}/stream"
    resp = client.get(url, headers={**auth(ADMIN), "Range": "bytes=100-1099"})
    assert resp.status_code == 206 and resp.content == data[100:1100]
    assert resp.headers["content-range"] == f"bytes 100-1099/{len(data)}"
    assert resp.headers["content-type"] == "video/mp4" and resp.headers["accept-ranges"] == "bytes"
    resp = client.get(url, headers={**auth(ADMIN), "Range": f"bytes={len(data) - 10}-"})
    assert resp.status_code == 206 and resp.content == data[-10:]
    resp = client.get(url, headers={**auth(ADMIN), "Range": "bytes=-25"})
    assert resp.status_code == 206 and resp.content == data[-25:]
    resp = client.get(url, headers={**auth(ADMIN), "Range": f"bytes={len(data)}-"})
    assert resp.status_code == 416 and resp.headers["content-range"] == f"bytes */{len(data)}"
    resp = client.get(url, headers=auth(ADMIN))
    assert resp.status_code == 200 and resp.content == data
    head = client.head(url, headers=auth(ADMIN))
    assert head.status_code == 200 and int(head.headers["content-length"]) == len(data)
    original = client.get(f"{url}?variant=original", headers={**auth(ADMIN), "Range": "bytes=0-15"})
    assert original.status_code == 206 and original.content == PEOPLE_VIDEO.read_bytes()[:16]


def test_signed_stream_url_for_video_elements(svc) -> None:
    client, _settings, created, _video = svc
    vid = created["id"]
    signed = client.get(f"/api/videos/{vid}/stream/url", headers=auth(ADMIN)).json()
    assert signed["expires_in"] == 300
    resp = client.get(signed["url"], headers={"Range": "bytes=0-9"})  # no Authorization header
    assert resp.status_code == 206 and resp.content == _processed_path(client, vid).read_bytes()[:10]
    assert client.get(f"/api/videos/{vid}/stream?variant=original&expires=9999999999&signature=00").status_code == 401
    tampered = signed["url"].replace("variant=processed", "variant=original")
    assert client.get(tampered).status_code == 401


def test_thumbnail_sprite(svc) -> None:
    client, settings, created, _video = svc
    vid = created["id"]
    resp = client.get(f"/api/videos/{vid}/thumbnails?every=5&width=64", headers=auth(ADMIN))
    assert resp.status_code == 200 and resp.headers["content-type"] == "image/jpeg"
    seqs = list(range(1, 72, 5))
    assert resp.headers["x-thumbnail-seqs"] == ",".join(map(str, seqs))
    assert resp.headers["x-thumbnail-count"] == str(len(seqs)) == "15"
    tile_h = int(resp.headers["x-thumbnail-height"])
    assert tile_h == 48 and resp.headers["x-thumbnail-columns"] == "10"
    assert decode_image(resp.content).shape == (2 * tile_h, 10 * 64, 3)
    assert stored_files(settings.data_dir).count(f"thumbnails/videos/{vid}/sprite-sdr-processed-5-64.jpg") == 1
    again = client.get(f"/api/videos/{vid}/thumbnails?every=5&width=64", headers=auth(ADMIN))
    assert again.content == resp.content and again.headers["x-thumbnail-height"] == "48"


def test_sprites_drawn_before_tone_mapping_are_not_served(svc) -> None:
    """A sprite cached under the key format before HDR tiles were tone-mapped may be dark: it is drawn again."""
    client, settings, created, _video = svc
    vid = created["id"]
    old = settings.data_dir / "objects" / "thumbnails" / "videos" / vid / "sprite-processed-7-64.jpg"
    old.parent.mkdir(parents=True, exist_ok=True)
    old.write_bytes(b"an old sprite")
    resp = client.get(f"/api/videos/{vid}/thumbnails?every=7&width=64", headers=auth(ADMIN))
    assert resp.status_code == 200 and resp.content != b"an old sprite"
    assert decode_image(resp.content).ndim == 3


def _sse_events(text: str) -> list[tuple[str, dict]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def test_live_progress_over_sse_and_concurrent_uploads(svc, make) -> None:
    client, _settings, _created, _video = svc
    names = ["cfr", "vfr", "rotated"]
    results: dict[str, dict] = {}

    def send(name: str) -> None:
        results[name] = upload(client, make(name)).json()

    threads = [threading.Thread(target=send, args=(n,)) for n in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({r["id"] for r in results.values()}) == 3
    with client.stream("GET", f"/api/jobs/{results['cfr']['job_id']}/events", headers=auth(ADMIN)) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        events = _sse_events(resp.read().decode())
    assert events[-1] == ("end", {"status": "succeeded"})
    progress = [data["progress"] for kind, data in events if kind == "progress"]
    assert progress == sorted(progress) and progress[-1] == 100.0
    for name in names:
        video = wait_for(client, results[name]["id"])
        assert video["status"] == "ready", video
        assert video["endSequence"] == ffprobe_count(make(name))
    with _services(client).db.session() as session:
        assert session.scalar(select(func.sum(Job.completions))) == 4  # every job finished exactly once


def test_original_access_is_audited_and_viewers_are_refused(svc) -> None:
    client, _settings, created, _video = svc
    vid = created["id"]
    viewer, editor = new_token(client, "viewer"), new_token(client, "editor")
    for path in (
        "frame?seq=3&variant=original",
        "stream?variant=original",
        "thumbnails?variant=original",
        "stream/url?variant=original",
    ):
        assert client.get(f"/api/videos/{vid}/{path}", headers=auth(viewer)).status_code == 403, path
    assert client.get(f"/api/videos/{vid}/frame?seq=3", headers=auth(viewer)).status_code == 200
    assert client.get(f"/api/videos/{vid}/stream", headers={**auth(viewer), "Range": "bytes=0-1"}).status_code == 206
    resp = client.get(f"/api/videos/{vid}/frame?seq=3&variant=original", headers=auth(editor))
    assert resp.status_code == 200
    entries = client.get(f"/api/audit?video_id={vid}&action=original.frame", headers=auth(ADMIN)).json()
    assert entries[0]["actor"] == "test editor" and entries[0]["role"] == "editor"
    assert entries[0]["detail"] == {"seq": 3, "ms": None}
    with _services(client).db.session() as session:
        denied = session.scalars(select(AuditLog).where(AuditLog.actor == "test viewer")).all()
    assert denied == []  # refused requests never touched an original


def test_s3_event_hook_ingests_objects_landing_in_the_raw_bucket(svc, make, tmp_path: Path) -> None:
    client, settings, _created, _video = svc
    services = _services(client)
    services.store.put_file(settings.bucket_raw, "incoming/cam 1.mp4", make("cfr"))
    event = {
        "Records": [
            {
                "eventName": "s3:ObjectCreated:Put",
                "s3": {"bucket": {"name": "raw"}, "object": {"key": "incoming/cam+1.mp4"}},
            },
            {"eventName": "s3:ObjectCreated:Put", "s3": {"bucket": {"name": "other"}, "object": {"key": "x.mp4"}}},
            {"eventName": "s3:ObjectRemoved:Delete", "s3": {"bucket": {"name": "raw"}, "object": {"key": "y.mp4"}}},
        ]
    }
    viewer = new_token(client, "viewer")
    assert client.post("/api/hooks/s3", json=event, headers=auth(viewer)).status_code == 403
    assert client.post("/api/hooks/s3", json=event).status_code == 401
    resp = client.post("/api/hooks/s3", json=event, headers=auth(ADMIN))
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert [a["key"] for a in body["accepted"]] == ["incoming/cam 1.mp4"] and len(body["ignored"]) == 2
    video = wait_for(client, body["accepted"][0]["id"])
    assert video["status"] == "ready" and video["filename"] == "cam 1.mp4" and video["endSequence"] == 90
    again = client.post("/api/hooks/s3", json=event, headers=auth(ADMIN)).json()
    assert again["accepted"][0]["note"] == "already known"
    bad = client.post("/api/hooks/s3", json={"nope": 1}, headers=auth(ADMIN))
    assert bad.status_code == 422


def test_delete_removes_rows_and_every_object(svc, make) -> None:
    client, settings, _created, _video = svc
    vid = upload(client, make("cfr"), name="to-delete.mp4").json()["id"]
    assert wait_for(client, vid)["status"] == "ready"
    client.get(f"/api/videos/{vid}/thumbnails?every=30", headers=auth(ADMIN))
    client.get(f"/api/videos/{vid}/frame?seq=2&variant=original", headers=auth(ADMIN))
    before = stored_files(settings.data_dir)
    mine = [f for f in before if vid in f]
    # original, processed, the index of each, thumbnail sprite, plus the event key frames (thumbnails bucket)
    assert len([f for f in mine if "/events/" not in f]) == 5
    assert any("/events/" in f for f in mine)
    editor = new_token(client, "editor")
    assert client.delete(f"/api/videos/{vid}", headers=auth(editor)).status_code == 204
    assert stored_files(settings.data_dir) == [f for f in before if vid not in f]
    assert not (settings.cache_dir / "videos" / vid).exists()
    assert client.get(f"/api/videos/{vid}", headers=auth(ADMIN)).status_code == 404
    assert client.delete(f"/api/videos/{vid}", headers=auth(editor)).status_code == 404
    with _services(client).db.session() as session:
        assert session.scalar(select(func.count()).where(ProcessedFrame.video_id == vid)) == 0
        assert session.scalar(select(func.count()).where(Job.video_id == vid)) == 0
        assert session.scalar(select(func.count()).where(AuditLog.video_id == vid, AuditLog.action == "video.delete"))
    shutil.rmtree(settings.data_dir / "uploads", ignore_errors=True)


def test_behind_nginx_streams_answer_with_x_accel_redirect(tmp_path: Path, make) -> None:
    settings = make_settings(tmp_path / "data", workers=0, accel_redirect_prefix="/_objects/")
    with service(settings) as client:
        vid = upload(client, make("cfr"), name="gate 1.mp4").json()["id"]
        viewer = new_token(client, "viewer")
        assert client.get(f"/api/videos/{vid}/stream?variant=original", headers=auth(viewer)).status_code == 403
        resp = client.get(f"/api/videos/{vid}/stream?variant=original", headers=auth(ADMIN))
        assert resp.status_code == 200 and resp.content == b""
        assert resp.headers["x-accel-redirect"] == f"/_objects/raw/videos/{vid}/original.mp4"
        assert (settings.data_dir / "objects" / "raw" / "videos" / vid / "original.mp4").is_file()
