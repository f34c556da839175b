"""The editor shows a long-GOP original through its review proxy, says so, and shows the original's own pixels
on request (a real `framemask serve` with proxies on, Debian's Chromium through Playwright, no API mocks)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
import test_web_editor
from playwright.sync_api import Browser, expect
from support.api import ADMIN
from support.videos import VideoSpec, make_video
from test_web_editor import _open_editor, _shown_number, _upload_ready, serve_editor

editor_token = test_web_editor.editor_token
chromium_browser = test_web_editor.chromium_browser

SPEC = VideoSpec(n=60, fps=30, gop=60, bframes=2, size=(320, 240))  # one 2 s GOP: an original worth a proxy


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from serve_editor(tmp_path_factory.mktemp("web-proxy"), review_proxy=True)


def _proxied(server: str, video_id: str) -> None:
    """Wait for the video's review proxy (made by a job queued when its processing finished)."""
    admin = {"Authorization": f"Bearer {ADMIN}"}
    deadline = time.monotonic() + 120
    while not (video := httpx.get(f"{server}/api/videos/{video_id}", headers=admin).json())["proxy"]:
        assert time.monotonic() < deadline, video
        time.sleep(0.3)


def test_original_frames_come_from_the_proxy_until_exact_is_ticked(
    server: str, editor_token: str, chromium_browser: Browser, tmp_path_factory: pytest.TempPathFactory
) -> None:
    video_id = _upload_ready(server, make_video(tmp_path_factory.mktemp("src") / "phone.mp4", SPEC), "phone.mp4")
    _proxied(server, video_id)
    page = chromium_browser.new_page(viewport={"width": 1280, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/frame?" in r.url else None)
    _open_editor(page, server, editor_token, video_id)
    expect(page.get_by_test_id("frame-image")).to_be_visible()
    expect(page.get_by_test_id("frame-source")).to_have_count(0)  # the processed master is no proxy
    expect(page.get_by_test_id("exact")).to_have_count(0)

    page.get_by_test_id("variant").select_option("original")
    expect(page.get_by_test_id("frame-source")).to_have_text("· proxy")
    for _ in range(40):
        page.keyboard.press("ArrowRight")
    expect(page.get_by_test_id("frame")).to_have_text("41")
    expect(page.locator('[data-testid=frame-image][data-seq="41"]')).to_be_visible()
    assert _shown_number(page) == 40 and page.get_by_test_id("frame-source").is_visible()

    page.get_by_test_id("exact").check()
    expect(page.get_by_test_id("frame-source")).to_have_count(0)
    expect(page.locator('[data-testid=frame-image][data-seq="41"]')).to_be_visible()
    assert _shown_number(page) == 40
    assert any("variant=original&exact=true" in u and "seq=41" in u for u in asked)
    assert errors == []
