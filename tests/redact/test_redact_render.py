"""Rendering from given boxes (no detection): timestamps, frame count, GOPs, pixels, metadata, audio."""

from __future__ import annotations

import itertools
import json
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from conftest import SHARED_MEDIA, ffprobe_count
from support.videos import VideoSpec, make_video

from framemask.errors import InputError, NotAVideoError
from framemask.redact import render_with_boxes
from framemask.redact.encode import EncodeSettings

TUD = SHARED_MEDIA / "TUD-Campus.mp4"


def empty_doc(n: int) -> dict:
    return {"endSequence": n, "sequence": []}


def frame_times(path: Path) -> list[Fraction]:
    """Presentation time of every decoded frame, exactly, from PyAV."""
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        return [frame.pts * stream.time_base for frame in c.decode(stream)]


def rgb_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24").astype(np.int16) for f in c.decode(video=0)]


def ffprobe_json(path: Path) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)


@pytest.mark.parametrize("name", ["cfr", "vfr", "bframes", "late_start", "rotated", "odd"])
def test_every_frame_keeps_its_timestamp(make, tmp_path: Path, name: str) -> None:
    src = make(name)
    n = ffprobe_count(src)
    result = render_with_boxes(src, tmp_path / "out.mp4", empty_doc(n))
    assert result.end_sequence == n == ffprobe_count(result.output)
    assert frame_times(result.output) == frame_times(src)


@pytest.mark.parametrize("name", ["torchcodec_nasa_13013_vfr.mp4", "immich_samsung-one-ui-6_motionphoto_video.mp4"])
def test_real_vfr_stays_vfr(tmp_path: Path, name: str) -> None:
    src = SHARED_MEDIA / name
    n = ffprobe_count(src)
    result = render_with_boxes(src, tmp_path / "out.mp4", empty_doc(n))
    assert ffprobe_count(result.output) == n
    times = frame_times(result.output)
    assert times == frame_times(src)
    assert len(set(np.diff([float(t) for t in times]).round(4))) > 1  # still variable


def test_repeated_timestamps_move_by_one_microsecond(tmp_path: Path) -> None:
    src = SHARED_MEDIA / "ts-ebml_chrome52.webm"  # a webcam recording with 10 repeated timestamps
    result = render_with_boxes(src, tmp_path / "out.mp4", empty_doc(338))
    assert result.nudged_timestamps == 10
    before, after = frame_times(src), frame_times(result.output)
    assert len(after) == 338 == ffprobe_count(result.output)
    assert all(b > a for a, b in itertools.pairwise(after))
    assert max(abs(a - b) for a, b in zip(before, after, strict=True)) <= Fraction(10, 1_000_000)


def test_displayed_orientation_and_size_are_kept(make, tmp_path: Path) -> None:
    rotated = render_with_boxes(make("rotated"), tmp_path / "r.mp4", empty_doc(30)).output
    odd = render_with_boxes(make("odd"), tmp_path / "o.mp4", empty_doc(30)).output
    r_stream, o_stream = ffprobe_json(rotated)["streams"][0], ffprobe_json(odd)["streams"][0]
    assert (r_stream["width"], r_stream["height"]) == (240, 320)  # 320x240 stored, rotated 90
    assert not r_stream.get("side_data_list")  # pixels are written as displayed
    assert (o_stream["width"], o_stream["height"]) == (321, 241)


def _nals(packet: av.Packet) -> list[bytes]:
    """The NAL units of an MP4 (length-prefixed) H.264 packet."""
    data, nals, i = bytes(packet), [], 0
    while i + 4 <= len(data):
        size = int.from_bytes(data[i : i + 4], "big")
        nals.append(data[i + 4 : i + 4 + size])
        i += 4 + size
    return nals


def _nal_types(packet: av.Packet) -> list[int]:
    return [nal[0] & 0x1F for nal in _nals(packet)]


def _annex_b(packet: av.Packet) -> av.Packet:
    """The packet as a raw H.264 byte stream (start codes), which carries no out-of-band extradata."""
    out = av.Packet(b"".join(b"\x00\x00\x00\x01" + nal for nal in _nals(packet)))
    out.pts, out.dts = packet.pts, packet.dts
    return out


def test_closed_half_second_gops_with_in_band_parameter_sets(make, tmp_path: Path) -> None:
    src = make("bframes")  # 90 frames at 25 fps
    result = render_with_boxes(src, tmp_path / "out.mp4", empty_doc(90))
    assert result.gop_starts == list(range(1, 91, 12))  # half a second: 12.5 frames rounds to 12
    with av.open(str(result.output)) as c:
        stream = c.streams.video[0]
        assert stream.codec_context.codec_tag == "avc3"
        packets = [p for p in c.demux(stream) if p.size]
    keys = [p for p in packets if p.is_keyframe]
    assert len(keys) == 8
    assert all({5, 7, 8} <= set(_nal_types(p)) for p in keys)  # IDR with SPS + PPS in-band


def test_master_b_frames_are_never_references(make, tmp_path: Path) -> None:
    """No B-pyramid: a frame shown before one decoded earlier (a B-frame) is a non-reference frame
    (nal_ref_idc 0), which the exact reader skips on its way to a later frame."""
    result = render_with_boxes(make("bframes"), tmp_path / "out.mp4", empty_doc(90))
    with av.open(str(result.output)) as c:
        packets = [p for p in c.demux(c.streams.video[0]) if p.size]
    latest, b_frames = -1, 0
    for packet in packets:
        assert packet.pts is not None
        slices = [nal for nal in _nals(packet) if nal[0] & 0x1F in (1, 5)]
        if packet.pts < latest:
            b_frames += 1
            assert all((nal[0] >> 5) & 3 == 0 for nal in slices)
        latest = max(latest, packet.pts)
    assert b_frames >= 20  # the preset's B-frames are there: the check above ran


def test_recorded_encoder_settings_round_trip_old_and_new() -> None:
    """A re-render encodes GOPs with the settings recorded with the video: a new master's come back whole, and
    an older master's (recorded before `b_pyramid` existed) keep the preset's B-pyramid, as it was encoded."""
    new = EncodeSettings.for_fps(25)
    assert EncodeSettings(**new.to_dict()) == new and "b-pyramid=none" in new.x264_params()
    old = EncodeSettings(**{"crf": 23, "preset": "veryfast", "keyint": 25})
    assert old.b_pyramid is None and "b-pyramid" not in old.x264_params()


def test_each_gop_decodes_on_its_own(make, tmp_path: Path) -> None:
    """Closed GOPs: the packets of one GOP alone decode to the same pixels as the whole file gives."""
    result = render_with_boxes(make("bframes"), tmp_path / "out.mp4", empty_doc(90))
    full = rgb_frames(result.output)
    with av.open(str(result.output)) as c:
        packets = [p for p in c.demux(c.streams.video[0]) if p.size]
    starts = [i for i, p in enumerate(packets) if p.is_keyframe] + [len(packets)]
    for g, (lo, hi) in enumerate(itertools.pairwise(starts)):
        decoder = av.CodecContext.create("h264", "r")  # no extradata: parameter sets must be in-band
        frames = [f for p in packets[lo:hi] for f in decoder.decode(_annex_b(p))] + list(decoder.decode(None))
        gop_frames = sorted(frames, key=lambda f: f.pts)
        first = result.gop_starts[g] - 1
        assert len(gop_frames) == hi - lo
        for k, frame in enumerate(gop_frames):
            assert np.array_equal(frame.to_ndarray(format="rgb24"), full[first + k].astype(np.uint8))


def detail_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """How much of a's fine detail (high-pass) b still has: about 1 when kept, near 0 when masked."""
    ha = a - cv2.GaussianBlur(a, (0, 0), 1.5)
    hb = b - cv2.GaussianBlur(b, (0, 0), 1.5)
    return float((ha * hb).sum() / np.sqrt((ha * ha).sum() * (hb * hb).sum() + 1e-9))


def test_pixels_change_inside_boxes_only(tmp_path: Path) -> None:
    still = {"x1": 200, "x2": 360, "y1": 100, "y2": 340}
    moving = [{"x1": 10 + 5 * s, "x2": 90 + 5 * s, "y1": 380, "y2": 470} for s in range(72)]
    doc = {"endSequence": 71, "sequence": [{"seq": s, "person": [still], "face": [moving[s]]} for s in range(1, 72)]}
    result = render_with_boxes(TUD, tmp_path / "out.mp4", doc)
    for seq, (a, b) in enumerate(zip(rgb_frames(TUD), rgb_frames(result.output), strict=True), start=1):
        a, b = a.mean(axis=2).astype(np.float32), b.mean(axis=2).astype(np.float32)
        m = moving[seq]
        for y1, y2, x1, x2 in ((100, 340, 200, 360), (m["y1"], m["y2"], m["x1"], m["x2"])):
            assert detail_correlation(a[y1:y2, x1:x2], b[y1:y2, x1:x2]) < 0.4, f"seq {seq}: box not masked"
        outside = np.ones(a.shape, bool)
        outside[100 - 16 : 340 + 16, 200 - 16 : 360 + 16] = False  # codec blocks near an edge may shift
        outside[m["y1"] - 16 :, max(0, m["x1"] - 16) : m["x2"] + 16] = False
        assert np.abs(a - b)[outside].mean() < 5, f"seq {seq}: pixels outside the boxes changed"
        assert detail_correlation(a[0:80, 400:640], b[0:80, 400:640]) > 0.9


def test_boxes_document_lists_every_frame(tmp_path: Path) -> None:
    doc = {"endSequence": 71, "sequence": [{"seq": 3, "person": [{"x1": 5.4, "x2": 50.2, "y1": -10, "y2": 900}]}]}
    result = render_with_boxes(TUD, tmp_path / "out.mp4", doc)
    boxes = result.boxes
    assert boxes["endSequence"] == 71 and [e["seq"] for e in boxes["sequence"]] == list(range(1, 72))
    assert boxes["sequence"][2]["person"] == [{"x1": 5, "x2": 51, "y1": 0, "y2": 480}]
    assert all(e["person"] == [] and e["face"] == [] for i, e in enumerate(boxes["sequence"]) if i != 2)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"endSequence": 70, "sequence": []}, "endSequence"),
        ({"endSequence": 71, "sequence": [{"seq": 72, "person": []}]}, "outside 1..71"),
        ({"endSequence": 71, "sequence": [{"seq": 1, "person": [{"x1": 1}]}]}, "x1, x2, y1, y2"),
        ({"endSequence": 71}, "sequence"),
    ],
)
def test_bad_boxes_documents_are_input_errors(tmp_path: Path, doc: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        render_with_boxes(TUD, tmp_path / "out.mp4", doc)
    assert list(tmp_path.iterdir()) == []


def test_location_and_device_metadata_are_stripped(tmp_path: Path) -> None:
    src = SHARED_MEDIA / "photoprism_quicktime-hvc1.mov"
    assert "com.apple.quicktime.location.ISO6709" in ffprobe_json(src)["format"]["tags"]
    out = render_with_boxes(src, tmp_path / "out.mp4", empty_doc(35)).output
    info = ffprobe_json(out)
    tags = dict(info["format"].get("tags", {}))
    for stream in info["streams"]:
        tags.update(stream.get("tags", {}))
    assert not [k for k in tags if any(w in k.lower() for w in ("location", "make", "model", "creation", "apple"))]
    raw = out.read_bytes()
    assert b"+52.4597" not in raw and b"iPad" not in raw and b"Apple" not in raw
    assert [s["codec_type"] for s in info["streams"]] == ["video", "audio"]  # metadata tracks dropped


def _audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(audio=0) if p.size]


def test_audio_is_copied_unchanged_or_dropped(make, tmp_path: Path) -> None:
    src = make("audio")
    kept = render_with_boxes(src, tmp_path / "a.mp4", empty_doc(60)).output
    assert _audio_packets(kept) == _audio_packets(src)
    dropped = render_with_boxes(src, tmp_path / "b.mp4", empty_doc(60), audio=False).output
    assert [s["codec_type"] for s in ffprobe_json(dropped)["streams"]] == ["video"]


def test_audio_mp4_cannot_hold_is_reencoded_to_aac(tmp_path: Path) -> None:
    src = tmp_path / "pcm.mov"
    make_video(src, VideoSpec(n=30, fps=30))
    with_pcm = tmp_path / "pcm_audio.mkv"
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-i",
            str(src),
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:duration=1",
            "-map",
            "0:v",
            "-map",
            "1:a",
            "-c:v",
            "copy",
            "-c:a",
            "pcm_s16le",
            str(with_pcm),
        ],
        check=True,
    )
    out = render_with_boxes(with_pcm, tmp_path / "out.mp4", empty_doc(30)).output
    audio = [s for s in ffprobe_json(out)["streams"] if s["codec_type"] == "audio"]
    assert [s["codec_name"] for s in audio] == ["aac"]
    assert abs(float(audio[0]["duration"]) - 1.0) < 0.1


def test_bad_inputs_and_outputs_are_refused(make, tmp_path: Path) -> None:
    src = make("cfr")
    with pytest.raises(InputError, match="overwrite the input"):
        render_with_boxes(src, src, empty_doc(90))
    with pytest.raises(InputError, match="does not exist"):
        render_with_boxes(src, tmp_path / "missing" / "out.mp4", empty_doc(90))
    with pytest.raises(InputError, match=r"\.mp4"):
        render_with_boxes(src, tmp_path / "out.avi", empty_doc(90))
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 100)
    with pytest.raises(NotAVideoError):
        render_with_boxes(junk, tmp_path / "out.mp4", empty_doc(1))


def test_progress_reaches_the_last_frame(make, tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    render_with_boxes(make("cfr"), tmp_path / "out.mp4", empty_doc(90), progress=lambda d, t: seen.append((d, t)))
    assert seen[0] == (1, 90) and seen[-1] == (90, 90) and len(seen) == 90
