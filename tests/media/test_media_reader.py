"""Exact frame reader: random frames are pixel-identical to a plain sequential decode."""

from __future__ import annotations

import random

import numpy as np
import pytest
from conftest import GENERATED, shared_media

from framemask.media import FrameReader, iter_frames, probe, rotate


def sequential(path, rotation: int) -> list[np.ndarray]:
    return [rotate(frame.to_ndarray(format="rgb24"), rotation) for _, frame in iter_frames(path)]


def check_random_access(path, samples: int = 30) -> None:
    info = probe(path)
    frames = sequential(path, info.rotation)
    assert len(frames) == info.end_sequence
    rng = random.Random(path.name)
    seqs = [rng.randint(1, info.end_sequence) for _ in range(samples)]
    with FrameReader(path, info.index) as reader:
        wrong = [s for s in seqs if not np.array_equal(reader.frame(s), frames[s - 1])]
        backwards = [s for s in sorted(seqs, reverse=True) if not np.array_equal(reader.frame(s), frames[s - 1])]
    assert wrong == [] and backwards == []


@pytest.mark.parametrize("path", shared_media(), ids=lambda p: p.name)
def test_random_frames_shared_media(path):
    check_random_access(path)


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_random_frames_generated(make, name):
    check_random_access(make(name))


def test_frame_at_ms_on_vfr(make):
    path = make("vfr")
    frames = sequential(path, 0)
    with FrameReader(path) as reader:
        assert np.array_equal(reader.frame_at_ms(1099.0), frames[30])
        assert np.array_equal(reader.frame_at_ms(2000.0), frames[40])


def test_rotation_applied(make):
    path = make("rotated")
    with FrameReader(path) as reader:
        image = reader.frame(1)
    assert image.shape == (320, 240, 3)
    stored = next(iter_frames(path))[1].to_ndarray(format="rgb24")
    assert np.array_equal(image, np.rot90(stored, k=1))


def test_thumbnails_are_small_and_ordered(make):
    path = make("hd_gop2s")
    with FrameReader(path) as reader:
        thumbs = list(reader.thumbnails(range(1, 151, 30), width=160))
        full = reader.frame(31)
    assert [s for s, _ in thumbs] == [1, 31, 61, 91, 121]
    assert all(img.shape == (90, 160, 3) for _, img in thumbs)
    small = thumbs[1][1].astype(int)
    assert np.abs(small - full[::8, ::8].astype(int)).mean() < 20
