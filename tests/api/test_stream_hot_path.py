"""The stream endpoint's lean path (`framemask.service.streaming`) keeps every check of the ORM path.

One embedded service (SQLite, local objects, no workers): a small video is uploaded and its original made
its processed file too, so both variants stream without running detection. Each check must hold on the
very next request: the look-ups read the rows every time, through a connection that keeps no snapshot.
"""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlencode

import pytest
from sqlalchemy import select, update
from support.api import ADMIN, auth, make_settings, new_token, service, upload

from framemask.api.signing import sign_stream
from framemask.service import auth as auth_module
from framemask.service.auth import token_by_id
from framemask.service.streaming import StreamReads, WouldBlock
from framemask.store.models import ApiToken, AuditLog, Video


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory, make):
    data = tmp_path_factory.mktemp("stream-hot-path") / "data"
    with service(make_settings(data, workers=0)) as client:
        yield client, _uploaded(client, make("cfr"))


def _uploaded(client, path: Path) -> tuple[str, bytes]:
    """A new video whose processed file is a copy of its original: (id, the file's bytes)."""
    resp = upload(client, path)
    assert resp.status_code == 201, resp.text
    vid = resp.json()["id"]
    services = client.app.state.services
    with services.db.begin() as session:
        video = session.get(Video, vid)
        raw = services.store.local_path(video.raw_bucket, video.raw_key)
        video.processed_key = f"videos/{vid}/processed.mp4"
        services.store.put_file(services.settings.bucket_processed, video.processed_key, raw)
    return vid, raw.read_bytes()


def _stream(client, vid: str, headers: dict[str, str], query: str = "", method: str = "GET"):
    return client.request(method, f"/api/videos/{vid}/stream{query}", headers=headers)


def _audit_rows(client, vid: str) -> list[AuditLog]:
    query = select(AuditLog).where(AuditLog.video_id == vid, AuditLog.action == "original.stream")
    with client.app.state.services.db.session() as session:
        return list(session.scalars(query.order_by(AuditLog.id)))


def test_range_bytes_and_head(svc) -> None:
    client, (vid, data) = svc
    for start, end in ((0, 0), (0, 99), (1000, 5999), (len(data) - 10, len(data) - 1)):
        resp = _stream(client, vid, {**auth(ADMIN), "Range": f"bytes={start}-{end}"})
        assert resp.status_code == 206, resp.text
        assert resp.content == data[start : end + 1]
        assert resp.headers["content-range"] == f"bytes {start}-{end}/{len(data)}"
    whole = _stream(client, vid, auth(ADMIN))
    assert whole.status_code == 200 and whole.content == data
    head = _stream(client, vid, {**auth(ADMIN), "Range": "bytes=0-99"}, method="HEAD")
    assert head.status_code == 206 and head.headers["content-length"] == "100" and head.content == b""
    head = _stream(client, vid, auth(ADMIN), method="HEAD")
    assert head.status_code == 200 and head.headers["content-length"] == str(len(data))
    assert _stream(client, vid, {**auth(ADMIN), "Range": f"bytes={len(data)}-"}).status_code == 416


def test_revoked_token_is_refused_on_the_next_request(svc) -> None:
    client, (vid, _data) = svc
    viewer = new_token(client, "viewer")
    token_id = client.get("/api/me", headers=auth(viewer)).json()["token_id"]
    assert _stream(client, vid, {**auth(viewer), "Range": "bytes=0-9"}).status_code == 206
    assert client.delete(f"/api/tokens/{token_id}", headers=auth(ADMIN)).status_code == 204
    resp = _stream(client, vid, {**auth(viewer), "Range": "bytes=0-9"})
    assert resp.status_code == 401 and resp.headers["www-authenticate"] == "Bearer"
    assert resp.json()["detail"] == "invalid or revoked token"
    assert _stream(client, vid, auth("fm_unknown")).status_code == 401
    missing = _stream(client, vid, {})
    assert missing.status_code == 401 and missing.json()["detail"] == "missing bearer token"


def test_deleted_video_is_404_on_the_next_request(svc, make) -> None:
    client, _ = svc
    vid, _data = _uploaded(client, make("cfr"))
    assert _stream(client, vid, {**auth(ADMIN), "Range": "bytes=0-9"}).status_code == 206
    assert client.delete(f"/api/videos/{vid}", headers=auth(ADMIN)).status_code == 204
    resp = _stream(client, vid, {**auth(ADMIN), "Range": "bytes=0-9"})
    assert resp.status_code == 404 and resp.json()["detail"] == f"no video {vid}"


def test_each_original_request_writes_one_audit_row_before_its_bytes(svc) -> None:
    client, (vid, data) = svc
    editor, viewer = new_token(client, "editor"), new_token(client, "viewer")
    before = len(_audit_rows(client, vid))
    for n, rng in enumerate(("bytes=0-99", "bytes=100-199", "bytes=5-"), start=1):
        resp = _stream(client, vid, {**auth(editor), "Range": rng}, "?variant=original")
        assert resp.status_code == 206 and resp.headers["cache-control"] == "no-store"
        rows = _audit_rows(client, vid)
        assert len(rows) == before + n  # written before the response arrived, exactly one per request
        assert rows[-1].detail == {"range": rng} and rows[-1].role == "editor"
    assert _stream(client, vid, auth(viewer), "?variant=original").status_code == 403
    assert _stream(client, vid, auth(editor)).content == data  # processed: no audit row
    assert len(_audit_rows(client, vid)) == before + 3


def test_variant_guard(svc, make) -> None:
    client, (vid, _data) = svc
    final = _stream(client, vid, auth(ADMIN), "?variant=final")
    assert final.status_code == 409 and "no final video" in final.json()["detail"]
    unprocessed = upload(client, make("cfr")).json()["id"]
    resp = _stream(client, unprocessed, auth(ADMIN))
    assert resp.status_code == 409 and "not processed yet" in resp.json()["detail"]
    assert _stream(client, unprocessed, {**auth(ADMIN), "Range": "bytes=0-9"}, "?variant=original").status_code == 206


def test_signed_url_streams_and_expired_or_forged_ones_are_refused(svc) -> None:
    client, (vid, data) = svc
    viewer = new_token(client, "viewer")
    url = client.get(f"/api/videos/{vid}/stream/url", headers=auth(viewer)).json()["url"]
    resp = client.get(url, headers={"Range": "bytes=10-19"})
    assert resp.status_code == 206 and resp.content == data[10:20]
    key = client.app.state.signing_key
    expired = int(time.time()) - 5
    query = {"variant": "processed", "expires": expired, "signature": sign_stream(key, vid, "processed", expired, None)}
    resp = client.get(f"/api/videos/{vid}/stream?{urlencode(query)}")
    assert resp.status_code == 401 and resp.json()["detail"] == "invalid or expired stream signature"
    later = int(time.time()) + 60
    forged = {"variant": "original", "expires": later, "signature": sign_stream(key, vid, "processed", later, None)}
    assert client.get(f"/api/videos/{vid}/stream?{urlencode(forged)}").status_code == 401
    untied = {"variant": "processed", "expires": later, "signature": sign_stream(key, vid, "processed", later, None)}
    assert client.get(f"/api/videos/{vid}/stream?{urlencode(untied)}").status_code == 200


def test_signed_url_dies_with_its_token(svc) -> None:
    client, (vid, _data) = svc
    viewer = new_token(client, "viewer")
    url = client.get(f"/api/videos/{vid}/stream/url", headers=auth(viewer)).json()["url"]
    assert client.get(url, headers={"Range": "bytes=0-9"}).status_code == 206
    token_id = int(url.split("tid=")[1].split("&")[0])
    assert client.delete(f"/api/tokens/{token_id}", headers=auth(ADMIN)).status_code == 204
    resp = client.get(url, headers={"Range": "bytes=0-9"})
    assert resp.status_code == 401 and resp.json()["detail"] == "the token that signed this URL is revoked"


def test_event_loop_read_never_waits_for_a_writer(svc) -> None:
    """WAL: a writer holding SQLite's write lock neither delays the no-wait read nor shows it uncommitted rows."""
    client, (vid, _data) = svc
    db = client.app.state.services.db
    reads = StreamReads(db)
    assert reads.on_loop
    with db.engine.connect() as writer:
        writer.exec_driver_sql("BEGIN EXCLUSIVE")
        writer.exec_driver_sql("UPDATE video SET processed_key = NULL WHERE id = ?", (vid,))
        started = time.monotonic()
        rows = reads.rows_nowait(token_hash=None, token_id=None, video_id=vid)
        assert time.monotonic() - started < 0.5
        assert rows.video is not None and rows.video.processed_key is not None and rows.token is None
        writer.exec_driver_sql("ROLLBACK")


def test_a_blocked_event_loop_read_falls_back_to_a_worker_thread(svc, monkeypatch: pytest.MonkeyPatch) -> None:
    client, (vid, data) = svc

    def blocked(*_args: object, **_kwargs: object) -> None:
        raise WouldBlock("database is locked")

    monkeypatch.setattr(StreamReads, "rows_nowait", blocked)
    resp = _stream(client, vid, {**auth(ADMIN), "Range": "bytes=0-9"})
    assert resp.status_code == 206 and resp.content == data[:10]
    assert _stream(client, "0" * 32, auth(ADMIN)).status_code == 404


def test_streaming_records_the_tokens_last_use(svc) -> None:
    client, (vid, _data) = svc
    viewer = new_token(client, "viewer")
    token_id = client.get("/api/me", headers=auth(viewer)).json()["token_id"]
    with client.app.state.services.db.session() as session:
        session.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=None))
        session.commit()
    auth_module._last_used.pop(token_id, None)  # the once-a-minute slot is free again
    assert _stream(client, vid, {**auth(viewer), "Range": "bytes=0-9"}).status_code == 206
    assert token_by_id(client.app.state.services.db, token_id).last_used_at is not None
