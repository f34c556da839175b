"""HDR stills for an SDR screen (`media.tonemap`): real PQ and HLG clips made from TUD-Campus by FFmpeg's
zscale (reference white at 203 cd/m2, as BT.2408 places it and phones record it) must show what the SDR clip
shows; untouched, their code values are far darker. SDR videos are not touched."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_MEDIA
from PIL import Image

from framemask.api.frames import encode_pixels, frame_pixels
from framemask.events.extract import keyframe_jpeg
from framemask.media import FrameReader, is_hdr, sdr_view
from framemask.media.tonemap import HLG, PQ, sdr_table

TUD = SHARED_MEDIA / "TUD-Campus.mp4"
SEQ = 4


def _hdr_clip(path: Path, transfer: str, pix_fmt: str) -> Path:
    if not path.exists():
        chain = (
            "zscale=tin=bt709:pin=bt709:min=bt709:rin=tv:"
            f"t={transfer}:p=bt2020:m=bt2020nc:r=tv:npl=203,format={pix_fmt}"
        )
        cmd = ["ffmpeg", "-v", "error", "-y", "-i", str(TUD), "-frames:v", "8", "-vf", chain, "-c:v", "libx264"]
        cmd += ["-crf", "16", "-color_trc", transfer, "-color_primaries", "bt2020", "-colorspace", "bt2020nc"]
        subprocess.run([*cmd, str(path)], check=True)
    return path


@pytest.fixture(
    scope="module",
    params=[
        ("smpte2084", "yuv420p10le"),  # a phone's original: the RGB path
        ("arib-std-b67", "yuv420p10le"),
        ("smpte2084", "yuv420p"),  # a processed master (written in 8 bits, tags kept): the YUV-planes path
        ("arib-std-b67", "yuv420p"),
    ],
    ids=lambda p: "-".join(p),
)
def hdr(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg CLI missing")
    transfer, pix_fmt = request.param
    return _hdr_clip(tmp_path_factory.mktemp("hdr") / f"{transfer}-{pix_fmt}.mp4", transfer, pix_fmt)


def _jpeg(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float64)


def test_tables() -> None:
    for transfer in (PQ, HLG):
        table = sdr_table(transfer)
        assert table is not None and table[0] == 0 and table[255] == 255
        assert np.all(np.diff(table.astype(int)) >= 0)
    assert sdr_table(PQ)[148] >= 245  # PQ's 203 cd/m2 (code 0.58) is SDR white, nearly
    assert sdr_table(HLG)[191] >= 245  # HLG's reference white is signal 0.75
    assert sdr_table(1) is None and sdr_table(2) is None  # BT.709, unspecified


def test_hdr_stills_look_like_the_sdr_clip(hdr: Path) -> None:
    with FrameReader(TUD) as sdr_reader, FrameReader(hdr) as reader:
        assert is_hdr(reader.signal) and not is_hdr(sdr_reader.signal)
        sdr = sdr_reader.frame(SEQ).astype(np.float64)
        untouched = reader.frame(SEQ).astype(np.float64)
        pixels = frame_pixels(reader, SEQ, None, "jpeg")
        assert isinstance(pixels, tuple) == (reader.av_frame(SEQ).format.name == "yuv420p")
        still = _jpeg(encode_pixels(pixels, "jpeg", 95)[0])
        thumb = _jpeg(keyframe_jpeg(reader, SEQ, width=320, quality=95))
        sdr_thumb = _jpeg(keyframe_jpeg(sdr_reader, SEQ, width=320, quality=95))
    assert np.abs(untouched - sdr).mean() > 12  # what the editor showed before: dark and flat
    assert np.abs(still - sdr).mean() < 6
    assert abs(still.mean() - sdr.mean()) < 4
    assert np.abs(thumb - sdr_thumb).mean() < 6


def test_sdr_is_untouched() -> None:
    with FrameReader(TUD) as reader:
        rgb = reader.frame(SEQ)
        assert sdr_view(rgb, reader.signal) is rgb
        assert isinstance(frame_pixels(reader, SEQ, None, "jpeg"), tuple)  # the YUV-planes path, as before
