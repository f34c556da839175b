"""Bad input and bad credentials: the right status, a readable message, nothing stored, nothing lost."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from support.api import ADMIN, auth, make_settings, new_token, service, stored_files, upload, wait_for

from framemask.store.models import Video

LIMIT_MB = 1


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory, make):
    data = tmp_path_factory.mktemp("errors") / "data"
    settings = make_settings(data, max_upload_mb=LIMIT_MB)
    with service(settings) as client:
        video = upload(client, make("cfr"))
        assert video.status_code == 201, video.text
        ready = wait_for(client, video.json()["id"])
        assert ready["status"] == "ready", ready
        tokens = {role: new_token(client, role) for role in ("viewer", "editor")}
        yield client, settings, ready, tokens


@pytest.fixture
def intact(svc):
    """After the test: the stored objects, the video rows and the good video's bytes are unchanged."""
    client, settings, ready, _tokens = svc
    before = stored_files(settings.data_dir)
    stream = client.get(f"/api/videos/{ready['id']}/stream", headers=auth(ADMIN)).content
    yield
    assert stored_files(settings.data_dir) == before
    with client.app.state.services.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Video)) == 1
    assert client.get(f"/api/videos/{ready['id']}/stream", headers=auth(ADMIN)).content == stream
    assert client.get(f"/api/videos/{ready['id']}", headers=auth(ADMIN)).json()["status"] == "ready"
    spool = settings.data_dir / "uploads"
    assert not spool.exists() or list(spool.iterdir()) == []


def _post(client, files=None, content=None, headers=None, token=ADMIN):
    return client.post("/api/videos", files=files, content=content, headers={**auth(token), **(headers or {})})


def test_non_video_upload_is_422_and_nothing_kept(svc, intact, tmp_path: Path) -> None:
    client = svc[0]
    resp = _post(client, files={"file": ("notes.mp4", b"this is not a video at all" * 100, "video/mp4")})
    assert resp.status_code == 422
    assert resp.json()["detail"].startswith("not a playable video: notes.mp4")
    assert "uploads" not in resp.json()["detail"]  # the spool path is not leaked


def test_truncated_video_is_422(svc, intact, make, tmp_path: Path) -> None:
    client = svc[0]
    data = make("cfr").read_bytes()
    import subprocess

    faststart = tmp_path / "fs.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(make("cfr")), "-c", "copy", "-movflags", "+faststart", str(faststart)],
        check=True,
    )
    for blob in (data[: len(data) // 2], faststart.read_bytes()[: int(faststart.stat().st_size * 0.8)]):
        resp = _post(client, files={"file": ("cut.mp4", blob, "video/mp4")})
        assert resp.status_code == 422, resp.text
        assert "not a playable video" in resp.json()["detail"]


def test_truncated_or_malformed_multipart_is_422(svc, intact, make) -> None:
    client = svc[0]
    boundary = "XyZboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.mp4"\r\n'
        "Content-Type: video/mp4\r\n\r\n"
    ).encode()
    body = head + make("cfr").read_bytes()[:5000]  # the client vanished before the closing boundary
    resp = _post(client, content=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert resp.status_code == 422 and "truncated upload" in resp.json()["detail"]
    resp = _post(client, files={"other": ("a.mp4", b"x", "video/mp4")})
    assert resp.status_code == 422 and "no 'file' field" in resp.json()["detail"]
    resp = _post(client, files={"file": ("empty.mp4", b"", "video/mp4")})
    assert resp.status_code == 422 and "empty" in resp.json()["detail"]
    resp = _post(client, content=b"{}", headers={"Content-Type": "application/json"})
    assert resp.status_code == 422


def test_over_the_limit_is_413_while_streaming(svc, intact) -> None:
    client = svc[0]
    too_big = b"\0" * (LIMIT_MB * 1024 * 1024 + 1)
    resp = _post(client, files={"file": ("big.mp4", too_big, "video/mp4")})
    assert resp.status_code == 413

    def chunks():  # no Content-Length: the limit must be enforced on the bytes as they arrive
        yield b'--B\r\nContent-Disposition: form-data; name="file"; filename="big.mp4"\r\n\r\n'
        for _ in range(40):
            yield b"\1" * 65536

    resp = _post(client, content=chunks(), headers={"Content-Type": "multipart/form-data; boundary=B"})
    assert resp.status_code == 413 and "limit" in resp.json()["detail"]


def test_unknown_ids_are_404(svc) -> None:
    client = svc[0]
    missing = "0" * 32
    for path in ("", "/frames", "/index", "/frame?seq=1", "/thumbnails", "/stream", "/stream/url"):
        assert client.get(f"/api/videos/{missing}{path}", headers=auth(ADMIN)).status_code == 404, path
    assert client.delete(f"/api/videos/{missing}", headers=auth(ADMIN)).status_code == 404
    assert client.get(f"/api/jobs/{missing}", headers=auth(ADMIN)).status_code == 404
    assert client.get(f"/api/jobs/{missing}/events", headers=auth(ADMIN)).status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "frame",  # neither seq nor ms
        "frame?seq=1&ms=0",
        "frame?seq=0",
        "frame?seq=91",  # past endSequence (90)
        "frame?seq=abc",
        "frame?ms=-5",
        "frame?seq=1&format=gif",
        "frame?seq=1&variant=raw",
        "frame?seq=1&width=3",
        "frames?from=0",
        "frames?from=50&to=10",
        "frames?from=91",
        "index?from=80&to=70",
        "thumbnails?every=0",
        "thumbnails?width=5000",
        "stream?variant=everything",
    ],
)
def test_malformed_parameters_are_422(svc, path: str) -> None:
    client, _settings, ready, _tokens = svc
    resp = client.get(f"/api/videos/{ready['id']}/{path}", headers=auth(ADMIN))
    assert resp.status_code == 422, (path, resp.status_code, resp.text)
    assert resp.json()["detail"]


def test_malformed_ids_are_422(svc) -> None:
    client = svc[0]
    assert client.get("/api/videos/not-an-id", headers=auth(ADMIN)).status_code == 422
    assert client.get("/api/videos/..%2F..%2Fetc", headers=auth(ADMIN)).status_code in (404, 422)
    assert client.get("/api/jobs/xyz", headers=auth(ADMIN)).status_code == 422


def test_missing_or_bad_token_is_401(svc, make) -> None:
    client, _settings, ready, _tokens = svc
    vid = ready["id"]
    for method, path in [
        ("GET", "/api/videos"),
        ("GET", f"/api/videos/{vid}"),
        ("POST", "/api/videos"),
        ("GET", f"/api/videos/{vid}/frame?seq=1"),
        ("GET", f"/api/videos/{vid}/stream"),
        ("DELETE", f"/api/videos/{vid}"),
        ("GET", "/api/tokens"),
        ("GET", "/api/me"),
    ]:
        resp = client.request(method, path)
        assert resp.status_code == 401 and resp.headers["www-authenticate"] == "Bearer", path
        assert client.request(method, path, headers=auth("fm_wrong")).status_code == 401, path
        assert client.request(method, path, headers={"Authorization": f"Basic {ADMIN}"}).status_code == 401


def test_revoked_token_is_401(svc) -> None:
    client = svc[0]
    resp = client.post("/api/tokens", json={"role": "viewer"}, headers=auth(ADMIN)).json()
    assert client.get("/api/me", headers=auth(resp["token"])).json()["role"] == "viewer"
    assert client.delete(f"/api/tokens/{resp['id']}", headers=auth(ADMIN)).status_code == 204
    assert client.get("/api/me", headers=auth(resp["token"])).status_code == 401


def test_wrong_role_is_403(svc, intact, make) -> None:
    client, _settings, ready, tokens = svc
    viewer, editor = tokens["viewer"], tokens["editor"]
    vid = ready["id"]
    assert upload(client, make("cfr"), token=viewer).status_code == 403
    assert client.delete(f"/api/videos/{vid}", headers=auth(viewer)).status_code == 403
    assert client.get(f"/api/videos/{vid}/frame?seq=1&variant=original", headers=auth(viewer)).status_code == 403
    for token in (viewer, editor):
        assert client.get("/api/tokens", headers=auth(token)).status_code == 403
        assert client.post("/api/tokens", json={"role": "admin"}, headers=auth(token)).status_code == 403
        assert client.get("/api/audit", headers=auth(token)).status_code == 403
        assert client.post("/api/hooks/s3", json={"Records": []}, headers=auth(token)).status_code == 403
    assert client.get("/api/videos", headers=auth(viewer)).status_code == 200
    assert client.post("/api/tokens", json={"role": "root"}, headers=auth(ADMIN)).status_code == 422


def test_openapi_docs_are_served(svc) -> None:
    client = svc[0]
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    for path in (
        "/api/videos",
        "/api/videos/{video_id}/frame",
        "/api/videos/{video_id}/stream",
        "/api/jobs/{job_id}/events",
        "/api/hooks/s3",
    ):
        assert path in spec["paths"], path
    upload_body = spec["paths"]["/api/videos"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in upload_body
