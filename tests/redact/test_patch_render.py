"""GOP patching: only GOPs with changed frames are re-encoded, everything else is copied byte for byte."""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import SHARED_MEDIA, ffprobe_count
from support.videos import pattern

from framemask.errors import InputError
from framemask.redact import EncodeSettings, render_with_boxes
from framemask.redact.boxes import boxes_from_doc
from framemask.redact.gops import annexb_to_avcc, master_gops
from framemask.redact.patch import changed_seqs, master_settings, patch_render

KEYINT = 10
SETTINGS = EncodeSettings(keyint=KEYINT)
BOX = {"x1": 20, "x2": 180, "y1": 10, "y2": 130}  # over the frame-number blocks and the gradient


def doc(n: int, boxes: dict[int, list[dict]] | None = None) -> dict:
    return {"endSequence": n, "sequence": [{"seq": s, "person": b} for s, b in sorted((boxes or {}).items())]}


def render(src: Path, dst: Path, n: int, boxes: dict[int, list[dict]] | None = None) -> Path:
    return render_with_boxes(src, dst, doc(n, boxes), settings=SETTINGS).output


def video_packets(path: Path) -> list[tuple[int, int, bytes]]:
    with av.open(str(path)) as c:
        return [(p.pts, p.dts, bytes(p)) for p in c.demux(c.streams.video[0]) if p.size]


def audio_packets(path: Path) -> list[tuple[int, bytes]]:
    with av.open(str(path)) as c:
        return [(p.pts, bytes(p)) for p in c.demux(c.streams.audio[0]) if p.size]


def decoded(path: Path) -> tuple[list[Fraction], list[np.ndarray]]:
    """Every frame's exact time and pixels, decoding the whole file from start to end."""
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        frames = list(c.decode(stream))
        return [f.pts * stream.time_base for f in frames], [f.to_ndarray(format="rgb24") for f in frames]


def decode_errors(path: Path) -> str:
    """What FFmpeg's demuxer, parser and decoder complain about reading every frame (empty = clean)."""
    return subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-show_entries", "stream=nb_read_frames", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stderr


def textured_video(path: Path, n: int = 30) -> Path:
    """The numbered test pattern with a fine random texture (4 px cells) moving inside BOX: a mask that
    hides the box takes the texture away, which is measurable without knowing how the mask is drawn."""
    rng = np.random.default_rng(7)
    texture = np.kron(rng.integers(30, 226, size=(40, 60, 3)), np.ones((4, 4, 1))).astype(np.uint8)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "10"}
        for i in range(n):
            img = pattern(i, 320, 240)
            img[BOX["y1"] : BOX["y2"], BOX["x1"] : BOX["x2"]] = texture[:120, i : i + 160]
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 30)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def high_pass(rgb: np.ndarray) -> float:
    """Mean absolute difference of each pixel from its 4 neighbours' mean: fine detail, which masks remove."""
    img = rgb.astype(np.float32).mean(axis=-1)
    around = (img[:-2, 1:-1] + img[2:, 1:-1] + img[1:-1, :-2] + img[1:-1, 2:]) / 4
    return float(np.abs(img[1:-1, 1:-1] - around).mean())


RECODED = 15.0
"""Mean abs difference a re-encode leaves on the texture (measured 5-12); a hidden box is about 40 away."""


def assert_masked(got: np.ndarray, original: np.ndarray, box: dict) -> None:
    """Inside `box` the picture is hidden (far from the original, its fine detail gone); outside it is the
    original. `original` is a plain PyAV decode of the source: no framemask code says what masked looks like."""
    inside_got, inside_orig = region(got, box), region(original, box)
    assert mad(inside_got, inside_orig) > 25, "the box is not hidden"
    assert high_pass(inside_got) < 0.25 * high_pass(inside_orig), "the box keeps its detail"
    near = np.zeros(got.shape[:2], dtype=bool)  # a mask may bleed a few pixels through the encoder
    near[max(box["y1"] - 8, 0) : box["y2"] + 8, max(box["x1"] - 8, 0) : box["x2"] + 8] = True
    assert mad(got[~near], original[~near]) < 3, "pixels outside the box changed"


def region(rgb: np.ndarray, box: dict) -> np.ndarray:
    return rgb[box["y1"] : box["y2"], box["x1"] : box["x2"]].astype(np.int16)


def mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


@pytest.mark.parametrize("name", ["cfr", "vfr", "bframes", "rotated", "odd", "late_start", "audio"])
def test_patch_keeps_frame_count_and_every_timestamp(make, tmp_path: Path, name: str) -> None:
    src = make(name)
    n = ffprobe_count(src)
    master = render(src, tmp_path / "master.mp4", n)
    changed = [2, n // 2, n]
    result = patch_render(src, master, tmp_path / "patched.mp4", doc(n, {seq: [BOX] for seq in changed}), changed)
    assert result.end_sequence == n == ffprobe_count(result.output)
    times_before, _ = decoded(master)
    times_after, frames = decoded(result.output)
    assert times_after == times_before
    assert len(frames) == n
    assert decode_errors(result.output) == ""


def test_only_gops_with_changed_frames_are_reencoded(make, tmp_path: Path) -> None:
    src = make("cfr")  # 90 frames -> 9 GOPs of 10
    master = render(src, tmp_path / "master.mp4", 90)
    result = patch_render(
        src, master, tmp_path / "patched.mp4", doc(90, {15: [BOX], 17: [BOX], 61: [BOX]}), [15, 17, 61]
    )
    assert result.reencoded == [(11, 20), (61, 70)]
    assert result.copied_gops == 7
    assert result.gop_starts == master_gops(result.output).starts == list(range(1, 91, KEYINT))
    before, after = video_packets(master), video_packets(result.output)
    assert [p[1] for p in after] == [p[1] for p in before]  # decode timestamps identical
    gops = master_gops(master)
    for g, (a, b) in enumerate(gops.packet_ranges):
        same = after[a:b] == before[a:b]
        assert same == (g not in (1, 6)), f"GOP {g}"


def test_changed_frames_show_the_new_mask_and_others_are_bit_identical(tmp_path: Path) -> None:
    src = textured_video(tmp_path / "textured.mp4")
    master = render(src, tmp_path / "master.mp4", 30)
    result = patch_render(src, master, tmp_path / "patched.mp4", doc(30, {15: [BOX]}), [15])
    assert result.reencoded == [(11, 20)]
    _, old = decoded(master)
    _, new = decoded(result.output)
    for seq in range(1, 31):
        if not 11 <= seq <= 20:
            assert np.array_equal(new[seq - 1], old[seq - 1]), f"frame {seq} changed outside the patched GOP"
    _, reference = decoded(src)
    assert_masked(new[14], reference[14], BOX)
    assert mad(region(old[14], BOX), region(reference[14], BOX)) < RECODED  # the master had no mask there
    # the rest of the re-encoded GOP is still the plain original (only re-encoded)
    assert mad(region(new[12], BOX), region(reference[12], BOX)) < RECODED
    assert mad(new[12], old[12]) < 3


def test_excluding_a_masked_region_restores_the_original_pixels(tmp_path: Path) -> None:
    src = textured_video(tmp_path / "textured.mp4")
    masked = {seq: [BOX] for seq in range(1, 31)}
    master = render(src, tmp_path / "master.mp4", 30, masked)
    corrected = {seq: boxes for seq, boxes in masked.items() if seq != 20}
    result = patch_render(src, master, tmp_path / "patched.mp4", doc(30, corrected), [20])
    assert result.reencoded == [(11, 20)]
    _, new = decoded(result.output)
    _, reference = decoded(src)
    _, old = decoded(master)
    assert_masked(old[19], reference[19], BOX)  # the master hid it ...
    assert mad(region(new[19], BOX), region(reference[19], BOX)) < RECODED  # ... the patch shows it again
    assert high_pass(region(new[19], BOX)) > 0.8 * high_pass(region(reference[19], BOX))
    assert_masked(new[18], reference[18], BOX)  # its GOP neighbours keep their mask ...
    assert mad(region(new[18], BOX), region(old[18], BOX)) < 3  # ... the same one the master had


def test_audio_is_copied_untouched(make, tmp_path: Path) -> None:
    src = make("audio")
    master = render(src, tmp_path / "master.mp4", 60)
    result = patch_render(src, master, tmp_path / "patched.mp4", doc(60, {5: [BOX]}), [5])
    assert audio_packets(result.output) == audio_packets(master)


def test_patching_a_patched_video_again(make, tmp_path: Path) -> None:
    src = make("bframes")
    master = render(src, tmp_path / "master.mp4", 90)
    first = patch_render(src, master, tmp_path / "p1.mp4", doc(90, {5: [BOX]}), [5])
    second = patch_render(src, first.output, tmp_path / "p2.mp4", doc(90, {5: [BOX], 88: [BOX]}), [88])
    assert second.reencoded == [(81, 90)]
    assert video_packets(second.output)[:10] == video_packets(first.output)[:10]
    assert decoded(second.output)[0] == decoded(master)[0]
    assert decode_errors(second.output) == ""


def test_whole_video_patch_equals_a_fresh_render_in_timestamps(make, tmp_path: Path) -> None:
    src = make("vfr")
    n = ffprobe_count(src)
    master = render(src, tmp_path / "master.mp4", n)
    every = {seq: [BOX] for seq in range(1, n + 1)}
    result = patch_render(src, master, tmp_path / "patched.mp4", doc(n, every), range(1, n + 1))
    assert result.copied_gops == 0 and result.reencoded_frames == n
    fresh = render(src, tmp_path / "fresh.mp4", n, every)
    times, got = decoded(result.output)
    assert times == decoded(fresh)[0]
    assert max(mad(a, b) for a, b in zip(got, decoded(fresh)[1], strict=True)) < 3


def test_progress_counts_reencoded_frames(make, tmp_path: Path) -> None:
    src = make("cfr")
    master = render(src, tmp_path / "master.mp4", 90)
    calls: list[tuple[int, int]] = []
    patch_render(src, master, tmp_path / "p.mp4", doc(90), [1, 90], progress=lambda d, t: calls.append((d, t)))
    assert calls == [(10, 20), (20, 20)]


def test_bad_requests_are_input_errors(make, tmp_path: Path) -> None:
    src = make("cfr")
    master = render(src, tmp_path / "master.mp4", 90)
    with pytest.raises(InputError, match="outside"):
        patch_render(src, master, tmp_path / "p.mp4", doc(90), [91])
    with pytest.raises(InputError, match="GOP map"):
        patch_render(src, master, tmp_path / "p.mp4", doc(90), [3], gop_starts=[1, 31, 61])
    with pytest.raises(InputError, match=r"not H\.264"):
        patch_render(src, SHARED_MEDIA / "TUD-Campus.mp4", tmp_path / "p.mp4", doc(90), [3])
    with pytest.raises(InputError, match="has 60 frames, the master 90"):
        patch_render(make("audio"), master, tmp_path / "p.mp4", doc(90), [3])
    with pytest.raises(InputError, match="new file"):
        patch_render(src, master, master, doc(90), [3])
    assert not list(tmp_path.glob("*partial*"))


def test_changed_seqs_compares_regions_per_frame() -> None:
    a = boxes_from_doc(doc(5, {2: [BOX], 3: [BOX]}), 5, 320, 240)
    b = boxes_from_doc(
        {"endSequence": 5, "sequence": [{"seq": 2, "person": [BOX]}, {"seq": 4, "face": [BOX]}]}, 5, 320, 240
    )
    assert changed_seqs(a, b) == [3, 4]
    assert changed_seqs(a, a) == []


def test_annexb_to_avcc() -> None:
    data = b"\x00\x00\x00\x01\x67\xaa\x00\x00\x01\x68\xbb\xcc\x00\x00\x00\x01\x65\x01"
    assert annexb_to_avcc(data) == b"\x00\x00\x00\x02\x67\xaa\x00\x00\x00\x03\x68\xbb\xcc\x00\x00\x00\x02\x65\x01"


@pytest.mark.parametrize("name", ["torchcodec_nasa_13013_vfr.mp4", "ts-ebml_chrome52.webm"])
def test_real_vfr_and_repeated_timestamps_survive_a_patch(tmp_path: Path, name: str) -> None:
    src = SHARED_MEDIA / name  # synthetic VFR H.264; a webcam VP8 with repeated timestamps (nudged in the master)
    n = ffprobe_count(src)
    master = render(src, tmp_path / "master.mp4", n)
    result = patch_render(src, master, tmp_path / "patched.mp4", doc(n, {n // 3: [BOX]}), [n // 3])
    assert len(result.reencoded) == 1
    assert decoded(result.output)[0] == decoded(master)[0]
    assert ffprobe_count(result.output) == n
    assert decode_errors(result.output) == ""


def test_a_default_master_is_patched_without_being_told_its_settings(tmp_path: Path) -> None:
    """Masters are written without a B-pyramid (`EncodeSettings.for_fps`); a patch given no settings reads
    the B-frame layout from x264's record in the master instead of assuming the preset's pyramid, or a
    re-encoded GOP comes out in another decode order and cannot be spliced."""
    src = SHARED_MEDIA / "TUD-Campus.mp4"
    n = ffprobe_count(src)
    master = render_with_boxes(src, tmp_path / "master.mp4", doc(n, {s: [BOX] for s in range(1, n + 1)})).output
    settings = master_settings(master, 12)
    assert (settings.bframes, settings.b_pyramid) == (3, "none")  # what the master render used
    moved = {**BOX, "x1": 300, "x2": 460}
    out = patch_render(
        src, master, tmp_path / "patched.mp4", doc(n, {s: [moved] for s in range(1, n + 1)}), range(1, n + 1)
    )
    assert out.reencoded_frames == n
    assert np.array_equal(master_gops(out.output).seq_pts, master_gops(master).seq_pts)
    assert decode_errors(out.output) == ""
    # an older master with the preset's pyramid is still read as one
    older = render(src, tmp_path / "older.mp4", n)
    assert master_settings(older, KEYINT).b_pyramid == "normal"
