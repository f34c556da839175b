"""`redact_audio_frame` on decoded audio of the sample formats decoders produce (planar float from AAC,
interleaved 16-bit from PCM): silence or tone exactly over the span's samples, the rest untouched."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from framemask.redact.encode import TONE_HZ, TONE_LEVEL, MutedSpan, redact_audio_frame

RATE, N = 48000, 4800  # a 0.1 s frame
PTS = 24000  # starting at 0.5 s


def _ramp(channels: int) -> np.ndarray:
    """Distinct non-zero samples per channel, as floats in [-0.5, 0.5)."""
    t = np.arange(N, dtype=np.float64)
    return np.stack([((t * (c + 3)) % 1000) / 1000 - 0.5 for c in range(channels)]).astype(np.float32)


def _frame(samples: np.ndarray, fmt: str) -> av.AudioFrame:
    layout = "stereo" if samples.shape[0] == 2 else "mono"
    if fmt == "fltp":
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout=layout)
    else:  # s16 is interleaved: one row holding L R L R ...
        ints = np.round(samples * 32768).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(ints.T.reshape(1, -1), format="s16", layout=layout)
    frame.sample_rate, frame.pts, frame.time_base = RATE, PTS, Fraction(1, RATE)
    return frame


@pytest.mark.parametrize("fmt", ["fltp", "s16"])
@pytest.mark.parametrize("mode", ["mute", "tone"])
def test_span_samples_replaced_and_the_rest_kept(fmt: str, mode: str) -> None:
    source = _ramp(2)
    out = redact_audio_frame(_frame(source, fmt), [MutedSpan(0.52, 0.55, mode)])
    got = out.to_ndarray()
    assert out.format.name == "fltp" and got.shape == (2, N)
    assert (out.pts, out.sample_rate) == (PTS, RATE)
    a, b = round(0.02 * RATE), round(0.05 * RATE)  # 0.52 s and 0.55 s from the frame start at 0.5 s
    kept = np.r_[0:a, b:N]
    tolerance = 0 if fmt == "fltp" else 1 / 32768
    assert np.allclose(got[:, kept], source[:, kept], atol=tolerance, rtol=0)
    if mode == "mute":
        assert not got[:, a:b].any()
    else:
        t = (np.arange(a, b) + PTS) / RATE
        assert np.allclose(got[:, a:b], TONE_LEVEL * np.sin(2 * np.pi * TONE_HZ * t), atol=1e-6)


def test_a_frame_outside_every_span_comes_back_as_it_is() -> None:
    frame = _frame(_ramp(1), "s16")
    assert redact_audio_frame(frame, [MutedSpan(0.0, 0.5), MutedSpan(0.6, 1.0)]) is frame
