"""`framemask anonymize | render | audit` as a user runs them: exit codes, one-line errors, JSON output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SHARED_MEDIA

TUD = SHARED_MEDIA / "TUD-Campus.mp4"


def framemask(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "framemask", *args], capture_output=True, text=True, timeout=300)


def assert_one_line_error(proc: subprocess.CompletedProcess[str], text: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("framemask: error:") and text in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_anonymize_rejects_a_non_video_with_one_line(tmp_path: Path) -> None:
    junk = tmp_path / "notes.mp4"
    junk.write_text("hello\n" * 100)
    assert_one_line_error(framemask("anonymize", str(junk), "-o", str(tmp_path / "out.mp4")), "not a decodable video")
    assert_one_line_error(framemask("anonymize", str(tmp_path / "nope.mp4"), "-o", str(tmp_path / "o.mp4")), "no such")
    assert not (tmp_path / "out.mp4").exists()


def test_anonymize_and_render_refuse_images_as_the_api_does(tmp_path: Path) -> None:
    """A photo (even named .mp4) and an audio file with cover art have one frame of an image codec: the library
    refuses them, as the upload API does, instead of writing a one-frame video (and passing the audio on)."""
    photo = tmp_path / "holiday.mp4"
    cover = tmp_path / "podcast.m4a"
    frame = ["-ss", "1", "-frames:v", "1", "-c:v", "mjpeg"]
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(TUD), *frame, "-f", "image2", str(photo)], check=True)
    audio = ["-f", "lavfi", "-i", "sine=d=2", "-i", str(photo), "-map", "0", "-map", "1", "-c:a", "aac", "-c:v", "copy"]
    subprocess.run(["ffmpeg", "-v", "error", *audio, "-disposition:v", "attached_pic", str(cover)], check=True)
    assert_one_line_error(framemask("anonymize", str(photo), "-o", str(tmp_path / "a.mp4")), "is an image")
    assert_one_line_error(framemask("anonymize", str(cover), "-o", str(tmp_path / "b.mp4")), "audio with a still")
    empty = tmp_path / "empty.json"
    empty.write_text('{"endSequence": 1, "sequence": []}')
    render = framemask("render", str(photo), "--boxes", str(empty), "-o", str(tmp_path / "c.mp4"))
    assert_one_line_error(render, "is an image")
    assert not [p.name for p in tmp_path.glob("*.mp4") if p.name != "holiday.mp4"]


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["--targets", "car"], "targets"),
        (["--stride", "0"], "stride"),
        (["--strength", "0.5"], "strength"),
    ],
)
def test_anonymize_rejects_bad_options_with_one_line(tmp_path: Path, args: list[str], text: str) -> None:
    assert_one_line_error(framemask("anonymize", str(TUD), "-o", str(tmp_path / "out.mp4"), *args), text)


def test_render_from_a_boxes_file(tmp_path: Path) -> None:
    boxes = tmp_path / "boxes.json"
    box = {"x1": 10, "x2": 100, "y1": 20, "y2": 200}
    boxes.write_text(json.dumps({"endSequence": 71, "sequence": [{"seq": 5, "person": [box]}]}))
    proc = framemask("render", str(TUD), "--boxes", str(boxes), "-o", str(tmp_path / "out.mp4"), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["endSequence"] == 71 and summary["gop_starts"] == [1, 13, 25, 37, 49, 61]
    assert (tmp_path / "out.mp4").stat().st_size > 0


def test_render_rejects_bad_boxes_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert_one_line_error(framemask("render", str(TUD), "--boxes", str(bad), "-o", str(tmp_path / "o.mp4")), "JSON")
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"endSequence": 3, "sequence": []}))
    assert_one_line_error(
        framemask("render", str(TUD), "--boxes", str(wrong), "-o", str(tmp_path / "o.mp4")), "endSequence"
    )


def test_audit_refuses_an_original_that_does_not_match(tmp_path: Path) -> None:
    other = SHARED_MEDIA / "carphone_pristine.mp4"
    assert_one_line_error(framemask("audit", str(TUD), "--original", str(other)), "not its original")


def test_anonymize_several_inputs_into_a_folder_skipping_a_bad_one(make, tmp_path: Path) -> None:
    from framemask.media import probe

    junk = tmp_path / "notes.mp4"
    junk.write_text("hello\n" * 100)
    inputs = [str(make("cfr")), str(junk), str(make("vfr"))]
    out, boxes = tmp_path / "out", tmp_path / "boxes"
    proc = framemask("anonymize", *inputs, "-o", str(out), "--boxes", str(boxes), "--no-progress")
    assert proc.returncode == 2  # one input was bad
    (error,) = proc.stderr.strip().splitlines()
    assert error.startswith(f"framemask: error: {junk}: ") and "not a decodable video" in error
    done = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [d["input"] for d in done] == [inputs[0], inputs[2]]
    for src, summary in zip((inputs[0], inputs[2]), done, strict=True):
        stem = Path(src).stem
        assert summary["output"] == str(out / f"{stem}.mp4")
        assert probe(out / f"{stem}.mp4").end_sequence == probe(src).end_sequence == summary["endSequence"]
        assert json.loads((boxes / f"{stem}.json").read_text())["endSequence"] == summary["endSequence"]
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{Path(s).stem}.mp4" for s in (inputs[0], inputs[2]))


def test_anonymize_several_inputs_refuses_a_clash_before_any_work(make, tmp_path: Path) -> None:
    one, two = tmp_path / "a" / "clip.mp4", tmp_path / "b" / "clip.mp4"
    for path in (one, two):
        path.parent.mkdir()
        path.write_bytes(Path(make("cfr")).read_bytes())
    out = tmp_path / "out"
    assert_one_line_error(framemask("anonymize", str(one), str(two), "-o", str(out)), "would both write clip.mp4")
    assert not out.exists()
    taken = tmp_path / "taken.mp4"
    taken.write_bytes(b"")
    assert_one_line_error(framemask("anonymize", str(one), str(make("vfr")), "-o", str(taken)), "must be a folder")


def test_audit_of_unmasked_faces_points_to_small_faces_on_stderr(tmp_path: Path) -> None:
    """An 'anonymized' video that is the original itself: every face is a leak. The JSON report stays alone on
    stdout; the hint goes to stderr, and not when the setting is already on."""
    talking_head = SHARED_MEDIA / "carphone_pristine.mp4"
    proc = framemask("audit", str(talking_head), "--original", str(talking_head), "--stride", "30", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    faces = sum(1 for leak in report["leaks"] if leak["label"] == "face")
    assert faces >= 1
    assert f"{faces} face(s) left unmasked" in proc.stderr and "FRAMEMASK_SMALL_FACES=1" in proc.stderr
    quiet = subprocess.run(
        [
            sys.executable,
            "-m",
            "framemask",
            "audit",
            str(talking_head),
            "--original",
            str(talking_head),
            "--stride",
            "30",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "FRAMEMASK_SMALL_FACES": "1"},
    )
    assert quiet.returncode == 0 and json.loads(quiet.stdout) == report
    assert "FRAMEMASK_SMALL_FACES" not in quiet.stderr


@pytest.mark.parametrize("variable", ["FRAMEMASK_SMALL_FACES", "FRAMEMASK_PERSON_INT8", "FRAMEMASK_CROWD_PASS"])
def test_anonymize_names_a_bad_setting_in_one_line(tmp_path: Path, variable: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "framemask", "anonymize", str(TUD), "-o", str(tmp_path / "o.mp4"), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, variable: "maybe"},
    )
    assert_one_line_error(proc, f"bad settings: {variable}: Input should be a valid boolean")
    assert not (tmp_path / "o.mp4").exists()
