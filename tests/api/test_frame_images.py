"""The /frame fast path and the range response: a JPEG encoded straight from the decoder's YUV planes shows
the same exact frame as the RGB path, at full size and scaled, portrait clips turned; other formats and
non-4:2:0 videos keep the RGB path; a range is read with `pread` and answers exactly the bytes asked for."""

from __future__ import annotations

import io
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route
from starlette.testclient import TestClient
from support.videos import VideoSpec, frame_number, make_video

from framemask.api.frames import encode_pixels, frame_pixels, jpeg_planes
from framemask.api.ranges import RangeFileResponse
from framemask.media import FrameReader
from framemask.media.signal import RANGE_FULL
from framemask.redact.encode import frame_to_rgb


def _decode(body: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(body)).convert("RGB"))


def _mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


@pytest.mark.parametrize("seq", [1, 17, 45, 90])
def test_yuv_jpeg_is_the_exact_frame(make, seq: int) -> None:
    with FrameReader(make("bframes")) as reader:
        pixels = frame_pixels(reader, seq, None, "jpeg")
        assert isinstance(pixels, tuple)  # the YUV path
        body, media_type = encode_pixels(pixels, "jpeg", 90)
        rgb = reader.frame(seq)
    shown = _decode(body)
    assert media_type == "image/jpeg" and shown.shape == rgb.shape
    assert frame_number(shown) == seq - 1 == frame_number(rgb)  # the pattern counts from 0
    assert _mad(shown, rgb) < 3  # range converted: no washed-out (limited-range) image


def test_yuv_jpeg_scaled_to_a_width(make) -> None:
    with FrameReader(make("bframes")) as reader:
        body, _ = encode_pixels(frame_pixels(reader, 30, 160, "jpeg"), "jpeg", 90)
        rgb = reader.frame(30, 160)
    shown = _decode(body)
    assert shown.shape == rgb.shape == (120, 160, 3)
    assert frame_number(shown) == 29 and _mad(shown, rgb) < 4


@pytest.mark.parametrize("width", [None, 120])
def test_yuv_jpeg_of_a_portrait_clip_is_turned(make, width: int | None) -> None:
    """A phone's portrait clip (stored landscape, a display rotation): the planes are turned one by one and
    scaled to the displayed width, and show what the RGB path shows."""
    with FrameReader(make("rotated")) as reader:
        pixels = frame_pixels(reader, 12, width, "jpeg")
        assert isinstance(pixels, tuple)
        body, _ = encode_pixels(pixels, "jpeg", 90)
        rgb = reader.frame(12, width)
    shown = _decode(body)
    assert shown.shape == rgb.shape == ((320, 240, 3) if width is None else (160, 120, 3))
    assert _mad(shown, rgb) < 4


def test_a_scaled_frame_has_the_shape_it_is_shown_in(tmp_path: Path) -> None:
    """Anamorphic pixels (4:3 wide) are made square when a frame is scaled to a width: a 320x240 picture shown
    at 16:9 comes back 160x90 by either path (thumbnails, sprites, `width=`). Unscaled, a frame keeps its stored
    pixels, which boxes refer to."""
    src = make_video(tmp_path / "anamorphic.mp4", VideoSpec(n=5, sar=Fraction(4, 3)))
    with FrameReader(src) as reader:
        rgb = reader.frame(3, 160)
        body, _ = encode_pixels(frame_pixels(reader, 3, 160, "jpeg"), "jpeg", 90)
        stored = reader.frame(3)
    assert rgb.shape == _decode(body).shape == (90, 160, 3)
    assert stored.shape == (240, 320, 3)
    assert _mad(_decode(body), rgb) < 4


@pytest.mark.parametrize(("name", "fmt"), [("odd", "jpeg"), ("bframes", "png"), ("bframes", "webp")])
def test_other_cases_keep_the_rgb_path(make, name: str, fmt: str) -> None:
    with FrameReader(make(name)) as reader:
        pixels = frame_pixels(reader, 5, None, fmt)
        assert isinstance(pixels, np.ndarray)
        assert np.array_equal(pixels, reader.frame(5))
        body, _ = encode_pixels(pixels, fmt, 90)
    assert _mad(_decode(body), pixels) < 3


def test_only_420_formats_have_planes(make) -> None:
    with FrameReader(make("odd")) as reader:
        assert jpeg_planes(reader.av_frame(3), None) is None  # yuv444p


def test_full_range_420_without_a_yuvj_format(make) -> None:
    """VP9 and AV1 decoders say "full range" by a tag on a yuv420p frame, not by the yuvj420p format: both the
    planes and the RGB path read it, or the frame comes out with lifted blacks and dimmed whites."""
    with FrameReader(make("cfr")) as reader:
        rgb = reader.frame(10)
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p", dst_color_range=RANGE_FULL)
    frame.color_range = RANGE_FULL
    assert frame.format.name == "yuv420p"
    planes = jpeg_planes(frame, None)
    assert planes is not None
    body, _ = encode_pixels(planes, "jpeg", 95)
    assert _mad(_decode(body), rgb) < 3
    assert _mad(frame_to_rgb(frame), rgb) < 2


def test_range_response_sends_exactly_the_range(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 123)
    path = tmp_path / "blob.bin"
    path.write_bytes(data)

    def endpoint(_request: Request) -> RangeFileResponse:
        return RangeFileResponse(path, media_type="application/octet-stream", stat_result=os.stat(path))

    client = TestClient(Starlette(routes=[Route("/f", endpoint)]))
    for start, end in ((0, 0), (5, 1024 * 1024 + 7), (len(data) - 10, len(data) - 1), (1000, 2 * 1024 * 1024)):
        resp = client.get("/f", headers={"Range": f"bytes={start}-{end}"})
        assert resp.status_code == 206 and resp.content == data[start : end + 1]
        assert resp.headers["content-range"] == f"bytes {start}-{end}/{len(data)}"
    whole = client.get("/f")
    assert whole.status_code == 200 and whole.content == data
    assert client.get("/f", headers={"Range": "bytes=9999999-"}).status_code == 416
    assert client.get("/f", headers={"Range": "bytes=oops"}).status_code == 416
