"""Re-render of corrections through the segment machinery: the GOP runs to re-encode are cut into chunks of
about `segment_seconds` (`redact.patch_plan.plan_patch`), encoded in a local process pool (`patch_render(jobs=N)`)
or as `segment` jobs on the queue (`jobs.rerender`), and spliced into the final by the parent.

x264 is not bit-reproducible from run to run here (two serial patches of the same input differ by a few
bits), so exact comparisons encode losslessly (`crf=0`: decoded frames are exactly the encoder's input); the
service's master is lossy, so its queue render is compared with the serial one within encoder noise, and
exactly where GOPs are copied.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from support.api import ADMIN, PEOPLE_VIDEO, auth, make_settings, service, stored_files, upload, wait_for, wait_job

from framemask.errors import FramemaskError
from framemask.redact import EncodeSettings, render_with_boxes
from framemask.redact.gop_encoder import GopTask
from framemask.redact.gop_parts import encode_runs, read_parts
from framemask.redact.patch import patch_render
from framemask.redact.patch_plan import plan_patch
from framemask.redact.policy import DEFAULT_POLICY, MaskPolicy, painted_from_doc
from framemask.redact.splice import splice
from framemask.service.revisions import effective_boxes, latest_revision
from framemask.store.models import Job, Video

LOSSLESS = EncodeSettings(crf=0, keyint=10)
BOX = {"x1": 20, "x2": 180, "y1": 10, "y2": 130}
ADDED = {"x": 300, "y": 40, "width": 120, "height": 90}


def doc(n: int, seqs: list[int]) -> dict:
    return {"endSequence": n, "sequence": [{"seq": s, "person": [BOX]} for s in seqs]}


def packets(path: Path) -> list[tuple[int, int, bytes]]:
    with av.open(str(path)) as c:
        return [(p.pts, p.dts, bytes(p)) for p in c.demux(c.streams.video[0]) if p.size]


def frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])]


def test_pool_patch_equals_the_serial_patch(make, tmp_path: Path) -> None:
    src = make("audio")  # 60 frames at 30 fps with audio: GOPs of 10 frames = 1/3 s
    master = render_with_boxes(src, tmp_path / "master.mp4", doc(60, []), settings=LOSSLESS).output
    changed = [3, *range(22, 50)]  # GOPs 0 and 2-4: with chunks of 0.5 s the run 2-4 is cut
    plan = plan_patch(master, changed, keyint=10, chunk_seconds=0.5)
    assert plan.chunks == [[[0], [2]], [[3, 4]]]
    want = doc(60, changed)
    serial = patch_render(src, master, tmp_path / "serial.mp4", want, changed, settings=LOSSLESS, chunk_seconds=0.5)
    calls: list[tuple[int, int]] = []
    pooled = patch_render(
        src,
        master,
        tmp_path / "pool.mp4",
        want,
        changed,
        settings=LOSSLESS,
        chunk_seconds=0.5,
        jobs=2,
        progress=lambda d, t: calls.append((d, t)),
    )
    assert pooled.reencoded == serial.reencoded == [(1, 10), (21, 30), (31, 40), (41, 50)]
    assert calls == [(20, 40), (40, 40)]  # as the chunks finish
    a, b = packets(serial.output), packets(pooled.output)
    assert [p[:2] for p in a] == [p[:2] for p in b]  # every pts and dts
    assert [p for i, p in enumerate(b) if 10 <= i < 20 or i >= 50] == [
        p for i, p in enumerate(packets(master)) if 10 <= i < 20 or i >= 50
    ]  # copied GOPs byte for byte
    got, ref = frames(pooled.output), frames(serial.output)
    assert len(got) == 60 and all(np.array_equal(x, y) for x, y in zip(got, ref, strict=True))
    assert not list(tmp_path.glob(".framemask-gops-*"))  # the pool's parts are gone


def test_a_part_is_spliced_only_into_the_run_it_was_encoded_for(make, tmp_path: Path) -> None:
    src = make("cfr")
    master = render_with_boxes(src, tmp_path / "master.mp4", doc(90, []), settings=LOSSLESS).output
    painted = painted_from_doc(doc(90, [15]), 90, 320, 240, DEFAULT_POLICY)
    part = tmp_path / "part.npz"
    task = GopTask(str(src), str(master), str(part), [[1]], painted, "mosaic", "rect", 1.0, LOSSLESS)
    encode_runs(task)
    good = plan_patch(master, [15], keyint=10)
    out = splice(master, tmp_path / "ok.mp4", good, read_parts([part], good.gops))
    assert out == "none" and len(frames(tmp_path / "ok.mp4")) == 90
    stale = plan_patch(master, [15, 25], keyint=10)  # the run is now GOPs 1-2: the part holds only GOP 1
    with pytest.raises(FramemaskError, match="no stored part"):
        splice(master, tmp_path / "bad.mp4", stale, read_parts([part], stale.gops))
    other = render_with_boxes(src, tmp_path / "other.mp4", doc(90, []), settings=EncodeSettings(keyint=15)).output
    moved = plan_patch(other, [15], keyint=15)
    with pytest.raises(FramemaskError):
        splice(other, tmp_path / "bad.mp4", moved, read_parts([part], moved.gops))
    assert not list(tmp_path.glob("*partial*"))


def mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


@pytest.mark.slow
def test_queue_rerender_fans_out_gop_segments_and_joins(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", workers=2, segment_mode="queue", segment_seconds=0.25)
    with service(settings) as client:
        services = client.app.state.services
        vid = upload(client, PEOPLE_VIDEO).json()["id"]
        assert wait_for(client, vid)["status"] == "ready"
        body = {"drawnRectangles": {"10": [ADDED], "40": [ADDED]}}  # GOPs 1-12 and 37-48 (half-second GOPs)
        assert client.put(f"/api/videos/{vid}/corrections", json=body, headers=auth(ADMIN)).status_code == 200
        queued = client.post(f"/api/videos/{vid}/render", headers=auth(ADMIN)).json()
        job = wait_job(client, queued["job_id"], timeout=240)
        assert job["status"] == "succeeded", job
        children = services.queue.children(job["id"])
        assert all(c.kind == "segment" and c.payload["task"] == "gops" and c.completions == 1 for c in children)
        assert [(s["index"], s["start_seq"], s["end_seq"], s["status"]) for s in job["segments"]] == [
            (0, 1, 12, "succeeded"),
            (1, 37, 48, "succeeded"),
        ]
        assert [c.payload["runs"] for c in children] == [[[0]], [[3]]]
        with services.db.session() as session:
            result = dict(session.get(Job, job["id"]).result)
            video = session.get(Video, vid)
            revision = latest_revision(session, video_id=vid)
        assert result["segments"] == 2 and result["reencoded"] == [[1, 12], [37, 48]] and result["copied_gops"] == 4
        assert not [f for f in stored_files(settings.data_dir) if "/segments/" in f]  # joined, then removed

        # the same render, serially in-process, from the same inputs
        objects = settings.objects_dir / settings.bucket_processed
        master, final = objects / f"videos/{vid}/processed.mp4", objects / result["final_key"]
        params = video.render_params
        painted = effective_boxes(services, video=video, revision=revision).painted(
            MaskPolicy.from_dict(params["policy"])
        )
        serial = patch_render(
            PEOPLE_VIDEO,
            master,
            tmp_path / "serial.mp4",
            None,
            [10, 40],
            painted=painted,
            style=params["style"],
            settings=EncodeSettings(**params["encoder"]),
            audio_from=master,
            chunk_seconds=0.25,
        )
        assert serial.reencoded == [(1, 12), (37, 48)]
        a, b = packets(serial.output), packets(final)
        assert [p[:2] for p in a] == [p[:2] for p in b]
        copied = packets(master)
        assert b[12:36] == copied[12:36] and b[48:] == copied[48:]  # the copied GOPs
        got, ref = frames(final), frames(serial.output)
        assert len(got) == 71
        worst = max(mad(x, y) for x, y in zip(got, ref, strict=True))
        assert worst < 1.5, worst  # encoder noise only (see the module docstring)
