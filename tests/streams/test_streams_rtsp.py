"""RTSP on loopback: GStreamer serves generated clips, PyAV records them, and the copies are proven exact.

Delivery is paced in real time, so the recordings of one module run in parallel threads (one fixture) and
the tests then assert on the results: frame count, every timestamp within 1 ms, pixel-identical frames.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import SHARED_MEDIA
from PIL import Image
from support.servers import free_port
from support.videos import VideoSpec, make_video, vfr_times

from framemask.errors import InputError, NotAVideoError
from framemask.media import FrameIndex, iter_frames
from framemask.streams.compare import compare
from framemask.streams.recorder import Recorder, Recording
from framemask.streams.server import RtspFileServer, plan_mount

CLI = [sys.executable, "-m", "framemask"]
NASA_VFR = SHARED_MEDIA / "torchcodec_nasa_13013_vfr.mp4"
EXACT = ["vfr", "bframes", "mkv", "hevc", "vp9", "vfr_again"]


def run_cli(*args: object, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout)


def planes(path: Path) -> list[np.ndarray]:
    """Every decoded frame's raw planes (YUV as stored): a stricter check than RGB."""
    return [frame.to_ndarray() for _, frame in iter_frames(path)]


def assert_exact(original: Path, recorded: Path, upto: int | None = None) -> None:
    """Same frame count (or the first `upto` frames), timestamps within 1 ms, identical pixels."""
    want, got = FrameIndex.build(original), FrameIndex.build(recorded)
    n = want.end_sequence if upto is None else upto
    assert got.end_sequence == n
    assert np.abs(got.time_ms - want.time_ms[:n]).max() < 1.0
    ref = planes(original)[:n]
    out = planes(recorded)
    assert len(out) == n
    for seq, (a, b) in enumerate(zip(ref, out, strict=True), start=1):
        assert np.array_equal(a, b), f"frame {seq} differs"


def assert_frames_of(original: Path, recorded: Path) -> int:
    """Every recorded frame is a frame of the original (time within 1 ms, same pixels); returns how many.

    A stream cut mid-GOP keeps a decode-order prefix: with B-frames the last few presentation slots may
    be missing, so only the frames before the last reorder window must be contiguous.
    """
    want, got = FrameIndex.build(original), FrameIndex.build(recorded)
    slots = np.searchsorted(want.time_ms, got.time_ms - 1.0)
    assert np.abs(want.time_ms[slots] - got.time_ms).max() < 1.0
    n = got.end_sequence
    assert np.array_equal(slots[: max(n - 4, 0)], np.arange(max(n - 4, 0)))
    ref = planes(original)
    for frame, slot in zip(planes(recorded), slots, strict=True):
        assert np.array_equal(frame, ref[slot]), f"frame at {want.time_ms[slot]} ms differs"
    return n


def wait_recording(proc: subprocess.Popen[str]) -> list[str]:
    """Read the recorder's stderr until it reports the connection (so a test acts mid-stream)."""
    assert proc.stderr is not None
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if line.startswith("recording rtsp://"):
            return lines
    pytest.fail(f"the recorder never connected: {''.join(lines)}")


def serve_process(files: list[Path], port: int, *extra: str) -> subprocess.Popen[str]:
    """`framemask rtsp serve` in its own process (so a test can kill it), once it listens."""
    proc = subprocess.Popen(
        [*CLI, "rtsp", "serve", *map(str, files), "--port", str(port), *extra],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if "press Ctrl-C" in line:
            return proc
    proc.wait(5)
    pytest.fail(f"rtsp serve exited with {proc.returncode}")


@pytest.fixture(scope="module")
def clips(make, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("rtsp-clips")
    return {
        "vfr": make("vfr"),  # 100 frames, 30 -> 10 -> 30 fps
        "bframes": make("bframes"),  # 90 frames at 25 fps, 3 B-frames, a key frame every second
        "mkv": make_video(folder / "mkv.mkv", VideoSpec(n=30, fps=20, bframes=2, gop=20)),
        "hevc": make_video(folder / "hevc.mov", VideoSpec(n=30, fps=30, codec="libx265")),
        "vp9": make_video(folder / "vp9.webm", VideoSpec(n=30, fps=30, codec="libvpx-vp9")),
    }


@pytest.fixture(scope="module")
def server(clips: dict[str, Path]):
    with RtspFileServer(list(clips.values()), port=0) as srv:
        yield srv


@pytest.fixture(scope="module")
def recorded(server: RtspFileServer, clips: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):
    """Every recording of this module, made at once: (Recording, output path) by name."""
    out = tmp_path_factory.mktemp("rtsp-out")
    jobs = {name: (name, {}) for name in ("vfr", "bframes", "mkv", "hevc", "vp9")}
    jobs["vfr_again"] = ("vfr", {})  # a second client of the same file, at the same time
    jobs["segmented"] = ("bframes", {"segment_seconds": 1.0})
    jobs["limited"] = ("vfr", {"duration": 1.5})

    def record(name: str) -> tuple[Recording, Path]:
        mount, options = jobs[name]
        path = out / f"{name}.mp4"
        url = server.url(Path(clips[mount]).stem)
        return Recorder(url, path, on_status=lambda _m: None, **options).run(), path

    cli = subprocess.Popen(
        [*CLI, "rtsp", "record", server.url("vfr"), "-o", str(out / "cli.mp4")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    with ThreadPoolExecutor(len(jobs)) as pool:
        results = dict(zip(jobs, pool.map(record, jobs), strict=True))
    stdout, stderr = cli.communicate(timeout=60)
    results["cli"] = (cli.returncode, stdout, stderr, out / "cli.mp4")  # type: ignore[assignment]
    return results


@pytest.mark.parametrize("name", EXACT)
def test_recording_is_exact(name: str, recorded, clips) -> None:
    rec, path = recorded[name]
    assert rec.status == "ended" and rec.reconnects == 0 and rec.error is None
    [segment] = rec.segments
    assert segment.target == str(path) and segment.bytes == path.stat().st_size > 0
    original = clips["vfr" if name == "vfr_again" else name]
    assert_exact(original, path)
    stored = FrameIndex.from_bytes(Path(f"{path}.index").read_bytes())
    assert segment.indexed_frames == segment.frames == stored.end_sequence == FrameIndex.build(original).end_sequence
    assert np.array_equal(stored.pts, FrameIndex.build(path).pts)


def test_vfr_stays_vfr(recorded) -> None:
    index = FrameIndex.build(recorded["vfr"][1])
    steps = np.unique(np.round(np.diff(index.time_ms)))
    assert index.vfr and {33.0, 100.0} <= set(steps.tolist())


def test_segments_split_at_key_frames(recorded, clips) -> None:
    rec, path = recorded["segmented"]
    original = FrameIndex.build(clips["bframes"])
    assert [s.frames for s in rec.segments] == [25, 25, 25, 15]  # a key frame every 25 frames
    assert [s.start_ms for s in rec.segments] == [0.0, 1000.0, 2000.0, 3000.0]
    times, frames = [], []
    for number, segment in enumerate(rec.segments):
        file = path.with_name(f"segmented-{number:05d}.mp4")
        assert segment.target == str(file) and Path(f"{file}.index").is_file()
        index = FrameIndex.build(file)
        assert index.keys[0] and index.end_sequence == segment.frames
        times.extend(segment.start_ms + index.time_ms)
        frames.extend(planes(file))
    assert np.abs(np.array(times) - original.time_ms).max() < 1.0
    assert all(np.array_equal(a, b) for a, b in zip(planes(clips["bframes"]), frames, strict=True))


def test_duration_stops_after_that_much_media(recorded, clips) -> None:
    rec, path = recorded["limited"]
    assert rec.status == "duration"
    wanted = int((FrameIndex.build(clips["vfr"]).time_ms < 1500.0).sum())
    assert rec.frames == wanted
    assert_exact(clips["vfr"], path, upto=wanted)


def test_cli_record_prints_json_and_status_lines(recorded, clips) -> None:
    code, stdout, stderr, path = recorded["cli"]
    assert code == 0, stderr
    data = json.loads(stdout)
    assert data["status"] == "ended" and data["frames"] == 100 and data["segments"][0]["target"] == str(path)
    assert "recording rtsp://" in stderr and "ended: 100 frames" in stderr
    assert_exact(clips["vfr"], path)


@pytest.mark.parametrize("name", ["vfr", "bframes"])
def test_compare_finds_the_same_frame_on_both_sides(name: str, recorded, clips, tmp_path) -> None:
    original = clips[name]
    index = FrameIndex.build(original)
    for ms in (0.0, 333.3, 1000.0, 1234.5, 2999.0, 10_000_000.0):
        result = compare(original, recorded[name][1], ms)
        seq = index.frame_at(ms)
        assert result["original"] == {"seq": seq, "time_ms": round(index.time_of(seq), 3)}
        assert result["recorded"]["seq"] == seq
        assert abs(result["recorded"]["time_ms"] - index.time_of(seq)) < 1.0
        assert result["identical"] is True and result["psnr"] == 100.0


def test_compare_cli_writes_side_by_side_png(recorded, clips, tmp_path) -> None:
    out = tmp_path / "pair.png"
    done = run_cli("compare", clips["vfr"], recorded["vfr"][1], "--ms", "1234.5", "-o", out)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["original"]["seq"] == data["recorded"]["seq"] == FrameIndex.build(clips["vfr"]).frame_at(1234.5)
    image = np.asarray(Image.open(out))
    assert image.shape[1] == 320 * 2 + 8 and image.shape[0] == 240 + 24
    assert np.array_equal(image[24:, :320], image[24:, 328:])  # the two frames are the same pixels


def test_compare_with_an_offset_reports_a_different_frame(recorded, clips) -> None:
    result = compare(clips["bframes"], recorded["bframes"][1], 1000.0, offset_ms=120.0)
    assert result["original"]["seq"] == 26 and result["recorded"]["seq"] == 23
    assert result["identical"] is False and 0 < result["psnr"] < 100


def test_unreachable_url_exits_2_with_one_line(tmp_path) -> None:
    out = tmp_path / "x.mp4"
    done = run_cli("rtsp", "record", f"rtsp://127.0.0.1:{free_port()}/cam", "-o", out, "--timeout", "3")
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert done.stderr.startswith("framemask: error: cannot open rtsp://127.0.0.1:") and "refused" in done.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_unknown_mount_and_bad_url_exit_2(server, tmp_path) -> None:
    done = run_cli("rtsp", "record", server.url("vfr").replace("/vfr", "/nope"), "-o", tmp_path / "x.mp4")
    assert done.returncode == 2 and "404" in done.stderr
    done = run_cli("rtsp", "record", "http://127.0.0.1/x", "-o", tmp_path / "x.mp4")
    assert done.returncode == 2 and "not an RTSP URL" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_serve_refuses_what_it_cannot_stream(tmp_path) -> None:
    ffv1 = make_video(tmp_path / "lossless.mkv", VideoSpec(n=3, codec="ffv1"))
    with pytest.raises(InputError, match="cannot serve 'ffv1'"):
        plan_mount(ffv1)
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(NotAVideoError):
        plan_mount(text)
    done = run_cli("rtsp", "serve", ffv1, "--port", free_port())
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "ffv1" in done.stderr


def test_dropped_stream_keeps_what_was_recorded(make, tmp_path) -> None:
    """The server dies mid-stream and never comes back: the CLI keeps the frames, exits 1 with one line."""
    clip, port, out = make("bframes"), free_port(), tmp_path / "cut.mp4"
    srv = serve_process([clip], port)
    try:
        rec = subprocess.Popen(
            [*CLI, "rtsp", "record", f"rtsp://127.0.0.1:{port}/bframes", "-o", str(out), "--reconnect", "1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        seen = wait_recording(rec)
        time.sleep(1.0)  # mid-stream: the clip lasts 3.6 s
        srv.kill()
        stdout, rest = rec.communicate(timeout=60)
        stderr = "".join(seen) + rest
    finally:
        srv.kill()
        srv.wait()
    assert rec.returncode == 1, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("framemask: error: connection lost") and f"({out})" in last
    data = json.loads(stdout)
    assert data["status"] == "dropped" and 0 < data["frames"] < 90
    assert assert_frames_of(clip, out) == data["frames"]


def test_reconnects_after_a_drop_and_resumes_exactly(make, tmp_path) -> None:
    """The server dies and comes back on the same port: the recorder seeks back and loses nothing."""
    clip, port, out = make("bframes"), free_port(), tmp_path / "resumed.mp4"
    procs = [serve_process([clip], port)]
    connected = threading.Event()

    def restart() -> None:
        connected.wait(30)
        time.sleep(1.2)  # mid-stream: the clip lasts 3.6 s
        procs[0].kill()
        procs[0].wait()
        procs.append(serve_process([clip], port))

    killer = threading.Thread(target=restart)
    killer.start()
    try:
        result = Recorder(
            f"rtsp://127.0.0.1:{port}/bframes",
            out,
            reconnect_delay=0.3,
            on_status=lambda m: connected.set() if m.startswith("recording") else None,
        ).run()
    finally:
        killer.join()
        for proc in procs:
            proc.kill()
            proc.wait()
    assert result.status == "ended" and result.reconnects == 1
    assert_exact(clip, out)


def test_loop_repeats_with_increasing_timestamps(make, tmp_path) -> None:
    clip = make("bframes")
    with RtspFileServer([clip], port=0, loop=True) as srv:
        result = Recorder(srv.url("bframes"), tmp_path / "loop.mp4", duration=4.6, on_status=lambda _m: None).run()
    assert result.status == "duration" and result.frames > 90
    index = FrameIndex.build(tmp_path / "loop.mp4")
    assert np.all(np.diff(index.pts) > 0)
    assert index.time_ms[90] == pytest.approx(3600.0, abs=1.0)  # the second pass starts where the first ended
    frames = planes(tmp_path / "loop.mp4")
    # each frame of the second pass shows the first pass's frame 3.6 s earlier; matched by time, as the
    # recording may end inside a group of B-frames (a frame whose B-frames had not arrived yet)
    first = {round(float(t)): frame for t, frame in zip(index.time_ms[:90], frames[:90], strict=True)}
    second = list(zip(index.time_ms[90:], frames[90:], strict=True))
    assert len(second) >= 20 and all(np.array_equal(first[round(float(t) - 3600)], f) for t, f in second)


def test_stop_finishes_the_file_cleanly(make, tmp_path) -> None:
    timers: list[threading.Timer] = []

    def stop_soon(message: str) -> None:  # 1.5 s after recording starts (connecting may take as long on a busy CI)
        if message.startswith("recording") and not timers:
            timers.append(threading.Timer(1.5, recorder.stop))
            timers[0].start()

    with RtspFileServer([make("vfr")], port=0, loop=True) as srv:
        recorder = Recorder(srv.url("vfr"), tmp_path / "stopped.mp4", on_status=stop_soon)
        result = recorder.run()
    assert len(timers) == 1
    assert result.status == "stopped" and 20 < result.frames < 100
    assert_exact(make("vfr"), tmp_path / "stopped.mp4", upto=result.frames)


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
def test_sigint_finishes_the_recording(make, tmp_path) -> None:
    clip, port, out = make("vfr"), free_port(), tmp_path / "ctrl-c.mp4"
    srv = serve_process([clip], port, "--loop")
    try:
        rec = subprocess.Popen(
            [*CLI, "rtsp", "record", f"rtsp://127.0.0.1:{port}/vfr", "-o", str(out)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        seen = wait_recording(rec)
        time.sleep(1.0)
        rec.send_signal(signal.SIGINT)
        stdout, rest = rec.communicate(timeout=30)
        stderr = "".join(seen) + rest
    finally:
        srv.send_signal(signal.SIGINT)
        srv.wait(15)
    assert rec.returncode == 0, stderr
    assert srv.returncode == 0
    data = json.loads(stdout)
    assert data["status"] == "stopped" and data["frames"] > 0
    assert FrameIndex.build(out).end_sequence == data["frames"]


def _hold_last_frame(src: Path, dst: Path) -> Path:
    """Remux `src` so its last frame lasts as long as the interval before it (as VFR encoders write it)."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        stream = inp.streams.video[0]
        copy = out.add_stream_from_template(stream)
        packets = [p for p in inp.demux(stream) if p.size]
        pts = sorted(p.pts for p in packets)
        for packet in packets:
            if packet.pts == pts[-1]:
                packet.duration = pts[-1] - pts[-2]
            packet.stream = copy
            out.mux(packet)
    return dst


def test_vfr_file_whose_last_frame_ends_before_the_announced_end_is_a_normal_end(tmp_path) -> None:
    """Issue 10: a VFR file ending in a slow stretch (its last frame lasts 0.5 s) used to end as a drop after
    5 reconnects (exit 1). The stream ends at the last frame's start, within that frame's duration of the
    announced range: a normal end, exit 0 at once, every frame kept."""
    src = make_video(tmp_path / "slow_end_src.mp4", VideoSpec(times=vfr_times(((30, 30), (4, 2))), gop=30))
    clip = _hold_last_frame(src, tmp_path / "slow_end.mp4")
    with av.open(str(clip)) as probe_:
        announced = probe_.duration / 1_000_000
    last = FrameIndex.build(clip).time_ms[-1] / 1000
    assert announced - last == pytest.approx(0.5, abs=0.01)  # more than the old 0.25 s slack
    out, port = tmp_path / "slow_end_rec.mp4", free_port()
    srv = serve_process([clip], port)
    try:
        started = time.monotonic()
        done = run_cli("rtsp", "record", f"rtsp://127.0.0.1:{port}/slow_end", "-o", out, timeout=60)
        elapsed = time.monotonic() - started
    finally:
        srv.kill()
        srv.wait()
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["status"] == "ended" and data["reconnects"] == 0 and data["error"] is None
    assert data["frames"] == 34 and "reconnecting" not in done.stderr
    assert elapsed < last + 4.0  # no reconnection rounds: it ends when the stream does
    assert_exact(clip, out)


@pytest.mark.skipif(not NASA_VFR.exists(), reason="torchcodec_nasa_13013_vfr.mp4 not in shared media")
def test_nasa_vfr_recording_ends_normally(tmp_path) -> None:
    """The shared VFR clip (its container ends 33 ms before the last frame's start) records whole, exit 0."""
    clip = NASA_VFR
    out, port = tmp_path / "nasa.mp4", free_port()
    srv = serve_process([clip], port)
    try:
        done = run_cli("rtsp", "record", f"rtsp://127.0.0.1:{port}/{clip.stem}", "-o", out, timeout=60)
    finally:
        srv.kill()
        srv.wait()
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["status"] == "ended" and data["reconnects"] == 0 and data["frames"] == 50
    assert_exact(clip, out)
