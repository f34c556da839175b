"""Segments as jobs (`framemask.jobs.segments`) on the embedded engine: SQLite job table, local store, two
worker threads. The processing job fans out one `segment` job per span, waits, then joins them; the result
is frame-exact, every frame's boxes land once, the segment objects are gone afterwards, and the job JSON
lists the segments. The same handlers run under Celery in `test_scale_celery.py`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select
from support.api import ADMIN, PEOPLE_VIDEO, auth, make_settings, service, stored_files, upload, wait_for, wait_job

from framemask.jobs.segments import load_output, save_output
from framemask.media import FrameIndex
from framemask.redact import anonymize_file
from framemask.redact.pipeline import Span
from framemask.redact.segments import SegmentOutput
from framemask.store.models import Job, ProcessedFrame

SPANS = [[1, 24], [25, 48], [49, 71]]  # TUD-Campus (key frames every 12) in segments of 0.5 s


def check_segmented_result(client, services, settings, created: dict, processed: Path) -> list[Job]:
    """What every segmented run must show: frame-exact master, rows once, no segment objects, job JSON."""
    video = wait_for(client, created["id"])
    assert video["status"] == "ready", video
    job = services.queue.get(created["job_id"])
    assert (job.status, job.completions, job.attempts) == ("succeeded", 1, 1), job.error
    children = services.queue.children(created["job_id"])
    assert [c.part for c in children] == [0, 1, 2]
    assert all(c.status == "succeeded" and c.completions == 1 and c.kind == "segment" for c in children)
    assert [c.payload["span"][2:] for c in children] == SPANS
    before, after = FrameIndex.build(PEOPLE_VIDEO), FrameIndex.build(processed)
    assert after.end_sequence == before.end_sequence == 71
    np.testing.assert_allclose(after.time_ms, before.time_ms, atol=1e-3)
    with services.db.session() as session:
        seqs = session.scalars(select(ProcessedFrame.seq).where(ProcessedFrame.video_id == created["id"])).all()
        row = session.get(type(job), job.id)
        assert row is not None and row.result["segments"] == 3
    assert sorted(seqs) == list(range(1, 72))
    body = client.get(f"/api/jobs/{created['job_id']}", headers=auth(ADMIN)).json()
    assert body["status"] == "succeeded" and body["progress"] == 100.0 and body["stalled"] is False
    assert [(s["index"], s["start_seq"], s["end_seq"]) for s in body["segments"]] == [
        (k, a, b) for k, (a, b) in enumerate(SPANS)
    ]
    assert all(s["status"] == "succeeded" and s["attempts"] >= 1 and s["worker"] for s in body["segments"])
    assert body["worker"]
    # the video's own `job` is the parent (segments are created after it), with the same segment list
    shown = client.get(f"/api/videos/{created['id']}", headers=auth(ADMIN)).json()["job"]
    assert shown["id"] == created["job_id"] and shown["kind"] == "process_video"
    assert shown["segments"] == body["segments"]
    return children


def test_segment_output_round_trips_without_pickle(tmp_path: Path) -> None:
    rows = [np.array([[0, 1, 2, 3, 4, 7, 80, 0]], np.int32), np.zeros((0, 8), np.int32)]
    out = SegmentOutput(Span(1, 2, 1, 2), "p.mp4", ["person"], rows, rows, {7: 3}, [1], 4, {"total": 1.5})
    save_output(out, tmp_path / "o.npz")
    back = load_output(tmp_path / "o.npz", tmp_path / "p.mp4")
    assert back.span == out.span and back.labels == ["person"] and back.hits == {7: 3} and back.stride == 4
    assert [r.tolist() for r in back.rows] == [r.tolist() for r in rows] and back.gop_starts == [1]
    assert back.part == str(tmp_path / "p.mp4") and back.timings == {"total": 1.5}


@pytest.mark.slow
def test_embedded_queue_segments_join_frame_exact(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", workers=2, segment_mode="queue", segment_seconds=0.5)
    with service(settings) as client:
        services = client.app.state.services
        created = upload(client, PEOPLE_VIDEO).json()
        processed = settings.objects_dir / settings.bucket_processed / f"videos/{created['id']}/processed.mp4"
        children = check_segmented_result(client, services, settings, created, processed)
        assert {c.worker.rsplit(":", 1)[-1] for c in children} <= {"t0", "t1"}
        files = stored_files(settings.data_dir)
        assert not [f for f in files if "/segments/" in f], files  # joined, then removed
        # one code path: the queue's segments paint and store what the local process pool does
        local = anonymize_file(PEOPLE_VIDEO, tmp_path / "local.mp4", jobs=2, segment_seconds=0.5, stride=4)
        doc = client.get(f"/api/videos/{created['id']}/frames", headers=auth(ADMIN)).json()
        assert doc["sequence"] == local.boxes["sequence"]


def test_a_single_segment_video_is_rendered_serially(tmp_path: Path, make) -> None:
    settings = make_settings(tmp_path / "data", workers=1, segment_mode="queue", segment_seconds=60)
    with service(settings) as client:
        services = client.app.state.services
        created = upload(client, make("cfr")).json()
        assert wait_for(client, created["id"])["status"] == "ready"
        assert services.queue.children(created["job_id"]) == []
        with services.db.session() as session:
            assert session.scalars(select(Job.kind)).all() == ["process_video"]
        # a correction's re-render has one chunk too: rendered in the job itself, from the plan it made
        vid = created["id"]
        body = {"drawnRectangles": {"5": [{"x": 8, "y": 8, "width": 40, "height": 30}]}}
        assert client.put(f"/api/videos/{vid}/corrections", json=body, headers=auth(ADMIN)).status_code == 200
        job = wait_job(client, client.post(f"/api/videos/{vid}/render", headers=auth(ADMIN)).json()["job_id"])
        assert job["status"] == "succeeded", job
        assert services.queue.children(job["id"]) == [] and not job.get("segments")
        with services.db.session() as session:
            result = dict(session.get(Job, job["id"]).result)
        assert result["reencoded"] and result["reencoded"][0][0] <= 5 <= result["reencoded"][0][1]
