"""The API half of the reviewer-grade editor (issue 9): safe edits, the final frame by frame, review state,
the redaction report, audio redaction in the final and the waveform, and the typed contract.

One real service (embedded default) processes TUD-Campus (71 frames at 25 fps, people with track ids) remuxed
with a 440 Hz tone as its audio track. Tests run in file order and build on each other's revisions.
"""

from __future__ import annotations

import csv
import hashlib
import io
import threading
from pathlib import Path

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
    upload,
    wait_for,
    wait_job,
)

from framemask.api.routes.review import attachment
from framemask.media import FrameIndex
from framemask.store.models import AuditLog, Job, Revision

pytestmark = pytest.mark.slow

RATE = 48000
TONE_HZ, LEVEL = 440.0, 0.3
ADDED = {"x": 300, "y": 40, "width": 120, "height": 90}


def _with_tone(src: Path, dst: Path) -> Path:
    """`src`'s video packets (copied) plus a mono AAC track: a 440 Hz sine at 0.3 over the whole video."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0]
        vout = out.add_stream_from_template(vin)
        audio = out.add_stream("aac", rate=RATE, layout="mono")
        audio.bit_rate = 128000
        packets = [p for p in inp.demux(vin) if p.dts is not None]
        seconds = max(float(p.pts * p.time_base) for p in packets) + 0.2
        for p in packets:
            p.stream = vout
            out.mux(p)
        t0 = 0
        while t0 < seconds * RATE:
            t = (np.arange(1024) + t0) / RATE
            frame = av.AudioFrame.from_ndarray(
                (LEVEL * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.float32)[None, :], format="fltp", layout="mono"
            )
            frame.sample_rate, frame.pts = RATE, t0
            out.mux(audio.encode(frame))
            t0 += 1024
        out.mux(audio.encode(None))
    return dst


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory):
    if not PEOPLE_VIDEO.is_file():
        pytest.fail(f"shared test media missing: {PEOPLE_VIDEO}")
    root = tmp_path_factory.mktemp("editor")
    source = _with_tone(PEOPLE_VIDEO, root / "tud-tone.mp4")
    with service(make_settings(root / "data")) as client:
        created = upload(client, source, name="улица 거리 1.mp4").json()  # the report's file name escapes it
        video = wait_for(client, created["id"])
        assert video["status"] == "ready" and video["has_audio"] is True, video
        yield client, created["id"], source


def _render(client, vid: str) -> dict:
    queued = client.post(f"/api/videos/{vid}/render", headers=auth(ADMIN))
    assert queued.status_code == 202, queued.text
    job = wait_job(client, queued.json()["job_id"])
    assert job["status"] == "succeeded", job
    with client.app.state.services.db.session() as session:
        return dict(session.get(Job, job["id"]).result)


def _latest(client, vid: str) -> int:
    body = client.get(f"/api/videos/{vid}/corrections", headers=auth(ADMIN)).json()
    return body["revision"]["number"] if body["revision"] else 0


def _save(client, vid: str, doc: dict, token: str = ADMIN) -> dict:
    url = f"/api/videos/{vid}/corrections?base_revision={_latest(client, vid)}"
    resp = client.put(url, json=doc, headers=auth(token))
    assert resp.status_code == 200, resp.text
    return resp.json()


def _object(client, key: str) -> Path:
    services = client.app.state.services
    path = services.store.local_path(services.settings.bucket_processed, key)
    assert path is not None and path.is_file()
    return path


def _named_token(client, role: str, name: str) -> str:
    resp = client.post("/api/tokens", json={"role": role, "name": name}, headers=auth(ADMIN))
    assert resp.status_code == 201, resp.text
    return str(resp.json()["token"])


def _revisions(client, vid: str) -> int:
    with client.app.state.services.db.session() as session:
        return int(session.scalar(select(func.count()).where(Revision.video_id == vid)) or 0)


def _audio(path: Path) -> tuple[np.ndarray, float]:
    """Channel 0 of the first audio stream as float samples, and the first sample's time (s)."""
    with av.open(str(path)) as c:
        frames = list(c.decode(c.streams.audio[0]))
    assert all(f.sample_rate == RATE for f in frames)
    data = [(f if f.format.name == "fltp" else f.reformat(format="fltp")).to_ndarray()[0] for f in frames]
    return np.concatenate(data).astype(np.float64), float(frames[0].pts * frames[0].time_base)


def _first_video_time(path: Path) -> float:
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        return min(float(p.pts * stream.time_base) for p in c.demux(stream) if p.pts is not None)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)))) if len(x) else 0.0


def _peak_hz(x: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / RATE)[int(np.argmax(spectrum))])


# --- 1. edit safety -----------------------------------------------------------------------------------------


def test_base_revision_conflicts_store_nothing(svc) -> None:
    client, vid, _ = svc
    url = f"/api/videos/{vid}/corrections"
    doc = {"drawnRectangles": {"10": [ADDED]}, "note": "tab A"}
    stale = client.put(f"{url}?base_revision=3", json=doc, headers=auth(ADMIN))
    assert stale.status_code == 409 and stale.json()["latest_revision"] == 0 and "revision" in stale.json()["detail"]
    assert client.put(f"{url}?base_revision=-1", json=doc, headers=auth(ADMIN)).status_code == 422
    assert _revisions(client, vid) == 0

    # two tabs edited "no revision yet" and save at the same moment: one lands, the other gets 409
    editors = [new_token(client, "editor") for _ in range(2)]
    barrier, answers = threading.Barrier(2), []

    def save(token: str, note: str) -> None:
        barrier.wait()
        answers.append(client.put(f"{url}?base_revision=0", json={**doc, "note": note}, headers=auth(token)))

    threads = [threading.Thread(target=save, args=(t, f"tab {i}")) for i, t in enumerate(editors)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(r.status_code for r in answers)
    assert codes == [200, 409], [r.text for r in answers]
    (lost,) = [r for r in answers if r.status_code == 409]
    assert lost.json()["latest_revision"] == 1
    assert _revisions(client, vid) == 1
    with client.app.state.services.db.session() as session:
        saves = session.scalars(
            select(AuditLog.detail).where(AuditLog.video_id == vid, AuditLog.action == "corrections.save")
        ).all()
    assert len(saves) == 1 and saves[0]["base_revision"] == 0

    # sequential: the second tab still edits revision 0 -> 409, nothing stored; after reloading it saves
    again = client.put(f"{url}?base_revision=0", json=doc, headers=auth(editors[1]))
    assert again.status_code == 409 and again.json() == {"detail": again.json()["detail"], "latest_revision": 1}
    assert _revisions(client, vid) == 1
    ok = client.put(f"{url}?base_revision=1", json={**doc, "note": "reloaded"}, headers=auth(editors[1]))
    assert ok.status_code == 200 and ok.json()["revision"]["number"] == 2
    # without base_revision a save always lands (back-compat)
    assert client.put(url, json={**doc, "note": "no base"}, headers=auth(ADMIN)).json()["revision"]["number"] == 3
    body = client.get(f"/api/videos/{vid}", headers=auth(ADMIN)).json()
    assert body["latest_revision"] == 3 and body["rendered_revision"] is None


# --- 3. review state ----------------------------------------------------------------------------------------


def test_review_state(svc) -> None:
    client, vid, _ = svc
    url = f"/api/videos/{vid}"
    viewer, editor = new_token(client, "viewer"), new_token(client, "editor")
    before = client.get(url, headers=auth(viewer)).json()
    assert (before["review_state"], before["review_by"], before["review_at"]) == ("unreviewed", None, None)
    assert client.patch(url, json={"review_state": "approved"}, headers=auth(viewer)).status_code == 403
    assert client.patch(url, json={"review_state": "approved"}).status_code == 401
    for bad in ({"review_state": "done"}, {"review_state": "unreviewed"}, {}, {"review_state": "approved", "x": 1}):
        assert client.patch(url, json=bad, headers=auth(editor)).status_code == 422, bad
    for state in ("in_review", "changes_requested", "approved"):
        resp = client.patch(url, json={"review_state": state}, headers=auth(editor))
        assert resp.status_code == 200, resp.text
        assert resp.json()["review_state"] == state and resp.json()["review_by"] == "test editor"
    shown = client.get(url, headers=auth(viewer)).json()
    assert shown["review_state"] == "approved" and shown["review_at"] is not None
    listed = client.get("/api/videos", headers=auth(viewer)).json()["items"]
    assert [v["review_state"] for v in listed if v["id"] == vid] == ["approved"]
    with client.app.state.services.db.session() as session:
        rows = session.execute(
            select(AuditLog.actor, AuditLog.detail).where(AuditLog.video_id == vid, AuditLog.action == "video.review")
        ).all()
    assert [d for _, d in rows] == [
        {"from": "unreviewed", "to": "in_review"},
        {"from": "in_review", "to": "changes_requested"},
        {"from": "changes_requested", "to": "approved"},
    ]
    assert {a for a, _ in rows} == {"test editor"}


# --- 2 and 5. the final frame by frame, and its audio ------------------------------------------------------------


def test_final_variant_and_muted_audio(svc) -> None:
    client, vid, source = svc
    viewer = new_token(client, "viewer")
    for path in ("frame?seq=1", "thumbnails?every=5", "stream", "stream/url"):
        path += ("&" if "?" in path else "?") + "variant=final"
        resp = client.get(f"/api/videos/{vid}/{path}", headers=auth(viewer))
        assert resp.status_code == 409 and "final" in resp.json()["detail"], (path, resp.text)

    index = FrameIndex.build(source)
    doc = {"drawnRectangles": {"10": [ADDED]}, "mutedRanges": [{"start_seq": 20, "end_seq": 40, "mode": "mute"}]}
    number = _save(client, vid, doc)["revision"]["number"]
    result = _render(client, vid)
    assert result["revision"] == number and result["audio"] == "reencoded"
    start_ms, end_ms = index.time_of(20), index.time_of(41)
    assert result["muted_ranges"] == [
        {"start_seq": 20, "end_seq": 40, "mode": "mute", "start_ms": round(start_ms, 3), "end_ms": round(end_ms, 3)}
    ]
    final = _object(client, result["final_key"])
    body = client.get(f"/api/videos/{vid}", headers=auth(viewer)).json()
    assert body["latest_revision"] == number and body["rendered_revision"] == number

    # exact frames of the final, for viewers too
    resp = client.get(f"/api/videos/{vid}/frame?seq=10&variant=final&format=png", headers=auth(viewer))
    assert resp.status_code == 200 and resp.headers["x-frame-seq"] == "10"
    assert float(resp.headers["x-frame-time-ms"]) == pytest.approx(index.time_of(10), abs=0.001)
    with av.open(str(final)) as c:
        decoded = [f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])]
    assert np.array_equal(decoded_image := decode_image(resp.content), decoded[9])
    processed = decode_image(client.get(f"/api/videos/{vid}/frame?seq=10&format=png", headers=auth(viewer)).content)
    region = (slice(40, 130), slice(300, 420))
    assert not np.array_equal(decoded_image[region], processed[region])  # the added region is masked in the final
    by_ms = client.get(f"/api/videos/{vid}/frame?ms={index.time_of(30):.3f}&variant=final", headers=auth(viewer))
    assert by_ms.status_code == 200 and by_ms.headers["x-frame-seq"] == "30"
    sprite = client.get(f"/api/videos/{vid}/thumbnails?variant=final&every=10&width=64", headers=auth(viewer))
    assert sprite.status_code == 200 and sprite.headers["x-thumbnail-seqs"] == "1,11,21,31,41,51,61,71"
    data = final.read_bytes()
    part = client.get(f"/api/videos/{vid}/stream?variant=final", headers={**auth(viewer), "Range": "bytes=10-99"})
    assert part.status_code == 206 and part.content == data[10:100]
    link = client.get(f"/api/videos/{vid}/stream/url?variant=final", headers=auth(viewer)).json()["url"]
    assert client.get(link).content == data

    # the audio: silent over exactly frames 20..40, the original elsewhere
    orig, orig_t0 = _audio(source)
    got, got_t0 = _audio(final)
    origin = _first_video_time(final)
    assert origin == pytest.approx(_first_video_time(source), abs=1e-3)

    def window(x: np.ndarray, t0: float, a_ms: float, b_ms: float) -> np.ndarray:
        return x[round((origin + a_ms / 1000 - t0) * RATE) : round((origin + b_ms / 1000 - t0) * RATE)]

    assert np.abs(window(got, got_t0, start_ms + 3, end_ms - 3)).max() < 1e-3
    for a, b in ((100, start_ms - 3), (end_ms + 3, end_ms + 400)):
        mine, theirs = window(got, got_t0, a, b), window(orig, orig_t0, a, b)
        assert _rms(mine) == pytest.approx(_rms(theirs), rel=0.05) and _rms(theirs) > 0.15
        assert _rms(mine - theirs) < 0.05 * _rms(theirs)  # the same waveform, up to AAC coding noise
    silent = np.abs(window(got, got_t0, start_ms - 20, end_ms + 20)) < 1e-3
    edges = np.flatnonzero(np.diff(silent.astype(np.int8)))
    runs = [(a + 1, b + 1) for a, b in zip(edges[::2], edges[1::2], strict=False)]
    first, last = max(runs, key=lambda r: r[1] - r[0])  # the longest silent run
    assert abs(first / RATE * 1000 - 20) < 3 and abs(last / RATE * 1000 - (end_ms - start_ms + 20)) < 3

    # only the mode changes: no frame changes, yet a new final with a 1 kHz tone there
    saved = _save(client, vid, {**doc, "mutedRanges": [{"start_seq": 20, "end_seq": 40, "mode": "tone"}]})
    assert saved["changed_frames"] == 0
    body = client.get(f"/api/videos/{vid}", headers=auth(viewer)).json()
    assert body["latest_revision"] == number + 1 and body["rendered_revision"] == number  # final is older
    toned = _render(client, vid)
    assert toned["reencoded"] == [] and toned["changed_frames"] == 0 and toned["final_key"] != result["final_key"]
    got, got_t0 = _audio(_object(client, toned["final_key"]))
    inside = window(got, got_t0, start_ms + 5, end_ms - 5)
    assert _peak_hz(inside) == pytest.approx(1000, abs=5) and 0.03 < _rms(inside) < 0.15
    outside = window(got, got_t0, end_ms + 5, end_ms + 400)
    assert _peak_hz(outside) == pytest.approx(TONE_HZ, abs=5)
    assert _rms(outside - window(orig, orig_t0, end_ms + 5, end_ms + 400)) < 0.05 * _rms(outside)
    assert client.get(f"/api/videos/{vid}", headers=auth(viewer)).json()["rendered_revision"] == number + 1

    # muted ranges removed: the audio is a byte copy of the processed master's again
    _save(client, vid, {"drawnRectangles": {"10": [ADDED]}, "excludedTracks": []})
    plain = _render(client, vid)
    assert plain["audio"] == "copied" and plain["muted_ranges"] == []

    def audio_packets(path: Path) -> list[bytes]:
        with av.open(str(path)) as c:
            return [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]

    master = _object(client, f"videos/{vid}/processed.mp4")
    assert audio_packets(_object(client, plain["final_key"])) == audio_packets(master)


# --- 4. the redaction report ------------------------------------------------------------------------------------


def _parse_csv(text: str) -> tuple[dict[str, str], list[dict], list[dict[str, str]]]:
    import json

    header: dict[str, str] = {}
    revisions = []
    lines = text.splitlines()
    while lines and lines[0].startswith("# "):
        key, _, value = lines.pop(0)[2:].partition(": ")
        if key == "revision":
            revisions.append(json.loads(value))
        else:
            header[key] = value
    return header, revisions, list(csv.DictReader(io.StringIO("\n".join(lines))))


def test_download_names_are_escaped_into_the_header() -> None:
    assert attachment("tud.redaction-report.csv") == 'attachment; filename="tud.redaction-report.csv"'
    assert attachment('a "b".csv') == "attachment; filename*=utf-8''a%20%22b%22.csv"
    assert attachment("a\r\nSet-Cookie: x.csv") == "attachment; filename*=utf-8''a%0D%0ASet-Cookie%3A%20x.csv"


def test_redaction_report(svc) -> None:
    client, vid, source = svc
    first, second = _named_token(client, "editor", "alice"), _named_token(client, "editor", "bob")
    tracks = client.get(f"/api/videos/{vid}/tracks", headers=auth(ADMIN)).json()["tracks"]
    people = sorted((t for t in tracks if t["label"] == "person"), key=lambda t: -t["frames"])
    off = people[0]["id"]
    doc1 = {
        "drawnRectangles": {"12": [ADDED]},
        "mutedRanges": [{"start_seq": 5, "end_seq": 9}],
        "excludeRules": [{"label": "face", "smaller_than": 12}],
        "note": "regions",
    }
    r1 = _save(client, vid, doc1, first)["revision"]["number"]
    moved_box = {"30": [{"track": people[1]["id"], **ADDED}]}
    doc2 = {**doc1, "excludedTracks": [off], "overrides": moved_box, "note": "tracks"}
    client.patch(f"/api/videos/{vid}", json={"review_state": "changes_requested"}, headers=auth(first))
    r2 = _save(client, vid, doc2, second)["revision"]["number"]
    result = _render(client, vid)
    final = _object(client, result["final_key"])
    index = FrameIndex.build(source)

    assert client.get(f"/api/videos/{vid}/report", headers=auth(new_token(client, "viewer"))).status_code == 403
    assert client.get(f"/api/videos/{vid}/report?format=xml", headers=auth(first)).status_code == 422
    report = client.get(f"/api/videos/{vid}/report?format=json", headers=auth(first)).json()
    resp = client.get(f"/api/videos/{vid}/report?format=csv", headers=auth(first))
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv")
    name = "%D1%83%D0%BB%D0%B8%D1%86%D0%B0%20%EA%B1%B0%EB%A6%AC%201.redaction-report.csv"
    assert resp.headers["content-disposition"] == f"attachment; filename*=utf-8''{name}"
    header, revisions, rows = _parse_csv(resp.text)

    # header: hashes of the stored original and the current final, the history, the review state
    assert header["original_sha256"] == report["original_sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert header["final_sha256"] == report["final_sha256"] == hashlib.sha256(final.read_bytes()).hexdigest()
    assert result["final_sha256"] == report["final_sha256"]
    assert header["final_revision"] == str(r2) and header["latest_revision"] == str(r2)
    assert header["review_state"] == "changes_requested" and header["review_by"] == "alice"
    history = client.get(f"/api/videos/{vid}/corrections/revisions", headers=auth(first)).json()[::-1]
    assert [(r["number"], r["author"], r["note"]) for r in revisions] == [
        (h["number"], h["author"], h["note"]) for h in history
    ]
    assert report["revisions"] == [
        {"number": h["number"], "author": h["author"], "time": h["created_at"], "note": h["note"]} for h in history
    ]

    # rows: CSV and JSON say the same
    assert len(rows) == len(report["rows"])
    for row, obj in zip(rows, report["rows"], strict=True):
        assert (row["kind"], row["action"], row["start_seq"]) == (obj["kind"], obj["action"], str(obj["start_seq"]))
        assert float(row["start_ms"]) == obj["start_ms"] and row["author"] == (obj["author"] or "")

    def span(a: int, b: int) -> tuple[float, float]:
        return index.time_of(a), index.time_of(b + 1) if b < index.end_sequence else max(
            index.duration_ms, client.get(f"/api/videos/{vid}", headers=auth(ADMIN)).json()["duration_ms"]
        )

    track_rows = {int(r["track"]): r for r in rows if r["kind"] == "track"}
    assert sorted(track_rows) == sorted(t["id"] for t in tracks)  # one row per track
    for t in tracks:
        row = track_rows[t["id"]]
        assert (row["label"], int(row["start_seq"]), int(row["end_seq"])) == (t["label"], t["start_seq"], t["end_seq"])
        assert float(row["start_ms"]) == pytest.approx(span(t["start_seq"], t["end_seq"])[0], abs=1e-3)
        assert float(row["end_ms"]) == pytest.approx(span(t["start_seq"], t["end_seq"])[1], abs=1e-3)
        if t["id"] == off:
            assert (row["action"], row["revision"], row["author"]) == ("excluded", str(r2), "bob")
        else:
            assert (row["action"], row["revision"], row["author"]) == ("masked", "", "framemask (detection)")
    (region,) = [r for r in rows if r["kind"] == "region"]
    assert (region["start_seq"], region["end_seq"], region["action"]) == ("12", "12", "added")
    assert (region["revision"], region["author"]) == (str(r1), "alice")  # kept unchanged by bob's revision
    assert region["detail"] == "x=300 y=40 width=120 height=90"
    (muted,) = [r for r in rows if r["kind"] == "muted_range"]
    assert (muted["start_seq"], muted["end_seq"], muted["action"], muted["revision"]) == ("5", "9", "mute", str(r1))
    assert float(muted["start_ms"]) == pytest.approx(index.time_of(5), abs=1e-3)
    assert float(muted["end_ms"]) == pytest.approx(index.time_of(10), abs=1e-3)
    (rule,) = [r for r in rows if r["kind"] == "exclude_rule"]
    assert (rule["label"], rule["start_seq"], rule["end_seq"], rule["revision"]) == ("face", "1", "71", str(r1))
    (moved,) = [r for r in rows if r["kind"] == "override"]
    assert (moved["track"], moved["start_seq"], moved["action"], moved["revision"]) == (
        str(people[1]["id"]),
        "30",
        "moved",
        str(r2),
    )
    assert {r["kind"] for r in rows} == {"track", "region", "muted_range", "exclude_rule", "override"}
    with client.app.state.services.db.session() as session:
        count = session.scalar(select(func.count()).where(AuditLog.video_id == vid, AuditLog.action == "video.report"))
    assert count == 2


# --- 6. the waveform --------------------------------------------------------------------------------------------


def test_waveform(svc, make) -> None:
    client, vid, source = svc
    viewer = new_token(client, "viewer")
    resp = client.get(f"/api/videos/{vid}/waveform?buckets=200", headers=auth(viewer))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    index = FrameIndex.build(source)
    assert body["buckets"] == 200 and len(body["peaks"]) == 200
    assert body["duration_ms"] >= index.duration_ms - 1e-3
    peaks = np.array(body["peaks"])
    assert np.all(peaks[2:-2] == pytest.approx(LEVEL, abs=0.03))  # a steady 0.3 tone in every slice
    assert client.get(f"/api/videos/{vid}/waveform", headers=auth(viewer)).json()["buckets"] == 1000
    services = client.app.state.services
    assert services.store.exists(services.settings.bucket_thumbnails, f"videos/{vid}/waveform-200.json")
    assert client.get(f"/api/videos/{vid}/waveform?buckets=200", headers=auth(viewer)).json() == body  # from cache
    for bad in ("0", "4001", "x"):
        assert client.get(f"/api/videos/{vid}/waveform?buckets={bad}", headers=auth(viewer)).status_code == 422
    assert client.get(f"/api/videos/{'0' * 32}/waveform", headers=auth(viewer)).status_code == 404
    assert client.get(f"/api/videos/{vid}/waveform").status_code == 401
    silent = upload(client, make("cfr")).json()["id"]  # no audio track
    resp = client.get(f"/api/videos/{silent}/waveform?buckets=10", headers=auth(viewer))
    assert resp.status_code == 200 and resp.json()["peaks"] == [] and resp.json()["duration_ms"] == pytest.approx(3000)
    wait_for(client, silent)


# --- 7. the typed contract ----------------------------------------------------------------------------------------


def test_openapi_describes_the_editor_contract(svc) -> None:
    from framemask.api.schemas import BoxesDoc, CorrectionsPublic, Report, SeedDoc, TrackList, Waveform

    client, vid, _ = svc
    _save(client, vid, {"drawnRectangles": {"10": [ADDED]}, "mutedRanges": [{"start_seq": 1, "end_seq": 2}]})
    spec = client.get("/openapi.json").json()
    paths, schemas = spec["paths"], spec["components"]["schemas"]

    def ref(path: str, method: str = "get", code: str = "200") -> str:
        content = paths[path][method]["responses"][code]["content"]["application/json"]["schema"]
        return str(content.get("$ref", "")).rsplit("/", 1)[-1]

    base = "/api/videos/{video_id}"
    assert ref(f"{base}/boxes") == "BoxesDoc" and ref(f"{base}/frames") == "SeedDoc"
    assert ref(f"{base}/corrections") == "CorrectionsPublic" and ref(f"{base}/corrections", "put") == "RevisionSaved"
    assert ref(f"{base}/corrections", "put", "409") == "RevisionConflict"
    assert ref(f"{base}/tracks") == "TrackList" and ref(f"{base}/report") == "Report"
    assert ref(f"{base}/waveform") == "Waveform" and ref(base, "patch") == "VideoPublic"
    assert schemas["CorrectionsPublic"]["properties"]["corrections"] == {"$ref": "#/components/schemas/Corrections"}
    assert {"latest_revision", "rendered_revision", "review_state", "review_by", "review_at"} <= set(
        schemas["VideoPublic"]["properties"]
    )
    assert "final" in str(paths[f"{base}/frame"]["get"]["parameters"])
    # live answers fit their models, and the models give back the very same JSON
    for url, model in (
        (f"{base}/boxes?from=1&to=71", BoxesDoc),
        (f"{base}/frames", SeedDoc),
        (f"{base}/corrections", CorrectionsPublic),
        (f"{base}/tracks", TrackList),
        (f"{base}/report", Report),
        (f"{base}/waveform?buckets=50", Waveform),
    ):
        body = client.get(url.replace("{video_id}", vid), headers=auth(ADMIN)).json()
        parsed = model.model_validate(body)
        if model in (BoxesDoc, SeedDoc, TrackList):
            assert parsed.model_dump(mode="json", by_alias=True, exclude_unset=True) == body
    frames = client.get(f"/api/videos/{vid}/frames?from=10&to=12", headers=auth(ADMIN)).json()["sequence"]
    assert frames[0]["manual"] == [{"x1": 300, "x2": 420, "y1": 40, "y2": 130}]
    assert all(set(b) <= {"x1", "x2", "y1", "y2", "track", "score", "excluded", "filled"} for b in frames[0]["person"])
    assert all("label" in b for f in frames for b in f.get("candidates", []))
