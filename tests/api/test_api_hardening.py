"""Issue 10, API side: every hostile or clumsy request of the outside probe gets a 4xx and stores nothing.

One real service (embedded default: SQLite, local objects, an in-process worker) with one processed
video; each test is the regression test of one row of the probe's table (F1-F6, D1, Range, no-store,
paths in errors, signatures in the access log, model readiness).
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select
from support.api import ADMIN, auth, make_settings, new_token, service, settings_env, stop_process, stored_files, upload
from support.api import wait_for as wait_video
from support.servers import free_port

from framemask.api.hardening import MAX_CORRECTIONS_BODY, redact_signatures, scrub_paths
from framemask.api.sprites import MAX_SPRITES_PER_VIDEO
from framemask.redact.corrections import MAX_RECTS_PER_FRAME, MAX_REGIONS
from framemask.store.models import ApiToken, Job, Revision, Video

RECT = {"x": 10, "y": 20, "width": 30, "height": 40}


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory, make):
    data = tmp_path_factory.mktemp("hardening") / "data"
    settings = make_settings(data)
    with service(settings) as client:
        resp = upload(client, make("cfr"))
        assert resp.status_code == 201, resp.text
        assert wait_video(client, resp.json()["id"])["status"] == "ready"
        video = wait_video(client, resp.json()["id"])
        assert video["status"] == "ready", video
        tokens = {role: new_token(client, role) for role in ("viewer", "editor")}
        yield client, settings, video["id"], tokens


def _count(client, model, *where) -> int:
    with client.app.state.services.db.session() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def _json(client, method: str, url: str, raw: str, token: str = ADMIN):
    """Send `raw` as a JSON body exactly as written (NaN, Infinity and 1e999 included)."""
    headers = {**auth(token), "Content-Type": "application/json"}
    return client.request(method, url, content=raw.encode(), headers=headers)


def _event(key: str, bucket: str = "raw") -> dict:
    """An S3 ObjectCreated notification of one object."""
    record = {"eventName": "s3:ObjectCreated:Put", "s3": {"bucket": {"name": bucket}, "object": {"key": key}}}
    return {"Records": [record]}


def _valid_json(resp) -> object:
    """The body parses as strict JSON (no NaN/Infinity tokens)."""
    return json.loads(resp.text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c} in {resp.text}"))


# --- F1, F2: finite, bounded numbers; validate before storing --------------------------------------------------


def test_f1_huge_coordinates_are_422_and_nothing_saved(svc) -> None:
    client, _settings, vid, tokens = svc
    url = f"/api/videos/{vid}/corrections"
    before = _count(client, Revision, Revision.video_id == vid)
    for raw in (
        '{"drawnRectangles": {"1": [{"x": 1e308, "y": 0, "width": 1e308, "height": 10}]}}',
        '{"drawnRectangles": {"1": [{"x": 1e999, "y": 0, "width": 5, "height": 10}]}}',
        '{"excluded": {"1": [{"x1": -1e308, "x2": 1e308, "y1": 0, "y2": 1}]}}',
        '{"tracks": [{"id": "t", "keyframes": [{"seq": 1, "x": 0, "y": 0, "width": 1e300, "height": 1}]}]}',
        '{"excludedTracks": [99999999999999999999999]}',
        '{"drawnRectangles": {"99999999999999999999": [{"x": 1, "y": 1, "width": 1, "height": 1}]}}',
    ):
        resp = _json(client, "PUT", url, raw, tokens["editor"])
        assert resp.status_code == 422, (raw, resp.status_code, resp.text)
        _valid_json(resp)
    assert _count(client, Revision, Revision.video_id == vid) == before
    # viewers still read boxes, and the next valid save works
    for path in ("frames?from=1&to=3", "boxes?from=1&to=3"):
        assert client.get(f"/api/videos/{vid}/{path}", headers=auth(tokens["viewer"])).status_code == 200
    ok = client.put(url, json={"drawnRectangles": {"2": [RECT]}}, headers=auth(tokens["editor"]))
    assert ok.status_code == 200, ok.text
    assert _count(client, Revision, Revision.video_id == vid) == before + 1


def test_f2_nan_and_infinity_in_json_bodies_are_4xx_never_500(svc) -> None:
    client, _settings, vid, _tokens = svc
    revisions = _count(client, Revision, Revision.video_id == vid)
    tokens_before = _count(client, ApiToken)
    rect = '{"x": NaN, "y": 0, "width": 1, "height": 1}'
    cases = [
        ("PUT", f"/api/videos/{vid}/corrections", '{"drawnRectangles": {"1": [' + rect + "]}}"),
        ("PUT", f"/api/videos/{vid}/corrections", '{"excludedTracks": [NaN]}'),
        ("PUT", f"/api/videos/{vid}/corrections", '{"note": NaN}'),
        ("PUT", f"/api/videos/{vid}/corrections", "NaN"),
        ("POST", "/api/tokens", '{"role": NaN}'),
        ("POST", "/api/tokens", '{"role": "viewer", "name": Infinity}'),
        ("POST", "/api/tokens", '{"role": -Infinity}'),
        ("POST", "/api/hooks/s3", '{"Records": [{"s3": {"bucket": {"name": NaN}, "object": {"key": "a.mp4"}}}]}'),
    ]  # fmt: skip
    for method, url, raw in cases:
        resp = _json(client, method, url, raw)
        assert 400 <= resp.status_code < 500, (raw, resp.status_code, resp.text)
        _valid_json(resp)
    assert _count(client, Revision, Revision.video_id == vid) == revisions
    assert _count(client, ApiToken) == tokens_before


# --- F3: integers within 64-bit range ---------------------------------------------------------------------------


def test_f3_out_of_range_integers_are_4xx(svc) -> None:
    client, _settings, vid, tokens = svc
    viewer = auth(tokens["viewer"])
    huge = "99999999999999999999"
    for url in (
        f"/api/videos?offset={huge}",
        f"/api/videos?offset={2**63}",
        f"/api/videos/{vid}/events/1e20/thumbnail",
        f"/api/videos/{vid}/events/{huge}/thumbnail",
        f"/api/videos/{vid}/frame?seq={huge}",
        f"/api/videos/{vid}/frame?ms=1e400",
        f"/api/videos/{vid}/frame?ms=nan",
        f"/api/videos/{vid}/frames?from={huge}",
        f"/api/videos/{vid}/boxes?to={huge}",
        f"/api/videos/{vid}/index?from=1&to={huge}",
        f"/api/videos/{vid}/thumbnails?every={huge}",
        f"/api/videos/{vid}/stream?expires={huge}&signature=abc&tid={huge}",
        f"/api/videos/{vid}/final?expires=1&signature=abc&tid=1e20",
    ):
        resp = client.get(url, headers=viewer)
        assert 400 <= resp.status_code < 500, (url, resp.status_code, resp.text)
    tokens_before = _count(client, ApiToken, ApiToken.revoked.is_(True))
    for url in ("/api/tokens/1e20", f"/api/tokens/{huge}", f"/api/tokens/{-(2**64)}"):
        resp = client.delete(url, headers=auth(ADMIN))
        assert 400 <= resp.status_code < 500, (url, resp.status_code, resp.text)
    assert _count(client, ApiToken, ApiToken.revoked.is_(True)) == tokens_before
    # the largest valid values still work
    assert client.get(f"/api/videos?offset={2**63 - 1}", headers=viewer).json()["items"] == []
    assert client.delete(f"/api/tokens/{2**63 - 1}", headers=auth(ADMIN)).status_code == 404


# --- F4: type-checked hook records ------------------------------------------------------------------------------


def test_f4_hook_records_are_type_checked(svc) -> None:
    client, settings, _vid, _tokens = svc
    videos, files = _count(client, Video), stored_files(settings.data_dir)

    def record(bucket: object = "raw", key: object = "incoming/a.mp4", name: object = "s3:ObjectCreated:Put"):
        return {"eventName": name, "s3": {"bucket": {"name": bucket}, "object": {"key": key}}}

    for event in (
        {"Records": [record(key=123)]},
        {"Records": [record(key=None)]},
        {"Records": [record(key=["a"])]},
        {"Records": [record(bucket=5)]},
        {"Records": [record(name=7)]},
        {"Records": [record(), record(key={"x": 1})]},  # one bad record: none is queued
        {"Records": [record(key="../../etc/passwd")]},
        {"Records": [record(key="a%00b.mp4")]},
        {"Records": "nope"},
        {"Records": [1, 2]},
        {"Records": []},
        [],
        "x",
    ):
        resp = client.post("/api/hooks/s3", json=event, headers=auth(ADMIN))
        assert resp.status_code == 422, (event, resp.status_code, resp.text)
    assert _count(client, Video) == videos
    assert stored_files(settings.data_dir) == files


# --- F5: size limits on corrections -----------------------------------------------------------------------------


def test_f5_corrections_size_limits_are_named(svc) -> None:
    client, _settings, vid, tokens = svc
    url = f"/api/videos/{vid}/corrections"
    editor = auth(tokens["editor"])
    before = _count(client, Revision, Revision.video_id == vid)

    # a body over the byte limit is refused while it streams in (413, the limit named)
    many = {"drawnRectangles": {str(s): [RECT] * 200 for s in range(1, 91)}, "note": "x" * 10}
    raw = json.dumps(many).encode()
    raw += b" " * (MAX_CORRECTIONS_BODY + 1 - len(raw))
    resp = client.put(url, content=raw, headers={**editor, "Content-Type": "application/json"})
    assert resp.status_code == 413 and str(MAX_CORRECTIONS_BODY) in resp.json()["detail"], resp.text

    def chunks():  # no Content-Length: counted as it arrives
        yield raw[: len(raw) // 2]
        yield raw[len(raw) // 2 :]

    resp = client.put(url, content=chunks(), headers={**editor, "Content-Type": "application/json"})
    assert resp.status_code == 413, resp.text

    # rectangles per frame
    resp = client.put(url, json={"drawnRectangles": {"3": [RECT] * (MAX_RECTS_PER_FRAME + 1)}}, headers=editor)
    assert resp.status_code == 422 and str(MAX_RECTS_PER_FRAME) in resp.text, resp.text
    box = {"x1": 1, "x2": 2, "y1": 1, "y2": 2}
    resp = client.put(url, json={"excluded": {"3": [box] * (MAX_RECTS_PER_FRAME + 1)}}, headers=editor)
    assert resp.status_code == 422 and str(MAX_RECTS_PER_FRAME) in resp.text, resp.text

    # rectangles in total (spread over frames, under the per-frame and byte limits)
    per_frame = MAX_REGIONS // 90 + 1
    total = {"drawnRectangles": {str(s): [RECT] * per_frame for s in range(1, 91)}}
    assert len(json.dumps(total)) < MAX_CORRECTIONS_BODY
    resp = client.put(url, json=total, headers=editor)
    assert resp.status_code == 422 and str(MAX_REGIONS) in resp.text, resp.text
    assert _count(client, Revision, Revision.video_id == vid) == before

    # a viewer's frame range stays small
    ok = client.put(url, json={"drawnRectangles": {"5": [RECT] * MAX_RECTS_PER_FRAME}}, headers=editor)
    assert ok.status_code == 200, ok.text
    frames = client.get(f"/api/videos/{vid}/frames?from=5&to=5", headers=auth(tokens["viewer"]))
    assert frames.status_code == 200 and len(frames.content) < 64 * 1024


# --- F6: images are not videos ----------------------------------------------------------------------------------


def _image(fmt: str, frames: int = 1) -> bytes:
    buf = io.BytesIO()
    images = [Image.fromarray(np.full((48, 64, 3), 40 * i, np.uint8)) for i in range(frames)]
    if frames > 1:
        images[0].save(buf, fmt, save_all=True, append_images=images[1:], duration=100)
    else:
        images[0].save(buf, fmt)
    return buf.getvalue()


def test_f6_images_uploaded_as_videos_are_refused(svc) -> None:
    client, settings, _vid, tokens = svc
    videos, files = _count(client, Video), stored_files(settings.data_dir)
    for fmt, frames in (("PNG", 1), ("JPEG", 1), ("BMP", 1), ("GIF", 1), ("GIF", 4), ("WEBP", 1), ("TIFF", 1)):
        files_arg = {"file": ("holiday.mp4", _image(fmt, frames), "video/mp4")}
        resp = client.post("/api/videos", files=files_arg, headers=auth(tokens["editor"]))
        assert resp.status_code == 422, (fmt, resp.status_code, resp.text)
        detail = resp.json()["detail"]
        assert detail.startswith("not a playable video: holiday.mp4 is an image"), detail
    assert _count(client, Video) == videos
    assert stored_files(settings.data_dir) == files
    spool = settings.data_dir / "uploads"
    assert not spool.exists() or list(spool.iterdir()) == []


# --- D1: bounded sprite cache -----------------------------------------------------------------------------------


def test_d1_thumbnail_sprites_are_an_lru_with_a_cap(svc, monkeypatch) -> None:
    client, settings, vid, tokens = svc
    viewer = auth(tokens["viewer"])
    sprite_dir = f"thumbnails/videos/{vid}/sprite-"

    def sprites() -> list[str]:
        return [f for f in stored_files(settings.data_dir) if f.startswith(sprite_dir)]

    hot = f"{sprite_dir}sdr-processed-30-32.jpg"
    for every in range(30, 30 + MAX_SPRITES_PER_VIDEO + 10):
        resp = client.get(f"/api/videos/{vid}/thumbnails?every={every}&width=32", headers=viewer)
        assert resp.status_code == 200, resp.text
        assert client.get(f"/api/videos/{vid}/thumbnails?every=30&width=32", headers=viewer).status_code == 200
        assert len(sprites()) <= MAX_SPRITES_PER_VIDEO
    assert hot in sprites()  # the one used all the time was never evicted
    assert f"{sprite_dir}sdr-processed-31-32.jpg" not in sprites()  # the oldest was

    import framemask.api.routes.media as media

    monkeypatch.setattr(media, "MAX_SPRITE_PIXELS", 10_000)
    resp = client.get(f"/api/videos/{vid}/thumbnails?every=1&width=64", headers=viewer)
    assert resp.status_code == 422 and "10000 pixels" in resp.json()["detail"], resp.text


# --- headers: Range, no-store -----------------------------------------------------------------------------------


def test_malformed_or_unsatisfiable_range_is_416(svc) -> None:
    client, _settings, vid, _tokens = svc
    size = client.get(f"/api/videos/{vid}/stream", headers=auth(ADMIN)).headers["content-length"]
    for rng in ("bytes=abc", "bytes=5-1", "items=0-5", "bytes=-", "bytes=99999999999-", "bytes=1e3-", "garbage"):
        resp = client.get(f"/api/videos/{vid}/stream", headers={**auth(ADMIN), "Range": rng})
        assert resp.status_code == 416, (rng, resp.status_code, resp.text)
        assert resp.headers["content-range"] == f"bytes */{size}", rng
    ok = client.get(f"/api/videos/{vid}/stream", headers={**auth(ADMIN), "Range": "bytes=0-9"})
    assert ok.status_code == 206 and len(ok.content) == 10


def test_originals_are_never_cached(svc) -> None:
    client, _settings, vid, tokens = svc
    editor = auth(tokens["editor"])
    for path in ("frame?seq=1", "thumbnails?every=45&width=32", "stream?"):
        original = client.get(f"/api/videos/{vid}/{path}&variant=original", headers=editor)
        assert original.status_code == 200, (path, original.text)
        assert original.headers["cache-control"] == "no-store", path
        processed = client.get(f"/api/videos/{vid}/{path}", headers=editor)
        assert processed.status_code == 200 and "no-store" not in processed.headers["cache-control"], path
    ranged = client.get(f"/api/videos/{vid}/stream?variant=original", headers={**editor, "Range": "bytes=0-99"})
    assert ranged.status_code == 206 and ranged.headers["cache-control"] == "no-store"


# --- errors: no server paths; deterministic failures not retried ------------------------------------------------


def test_job_errors_carry_no_server_paths_and_bad_input_is_not_retried(svc) -> None:
    client, settings, _vid, _tokens = svc
    services = client.app.state.services
    bad = settings.data_dir.parent / "not-a-video.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 500)
    services.store.put_file(settings.bucket_raw, "incoming/broken.mp4", bad)
    event = _event("incoming/broken.mp4")
    resp = client.post("/api/hooks/s3", json=event, headers=auth(ADMIN))
    assert resp.status_code == 202, resp.text
    vid = resp.json()["accepted"][0]["id"]
    video = wait_video(client, vid, timeout=60)
    assert video["status"] == "failed", video
    root = str(settings.data_dir.resolve())
    text = client.get(f"/api/videos/{vid}", headers=auth(ADMIN)).text
    assert root not in text and str(settings.data_dir) not in text, text
    for message in (video["error"], video["job"]["error"]):
        assert message and not re.search(r"(^|\s)/[\w.-]+/", message), message
    assert video["job"]["attempts"] == 1  # bad input fails at once
    with services.db.session() as session:
        assert session.scalar(select(Job.attempts).where(Job.video_id == vid)) == 1


def test_invalid_stored_revision_fails_render_once_and_reads_stay_4xx(svc) -> None:
    """A revision saved before the limits existed (F1's 1e308): reads answer 409, not 500; the render
    fails at its first attempt; the next valid save works."""
    client, _settings, vid, tokens = svc
    services = client.app.state.services
    with services.db.begin() as session:
        number = (session.scalar(select(func.max(Revision.number)).where(Revision.video_id == vid)) or 0) + 1
        bad = {"drawnRectangles": {"1": [{"x": 1e308, "y": 0, "width": 1e308, "height": 10}]}}
        session.add(Revision(video_id=vid, number=number, author="legacy", edits=bad))
    assert client.get(f"/api/videos/{vid}/frames?from=1&to=2", headers=auth(tokens["viewer"])).status_code == 409
    assert client.get(f"/api/videos/{vid}/boxes?from=1&to=2", headers=auth(tokens["viewer"])).status_code == 409
    queued = client.post(f"/api/videos/{vid}/render", headers=auth(tokens["editor"]))
    assert queued.status_code == 202, queued.text
    deadline = time.monotonic() + 60
    while (job := client.get(f"/api/jobs/{queued.json()['job_id']}", headers=auth(ADMIN)).json())["status"] not in (
        "succeeded",
        "failed",
    ):
        assert time.monotonic() < deadline, job
        time.sleep(0.2)
    assert job["status"] == "failed" and job["attempts"] == 1, job
    fixed = client.put(f"/api/videos/{vid}/corrections", json={}, headers=auth(tokens["editor"]))
    assert fixed.status_code == 200, fixed.text
    assert client.get(f"/api/videos/{vid}/frames?from=1&to=2", headers=auth(tokens["viewer"])).status_code == 200


def test_scrubbing_and_redaction_helpers() -> None:
    assert (
        scrub_paths("decode failed: /srv/data/cache/videos/ab/original.mp4: bad") == "decode failed: original.mp4: bad"
    )
    assert scrub_paths("expected multipart/form-data") == "expected multipart/form-data"
    line = '127.0.0.1:5 - "GET /api/videos/x/stream?expires=9&signature=deadbeef&tid=2 HTTP/1.1" 200'
    assert "deadbeef" not in redact_signatures(line) and "signature=[redacted]&tid=2" in redact_signatures(line)
    assert "SECRET" not in redact_signatures("/b/k?X-Amz-Credential=a&X-Amz-Signature=SECRET")


# --- model readiness --------------------------------------------------------------------------------------------


def test_missing_models_answer_503_until_prepared(tmp_path: Path, make, monkeypatch) -> None:
    empty = tmp_path / "no-models"
    empty.mkdir()
    monkeypatch.setenv("FRAMEMASK_MODEL_DIR", str(empty))
    settings = make_settings(tmp_path / "data")
    with service(settings) as client:
        health = client.get("/healthz").json()
        assert health["status"] == "degraded" and health["models"]["ready"] is False, health
        assert health["models"]["fix"] == "framemask models --prepare"
        resp = upload(client, make("cfr"))
        assert resp.status_code == 503, resp.text
        assert "framemask models --prepare" in resp.json()["detail"] and "retry-after" in resp.headers
        services = client.app.state.services
        services.store.put_file(settings.bucket_raw, "incoming/c.mp4", make("cfr"))
        event = _event("incoming/c.mp4")
        assert client.post("/api/hooks/s3", json=event, headers=auth(ADMIN)).status_code == 503
        assert _count(client, Video) == 0 and _count(client, Job) == 0
        monkeypatch.delenv("FRAMEMASK_MODEL_DIR")  # the prepared cache: ready again without a restart
        assert client.get("/healthz").json()["models"]["ready"] is True
        resp = upload(client, make("cfr"))
        assert resp.status_code == 201, resp.text
        assert wait_video(client, resp.json()["id"])["status"] == "ready"


def test_serve_logs_missing_models_once_and_redacts_signatures(tmp_path: Path) -> None:
    """`framemask serve` as a real process: one clear line about the models at start; access-log lines
    never carry a URL signature."""
    empty = tmp_path / "no-models"
    empty.mkdir()
    settings = make_settings(tmp_path / "data")
    env = {**settings_env(settings), "FRAMEMASK_MODEL_DIR": str(empty)}
    port = free_port()
    log_path = tmp_path / "serve.log"
    cli = Path(sys.executable).with_name("framemask")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(cli), "serve", "--port", str(port), "--log-level", "info"], env=env, stdout=log, stderr=log
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.2)
        secret = "c0ffee" * 10
        fake = "0" * 32
        for url in (
            f"/api/videos/{fake}/stream?variant=processed&expires=9999999999&tid=1&signature={secret}",
            f"/api/videos/{fake}/events/1/thumbnail?expires=9999999999&signature={secret}",
            f"/api/videos/{fake}/final?signature={secret}&expires=9999999999",
        ):
            assert httpx.get(base + url).status_code == 401
        with httpx.Client(base_url=base, headers=auth(ADMIN)) as http:
            files = {"file": ("a.mp4", b"x" * 1000, "video/mp4")}
            resp = http.post("/api/videos", files=files)
            assert resp.status_code == 503 and "framemask models --prepare" in resp.json()["detail"]
    finally:
        stop_process(proc)
    text = log_path.read_text()
    assert secret not in text, text
    assert text.count("signature=[redacted]") >= 3, text
    lines = [ln for ln in text.splitlines() if "models are not ready" in ln]
    assert len(lines) == 1 and "framemask models --prepare" in lines[0], text


def test_non_ascii_signature_is_401_not_500(svc) -> None:
    """Found by the fuzzer: `hmac.compare_digest` raised TypeError on a non-ASCII signature."""
    client, _settings, vid, _tokens = svc
    for url in (
        f"/api/videos/{vid}/stream?expires=9999999999&tid=1&signature=%C3%A2",
        f"/api/videos/{vid}/final?expires=9999999999&signature=%E2%98%83",
        f"/api/videos/{vid}/events/1/thumbnail?expires=9999999999&signature=%F0%9F%98%80",
    ):
        assert client.get(url).status_code == 401, url
