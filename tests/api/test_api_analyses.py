"""Sampled pose analyses through the service: `POST /api/videos/{id}/analyses` -> job -> samples as JSON.

One processed TUD-Campus upload (owned by an editor token) serves the module. Keypoints are personal data:
only the owner or an admin may ask for them, only editors and admins read them (audited), a delete takes
them along. The samples are checked against the frame index built here and the stored tracks.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from support.api import (
    ADMIN,
    PEOPLE_VIDEO,
    auth,
    make_settings,
    new_token,
    service,
    settings_env,
    spawn_worker,
    stop_process,
    upload,
    wait_for,
)

from framemask.detect import box_ioa, prepare_models
from framemask.detect.pose import KEYPOINTS
from framemask.media import FrameIndex
from framemask.media.sampling import fixed_rate_samples
from framemask.store.db import Database
from framemask.store.models import Analysis, AnalysisSample, AuditLog

RATE = 4.0


def _wait_analysis(client: TestClient, url: str, token: str, timeout: float = 240.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = client.get(url, headers=auth(token)).json()
        if body["status"] in ("succeeded", "failed") or time.monotonic() > deadline:
            return body
        time.sleep(0.3)


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Any:
    prepare_models()
    data_dir = tmp_path_factory.mktemp("analyses")
    settings = make_settings(data_dir)
    with service(settings) as client:
        owner = new_token(client, "editor")
        resp = upload(client, PEOPLE_VIDEO, token=owner)
        assert resp.status_code == 201, resp.text
        video_id = resp.json()["id"]
        assert wait_for(client, video_id, token=owner)["status"] == "ready"
        yield client, settings, video_id, owner


@pytest.fixture(scope="module")
def pose(svc: Any) -> dict[str, Any]:
    """The owner's pose analysis at RATE, run to its end."""
    client, _, video_id, owner = svc
    resp = client.post(f"/api/videos/{video_id}/analyses", json={"kind": "pose", "rate": RATE}, headers=auth(owner))
    assert resp.status_code == 201, resp.text
    created = resp.json()
    assert resp.headers["location"] == f"/api/videos/{video_id}/analyses/{created['id']}"
    assert created["status"] in ("queued", "running") and created["kind"] == "pose" and created["rate"] == RATE
    body = _wait_analysis(client, resp.headers["location"], owner)
    assert body["status"] == "succeeded", body
    return body


def test_samples_are_exact_and_tied_to_their_frames(pose: dict[str, Any]) -> None:
    index = FrameIndex.build(PEOPLE_VIDEO)  # 71 frames at 25 fps: 2840 ms
    want = fixed_rate_samples(index, RATE)
    assert pose["sample_count"] == len(pose["samples"]) == len(want) == math.floor(2840 * RATE / 1000) == 11
    assert pose["model"] == "movenet-lightning" and pose["keypoint_names"] == list(KEYPOINTS)
    for got, ref in zip(pose["samples"], want, strict=True):
        assert (got["k"], got["seq"]) == (ref.k, ref.seq)
        assert got["time_ms"] == pytest.approx(ref.k * 1000 / RATE)
        assert got["frame_time_ms"] == pytest.approx(ref.frame_time_ms)
        assert got["frame_time_ms"] <= got["time_ms"] < got["frame_time_ms"] + 40.0  # on screen at its time


def test_people_are_the_stored_tracks_with_keypoints_in_their_boxes(svc: Any, pose: dict[str, Any]) -> None:
    """Every tracked person of the sample's frame, with its stored box; the keypoints of people not hidden
    behind others (at most 30 % of the box covered) lie in their box (10 % margin) and stand upright."""
    client, _, video_id, owner = svc
    frames = client.get(f"/api/videos/{video_id}/frames", headers=auth(owner)).json()["sequence"]
    stored = {f["seq"]: f.get("person", []) for f in frames}
    inside, upright, people = [], [], 0
    for sample in pose["samples"]:
        boxes = {b["track"]: b for b in stored[sample["seq"]]}
        assert sorted(p["track"] for p in sample["people"]) == sorted(boxes)  # every tracked person, nobody else
        xyxy = np.array([p["box"] for p in sample["people"]]).reshape(-1, 4)
        for i, person in enumerate(sample["people"]):
            box = boxes[person["track"]]
            assert person["box"] == pytest.approx([box["x1"], box["y1"], box["x2"], box["y2"]], abs=0.05)
            kps = np.array(person["keypoints"])
            assert kps.shape == (17, 3) and ((kps[:, 2] >= 0) & (kps[:, 2] <= 1)).all()
            people += 1
            others = np.delete(xyxy, i, axis=0)
            if len(others) and box_ioa(xyxy[i : i + 1], others).max() > 0.3:
                continue
            x1, y1, x2, y2 = person["box"]
            margin = 0.1 * (y2 - y1)
            ok = (kps[:, 0] >= x1 - margin) & (kps[:, 0] <= x2 + margin)
            ok &= (kps[:, 1] >= y1 - margin) & (kps[:, 1] <= y2 + margin)
            inside += ok.tolist()
            upright.append(kps[0, 1] < kps[11:13, 1].mean() < kps[15:17, 1].mean())  # nose, hips, ankles
    assert people >= 40  # 4-6 people on each of 11 frames
    assert len(upright) >= 20
    assert np.mean(inside) >= 0.95  # measured: 0.97
    assert np.mean(upright) >= 0.9  # measured: 1.0


def test_list_and_audit(svc: Any, pose: dict[str, Any]) -> None:
    client, _, video_id, owner = svc
    listed = client.get(f"/api/videos/{video_id}/analyses", headers=auth(owner))
    assert listed.status_code == 200 and listed.headers["cache-control"] == "no-store"
    items = listed.json()["items"]
    assert [i["id"] for i in items] == [pose["id"]] and items[0]["sample_count"] == 11
    page = client.get(f"/api/videos/{video_id}/analyses/{pose['id']}?offset=9&limit=5", headers=auth(owner)).json()
    assert [s["k"] for s in page["samples"]] == [9, 10] and page["offset"] == 9
    entries = client.get(f"/api/audit?video_id={video_id}", headers=auth(ADMIN)).json()
    actions = [e["action"] for e in (entries["items"] if isinstance(entries, dict) else entries)]
    assert "analysis.create" in actions and "analysis.read" in actions


def test_unknown_ids_are_404(svc: Any, pose: dict[str, Any]) -> None:
    client, _, video_id, owner = svc
    other = "0" * 32
    assert client.get(f"/api/videos/{video_id}/analyses/{other}", headers=auth(owner)).status_code == 404
    assert client.get(f"/api/videos/{other}/analyses/{pose['id']}", headers=auth(owner)).status_code == 404
    assert client.get(f"/api/videos/{other}/analyses", headers=auth(owner)).status_code == 404
    resp = client.post(f"/api/videos/{other}/analyses", json={"kind": "pose", "rate": 1}, headers=auth(owner))
    assert resp.status_code == 404


def test_only_the_owner_or_an_admin_asks_and_viewers_never_read(svc: Any, pose: dict[str, Any]) -> None:
    client, _, video_id, _ = svc
    viewer = new_token(client, "viewer")
    resp = client.post("/api/tokens", json={"role": "editor", "name": "another editor"}, headers=auth(ADMIN))
    editor = resp.json()["token"]  # owners are named by their token (`created_by`); this one is someone else
    body = {"kind": "pose", "rate": 1}
    url = f"/api/videos/{video_id}/analyses"
    assert client.post(url, json=body, headers=auth(viewer)).status_code == 403
    refused = client.post(url, json=body, headers=auth(editor))  # an editor, but not the owner
    assert refused.status_code == 403 and "owner" in refused.json()["detail"]
    assert client.get(url, headers=auth(viewer)).status_code == 403
    assert client.get(f"{url}/{pose['id']}", headers=auth(viewer)).status_code == 403
    assert client.get(f"{url}/{pose['id']}", headers=auth(editor)).status_code == 200  # editors read, like originals
    assert client.post(url, json=body).status_code == 401
    assert len(client.get(url, headers=auth(ADMIN)).json()["items"]) == 1  # nothing was created


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b'{"kind": "dance", "rate": 2}',
        b'{"kind": "pose", "rate": 0}',
        b'{"kind": "pose", "rate": -1}',
        b'{"kind": "pose", "rate": 61}',
        b'{"kind": "pose", "rate": "fast"}',
        b'{"kind": "pose", "rate": 1e999}',
        b'{"kind": "pose", "rate": NaN}',
        b'{"kind": "pose"}',
        b'{"kind": "pose", "rate": 2, "extra": 1}',
        b"[]",
    ],
)
def test_bad_bodies_are_422_and_store_nothing(svc: Any, pose: dict[str, Any], raw: bytes) -> None:
    client, _, video_id, owner = svc
    url = f"/api/videos/{video_id}/analyses"
    headers = {**auth(owner), "Content-Type": "application/json"}
    resp = client.post(url, content=raw, headers=headers)
    assert resp.status_code == 422, resp.text
    assert isinstance(resp.json()["detail"], list | str)
    assert len(client.get(url, headers=auth(owner)).json()["items"]) == 1


def test_corrections_decide_who_gets_keypoints(svc: Any, pose: dict[str, Any]) -> None:
    """Pose follows the reviewer's latest revision: an excluded track gets no keypoints anywhere, a manual
    person track gets them (as -1: it has no detector id), everyone else keeps their box and id."""
    client, _, video_id, owner = svc
    sample = max(pose["samples"], key=lambda s: len(s["people"]))
    seq, before = sample["seq"], {p["track"]: p["box"] for p in sample["people"]}
    gone = min(before)
    manual = {
        "id": "walker",
        "label": "person",
        "keyframes": [{"seq": seq, "x": 10, "y": 20, "width": 60, "height": 150}],
    }
    url = f"/api/videos/{video_id}/corrections"
    resp = client.put(url, json={"excludedTracks": [gone], "tracks": [manual]}, headers=auth(owner))
    assert resp.status_code == 200, resp.text
    resp = client.post(f"/api/videos/{video_id}/analyses", json={"kind": "pose", "rate": RATE}, headers=auth(owner))
    assert resp.status_code == 201, resp.text
    again = _wait_analysis(client, resp.headers["location"], owner)
    assert again["status"] == "succeeded", again
    assert all(p["track"] != gone for s in again["samples"] for p in s["people"])
    people = {p["track"]: p for p in next(s for s in again["samples"] if s["seq"] == seq)["people"]}
    assert sorted(people) == sorted((set(before) - {gone}) | {-1})
    assert people[-1]["box"] == pytest.approx([10, 20, 70, 170], abs=0.05)
    assert np.array(people[-1]["keypoints"]).shape == (17, 3)
    for tid in set(before) - {gone}:
        assert people[tid]["box"] == pytest.approx(before[tid], abs=0.05)


def test_delete_takes_the_keypoints_along(svc: Any, pose: dict[str, Any]) -> None:
    client, settings, video_id, owner = svc
    db = Database(settings.db_url, migrate=False)
    try:
        with db.session() as session:
            count = select(func.count()).select_from(AnalysisSample)
            assert session.scalar(count.where(AnalysisSample.analysis_id == pose["id"])) == 11
        assert client.delete(f"/api/videos/{video_id}", headers=auth(owner)).status_code == 204
        assert client.get(f"/api/videos/{video_id}/analyses/{pose['id']}", headers=auth(owner)).status_code == 404
        with db.session() as session:
            assert session.scalar(select(func.count()).select_from(Analysis)) == 0
            assert session.scalar(select(func.count()).select_from(AnalysisSample)) == 0
            kept = session.scalars(select(AuditLog.action).where(AuditLog.video_id == video_id)).all()
        assert "analysis.create" in kept  # the audit trail stays
    finally:
        db.dispose()


def test_pose_is_refused_before_processing(tmp_path: Path) -> None:
    """409 while the video is not processed: its tracks give the people."""
    settings = make_settings(tmp_path, workers=0)
    with service(settings) as client:
        resp = upload(client, PEOPLE_VIDEO)
        assert resp.status_code == 201
        video_id = resp.json()["id"]
        refused = client.post(f"/api/videos/{video_id}/analyses", json={"kind": "pose", "rate": 1}, headers=auth(ADMIN))
        assert refused.status_code == 409
        assert client.get(f"/api/videos/{video_id}/analyses", headers=auth(ADMIN)).json()["items"] == []


@pytest.mark.services
def test_pose_runs_on_a_celery_worker(tmp_path: Path, redis_server: str) -> None:
    """Celery mode: the API only enqueues; a `framemask worker` process (Redis broker, the same SQLite file
    and local store) processes the upload and runs the pose job."""
    settings = make_settings(tmp_path / "data", workers=0, queue="celery", broker_url=redis_server)
    with service(settings) as client:
        worker = spawn_worker(settings_env(settings), tmp_path / "worker.log")
        try:
            resp = upload(client, PEOPLE_VIDEO)
            assert resp.status_code == 201, resp.text
            video_id = resp.json()["id"]
            assert wait_for(client, video_id)["status"] == "ready"
            body = {"kind": "pose", "rate": 2}
            created = client.post(f"/api/videos/{video_id}/analyses", json=body, headers=auth(ADMIN))
            assert created.status_code == 201, created.text
            done = _wait_analysis(client, created.headers["location"], ADMIN)
            assert done["status"] == "succeeded", done
            job = client.get(f"/api/jobs/{done['job_id']}", headers=auth(ADMIN)).json()
            assert job["kind"] == "analysis" and job["worker"] and job["worker"].split(":")[1] == str(worker.pid)
            assert done["sample_count"] == len(done["samples"]) == math.floor(2840 * 2 / 1000) == 5
            assert all(len(s["people"]) >= 3 for s in done["samples"])
        finally:
            stop_process(worker)
