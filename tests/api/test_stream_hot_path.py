"""The stream endpoint's lean path (`framemask.service.streaming`, `StreamFastRoute`, `RangeFileResponse`)
keeps every check of the ORM path and answers exactly as the FastAPI route does.

One embedded service (SQLite, local objects, no workers): a small video is uploaded and its original made
its processed file too, so both variants stream without running detection. Each check must hold on the
very next request: the look-ups read the rows every time, through a connection that keeps no snapshot.
Every well-formed stream request here must be served by the fast route (`fast_hits` counts them); the
parity tests replay requests with the fast route removed and compare the answers.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlencode

import pytest
from sqlalchemy import select, update
from support.api import ADMIN, auth, make_settings, new_token, service, upload, upload_as_processed

from framemask.api import access, ranges
from framemask.api.ranges import RangeFileResponse
from framemask.api.routes.stream import StreamFastRoute
from framemask.api.signing import sign_stream
from framemask.service import auth as auth_module
from framemask.service.auth import Principal, token_by_id
from framemask.service.streaming import StreamReads, WouldBlock
from framemask.store.models import ApiToken, AuditLog, Video


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory, make):
    data = tmp_path_factory.mktemp("stream-hot-path") / "data"
    with service(make_settings(data, workers=0)) as client:
        yield client, _uploaded(client, make("cfr"))


def _uploaded(client, path: Path) -> tuple[str, bytes]:
    """A new video whose processed file is a copy of its original: (id, the file's bytes)."""
    return upload_as_processed(client, path), path.read_bytes()


_FAST_HITS = [0]


@pytest.fixture(autouse=True)
def fast_hits(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the requests `StreamFastRoute` handles."""
    handle = StreamFastRoute.handle

    async def counted(self, scope, receive, send) -> None:
        _FAST_HITS[0] += 1
        await handle(self, scope, receive, send)

    monkeypatch.setattr(StreamFastRoute, "handle", counted)
    return _FAST_HITS


def _stream(client, vid: str, headers: dict[str, str], query: str = "", method: str = "GET", fast: bool = True):
    return _get(client, f"/api/videos/{vid}/stream{query}", headers, method, fast)


def _get(client, url: str, headers: dict[str, str] | None = None, method: str = "GET", fast: bool = True):
    """The answer to one request, which the fast route must (or, with `fast=False`, must not) have served."""
    before = _FAST_HITS[0]
    resp = client.request(method, url, headers=headers or {})
    assert _FAST_HITS[0] == before + fast, f"{method} {url}: fast route {'not ' if fast else ''}taken"
    return resp


@contextmanager
def _without_fast_route(client) -> Iterator[None]:
    """The app as it would be without `StreamFastRoute`: every request goes through the FastAPI route."""
    router = client.app.router
    routes = list(router.routes)
    router.routes[:] = [r for r in routes if not isinstance(r, StreamFastRoute)]
    try:
        yield
    finally:
        router.routes[:] = routes


_COMPARED = ("content-type", "content-length", "content-range", "cache-control", "accept-ranges", "etag")


def _answer(resp) -> tuple[int, dict[str, str | None], bytes]:
    return resp.status_code, {h: resp.headers.get(h) for h in (*_COMPARED, "last-modified")}, resp.content


def _same_answer(client, url: str, headers: dict[str, str], method: str = "GET", fast: bool = True):
    """The fast route's answer, checked equal to the FastAPI route's for the same request."""
    resp = _get(client, url, headers, method, fast)
    with _without_fast_route(client):
        normal = _get(client, url, headers, method, fast=False)
    assert _answer(resp) == _answer(normal), url
    return resp


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
    resp = _get(client, url, {"Range": "bytes=10-19"})
    assert resp.status_code == 206 and resp.content == data[10:20]
    key = client.app.state.signing_key
    expired = int(time.time()) - 5
    query = {"variant": "processed", "expires": expired, "signature": sign_stream(key, vid, "processed", expired, None)}
    resp = _get(client, f"/api/videos/{vid}/stream?{urlencode(query)}")
    assert resp.status_code == 401 and resp.json()["detail"] == "invalid or expired stream signature"
    later = int(time.time()) + 60
    forged = {"variant": "original", "expires": later, "signature": sign_stream(key, vid, "processed", later, None)}
    assert _get(client, f"/api/videos/{vid}/stream?{urlencode(forged)}").status_code == 401
    untied = {"variant": "processed", "expires": later, "signature": sign_stream(key, vid, "processed", later, None)}
    assert _get(client, f"/api/videos/{vid}/stream?{urlencode(untied)}").status_code == 200


def test_signed_url_dies_with_its_token(svc) -> None:
    client, (vid, _data) = svc
    viewer = new_token(client, "viewer")
    url = client.get(f"/api/videos/{vid}/stream/url", headers=auth(viewer)).json()["url"]
    assert _get(client, url, {"Range": "bytes=0-9"}).status_code == 206
    token_id = int(url.split("tid=")[1].split("&")[0])
    assert client.delete(f"/api/tokens/{token_id}", headers=auth(ADMIN)).status_code == 204
    resp = _get(client, url, {"Range": "bytes=0-9"})
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


@pytest.fixture(scope="module")
def final_video(svc, make) -> tuple[str, bytes]:
    """A second video with a final file (a copy of its original) besides the processed one."""
    client, _ = svc
    vid, data = _uploaded(client, make("cfr"))
    services = client.app.state.services
    with services.db.begin() as session:
        video = session.get(Video, vid)
        video.final_key = f"videos/{vid}/final.mp4"
        raw = services.store.local_path(video.raw_bucket, video.raw_key)
        services.store.put_file(services.settings.bucket_processed, video.final_key, raw)
    return vid, data


@pytest.mark.parametrize("variant", ["processed", "original", "final"])
def test_the_fast_route_answers_as_the_fastapi_route(svc, final_video, variant: str) -> None:
    client, _ = svc
    vid, data = final_video
    editor = new_token(client, "editor")
    url = f"/api/videos/{vid}/stream?variant={variant}"
    size = len(data)
    audited = len(_audit_rows(client, vid))
    for rng in ("bytes=0-99", f"bytes={size - 10}-", "bytes=-5", "bytes=100-", None):
        headers = {**auth(editor), **({"Range": rng} if rng else {})}
        resp = _same_answer(client, url, headers)
        assert resp.status_code == (206 if rng else 200)
        assert resp.headers["cache-control"] == ("no-store" if variant == "original" else "private, max-age=3600")
        _same_answer(client, url, headers, method="HEAD")
    assert resp.content == data
    for bad in (f"bytes={size}-", "bytes=9-3", "bytes=x", "items=0-1", "bytes=1e3-"):  # unsatisfiable or malformed
        resp = _same_answer(client, url, {**auth(editor), "Range": bad})
        assert resp.status_code == 416 and resp.headers["content-range"] == f"bytes */{size}", bad
    if variant == "original":  # one audit row per GET and HEAD answered, on either route
        assert len(_audit_rows(client, vid)) == audited + 2 * 10 + 2 * 5
    for refused in (auth("fm_unknown"), {}, {"Authorization": "Basic x"}):
        resp = _same_answer(client, url, refused)
        assert resp.status_code == 401 and resp.json()["detail"] in ("invalid or revoked token", "missing bearer token")
    viewer = _same_answer(client, url, auth(new_token(client, "viewer")))
    assert viewer.status_code == (403 if variant == "original" else 200)


def test_signed_urls_take_the_fast_route_with_the_same_answers(svc) -> None:
    client, (vid, _data) = svc
    viewer = new_token(client, "viewer")
    url = client.get(f"/api/videos/{vid}/stream/url", headers=auth(viewer)).json()["url"]
    assert _same_answer(client, url, {"Range": "bytes=0-9"}).status_code == 206
    signature = url.split("signature=")[1].split("&")[0]
    forged = url.replace(signature, ("1" if signature[0] == "0" else "0") + signature[1:])
    assert _same_answer(client, forged, {"Range": "bytes=0-9"}).status_code == 401


@pytest.mark.parametrize(
    "query",
    [
        "?variant=bogus",
        "?variant=",
        "?expires=abc&signature=ab",
        "?expires=-1&signature=ab",
        "?expires=+5&signature=ab",
        "?expires=007&signature=ab",
        f"?expires={2**63}&signature=ab",
        "?tid=0",
        "?tid=1.5",
        "?signature=" + "a" * 65,
        "?signature=%C3%A2&expires=9999999999",
        "?variant=processed&variant=original",
        "?unknown=1",
        "?variant=processed&x",
    ],
)
def test_unusual_queries_fall_through_to_the_fastapi_route(svc, query: str) -> None:
    """Whatever the fast route does not read whole is the FastAPI route's: its 422s, and whatever it makes
    of unknown keys, repeated keys or values it accepts in another spelling."""
    client, (vid, _data) = svc
    url = f"/api/videos/{vid}/stream{query}"
    resp = _same_answer(client, url, {**auth(ADMIN), "Range": "bytes=0-9"}, fast=False)
    assert resp.status_code in (206, 401, 422), (query, resp.status_code)
    if resp.status_code == 422:
        assert resp.json()["detail"][0]["loc"][0] == "query"


@pytest.mark.parametrize(
    "path",
    [
        "/api/videos/..%2F..%2Fetc%2Fpasswd/stream",
        "/api/videos/%2e%2e/stream",
        "/api/videos/../../etc/passwd/stream",
        "/api/videos/{upper}/stream",
        "/api/videos/{vid}0/stream",
        "/api/videos/{vid}/stream/",
        "/api/videos/{vid}/stream/../stream",
        "/api/videos//stream",
    ],
)
def test_odd_paths_are_not_the_fast_routes(svc, path: str) -> None:
    client, (vid, _data) = svc
    url = path.format(vid=vid, upper=vid.upper())
    resp = client.get(url, headers={**auth(ADMIN), "Range": "bytes=0-9"})
    if resp.status_code != 206:  # a client that normalised the path may have asked for the video itself
        assert resp.status_code in (307, 404, 405, 422), (url, resp.status_code)


def _stored(client, vid: str) -> Path:
    services = client.app.state.services
    with services.db.session() as session:
        video = session.get(Video, vid)
        return services.store.local_path(services.settings.bucket_processed, video.processed_key)


def test_a_page_cache_cold_read_returns_the_right_bytes(svc, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages dropped with `POSIX_FADV_DONTNEED` (the test data is on a disk filesystem, not tmpfs): the
    no-wait read refuses them and a worker thread reads them."""
    client, (vid, data) = svc
    path = _stored(client, vid)
    fallbacks: list[int] = []
    cached = ranges._read_cached

    def counted(fd: int, offset: int, size: int) -> bytes | None:
        chunk = cached(fd, offset, size)
        fallbacks.extend([offset] if chunk is None else [])
        return chunk

    monkeypatch.setattr(ranges, "_read_cached", counted)
    for start, end in ((0, 99), (4096 * 7, 4096 * 9), (len(data) - 300, len(data) - 1)):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
        resp = _stream(client, vid, {**auth(ADMIN), "Range": f"bytes={start}-{end}"})
        assert resp.status_code == 206 and resp.content == data[start : end + 1]
    # reads that met dropped pages went to a thread; the kernel may keep a page despite the advice (a page
    # another process maps, readahead), so not necessarily all three did, but only these and in this order
    starts = [0, 4096 * 7, len(data) - 300]
    assert fallbacks == [s for s in starts if s in fallbacks]
    assert _stream(client, vid, auth(ADMIN)).content == data
    monkeypatch.setattr(ranges, "_read_cached", lambda *_args: None)  # never cached: every chunk in a thread
    assert _stream(client, vid, {**auth(ADMIN), "Range": "bytes=10-5009"}).content == data[10:5010]
    if not fallbacks:  # seen in a CI run: the kernel kept every advised page, so no read here was cold
        pytest.skip("the kernel kept the advised pages cached: the cold reads above were served from the cache")


def test_large_ranges_are_sent_in_chunks(svc, monkeypatch: pytest.MonkeyPatch) -> None:
    """A body of several chunks keeps Starlette's disconnect listener and is sent one chunk per message."""
    client, (vid, data) = svc
    monkeypatch.setattr(RangeFileResponse, "chunk_size", 1000)
    sizes: list[int] = []
    send_span = RangeFileResponse._send_span

    async def spy(self, send, start: int, end: int) -> None:
        async def sized(message) -> None:
            sizes.append(len(message.get("body", b"")))
            await send(message)

        await send_span(self, sized, start, end)

    monkeypatch.setattr(RangeFileResponse, "_send_span", spy)
    resp = _stream(client, vid, {**auth(ADMIN), "Range": "bytes=10-4509"})
    assert resp.status_code == 206 and resp.content == data[10:4510] and sizes == [1000] * 4 + [500]
    sizes.clear()
    whole = _stream(client, vid, auth(ADMIN))
    assert whole.content == data and max(sizes) == 1000 and sum(sizes) == len(data)


@pytest.fixture
def thread_writes(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """The audit actions (None: only the token's last use) written in a worker thread, by `record_access`."""
    calls: list[str | None] = []
    record = access.record_access

    def counted(request, services, user, video_id, action, detail, touch) -> None:
        calls.append(action)
        record(request, services, user, video_id, action, detail, touch)

    monkeypatch.setattr(access, "record_access", counted)
    return calls


def test_original_audit_rows_are_written_on_the_event_loop(svc, thread_writes: list[str | None]) -> None:
    client, (vid, _data) = svc
    editor = new_token(client, "editor")
    before = len(_audit_rows(client, vid))
    headers = {**auth(editor), "Range": "bytes=0-9"}
    assert _stream(client, vid, headers, "?variant=original").status_code == 206
    assert thread_writes == ["original.stream"]  # the token's first use is due: both writes in one thread hop
    for n in range(2, 5):
        assert _stream(client, vid, headers, "?variant=original").status_code == 206
        assert len(_audit_rows(client, vid)) == before + n  # there when the response arrives
    assert thread_writes == ["original.stream"]


def test_a_held_write_lock_sends_the_audit_row_to_a_worker_thread(
    svc, thread_writes: list[str | None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The no-wait insert gives up at once (nothing written), the worker thread's waits for the lock."""
    client, (vid, _data) = svc
    editor = new_token(client, "editor")
    headers = {**auth(editor), "Range": "bytes=0-9"}
    assert _stream(client, vid, headers, "?variant=original").status_code == 206  # the token's last use is done
    blocked: list[str] = []
    audit_nowait = StreamReads.audit_nowait

    def spied(self, values) -> None:
        try:
            audit_nowait(self, values)
        except WouldBlock as exc:
            blocked.append(str(exc))
            raise

    monkeypatch.setattr(StreamReads, "audit_nowait", spied)
    before = len(_audit_rows(client, vid))
    db = client.app.state.services.db
    with db.engine.connect() as writer:
        writer.exec_driver_sql("BEGIN IMMEDIATE")
        release = threading.Timer(0.3, writer.exec_driver_sql, ("ROLLBACK",))
        release.start()
        started = time.monotonic()
        resp = _stream(client, vid, headers, "?variant=original")
        release.join()
    assert resp.status_code == 206 and time.monotonic() - started >= 0.25  # it waited for the lock
    assert blocked and "locked" in blocked[0]
    assert thread_writes == ["original.stream", "original.stream"]
    assert len(_audit_rows(client, vid)) == before + 1
    assert _stream(client, vid, headers, "?variant=original").status_code == 206  # the loop's connection recovers
    assert len(blocked) == 1 and len(_audit_rows(client, vid)) == before + 2


@pytest.mark.parametrize("detail", [{"range": "bytes=0-9", "ü": [1, 2.5, None, True]}, None])
def test_rows_written_on_the_loop_and_in_a_thread_are_the_same(svc, detail) -> None:
    client, (vid, _data) = svc
    db = client.app.state.services.db
    who = Principal(7, "éditeur", "editor")
    where = {"video_id": vid, "detail": detail, "client": "10.0.0.1"}
    auth_module.audit(db, who, "original.compare", **where)
    StreamReads(db).audit_nowait(auth_module.audit_values(who, "original.compare", **where))
    with db.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT * FROM audit_log WHERE action = 'original.compare' ORDER BY id DESC LIMIT 2"
        ).mappings()
        thread_row, loop_row = (dict(row) for row in reversed(list(rows)))
    assert loop_row["id"] == thread_row["id"] + 1
    times = thread_row.pop("at"), loop_row.pop("at")
    assert [type(t) for t in times] == [str, str] and [len(t) for t in times] == [26, 26]  # stored as the same text
    thread_row.pop("id"), loop_row.pop("id")
    assert loop_row == thread_row
    assert loop_row["detail"] == json.dumps(detail)
