"""Events follow corrections: after a re-render the events of the changed spans are recomputed from the new
final and the effective boxes, with thumbnails cut from the final (a region added in the editor is masked
in them), and the thumbnails they replace are deleted once the rows are committed."""

from __future__ import annotations

import numpy as np
import pytest
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
    wait_for,
    wait_job,
)

REGION = {"x": 40, "y": 40, "width": 160, "height": 120}  # displayed pixels of the 640x480 clip


def _result(client, job_id: str) -> dict:
    from framemask.store.models import Job

    with client.app.state.services.db.session() as session:
        job = session.get(Job, job_id)
        assert job is not None and job.result is not None
        return dict(job.result)


def _events(client, vid: str) -> list[dict]:
    resp = client.get(f"/api/videos/{vid}/events", headers=auth(ADMIN))
    assert resp.status_code == 200, resp.text
    return resp.json()["events"]


def _thumb(client, event: dict) -> np.ndarray:
    resp = client.get(event["thumbnail_url"])
    assert resp.status_code == 200
    return decode_image(resp.content).astype(np.float64)


def _mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).mean())


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory):
    if not PEOPLE_VIDEO.is_file():
        pytest.fail(f"shared test media missing: {PEOPLE_VIDEO}")
    settings = make_settings(tmp_path_factory.mktemp("events-rerender") / "data")
    with service(settings) as client:
        created = upload(client, PEOPLE_VIDEO).json()
        video = wait_for(client, created["id"])
        assert video["status"] == "ready", video
        yield client, settings, created["id"]


def test_events_after_a_render_show_the_added_region_masked(svc) -> None:
    client, settings, vid = svc
    before = _events(client, vid)
    assert before and all(e["thumbnail_key"] for e in before)
    old_thumbs = [_thumb(client, e) for e in before]  # served by event id: fetch them before the render
    keys = sorted({e["key_seq"] for e in before})
    editor = new_token(client, "editor")
    body = {"drawnRectangles": {str(seq): [REGION] for seq in keys}, "note": "cover the sign"}
    assert client.put(f"/api/videos/{vid}/corrections", json=body, headers=auth(editor)).status_code == 200
    job = wait_job(client, client.post(f"/api/videos/{vid}/render", headers=auth(editor)).json()["job_id"])
    assert job["status"] == "succeeded", job
    result = _result(client, job["id"])
    assert result["events"] == {"events": len(before), "recomputed": len(before)}  # every span holds a key frame

    after = _events(client, vid)
    assert [e["id"] for e in after] == [e["id"] for e in before]  # same events, same ids
    assert [(e["kind"], e["start_seq"], e["end_seq"]) for e in after] == [
        (e["kind"], e["start_seq"], e["end_seq"]) for e in before
    ]
    scale = 320 / 640  # thumbnails are 320 px wide
    y1, y2 = int((REGION["y"] + 4) * scale), int((REGION["y"] + REGION["height"] - 4) * scale)
    x1, x2 = int((REGION["x"] + 4) * scale), int((REGION["x"] + REGION["width"] - 4) * scale)
    for old, new, a in zip(before, after, old_thumbs, strict=True):
        assert new["thumbnail_key"] != old["thumbnail_key"] and "final-r1" in new["thumbnail_key"]
        assert new["description"] and new["tags"][0]["label"] == "person"  # people from the effective tracks
        b = _thumb(client, new)
        inside = _mad(a[y1:y2, x1:x2], b[y1:y2, x1:x2])
        outside = _mad(a[y2 + 8 :, :], b[y2 + 8 :, :])
        assert inside > 4 * max(outside, 1.0), (inside, outside)  # the region is masked, the rest unchanged
        # a mosaic: large flat cells, so far fewer distinct neighbouring values than in the processed frame
        assert np.abs(np.diff(b[y1:y2, x1:x2], axis=1)).mean() < np.abs(np.diff(a[y1:y2, x1:x2], axis=1)).mean()

    # the thumbnails of the replaced rows are gone; exactly the listed ones remain
    thumbs = [f for f in stored_files(settings.data_dir) if f.startswith(f"{settings.bucket_thumbnails}/videos/{vid}/")]
    assert sorted(thumbs) == sorted(f"{settings.bucket_thumbnails}/{e['thumbnail_key']}" for e in after)
    with client.app.state.services.db.session() as session:
        from framemask.store.models import Event

        rows = session.query(Event).filter(Event.video_id == vid).all()
        assert all(r.embedding is not None and len(r.embedding) == 256 for r in rows)


def test_a_render_that_touches_no_event_span_keeps_the_events(svc) -> None:
    """Muting audio changes no painted frame: nothing is recomputed, thumbnails and embeddings stay."""
    client, _settings, vid = svc
    before = _events(client, vid)
    editor = new_token(client, "editor")
    current = client.get(f"/api/videos/{vid}/corrections", headers=auth(editor)).json()
    body = {**current["corrections"], "mutedRanges": [{"start_seq": 1, "end_seq": 10}], "note": "mute"}
    saved = client.put(f"/api/videos/{vid}/corrections", json=body, headers=auth(editor))
    assert saved.status_code == 200, saved.text
    job = wait_job(client, client.post(f"/api/videos/{vid}/render", headers=auth(editor)).json()["job_id"])
    assert job["status"] == "succeeded", job
    result = _result(client, job["id"])
    assert result["changed_frames"] == 0 and result["events"]["recomputed"] == 0
    after = _events(client, vid)
    assert [(e["id"], e["thumbnail_key"], e["description"]) for e in after] == [
        (e["id"], e["thumbnail_key"], e["description"]) for e in before
    ]
