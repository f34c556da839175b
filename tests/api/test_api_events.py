"""The event timeline through the service: upload -> processing (with the events step) -> `GET .../events`.

The module's video is a hard cut on a VFR timeline: 30 synthetic frames at 30 fps with nobody in them,
then 40 frames of TUD-Campus (walking people) at 25 fps, so the cut is at seq 31 = 1000 ms and people
are present only after it. Thumbnails must be the PROCESSED key frames (masked), served through
short-lived signed URLs (local storage) or presigned S3 URLs (radosgw).
"""

from __future__ import annotations

import time
import urllib.request
import uuid
from fractions import Fraction
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import av
import numpy as np
import pytest
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
from support.videos import vfr_times

from framemask.jobs.events_step import EVENTS_END, EVENTS_START, events_prefix, replace_events, store_events
from framemask.media import FrameIndex, FrameReader
from framemask.store.models import Event, Video
from framemask.store.objects import LocalStore, S3Store

CUT_SEQ = 31  # first frame of the second shot
FRAMES = 70
SIGNED_SECONDS = 3


def _write_video(path: Path, shots: list[np.ndarray], times: tuple[float, ...]) -> Path:
    tb = Fraction(1, 90000)
    height, width = shots[0].shape[:2]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = stream.codec_context.time_base = tb
        for image, t in zip(shots, times, strict=True):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = round(t / tb), tb
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def _synthetic(n: int, width: int, height: int) -> list[np.ndarray]:
    """A calm gradient shot with a moving bar (content changes a little every frame, no cut, no people)."""
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 // (width - 1), y * 255 // (height - 1), np.full_like(x, 60)], -1).astype(np.uint8)
    frames = []
    for i in range(n):
        image = base.copy()
        bar = (i * 6) % (width - 12)
        image[:, bar : bar + 12] = 255
        frames.append(image)
    return frames


@pytest.fixture(scope="module")
def cut_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not PEOPLE_VIDEO.is_file():
        pytest.fail(f"shared test media missing: {PEOPLE_VIDEO}")
    with FrameReader(PEOPLE_VIDEO) as reader:
        people = [reader.frame(seq) for seq in range(1, FRAMES - CUT_SEQ + 2)]
    height, width = people[0].shape[:2]
    shots = _synthetic(CUT_SEQ - 1, width, height) + people
    times = vfr_times(((CUT_SEQ - 1, 30), (FRAMES - CUT_SEQ + 1, 25)))
    return _write_video(tmp_path_factory.mktemp("events") / "cut.mp4", shots, times)


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory, cut_video: Path):
    """The embedded service with the cut video uploaded and processed."""
    data = tmp_path_factory.mktemp("svc-events") / "data"
    settings = make_settings(data, signed_url_seconds=SIGNED_SECONDS)
    with service(settings) as client:
        created, video = upload_processed(client, cut_video)
        assert video["status"] == "ready", video
        yield client, settings, created["id"]


def _events(client, vid: str, token: str = ADMIN, **params: str) -> dict:
    resp = client.get(f"/api/videos/{vid}/events", params=params, headers=auth(token))
    assert resp.status_code == 200, resp.text
    return resp.json()


def _processed_frame(client, vid: str, seq: int, variant: str = "processed") -> np.ndarray:
    resp = client.get(f"/api/videos/{vid}/frame?seq={seq}&variant={variant}&format=png&width=320", headers=auth(ADMIN))
    assert resp.status_code == 200, resp.text
    return decode_image(resp.content).astype(np.int16)


def _mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def test_scene_boundaries_at_the_real_frames(svc, cut_video: Path) -> None:
    client, _settings, vid = svc
    doc = _events(client, vid)
    assert doc["video_id"] == vid and doc["endSequence"] == FRAMES and doc["expires_in"] == SIGNED_SECONDS
    index = FrameIndex.build(cut_video)
    scenes = [e for e in doc["events"] if e["kind"] == "scene"]
    assert [(e["start_seq"], e["end_seq"]) for e in scenes] == [(1, CUT_SEQ - 1), (CUT_SEQ, FRAMES)]
    assert scenes[0]["start_ms"] == 0.0 and scenes[0]["end_ms"] == pytest.approx(1000.0, abs=0.05)
    assert scenes[1]["start_ms"] == pytest.approx(1000.0, abs=0.05)
    assert scenes[1]["start_ms"] == pytest.approx(index.time_of(CUT_SEQ), abs=1e-3)
    assert scenes[1]["end_ms"] == pytest.approx(index.duration_ms, abs=1e-3)
    for event in doc["events"]:
        assert event["start_seq"] <= event["key_seq"] <= event["end_seq"]
        assert event["key_ms"] == pytest.approx(index.time_of(event["key_seq"]), abs=1e-3)
        assert event["description"] and event["thumbnail_key"].startswith(f"videos/{vid}/events/")
    assert [e["kind"] for e in _events(client, vid, kind="scene")["events"]] == ["scene", "scene"]


def test_presence_only_after_the_cut(svc) -> None:
    """People are in every frame from the cut on; the masking holds a new track back to the frame after the
    last detection pass that found nobody, so presence may start up to one detection stride early."""
    client, settings, vid = svc
    presence = _events(client, vid, kind="presence")["events"]
    assert len(presence) == 1, presence
    event = presence[0]
    assert CUT_SEQ - settings.redact_stride < event["start_seq"] <= CUT_SEQ and event["end_seq"] == FRAMES
    assert "people" in event["description"] or "person" in event["description"]


def test_thumbnails_are_the_processed_key_frames(svc) -> None:
    client, _settings, vid = svc
    events = _events(client, vid)["events"]
    assert len(events) == 3
    for event in events:
        resp = client.get(event["thumbnail_url"])  # no Authorization header: the URL itself grants access
        assert resp.status_code == 200 and resp.headers["content-type"] == "image/jpeg"
        assert resp.content[:3] == b"\xff\xd8\xff"
        thumb = decode_image(resp.content)
        assert thumb.shape == (240, 320, 3)
        processed = _processed_frame(client, vid, event["key_seq"])
        assert _mad(thumb, processed) < 3.0, event  # the same frame, up to JPEG loss
        others = [e["key_seq"] for e in events if e["key_seq"] != event["key_seq"]]
        assert all(_mad(thumb, _processed_frame(client, vid, seq)) > 3 * _mad(thumb, processed) for seq in others)


def test_thumbnail_of_people_is_masked(svc) -> None:
    """In every masked box of the presence key frame the thumbnail matches the processed, not the original, frame."""
    client, _settings, vid = svc
    (event,) = _events(client, vid, kind="presence")["events"]
    seq = event["key_seq"]
    thumb = decode_image(client.get(event["thumbnail_url"]).content).astype(np.int16)
    processed, original = _processed_frame(client, vid, seq), _processed_frame(client, vid, seq, "original")
    frame = client.get(f"/api/videos/{vid}/frames?from={seq}&to={seq}", headers=auth(ADMIN)).json()["sequence"][0]
    boxes = frame.get("person", []) + frame.get("face", [])
    assert boxes, frame
    scale = 320 / 640
    for box in boxes:
        x1, x2 = round(box["x1"] * scale) + 1, round(box["x2"] * scale) - 1
        y1, y2 = round(box["y1"] * scale) + 1, round(box["y2"] * scale) - 1
        if (x2 - x1) * (y2 - y1) < 100:
            continue
        region = np.s_[y1:y2, x1:x2]
        assert _mad(thumb[region], processed[region]) < _mad(thumb[region], original[region]) / 5, box


def test_viewer_may_list_and_fetch(svc) -> None:
    client, _settings, vid = svc
    viewer = new_token(client, "viewer")
    doc = _events(client, vid, token=viewer)
    assert [e["id"] for e in doc["events"]] == [e["id"] for e in _events(client, vid)["events"]]
    event = doc["events"][0]
    assert parse_qs(urlsplit(event["thumbnail_url"]).query)["tid"]  # signed for the viewer's token
    assert client.get(event["thumbnail_url"]).status_code == 200
    bearer = client.get(f"/api/videos/{vid}/events/{event['id']}/thumbnail", headers=auth(viewer))
    assert bearer.status_code == 200 and bearer.content == client.get(event["thumbnail_url"]).content


def test_tampered_or_foreign_signatures_are_refused(svc) -> None:
    client, _settings, vid = svc
    events = _events(client, vid)["events"]
    first, second = events[0], events[1]
    parts = urlsplit(first["thumbnail_url"])
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    flipped = query["signature"][:-1] + ("0" if query["signature"][-1] != "0" else "1")
    attempts = {
        "flipped signature": {**query, "signature": flipped},
        "longer expiry": {**query, "expires": str(int(query["expires"]) + 3600)},
        "other token": {**query, "tid": str(int(query.get("tid", "0")) + 1)},
    }
    for what, params in attempts.items():
        assert client.get(f"{parts.path}?{urlencode(params)}").status_code == 401, what
    other_event = parts.path.replace(f"/events/{first['id']}/", f"/events/{second['id']}/")
    assert client.get(f"{other_event}?{parts.query}").status_code == 401
    assert client.get(parts.path).status_code == 401  # neither signature nor token
    stream = client.get(f"/api/videos/{vid}/stream?{parts.query}&variant=processed")
    assert stream.status_code == 401  # a thumbnail signature is no stream signature


def test_signed_url_expires(svc) -> None:
    client, _settings, vid = svc
    url = _events(client, vid)["events"][0]["thumbnail_url"]
    assert client.get(url).status_code == 200
    expires = int(parse_qs(urlsplit(url).query)["expires"][0])
    time.sleep(max(0.0, expires - time.time()) + 0.2)
    assert client.get(url).status_code == 401


def test_revoked_token_voids_its_urls(svc) -> None:
    client, _settings, vid = svc
    viewer = new_token(client, "viewer")
    url = _events(client, vid, token=viewer)["events"][0]["thumbnail_url"]
    token_id = int(parse_qs(urlsplit(url).query)["tid"][0])
    assert client.delete(f"/api/tokens/{token_id}", headers=auth(ADMIN)).status_code == 204
    assert client.get(url).status_code == 401


def test_unknown_and_unready_videos(svc) -> None:
    client, _settings, vid = svc
    assert client.get(f"/api/videos/{'0' * 32}/events", headers=auth(ADMIN)).status_code == 404
    assert client.get(f"/api/videos/{vid}/events").status_code == 401
    assert client.get(f"/api/videos/{vid}/events/999999/thumbnail", headers=auth(ADMIN)).status_code == 404
    services = client.app.state.services
    pending = uuid.uuid4().hex
    with services.db.begin() as session:
        session.add(Video(id=pending, filename="p.mp4", status="processing", raw_bucket="raw", raw_key="x/p.mp4"))
    resp = client.get(f"/api/videos/{pending}/events", headers=auth(ADMIN))
    assert resp.status_code == 409 and "not processed yet" in resp.json()["detail"]
    own = _events(client, vid)["events"][0]["id"]
    assert client.get(f"/api/videos/{pending}/events/{own}/thumbnail", headers=auth(ADMIN)).status_code == 404


def test_the_anonymizer_flags_the_cut_and_frames_serve_it(svc) -> None:
    """Processing found the hard cut at the second shot's first frame (`ShotCuts`, VFR on both sides): the
    stored boxes flag that frame, `/frames` serves the flag there and nowhere else, and the editor's `/boxes`
    lists it with any range of frames (the timeline marks every shot's start)."""
    client, _settings, vid = svc
    resp = client.get(f"/api/videos/{vid}/frames", headers=auth(ADMIN))
    assert resp.status_code == 200, resp.text
    assert [frame["seq"] for frame in resp.json()["sequence"] if frame.get("cut")] == [CUT_SEQ]
    resp = client.get(f"/api/videos/{vid}/boxes", params={"from": 1, "to": 2}, headers=auth(ADMIN))
    assert resp.status_code == 200, resp.text
    assert [f["seq"] for f in resp.json()["frames"]] == [1, 2] and resp.json()["cuts"] == [CUT_SEQ]


def test_events_step_is_deterministic_and_idempotent(svc, tmp_path: Path) -> None:
    """A retried job writes the same rows and thumbnail keys, and leaves no file of an earlier attempt."""
    client, settings, vid = svc
    services = client.app.state.services
    processed = services.store.local_path(settings.bucket_processed, f"videos/{vid}/processed.mp4")
    boxes = client.get(f"/api/videos/{vid}/frames", headers=auth(ADMIN)).json()
    store = LocalStore(tmp_path / "objects")
    store.ensure_bucket("thumbs")
    stale = f"{events_prefix(vid)}0009-scene-1.jpg"
    with store.open_write("thumbs", stale) as fh:
        fh.write(b"from an earlier attempt")
    seen: list[tuple[float, str]] = []
    rows = store_events(store, "thumbs", vid, processed, boxes, report=lambda p, s: seen.append((p, s)))
    assert sorted(store.list("thumbs", events_prefix(vid))) == sorted(r["thumbnail_key"] for r in rows)
    assert {s for _, s in seen} == {"events"} and [p for p, _ in seen] == sorted(p for p, _ in seen)
    assert seen[0][0] == EVENTS_START and seen[-1][0] == EVENTS_END
    columns = [c for c in rows[0] if c != "video_id"]
    with services.db.session() as session:
        stored = session.scalars(select(Event).where(Event.video_id == vid).order_by(Event.id)).all()
        assert [{c: getattr(e, c) for c in columns} for e in stored] == [{c: r[c] for c in columns} for r in rows]
        assert all(e.embedding is not None and len(e.embedding) == 256 for e in stored)  # key-frame features
    for _ in range(2):
        with services.db.begin() as session:
            replace_events(session, vid, rows)
    with services.db.session() as session:
        assert session.scalar(select(func.count()).where(Event.video_id == vid)) == len(rows)


def test_delete_removes_thumbnails_and_rows(svc) -> None:
    client, settings, vid = svc
    events = _events(client, vid)["events"]
    thumbs = [f for f in stored_files(settings.data_dir) if f.startswith(f"{settings.bucket_thumbnails}/videos/{vid}/")]
    assert sorted(thumbs) == sorted(f"{settings.bucket_thumbnails}/{e['thumbnail_key']}" for e in events)
    assert client.delete(f"/api/videos/{vid}", headers=auth(ADMIN)).status_code == 204
    assert not [f for f in stored_files(settings.data_dir) if f"videos/{vid}/" in f]
    with client.app.state.services.db.session() as session:
        assert session.scalar(select(func.count()).where(Event.video_id == vid)) == 0
    assert client.get(events[0]["thumbnail_url"]).status_code == 404


@pytest.mark.services
def test_presigned_thumbnails_on_s3(rgw_server, tmp_path: Path) -> None:
    """On S3 (radosgw) the listing hands out presigned URLs of the thumbnails bucket; DELETE empties it."""
    shots = _synthetic(20, 320, 240) + [np.flipud(f)[:, ::-1].copy() ^ 0x5A for f in _synthetic(20, 320, 240)]
    video = _write_video(tmp_path / "s3cut.mp4", shots, vfr_times(((40, 25),)))
    suffix = uuid.uuid4().hex[:6]
    settings = make_settings(
        tmp_path / "data",
        s3_endpoint=rgw_server.endpoint,
        s3_access_key=rgw_server.access_key,
        s3_secret_key=rgw_server.secret_key,
        bucket_raw=f"raw-{suffix}",
        bucket_processed=f"processed-{suffix}",
        bucket_thumbnails=f"thumbs-{suffix}",
    )
    s3 = S3Store(rgw_server.endpoint, rgw_server.access_key, rgw_server.secret_key)
    with service(settings) as client:
        vid = upload(client, video).json()["id"]
        assert wait_for(client, vid)["status"] == "ready"
        events = _events(client, vid)["events"]
        assert [(e["kind"], e["start_seq"], e["end_seq"]) for e in events] == [("scene", 1, 20), ("scene", 21, 40)]
        for event in events:
            url = event["thumbnail_url"]
            assert url.startswith(rgw_server.endpoint) and "X-Amz-Signature" in url
            with urllib.request.urlopen(url) as got:
                thumb = decode_image(got.read())
            assert _mad(thumb, _processed_frame(client, vid, event["key_seq"])) < 3.0
        prefix = f"videos/{vid}/"
        assert sorted(s3.list(settings.bucket_thumbnails, prefix)) == sorted(e["thumbnail_key"] for e in events)
        assert client.delete(f"/api/videos/{vid}", headers=auth(ADMIN)).status_code == 204
        assert s3.list(settings.bucket_thumbnails, prefix) == []
