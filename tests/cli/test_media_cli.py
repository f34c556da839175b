"""The CLI contract: JSON keys, exit codes, one readable line on bad input."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from framemask import cli
from framemask.media import FrameReader

CLI = [sys.executable, "-m", "framemask"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=120)


def test_probe_json(make):
    result = run("probe", make("vfr"))
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["endSequence"] == 100 and data["vfr"] is True
    assert {"width", "height", "duration_ms", "fps", "rotation", "codec", "has_audio"} <= data.keys()
    assert "frames" not in data


def test_probe_frames(make):
    data = json.loads(run("probe", make("bframes"), "--frames").stdout)
    frames = data["frames"]
    assert [f["seq"] for f in frames] == list(range(1, 91))
    assert frames[1]["time_ms"] == pytest.approx(40.0) and frames[0]["key"] and not frames[1]["key"]


def test_locate_modes(make):
    path = make("vfr")
    assert json.loads(run("locate", path, "--ms", "1099").stdout) == {"seq": 31, "time_ms": 1000.0}
    assert json.loads(run("locate", path, "--ms", "1060", "--mode", "nearest").stdout)["seq"] == 32
    assert json.loads(run("locate", path, "--ms", "999999").stdout)["seq"] == 100


def test_frame_writes_exact_png(make, tmp_path):
    path, out = make("bframes"), tmp_path / "f.png"
    result = run("frame", path, "--seq", 37, "-o", out)
    assert result.returncode == 0, result.stderr
    with FrameReader(path) as reader:
        assert np.array_equal(np.asarray(Image.open(out)), reader.frame(37))
    assert run("frame", path, "--ms", 1000, "-o", tmp_path / "g.png").returncode == 0
    with FrameReader(path) as reader:
        assert np.array_equal(np.asarray(Image.open(tmp_path / "g.png")), reader.frame(26))


@pytest.fixture
def bad_inputs(tmp_path, make):
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 100)
    good = make("cfr").read_bytes()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(good[: len(good) // 2])
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    zero = tmp_path / "zero.mp4"
    with av.open(str(zero), "w") as out:
        s = out.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = 64, 64, "yuv420p"
    audio_only = tmp_path / "audio.m4a"
    with av.open(str(audio_only), "w") as out:
        a = out.add_stream("aac", rate=48000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 48000
        out.mux(a.encode(frame))
        out.mux(a.encode(None))
    return {
        "text": text,
        "truncated": truncated,
        "empty": empty,
        "zero": zero,
        "audio_only": audio_only,
        "missing": tmp_path / "missing.mp4",
        "directory": tmp_path,
    }


@pytest.mark.parametrize("case", ["text", "truncated", "empty", "zero", "audio_only", "missing", "directory"])
@pytest.mark.parametrize("command", [("probe",), ("locate", "--ms", "0"), ("frame", "--seq", "1", "-o", "x.png")])
def test_bad_input_exits_2_with_one_line(bad_inputs, case, command, tmp_path):
    args = [command[0], bad_inputs[case], *command[1:]]
    if command[0] == "frame":
        args[-1] = tmp_path / "x.png"
    result = run(*args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("framemask: error:") and "Traceback" not in result.stderr


def test_seq_out_of_range(make, tmp_path):
    for seq in (0, 91, -3):
        result = run("frame", make("cfr"), "--seq", seq, "-o", tmp_path / "x.png")
        assert result.returncode == 2 and "outside 1..90" in result.stderr


def test_usage_error_is_exit_2(make):
    result = run("locate", make("cfr"))
    assert result.returncode == 2 and "--ms" in result.stderr


def _run_entry_point(monkeypatch, *args: str) -> int | str | None:
    """`cli.run` with `args`, as the process entry point would; the collector is unfrozen after it."""
    monkeypatch.setattr(sys, "argv", ["framemask", *args])
    try:
        with pytest.raises(SystemExit) as stopped:
            cli.run()
    finally:
        gc.unfreeze()
    return stopped.value.code


def test_the_entry_point_exits_with_the_commands_code_and_flushes_its_output(make, monkeypatch, capsys):
    """`run` (behind `framemask` and `python -m framemask`) freezes the collector before the interpreter's
    teardown; the command's code and every byte it printed must survive that."""
    assert _run_entry_point(monkeypatch, "probe", str(make("vfr")), "--frames") == 0
    assert len(json.loads(capsys.readouterr().out)["frames"]) == 100
    assert _run_entry_point(monkeypatch, "probe", "/nonexistent/clip.mp4") == 2
    assert capsys.readouterr().err.startswith("framemask: error:")


def test_the_installed_command_prints_all_of_a_large_output(make):
    """The console script exits through `run`; a piped stdout (block-buffered) still arrives whole."""
    script = Path(sys.executable).with_name("framemask")
    result = subprocess.run([script, "probe", make("vfr"), "--frames"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert [f["seq"] for f in json.loads(result.stdout)["frames"]] == list(range(1, 101))
