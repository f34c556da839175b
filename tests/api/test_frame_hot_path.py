"""`GET /frame`'s lean path (the stream's look-ups in an async dependency, one worker-thread hop for the audit
row and the decode) keeps every check of the ORM path, and every answer, on the very next request.

One embedded service (SQLite, local objects, no workers): a small video is uploaded and its original made its
processed file too, so both variants have frames without running detection. The 422s are the route's as
before: the same bodies, after the same 401s and 404s.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select
from support.api import ADMIN, auth, decode_image, make_settings, new_token, service, upload, upload_as_processed

from framemask.store.models import AuditLog


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory, make):
    data = tmp_path_factory.mktemp("frame-hot-path") / "data"
    with service(make_settings(data, workers=0)) as client:
        yield client, upload_as_processed(client, make("cfr"))


def _frame(client, vid: str, token: str | None, query: str = "seq=1"):
    return client.get(f"/api/videos/{vid}/frame?{query}", headers=auth(token) if token else {})


def _audit_rows(client, vid: str) -> list[AuditLog]:
    query = select(AuditLog).where(AuditLog.video_id == vid, AuditLog.action == "original.frame")
    with client.app.state.services.db.session() as session:
        return list(session.scalars(query.order_by(AuditLog.id)))


def test_frames_of_both_variants(svc) -> None:
    client, vid = svc
    for variant in ("processed", "original"):
        resp = _frame(client, vid, ADMIN, f"seq=3&variant={variant}&format=png")
        assert resp.status_code == 200, resp.text
        assert resp.headers["x-frame-seq"] == "3" and resp.headers["content-type"] == "image/png"
        assert decode_image(resp.content).ndim == 3
    by_time = _frame(client, vid, ADMIN, f"ms={resp.headers['x-frame-time-ms']}")
    assert by_time.status_code == 200 and by_time.headers["x-frame-seq"] == "3"
    assert by_time.headers["cache-control"] == "private, max-age=3600"


def test_revoked_token_is_refused_on_the_next_request(svc) -> None:
    client, vid = svc
    viewer = new_token(client, "viewer")
    token_id = client.get("/api/me", headers=auth(viewer)).json()["token_id"]
    assert _frame(client, vid, viewer).status_code == 200
    assert client.delete(f"/api/tokens/{token_id}", headers=auth(ADMIN)).status_code == 204
    resp = _frame(client, vid, viewer)
    assert resp.status_code == 401 and resp.headers["www-authenticate"] == "Bearer"
    assert resp.json()["detail"] == "invalid or revoked token"
    assert _frame(client, vid, "fm_unknown").status_code == 401
    missing = _frame(client, vid, None)
    assert missing.status_code == 401 and missing.json()["detail"] == "missing bearer token"


def test_deleted_video_is_404_on_the_next_request(svc, make) -> None:
    client, _ = svc
    vid = upload_as_processed(client, make("cfr"))
    assert _frame(client, vid, ADMIN).status_code == 200
    assert client.delete(f"/api/videos/{vid}", headers=auth(ADMIN)).status_code == 204
    resp = _frame(client, vid, ADMIN)
    assert resp.status_code == 404 and resp.json()["detail"] == f"no video {vid}"


def test_viewers_get_no_original_and_final_needs_a_render(svc, make) -> None:
    client, vid = svc
    viewer = new_token(client, "viewer")
    resp = _frame(client, vid, viewer, "seq=1&variant=original")
    assert resp.status_code == 403 and resp.json()["detail"] == "originals are for editors and admins only"
    assert _frame(client, vid, viewer).status_code == 200
    final = _frame(client, vid, viewer, "seq=1&variant=final")
    assert final.status_code == 409 and "no final video" in final.json()["detail"]
    unprocessed = upload(client, make("cfr")).json()["id"]
    resp = _frame(client, unprocessed, viewer)
    assert resp.status_code == 409 and "not processed yet" in resp.json()["detail"]


def test_each_original_frame_writes_one_audit_row_before_the_image(svc) -> None:
    client, vid = svc
    editor, viewer = new_token(client, "editor"), new_token(client, "viewer")
    before = len(_audit_rows(client, vid))
    for n, query in enumerate(("seq=1", "seq=2", "ms=40"), start=1):
        resp = _frame(client, vid, editor, f"{query}&variant=original")
        assert resp.status_code == 200 and resp.headers["cache-control"] == "no-store"
        rows = _audit_rows(client, vid)
        assert len(rows) == before + n  # written before the response arrived, exactly one per request
        key, value = query.split("=")
        expected = {"seq": int(value), "ms": None} if key == "seq" else {"seq": None, "ms": float(value)}
        assert rows[-1].detail == expected and rows[-1].role == "editor" and rows[-1].client == "testclient"
    assert _frame(client, vid, viewer, "seq=1&variant=original").status_code == 403
    assert _frame(client, vid, editor).status_code == 200  # processed: no audit row
    assert len(_audit_rows(client, vid)) == before + 3


def _errors(resp) -> list[tuple[tuple[str | int, ...], str]]:
    assert resp.status_code == 422, resp.text
    return [(tuple(e["loc"]), e["type"]) for e in resp.json()["detail"]]


def test_bad_parameters_are_the_same_422_after_the_same_401_and_404(svc) -> None:
    client, vid = svc
    viewer = new_token(client, "viewer")
    assert _errors(_frame(client, vid, ADMIN, "seq=0")) == [(("query", "seq"), "greater_than_equal")]
    assert _errors(_frame(client, vid, ADMIN, "seq=1&width=8&format=gif")) == [
        (("query", "format"), "literal_error"),
        (("query", "width"), "greater_than_equal"),
    ]
    assert _errors(_frame(client, vid, ADMIN, "ms=nan")) == [(("query", "ms"), "finite_number")]
    both = _frame(client, vid, ADMIN, "seq=1&ms=0")
    assert both.status_code == 422 and both.json()["detail"] == "give exactly one of seq or ms"
    assert _frame(client, vid, ADMIN, "").json()["detail"] == "give exactly one of seq or ms"
    # the parameters are checked before the variant guard, as before
    assert _errors(_frame(client, vid, viewer, "seq=0&variant=original")) == [(("query", "seq"), "greater_than_equal")]
    assert _frame(client, vid, viewer, "seq=1&ms=0&variant=original").status_code == 422
    # a malformed video id is a 422 (no 404), but only once the token is good
    assert _errors(_frame(client, "XYZ", ADMIN)) == [(("path", "video_id"), "string_pattern_mismatch")]
    assert _frame(client, "XYZ", "fm_unknown").status_code == 401
    # who and which video come first
    assert _frame(client, vid, "fm_unknown", "seq=0").status_code == 401
    assert _frame(client, vid, None, "seq=0").json()["detail"] == "missing bearer token"
    gone = _frame(client, "0" * 32, ADMIN, "seq=0")
    assert gone.status_code == 404 and gone.json()["detail"] == f"no video {'0' * 32}"
