"""`./dev demo` finds its sample clip in any clone of the repository on this machine, as CI's clean clone does."""

from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import SHARED_MEDIA

from framemask.samples import SAMPLE, sample_video, shared_media

REPO = Path(__file__).resolve().parents[1]


def test_a_clone_elsewhere_finds_the_shared_media_through_its_origin(tmp_path: Path) -> None:
    clone = tmp_path / "elsewhere" / "framemask"
    subprocess.run(["git", "clone", "-q", "--no-checkout", str(REPO), str(clone)], check=True)
    assert shared_media(clone) == SHARED_MEDIA
    assert sample_video(clone) == SHARED_MEDIA / SAMPLE


def test_no_shared_media_and_no_origin_finds_nothing(tmp_path: Path) -> None:
    lone = tmp_path / "lone"
    subprocess.run(["git", "init", "-q", str(lone)], check=True)
    assert shared_media(lone) is None and sample_video(lone) is None
    (lone / "data" / "samples").mkdir(parents=True)
    (lone / "data" / "samples" / SAMPLE).write_bytes(b"")
    assert sample_video(lone) == lone / "data" / "samples" / SAMPLE
