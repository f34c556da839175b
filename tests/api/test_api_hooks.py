"""Who may post storage events to `/api/hooks/s3`: the URL token (`?token=`, for radosgw and other S3
servers whose notifications cannot send headers), the webhook secret as bearer (MinIO), an admin token;
and what is ignored (other buckets, other events, the API's own `videos/` keys: logged)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from support.api import ADMIN, auth, make_settings, new_token, service

URL_TOKEN = "hook-url-token-for-tests-0123456789"
SECRET = "hook-bearer-secret-for-tests-012345"


def _event(bucket: str, key: str, name: str = "s3:ObjectCreated:Put") -> dict[str, object]:
    return {"Records": [{"eventName": name, "s3": {"bucket": {"name": bucket}, "object": {"key": key}}}]}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory):
    settings = make_settings(
        tmp_path_factory.mktemp("hooks") / "data", workers=0, webhook_url_token=URL_TOKEN, webhook_secret=SECRET
    )
    with service(settings) as test_client:
        yield test_client


def test_the_url_token_is_accepted_where_no_header_can_be_sent(client) -> None:
    resp = client.post(f"/api/hooks/s3?token={URL_TOKEN}", json=_event("elsewhere", "a.mp4"))
    assert resp.status_code == 202, resp.text
    assert resp.json() == {
        "accepted": [],
        "ignored": [{"key": "a.mp4", "bucket": "elsewhere", "event": "s3:ObjectCreated:Put"}],
    }


@pytest.mark.parametrize("token", ["wrong-token-of-the-same-kind-0123456", URL_TOKEN[:-1], "", SECRET])
def test_a_wrong_url_token_is_401_even_with_a_valid_bearer(client, token: str) -> None:
    resp = client.post(f"/api/hooks/s3?token={token}", json=_event("elsewhere", "a.mp4"), headers=auth(ADMIN))
    assert resp.status_code == 401, resp.text
    assert resp.json()["detail"] == "invalid hook token"


def test_bearer_auth_keeps_working(client) -> None:
    event = _event("elsewhere", "a.mp4")
    assert client.post("/api/hooks/s3", json=event, headers=auth(SECRET)).status_code == 202
    assert client.post("/api/hooks/s3", json=event, headers=auth(ADMIN)).status_code == 202
    assert client.post("/api/hooks/s3", json=event, headers=auth(URL_TOKEN)).status_code == 401  # not a bearer
    assert client.post("/api/hooks/s3", json=event).status_code == 401
    viewer = new_token(client, "viewer")
    assert client.post("/api/hooks/s3", json=event, headers=auth(viewer)).status_code == 403


def test_the_url_token_is_refused_when_none_is_configured(tmp_path: Path) -> None:
    with service(make_settings(tmp_path / "data", workers=0)) as plain:
        resp = plain.post(f"/api/hooks/s3?token={URL_TOKEN}", json=_event("elsewhere", "a.mp4"))
    assert resp.status_code == 401


def test_keys_under_videos_are_ignored_and_logged(client, caplog: pytest.LogCaptureFixture) -> None:
    own = "videos/0123456789abcdef0123456789abcdef/original.mp4"
    with caplog.at_level(logging.INFO, logger="framemask.api.routes.hooks"):
        resp = client.post(f"/api/hooks/s3?token={URL_TOKEN}", json=_event("raw", own))
    assert resp.status_code == 202, resp.text
    assert resp.json()["accepted"] == []
    assert resp.json()["ignored"][0]["key"] == own and "videos/" in resp.json()["ignored"][0]["note"]
    assert any(own in r.getMessage() and "ignored" in r.getMessage() for r in caplog.records)


def test_the_url_token_ingests_an_object(client, make) -> None:
    services = client.app.state.services
    services.store.put_file(services.settings.bucket_raw, "incoming/hooked.mp4", make("cfr"))
    resp = client.post(f"/api/hooks/s3?token={URL_TOKEN}", json=_event("raw", "incoming/hooked.mp4"))
    assert resp.status_code == 202, resp.text
    (accepted,) = resp.json()["accepted"]
    assert accepted["key"] == "incoming/hooked.mp4" and accepted["status"] == "queued"
    video = client.get(f"/api/videos/{accepted['id']}", headers=auth(ADMIN)).json()
    assert video["status"] == "queued" and video["filename"] == "hooked.mp4"
    audit = client.get("/api/audit?action=hook.ingest", headers=auth(ADMIN)).json()
    assert audit[0]["actor"] == "s3-webhook" and audit[0]["video_id"] == accepted["id"]


def test_the_token_never_reaches_the_access_log(client, caplog: pytest.LogCaptureFixture) -> None:
    from framemask.api.hardening import RedactSignatures

    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:1", "POST", f"/api/hooks/s3?token={URL_TOKEN}", "1.1", 202), None,
    )  # fmt: skip
    assert RedactSignatures().filter(record)
    assert URL_TOKEN not in record.getMessage()
