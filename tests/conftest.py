"""Shared fixtures: generated test videos (cached per session) and the shared third-party media."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from support.servers import postgres_db, postgres_server, redis_server, rgw_server  # noqa: F401  (fixtures)
from support.videos import VideoSpec, ffprobe_count, make_video, vfr_times  # noqa: F401  (ffprobe_count: for tests)

from framemask.samples import shared_media as shared_media_dir


def find_shared_media() -> Path:
    """The team's shared third-party test videos: $FRAMEMASK_TEST_MEDIA, else where the demo finds them
    (`framemask.samples.shared_media`: beside this checkout or the repository it was cloned from; CI runs on a
    clean clone whose origin is the main checkout)."""
    if os.environ.get("FRAMEMASK_TEST_MEDIA"):
        return Path(os.environ["FRAMEMASK_TEST_MEDIA"])
    repo = Path(__file__).resolve().parents[1]
    return shared_media_dir(repo) or repo.parent / "shared" / "media"


SHARED_MEDIA = find_shared_media()
MEDIA_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi", ".webm")

GENERATED = {
    "cfr": VideoSpec(n=90, fps=30),
    "vfr": VideoSpec(times=vfr_times(), gop=30),
    "bframes": VideoSpec(n=90, fps=25, bframes=3, gop=25),
    "rotated": VideoSpec(n=30, fps=30, rotation=90),
    "odd": VideoSpec(n=30, fps=24, size=(321, 241), pix_fmt="yuv444p"),
    "late_start": VideoSpec(n=45, fps=15, start=2.5),
    "hd_gop2s": VideoSpec(n=150, fps=30, size=(1280, 720), gop=60, bframes=2),
    "audio": VideoSpec(n=60, fps=30, audio=True),
    "mpeg4_bframes": VideoSpec(n=75, fps=25, codec="mpeg4", bframes=2, gop=25),
}


SLOW_MODULES = frozenset(
    {
        # end to end: a running service processing real videos with the real detectors, real servers
        # (PostgreSQL, Redis, radosgw, RTSP, uvicorn, Chromium) or long renders. `-m "not slow"` skips them.
        "test_api_analyses",
        "test_api_events",
        "test_api_fuzz",
        "test_api_server",
        "test_api_services",
        "test_api_videos",
        "test_faults",
        "test_jobs_worker",
        "test_patch_api",
        "test_redact_anonymize",
        "test_streams_rtsp",
        "test_streams_s3",
        "test_web_editor",
    }
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test of SLOW_MODULES `slow` (one list, not a marker line in each file)."""
    for item in items:
        if item.module is not None and item.module.__name__ in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)


def shared_media() -> list[Path]:
    if not SHARED_MEDIA.is_dir():
        return []
    return sorted(p for p in SHARED_MEDIA.iterdir() if p.suffix.lower() in MEDIA_SUFFIXES)


@pytest.fixture(scope="session")
def video_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("videos")


@pytest.fixture(scope="session")
def make(video_dir: Path):
    """`make(name)` -> path of a generated video from GENERATED (made once per session)."""

    def _make(name: str, suffix: str = ".mp4") -> Path:
        path = video_dir / f"{name}{suffix}"
        if not path.exists():
            make_video(path, GENERATED[name])
        return path

    return _make


@pytest.fixture(scope="session")
def require_ffprobe() -> None:
    if shutil.which("ffprobe") is None:
        pytest.fail("ffprobe is missing: run ./dev setup")
