"""Recording RTSP into a real S3 server (radosgw) while receiving: multipart parts land before the end."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import av
import boto3
import numpy as np
import pytest
from botocore.exceptions import ClientError

from framemask.errors import InputError
from framemask.media import FrameIndex, iter_frames
from framemask.settings import Settings
from framemask.store.objects import S3Store
from framemask.streams.compare import compare, sync
from framemask.streams.recorder import Recorder
from framemask.streams.server import RtspFileServer

pytestmark = pytest.mark.services

MIB = 1024 * 1024
BUCKET = "recordings"


def noise_clip(path: Path, frames: int = 240) -> Path:
    """Lossless random frames: about 140 KB each, so an 8 s clip needs several 5 MiB parts."""
    rng = np.random.default_rng(7)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.time_base = stream.codec_context.time_base = Fraction(1, 90000)
        # a key frame every 0.5 s: the recorder's fragmented MP4 cuts a fragment per GOP, so bytes (and
        # multipart parts) leave while the stream is still arriving, not in one piece at its end
        stream.options = {"qp": "0", "preset": "ultrafast", "g": "15", "keyint_min": "15"}
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8), format="rgb24")
            frame.pts, frame.time_base = i * 3000, Fraction(1, 90000)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def same_video(original: Path, copy: Path) -> None:
    want, got = FrameIndex.build(original), FrameIndex.build(copy)
    assert got.end_sequence == want.end_sequence
    assert np.abs(got.time_ms - want.time_ms).max() < 1.0
    for (_, a), (_, b) in zip(iter_frames(original), iter_frames(copy), strict=True):
        assert np.array_equal(a.to_ndarray(), b.to_ndarray())


@pytest.fixture(scope="module")
def s3(rgw_server):
    store = S3Store(rgw_server.endpoint, rgw_server.access_key, rgw_server.secret_key, part_size=5 * MIB)
    store.ensure_bucket(BUCKET)
    client = boto3.client(
        "s3",
        endpoint_url=rgw_server.endpoint,
        aws_access_key_id=rgw_server.access_key,
        aws_secret_access_key=rgw_server.secret_key,
        region_name="us-east-1",
    )
    return store, client, rgw_server


@pytest.fixture(scope="module")
def recorded(s3, make, tmp_path_factory):
    """vfr, bframes and a large noise clip, recorded into S3 at once; parts seen while still receiving."""
    store, client, _ = s3
    clips = {
        "vfr": make("vfr"),
        "bframes": make("bframes"),
        "noise": noise_clip(tmp_path_factory.mktemp("s3-clips") / "noise.mp4"),
    }
    parts_while_receiving: list[int] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            try:
                for upload in client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []):
                    if upload["Key"] == "cams/noise.mp4":
                        parts = client.list_parts(Bucket=BUCKET, Key=upload["Key"], UploadId=upload["UploadId"])
                        parts_while_receiving.append(len(parts.get("Parts", [])))
            except ClientError:  # the upload completed between the two calls: keep watching the others
                pass
            time.sleep(0.1)

    with RtspFileServer(list(clips.values()), port=0) as srv:
        watcher = threading.Thread(target=watch)
        watcher.start()

        def record(name: str):
            target = f"s3://{BUCKET}/cams/{name}.mp4"
            recorder = Recorder(
                srv.url(name), target, store=(store, BUCKET, f"cams/{name}.mp4"), on_status=lambda _m: None
            )
            return recorder.run()

        try:
            with ThreadPoolExecutor(3) as pool:
                results = dict(zip(clips, pool.map(record, clips), strict=True))
        finally:
            done.set()
            watcher.join()
    return clips, results, parts_while_receiving


def test_parts_are_uploaded_while_receiving(recorded, s3) -> None:
    _, results, parts = recorded
    store, client, _ = s3
    rec = results["noise"]
    assert rec.status == "ended" and rec.segments[0].bytes > 10 * MIB
    assert max(parts, default=0) >= 1, f"no multipart part was uploaded before the stream ended: {parts}"
    head = client.head_object(Bucket=BUCKET, Key="cams/noise.mp4")
    assert head["ETag"].strip('"').endswith(f"-{-(-rec.segments[0].bytes // (5 * MIB))}")  # a multipart object
    assert store.size(BUCKET, "cams/noise.mp4") == rec.segments[0].bytes


@pytest.mark.parametrize("name", ["vfr", "bframes", "noise"])
def test_s3_recording_is_exact(name, recorded, s3, tmp_path) -> None:
    clips, results, _ = recorded
    store, _, _ = s3
    rec = results[name]
    [segment] = rec.segments
    assert segment.target == f"s3://{BUCKET}/cams/{name}.mp4"
    assert segment.index_target == f"{segment.target}.index"
    local = tmp_path / f"{name}.mp4"
    store.get_file(BUCKET, f"cams/{name}.mp4", local)
    same_video(clips[name], local)
    with store.open_read(BUCKET, f"cams/{name}.mp4.index") as fh:
        stored = FrameIndex.from_bytes(fh.read())
    assert np.array_equal(stored.pts, FrameIndex.build(local).pts)


def test_compare_and_sync_read_s3_targets(recorded, s3, tmp_path) -> None:
    clips, _, _ = recorded
    _, _, server = s3
    settings = Settings(
        data_dir=tmp_path,
        s3_endpoint=server.endpoint,
        s3_access_key=server.access_key,
        s3_secret_key=server.secret_key,
    )
    index = FrameIndex.build(clips["bframes"])
    for ms in (0.0, 1020.0, 3599.0):
        result = compare(
            clips["bframes"], f"s3://{BUCKET}/cams/bframes.mp4", ms, tmp_path / "pair.png", settings=settings
        )
        assert result["original"]["seq"] == result["recorded"]["seq"] == index.frame_at(ms)
        assert result["identical"] is True
    both = sync(f"s3://{BUCKET}/cams/vfr.mp4", f"s3://{BUCKET}/cams/bframes.mp4", 1500.0, settings=settings)
    assert both["a"]["seq"] == FrameIndex.build(clips["vfr"]).frame_at(1500.0)
    assert both["b"]["skipped"] == index.frame_at(1500.0) - 1
    with pytest.raises(InputError, match="needs the service settings"):  # library code never reads the env
        compare(clips["bframes"], f"s3://{BUCKET}/cams/bframes.mp4", 0.0)
