"""Corrections through the API: revisions, effective boxes, the `rerender` job and the final video.

The real service (embedded default) processes one video with people (TUD-Campus, 71 frames at 25 fps, so
GOPs 1-25, 26-50, 51-71); a reviewer adds a region on frame 10 and excludes a detected box on frame 40,
renders, then changes frame 60 only and renders again.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from sqlalchemy import func, select
from support.api import ADMIN, PEOPLE_VIDEO, auth, make_settings, new_token, service, upload, wait_for, wait_job

from framemask.media import FrameReader
from framemask.redact import make_masker
from framemask.redact.policy import MaskPolicy
from framemask.service.revisions import effective_boxes, latest_revision
from framemask.store.models import AuditLog, Job, Revision, Video

ADDED = {"x": 300, "y": 40, "width": 120, "height": 90}


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory):
    if not PEOPLE_VIDEO.is_file():
        pytest.fail(f"shared test media missing: {PEOPLE_VIDEO}")
    settings = make_settings(tmp_path_factory.mktemp("corrections") / "data")
    with service(settings) as client:
        created = upload(client, PEOPLE_VIDEO).json()
        video = wait_for(client, created["id"])
        assert video["status"] == "ready", video
        yield client, created["id"]


def _store_path(client, key: str) -> Path:
    services = client.app.state.services
    path = services.store.local_path(services.settings.bucket_processed, key)
    assert path is not None and path.is_file()
    return path


def _frames(path: Path) -> tuple[list, list[np.ndarray]]:
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        frames = list(c.decode(stream))
        return [f.pts * stream.time_base for f in frames], [f.to_ndarray(format="rgb24") for f in frames]


def _result(client, job_id: str) -> dict:
    with client.app.state.services.db.session() as session:
        return dict(session.get(Job, job_id).result)


def _mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def _crop(rgb: np.ndarray, b: dict) -> np.ndarray:
    return rgb[b["y1"] : b["y2"], b["x1"] : b["x2"]]


def _largest_person(client, vid: str, seq: int) -> dict:
    frame = client.get(f"/api/videos/{vid}/boxes?from={seq}&to={seq}", headers=auth(ADMIN)).json()["frames"][0]
    people = [b for b in frame["boxes"] if b["label"] == "person" and b["source"] == "detected"]
    return max(people, key=lambda b: (b["x2"] - b["x1"]) * (b["y2"] - b["y1"]))


def test_no_corrections_yet(svc) -> None:
    client, vid = svc
    body = client.get(f"/api/videos/{vid}/corrections", headers=auth(ADMIN)).json()
    assert body == {
        "revision": None,
        "corrections": {
            "drawnRectangles": {},
            "excluded": {},
            "excludedTracks": [],
            "tracks": [],
            "overrides": {},
            "mergedTracks": [],
            "splitTracks": [],
            "excludeRules": [],
            "mutedRanges": [],
        },
        "rendered_revision": None,
        "final": False,
    }
    boxes = client.get(f"/api/videos/{vid}/boxes?from=1&to=3", headers=auth(ADMIN)).json()
    assert boxes["revision"] is None and [f["seq"] for f in boxes["frames"]] == [1, 2, 3]
    detected = [b for f in boxes["frames"] for b in f["boxes"] if b["source"] == "detected"]
    assert detected and all(isinstance(b["track"], int) and 0 < b["score"] <= 1 for b in detected)
    assert not any(b["excluded"] for f in boxes["frames"] for b in f["boxes"])
    assert {b["source"] for f in boxes["frames"] for b in f["boxes"]} <= {"detected", "candidate"}


def test_bad_requests(svc) -> None:
    client, vid = svc
    url = f"/api/videos/{vid}/corrections"
    ok = {"drawnRectangles": {"10": [ADDED]}}
    assert client.put(f"/api/videos/{'0' * 32}/corrections", json=ok, headers=auth(ADMIN)).status_code == 404
    bad_json = client.put(url, content=b"{not json", headers={**auth(ADMIN), "Content-Type": "application/json"})
    assert bad_json.status_code == 422
    assert client.put(url, json={"drawnRectangles": {"72": [ADDED]}}, headers=auth(ADMIN)).status_code == 422
    assert client.put(url, json={"drawnRectangles": {"5": [{"x": 1}]}}, headers=auth(ADMIN)).status_code == 422
    assert client.put(url, json=ok).status_code == 401
    viewer = new_token(client, "viewer")
    assert client.put(url, json=ok, headers=auth(viewer)).status_code == 403
    assert client.get(url, headers=auth(viewer)).status_code == 403
    assert client.post(f"/api/videos/{vid}/render", headers=auth(viewer)).status_code == 403
    assert client.get(f"/api/videos/{vid}/final", headers=auth(ADMIN)).status_code == 409  # nothing rendered
    with client.app.state.services.db.session() as session:
        assert session.scalar(select(func.count()).where(Revision.video_id == vid)) == 0


def test_save_render_and_render_again(svc) -> None:
    client, vid = svc
    services = client.app.state.services
    excluded = _largest_person(client, vid, 40)
    editor = new_token(client, "editor")
    body = {"drawnRectangles": {"10": [ADDED]}, "excluded": {"40": [excluded]}, "note": "first pass"}
    saved = client.put(f"/api/videos/{vid}/corrections", json=body, headers=auth(editor))
    assert saved.status_code == 200, saved.text
    assert saved.json()["revision"]["number"] == 1 and saved.json()["changed_frames"] == 2
    got = client.get(f"/api/videos/{vid}/corrections", headers=auth(editor)).json()
    assert got["revision"]["author"] == "test editor" and got["corrections"]["drawnRectangles"]["10"][0]["x"] == 300

    # /frames now shows what will be masked
    frames = client.get(f"/api/videos/{vid}/frames?from=10&to=40", headers=auth(ADMIN)).json()["sequence"]
    assert frames[0]["manual"] == [{"x1": 300, "x2": 420, "y1": 40, "y2": 130}]
    coords = {k: excluded[k] for k in ("x1", "x2", "y1", "y2")}
    (gone,) = [b for b in frames[30]["person"] if {k: b[k] for k in coords} == coords]
    assert gone["excluded"] is True and gone["track"] == excluded["track"]  # kept, flagged: not painted

    queued = client.post(f"/api/videos/{vid}/render", headers=auth(editor))
    assert queued.status_code == 202 and queued.json()["revision"] == 1
    job = wait_job(client, queued.json()["job_id"])
    assert job["status"] == "succeeded", job
    result = _result(client, job["id"])
    assert result["reencoded"] == [[1, 12], [37, 48]] and result["copied_gops"] == 4  # half-second GOPs
    assert result["changed_frames"] == 2 and result["base_revision"] is None

    master = _store_path(client, f"videos/{vid}/processed.mp4")
    final = _store_path(client, result["final_key"])
    times_m, pix_m = _frames(master)
    times_f, pix_f = _frames(final)
    assert times_f == times_m and len(pix_f) == 71
    for seq in [*range(13, 37), *range(49, 72)]:
        assert np.array_equal(pix_f[seq - 1], pix_m[seq - 1])  # the untouched GOPs are bit-identical
    with FrameReader(PEOPLE_VIDEO) as reader:
        original10, original40 = reader.frame(10).copy(), reader.frame(40)
    added = {"x1": 300, "x2": 420, "y1": 40, "y2": 130}
    want = make_masker("mosaic").apply(original10.copy(), np.array([[300, 40, 420, 130]]))
    assert _mad(_crop(pix_f[9], added), _crop(want, added)) * 3 < _mad(_crop(pix_f[9], added), _crop(original10, added))
    # the excluded false positive shows the original again (only where no other box overlaps it)
    assert _mad(_crop(pix_f[39], excluded), _crop(original40, excluded)) < _mad(
        _crop(pix_m[39], excluded), _crop(original40, excluded)
    )

    # the final video, by bearer token (Range) and by signed link (no header)
    data = final.read_bytes()
    part = client.get(f"/api/videos/{vid}/final", headers={**auth(ADMIN), "Range": "bytes=0-99"})
    assert part.status_code == 206 and part.content == data[:100]
    link = client.get(f"/api/videos/{vid}/final/url", headers=auth(editor)).json()["url"]
    whole = client.get(link + "&download=true")
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["content-disposition"].startswith("attachment")
    signature = link.split("signature=")[1][:64]
    forged = link.replace(signature, ("0" if signature[0] != "0" else "1") + signature[1:])
    assert client.get(forged).status_code == 401
    state = client.get(f"/api/videos/{vid}/corrections", headers=auth(editor)).json()
    assert state["rendered_revision"] == 1 and state["final"] is True

    # second revision: only frame 60 changes -> only GOP 49-60 is re-encoded, from the previous final
    body2 = {**body, "drawnRectangles": {"10": [ADDED], "60": [ADDED]}, "note": "second pass"}
    assert client.put(f"/api/videos/{vid}/corrections", json=body2, headers=auth(editor)).json()["changed_frames"] == 1
    job2 = wait_job(client, client.post(f"/api/videos/{vid}/render", headers=auth(editor)).json()["job_id"])
    result2 = _result(client, job2["id"])
    assert result2["reencoded"] == [[49, 60]] and result2["base_revision"] == 1
    final2 = _store_path(client, result2["final_key"])
    times2, pix2 = _frames(final2)
    assert times2 == times_m
    assert all(np.array_equal(pix2[i], pix_f[i]) for i in [*range(48), *range(60, 71)])
    finals = [p.name for p in final2.parent.glob("final-*.mp4")]
    assert sorted(finals) == ["final-r1.mp4", "final-r2.mp4"]  # r1 goes when the next render starts
    with services.db.session() as session:
        numbers = session.scalars(select(Revision.number).where(Revision.video_id == vid)).all()
        actions = session.scalars(select(AuditLog.action).where(AuditLog.video_id == vid)).all()
    assert sorted(numbers) == [1, 2]
    assert actions.count("corrections.save") == 2 and actions.count("video.render") == 2
    history = client.get(f"/api/videos/{vid}/corrections/revisions", headers=auth(editor)).json()
    assert [(r["number"], r["note"]) for r in history] == [(2, "second pass"), (1, "first pass")]


def test_track_list_matches_the_boxes(svc) -> None:
    client, vid = svc
    tracks = client.get(f"/api/videos/{vid}/tracks", headers=auth(new_token(client, "viewer"))).json()["tracks"]
    assert tracks and all(t["label"] in ("person", "face") for t in tracks)
    boxes = client.get(f"/api/videos/{vid}/boxes?from=1&to=71", headers=auth(ADMIN)).json()["frames"]
    seen: dict[int, list[int]] = {}
    for frame in boxes:
        for b in frame["boxes"]:
            if b["source"] == "detected":
                seen.setdefault(b["track"], []).append(frame["seq"])
    assert sorted(seen) == [t["id"] for t in tracks]  # every listed track has boxes, every box a listed track
    for t in tracks:
        assert (t["start_seq"], t["end_seq"], t["frames"]) == (seen[t["id"]][0], seen[t["id"]][-1], len(seen[t["id"]]))
        assert 0 < t["mean_score"] <= 1 and set(t["flags"]) <= {"starts_inside", "ends_inside", "fragmented", "short"}
    people = [t for t in tracks if t["label"] == "person"]
    assert 6 <= len(people) <= 12  # 8 annotated walkers plus people behind the glass, not one id per frame
    assert client.get(f"/api/videos/{'0' * 32}/tracks", headers=auth(ADMIN)).status_code == 404
    assert client.get(f"/api/videos/{vid}/tracks").status_code == 401


def test_excluding_a_whole_track_unmasks_every_frame_of_it(svc) -> None:
    """Exclude one person track: on every frame it has a box, the final shows the original pixels there
    (except where another painted region overlaps it), and frames without it are not re-encoded."""
    client, vid = svc
    services = client.app.state.services
    tracks = client.get(f"/api/videos/{vid}/tracks", headers=auth(ADMIN)).json()["tracks"]
    target = max((t for t in tracks if t["label"] == "person"), key=lambda t: t["frames"])
    editor = new_token(client, "editor")
    body = {"excludedTracks": [target["id"]], "note": "not a person"}
    assert client.put(f"/api/videos/{vid}/corrections", json=body, headers=auth(editor)).status_code == 200
    job = wait_job(client, client.post(f"/api/videos/{vid}/render", headers=auth(editor)).json()["job_id"])
    assert job["status"] == "succeeded", job
    final = _store_path(client, _result(client, job["id"])["final_key"])
    _, pix_f = _frames(final)
    _, pix_m = _frames(_store_path(client, f"videos/{vid}/processed.mp4"))
    with services.db.session() as session:
        video = session.get(Video, vid)
        revision = latest_revision(session, video_id=vid)
    policy = MaskPolicy.from_dict(video.render_params["policy"])
    painted = effective_boxes(services, video=video, revision=revision).painted(policy)
    frames = client.get(f"/api/videos/{vid}/boxes?from=1&to=71", headers=auth(ADMIN)).json()["frames"]
    checked = 0
    with FrameReader(PEOPLE_VIDEO) as reader:
        for frame in frames:
            mine = [b for b in frame["boxes"] if b["track"] == target["id"]]
            if not mine:
                continue
            (box,) = mine
            assert box["excluded"] is True
            free = np.zeros(pix_f[0].shape[:2], bool)
            free[box["y1"] : box["y2"], box["x1"] : box["x2"]] = True
            for x1, y1, x2, y2 in painted.boxes(frame["seq"]).tolist():
                free[y1:y2, x1:x2] = False
            if free.sum() < 400:
                continue  # covered by other people's masks on this frame
            original = reader.frame(frame["seq"]).astype(np.int16)
            now = np.abs(pix_f[frame["seq"] - 1].astype(np.int16) - original)[free].mean()
            before = np.abs(pix_m[frame["seq"] - 1].astype(np.int16) - original)[free].mean()
            assert now < 6, (frame["seq"], now, before)  # the original again, up to coding noise
            if before >= 8:  # where the mosaic visibly changed the pixels, the final undoes it
                assert now * 2 < before, (frame["seq"], now, before)
                checked += 1
    assert checked >= target["frames"] // 4  # (a dark coat hardly changes under a mosaic)
