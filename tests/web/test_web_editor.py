"""The review editor in a real browser against the real server: step to exact frames, draw, save, render.

`framemask serve` runs in its own process on a free port with a temporary data directory; a short VFR
video (every frame shows its number in binary blocks) is uploaded and processed by the real pipeline.
Debian's Chromium is driven by Playwright (never `playwright install`). The final video is checked by
decoding it with the exact frame reader: the drawn region of the edited frame is masked, the rest is not.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import httpx
import numpy as np
import pytest
from support.api import ADMIN, make_settings, settings_env, stop_process
from support.videos import VideoSpec, make_video, vfr_times
from playwright.sync_api import Browser, Page, expect, sync_playwright

from framemask.media import FrameIndex, FrameReader
from framemask.redact import make_masker
from framemask.redact.gops import master_gops

STATIC = Path(__file__).resolve().parents[2] / "src" / "framemask" / "api" / "static"
WEB = Path(__file__).resolve().parents[2] / "web"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SPEC = VideoSpec(times=vfr_times(((20, 30), (10, 10), (30, 60))), size=(320, 240), gop=30)  # 60 frames, VFR
TARGET = 23  # a frame in the 10 fps stretch
DRAWN = (90, 4, 230, 124)  # x1, y1, x2, y2 in video pixels: over the moving bar and the number blocks


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _built_editor() -> None:
    """The editor must be built into the package (./dev setup does it); build it here if node_modules exist."""
    if (STATIC / "index.html").is_file():
        return
    if not (WEB / "node_modules").is_dir() or shutil.which("npm") is None:
        pytest.fail("the web editor is not built: run ./dev setup (npm ci && npm run build in web/)")
    subprocess.run(["npm", "run", "build", "--silent"], cwd=WEB, check=True, capture_output=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from serve_editor(tmp_path_factory.mktemp("web"))


def serve_editor(tmp: Path, **overrides: object) -> Iterator[str]:
    """`framemask serve` in its own process on a free port (`make_settings` with `overrides`); its base URL."""
    _built_editor()
    env = settings_env(make_settings(tmp / "data", **overrides))
    port = _free_port()
    log = open(tmp / "server.log", "wb")  # noqa: SIM115  (closed below)
    cli = Path(sys.executable).with_name("framemask")
    proc = subprocess.Popen(
        [str(cli), "serve", "--port", str(port), "--log-level", "warning"], env=env, stdout=log, stderr=log
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"server did not start: {(tmp / 'server.log').read_text()[-2000:]}")
            time.sleep(0.2)
        yield base
    finally:
        stop_process(proc)  # type: ignore[arg-type]
        log.close()


def _upload_ready(server: str, src: Path, name: str) -> str:
    """Upload `src` as the admin and wait until it is processed; its video id."""
    admin = {"Authorization": f"Bearer {ADMIN}"}
    with open(src, "rb") as fh:
        resp = httpx.post(f"{server}/api/videos", files={"file": (name, fh, "video/mp4")}, headers=admin)
    assert resp.status_code == 201, resp.text
    video_id = str(resp.json()["id"])
    deadline = time.monotonic() + 300
    while (status := httpx.get(f"{server}/api/videos/{video_id}", headers=admin).json())["status"] != "ready":
        assert status["status"] != "failed" and time.monotonic() < deadline, status
        time.sleep(0.3)
    return video_id


@pytest.fixture(scope="module")
def uploaded(server: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    src = make_video(tmp_path_factory.mktemp("src") / "numbers.mp4", SPEC)
    return _upload_ready(server, src, "numbers.mp4"), src


@pytest.fixture(scope="module")
def editor_token(server: str) -> str:
    resp = httpx.post(
        f"{server}/api/tokens",
        json={"role": "editor", "name": "reviewer"},
        headers={"Authorization": f"Bearer {ADMIN}"},
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["token"])


@pytest.fixture(scope="module")
def chromium_browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} is missing: run ./dev setup (apt package chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def _shown_number(page: Page) -> int:
    """The frame number encoded in the displayed image's binary blocks (read from its pixels in the page)."""
    return int(
        page.evaluate(
            """() => {
              const img = document.querySelector('[data-testid=frame-image]');
              const c = document.createElement('canvas');
              c.width = img.naturalWidth; c.height = img.naturalHeight;
              const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0);
              const block = Math.max(Math.floor(c.width / 10), 4);
              let n = 0;
              for (let bit = 0; bit < 8; bit++) {
                const px = ctx.getImageData(bit * block + block / 2, block / 2, 1, 1).data;
                if (px[0] + px[1] + px[2] > 384) n |= 1 << bit;
              }
              return n;
            }"""
        )
    )


def _at_frame(page: Page, seq: int, index: FrameIndex) -> None:
    """The editor shows frame `seq`: readout, time from the index, and the exact image."""
    expect(page.get_by_test_id("frame")).to_have_text(str(seq))
    expect(page.locator(f'[data-testid=frame-image][data-seq="{seq}"]')).to_be_visible()
    shown_ms = float(page.get_by_test_id("time").get_attribute("data-ms") or "nan")
    assert shown_ms == pytest.approx(index.time_of(seq), abs=1e-3)
    assert _shown_number(page) == seq - 1  # the pattern numbers frames from 0


def _open_editor(page: Page, server: str, token: str, video_id: str) -> None:
    """Sign in with a token, then open the video from the list."""
    page.goto(f"{server}/#/login")
    page.get_by_test_id("token").fill(token)
    page.get_by_test_id("sign-in").click()
    expect(page.get_by_test_id("who")).to_contain_text("editor")
    page.locator(f'tr[data-video="{video_id}"] [data-testid=open]').click()


def _drag(page: Page, box: tuple[float, float, float, float]) -> None:
    """Drag a rectangle given in video pixels on the editor's canvas."""
    canvas = page.get_by_test_id("canvas").bounding_box()
    assert canvas is not None
    sx, sy = canvas["width"] / SPEC.size[0], canvas["height"] / SPEC.size[1]
    x1, y1, x2, y2 = box
    page.mouse.move(canvas["x"] + x1 * sx, canvas["y"] + y1 * sy)
    page.mouse.down()
    page.mouse.move(canvas["x"] + (x1 + x2) / 2 * sx, canvas["y"] + (y1 + y2) / 2 * sy, steps=4)
    page.mouse.move(canvas["x"] + x2 * sx, canvas["y"] + y2 * sy, steps=4)
    page.mouse.up()


def test_review_draw_save_render(
    server: str, uploaded: tuple[str, Path], editor_token: str, chromium_browser: Browser, tmp_path: Path
) -> None:
    video_id, src = uploaded
    index = FrameIndex.build(src)
    page = chromium_browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    _open_editor(page, server, editor_token, video_id)
    _at_frame(page, 1, index)

    # step with the buttons and the arrow keys
    page.get_by_test_id("next").click()
    _at_frame(page, 2, index)
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowLeft")
    _at_frame(page, 4, index)

    # the slider is over time and snaps to the nearest real frame (VFR: 30, then 10, then 60 fps)
    wanted_ms = index.time_of(TARGET) + 0.4 * (index.time_of(TARGET + 1) - index.time_of(TARGET))
    assert index.nearest(wanted_ms) == TARGET
    page.get_by_test_id("slider").evaluate(
        "(el, ms) => { el.value = String(ms); el.dispatchEvent(new Event('input', { bubbles: true })) }", wanted_ms
    )
    _at_frame(page, TARGET, index)
    assert float(page.get_by_test_id("slider").input_value()) == pytest.approx(index.time_of(TARGET), abs=1e-3)

    # drag a rectangle on the canvas (video pixels -> screen pixels), then save
    _drag(page, DRAWN)
    expect(page.get_by_test_id("revision")).to_contain_text("unsaved")
    page.get_by_test_id("save").click()
    expect(page.get_by_test_id("message")).to_contain_text("Saved revision 1")
    auth = {"Authorization": f"Bearer {editor_token}"}
    saved = httpx.get(f"{server}/api/videos/{video_id}/corrections", headers=auth).json()
    [rect] = saved["corrections"]["drawnRectangles"][str(TARGET)]
    assert [rect["x"], rect["y"], rect["x"] + rect["width"], rect["y"] + rect["height"]] == pytest.approx(
        list(DRAWN), abs=1.5
    )

    # render with live progress, then download the final video through the page's link
    page.get_by_test_id("render").click()
    download = page.get_by_test_id("download")
    expect(download).to_be_visible(timeout=180_000)
    expect(page.get_by_test_id("job")).to_have_attribute("data-status", "succeeded")
    href = download.get_attribute("href")
    assert href
    final = tmp_path / "final.mp4"
    resp = httpx.get(f"{server}{href}")  # a signed link: no Authorization header
    assert resp.status_code == 200 and resp.headers["content-type"] == "video/mp4"
    final.write_bytes(resp.content)
    assert not errors, errors

    # the drawn region is masked on that frame (decoded with the exact reader); everything else is what the
    # processed master showed (whatever the detectors found), bit for bit outside the re-encoded GOP
    master = tmp_path / "processed.mp4"
    admin = {"Authorization": f"Bearer {ADMIN}"}
    master.write_bytes(httpx.get(f"{server}/api/videos/{video_id}/stream", headers=admin).content)
    gops = master_gops(master)
    with FrameReader(src) as original, FrameReader(final) as out, FrameReader(master) as processed:
        assert out.index.end_sequence == index.end_sequence
        assert np.allclose(out.index.time_ms, index.time_ms, atol=1e-3)
        before, after, shown = original.frame(TARGET), out.frame(TARGET), processed.frame(TARGET)
        untouched = [seq for seq in (1, index.end_sequence) if gops.gop_of(seq) != gops.gop_of(TARGET)]
        assert untouched, "the video should have GOPs the correction did not touch"
        for seq in untouched:
            assert np.array_equal(out.frame(seq), processed.frame(seq))
    bx1, by1, bx2, by2 = (
        round(v) for v in (rect["x"], rect["y"], rect["x"] + rect["width"], rect["y"] + rect["height"])
    )
    want = make_masker("mosaic").apply(before.copy(), np.array([[bx1, by1, bx2, by2]]))
    inside = (slice(by1, by2), slice(bx1, bx2))

    def mad(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())

    assert mad(after[inside], want[inside]) * 3 < mad(after[inside], before[inside])
    outside = np.ones(before.shape[:2], bool)
    outside[inside] = False
    assert mad(after[outside], shown[outside]) < 4


def test_manual_track_is_interpolated_by_time(
    server: str, uploaded: tuple[str, Path], editor_token: str, chromium_browser: Browser
) -> None:
    """Key boxes on frames 15 (30 fps stretch) and 25 (10 fps stretch); frame 20 lies 28 % of the way in time."""
    video_id, src = uploaded
    index = FrameIndex.build(src)
    page = chromium_browser.new_page(viewport={"width": 1280, "height": 900})
    _open_editor(page, server, editor_token, video_id)
    _at_frame(page, 1, index)
    page.get_by_test_id("mode-track").check()
    page.keyboard.press("Shift+ArrowRight")
    for _ in range(4):
        page.keyboard.press("ArrowRight")
    _at_frame(page, 15, index)
    _drag(page, (20, 150, 60, 190))
    page.keyboard.press("Shift+ArrowRight")
    _at_frame(page, 25, index)
    _drag(page, (220, 150, 260, 190))
    page.get_by_test_id("save").click()
    expect(page.get_by_test_id("message")).to_contain_text("Saved revision")
    auth = {"Authorization": f"Bearer {editor_token}"}
    [track] = httpx.get(f"{server}/api/videos/{video_id}/corrections", headers=auth).json()["corrections"]["tracks"]
    assert [k["seq"] for k in track["keyframes"]] == [15, 25]
    t = (index.time_of(20) - index.time_of(15)) / (index.time_of(25) - index.time_of(15))
    assert 0.25 < t < 0.3  # by frame count it would be 0.5
    x_key15, x_key25 = track["keyframes"][0]["x"], track["keyframes"][1]["x"]
    doc = httpx.get(f"{server}/api/videos/{video_id}/frames?from=20&to=20", headers=auth).json()
    [manual] = [b for b in doc["sequence"][0]["manual"] if b["y1"] >= 140]
    assert manual["x1"] == pytest.approx(x_key15 + (x_key25 - x_key15) * t, abs=1.01)
    before = httpx.get(f"{server}/api/videos/{video_id}/frames?from=14&to=14", headers=auth).json()
    assert not [b for b in before["sequence"][0].get("manual", []) if b["y1"] >= 140]  # starts at its first key


def test_anamorphic_frames_are_shown_unsqueezed(
    server: str, editor_token: str, chromium_browser: Browser, tmp_path: Path
) -> None:
    """Pixels 4:3 wide (DV, broadcast): the editor shows the 4:3-stored frame at 16:9, as a player does (and as
    the processed master now says), and a box drawn on the wider picture is saved in the video's own pixels."""
    clip = make_video(tmp_path / "anamorphic.mp4", VideoSpec(n=20, fps=10, size=SPEC.size, sar=Fraction(4, 3)))
    video_id = _upload_ready(server, clip, "anamorphic.mp4")
    page = chromium_browser.new_page(viewport={"width": 1280, "height": 900})
    _open_editor(page, server, editor_token, video_id)
    expect(page.locator('[data-testid=frame-image][data-seq="1"]')).to_be_visible()
    for testid in ("frame-box", "canvas", "frame-image"):
        shown = page.get_by_test_id(testid).bounding_box()
        assert shown is not None
        assert shown["width"] / shown["height"] == pytest.approx(16 / 9, rel=0.01), testid
    _drag(page, DRAWN)
    page.get_by_test_id("save").click()
    expect(page.get_by_test_id("message")).to_contain_text("Saved revision 1")
    auth = {"Authorization": f"Bearer {editor_token}"}
    saved = httpx.get(f"{server}/api/videos/{video_id}/corrections", headers=auth).json()
    [rect] = saved["corrections"]["drawnRectangles"]["1"]
    assert [rect["x"], rect["y"], rect["x"] + rect["width"], rect["y"] + rect["height"]] == pytest.approx(
        list(DRAWN), abs=1.5
    )


def test_upload_from_the_video_list_shows_processing_until_ready(
    server: str, editor_token: str, chromium_browser: Browser, tmp_path: Path
) -> None:
    clip = make_video(tmp_path / "short clip.mp4", VideoSpec(n=20, fps=10, size=(160, 120)))
    page = chromium_browser.new_page()
    page.goto(f"{server}/#/login")
    page.get_by_test_id("token").fill(editor_token)
    page.get_by_test_id("sign-in").click()
    page.get_by_test_id("upload").set_input_files(str(clip))
    row = page.locator("tr", has_text="short clip.mp4")
    expect(row).to_be_visible(timeout=30_000)
    expect(row.get_by_test_id("open")).to_be_visible(timeout=120_000)  # the Review link appears when ready
    expect(row.get_by_test_id("status")).to_have_text("ready")
    expect(row).to_contain_text("20")  # frames, counted by the server


def test_shot_starts_are_marked_and_reached_with_the_arrow_keys(
    server: str, editor_token: str, chromium_browser: Browser, tmp_path: Path
) -> None:
    """A VFR video with a hard cut at frame 36 (the pattern's gradients turned round): processing flags it, the
    timeline marks it at its time, and Down / Up step to the start of the next / previous shot."""
    cut = 36
    src = make_video(tmp_path / "two_shots.mp4", VideoSpec(times=SPEC.times, size=SPEC.size, gop=30, cuts=(cut - 1,)))
    index = FrameIndex.build(src)
    video_id = _upload_ready(server, src, "two_shots.mp4")
    page = chromium_browser.new_page(viewport={"width": 1280, "height": 900})
    _open_editor(page, server, editor_token, video_id)
    frame = page.get_by_test_id("frame")
    expect(frame).to_have_text("1")
    marks = page.get_by_test_id("cut-marks").locator("span")
    expect(marks).to_have_count(1)
    assert marks.first.get_attribute("data-seq") == str(cut)
    left = float((marks.first.get_attribute("style") or "").removeprefix("left:").strip(" %;"))
    assert left == pytest.approx(index.time_of(cut) / index.time_of(index.end_sequence) * 100, abs=1e-3)
    page.keyboard.press("ArrowDown")
    expect(frame).to_have_text(str(cut))
    page.keyboard.press("ArrowDown")  # no shot after the last: it stays
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    expect(frame).to_have_text(str(cut + 2))
    page.keyboard.press("ArrowUp")
    expect(frame).to_have_text(str(cut))
    page.keyboard.press("ArrowUp")
    expect(frame).to_have_text("1")
    expect(page.locator(f'[data-testid=frame-image][data-seq="1"]')).to_be_visible()


def test_exclude_a_whole_track_unmasks_every_frame_of_it(
    server: str, editor_token: str, chromium_browser: Browser, tmp_path: Path
) -> None:
    """Real people (TUD-Campus): click one person with "exclude: whole track", save, render; on every frame
    that track has a box, the final shows the original pixels there (except under other masks)."""
    from conftest import SHARED_MEDIA

    from framemask.redact import painted_from_doc
    from framemask.redact.policy import MaskPolicy

    src = SHARED_MEDIA / "TUD-Campus.mp4"
    admin = {"Authorization": f"Bearer {ADMIN}"}
    video_id = _upload_ready(server, src, "tud.mp4")
    tracks = httpx.get(f"{server}/api/videos/{video_id}/tracks", headers=admin).json()["tracks"]
    target = max((t for t in tracks if t["label"] == "person"), key=lambda t: t["frames"])
    seq = target["start_seq"]
    frame = httpx.get(f"{server}/api/videos/{video_id}/boxes?from={seq}&to={seq}", headers=admin).json()["frames"][0]
    [box] = [b for b in frame["boxes"] if b["track"] == target["id"]]
    others = [b for b in frame["boxes"] if b is not box]
    # a point on the target and on no other box (the editor picks the smallest box under the pointer)
    spot = next(
        (x, y)
        for y in np.linspace(box["y2"] - 4, box["y1"] + 4, 24)
        for x in np.linspace(box["x1"] + 4, box["x2"] - 4, 12)
        if not any(o["x1"] <= x <= o["x2"] and o["y1"] <= y <= o["y2"] for o in others)
    )

    page = chromium_browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    _open_editor(page, server, editor_token, video_id)
    expect(page.get_by_test_id("frame")).to_have_text("1")
    for _ in range(seq - 1):
        page.keyboard.press("ArrowRight")
    expect(page.get_by_test_id("frame")).to_have_text(str(seq))
    page.get_by_test_id("scope").select_option("track")
    page.wait_for_function(  # the boxes of this frame are drawn
        """() => { const c = document.querySelector('[data-testid=canvas]');
          const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
          for (let i = 3; i < d.length; i += 4) if (d[i]) return true; return false; }"""
    )
    canvas = page.get_by_test_id("canvas").bounding_box()
    assert canvas is not None
    page.mouse.click(canvas["x"] + spot[0] * canvas["width"] / 640, canvas["y"] + spot[1] * canvas["height"] / 480)
    expect(page.get_by_test_id("revision")).to_contain_text("unsaved")
    page.get_by_test_id("save").click()
    expect(page.get_by_test_id("message")).to_contain_text("Saved revision 1")
    auth = {"Authorization": f"Bearer {editor_token}"}
    saved = httpx.get(f"{server}/api/videos/{video_id}/corrections", headers=auth).json()["corrections"]
    assert saved["excludedTracks"] == [target["id"]] and saved["excluded"] == {}
    page.get_by_test_id("render").click()
    download = page.get_by_test_id("download")
    expect(download).to_be_visible(timeout=180_000)
    href = download.get_attribute("href")
    assert href and not errors, errors
    final = tmp_path / "final.mp4"
    final.write_bytes(httpx.get(f"{server}{href}").content)
    master = tmp_path / "processed.mp4"
    master.write_bytes(httpx.get(f"{server}/api/videos/{video_id}/stream", headers=admin).content)

    effective = httpx.get(f"{server}/api/videos/{video_id}/frames?from=1&to=71", headers=admin).json()
    painted = painted_from_doc(effective, 71, 640, 480, MaskPolicy.for_fps(25))
    mine = [
        (f["seq"], b)
        for f in httpx.get(f"{server}/api/videos/{video_id}/boxes?from=1&to=71", headers=admin).json()["frames"]
        for b in f["boxes"]
        if b["track"] == target["id"]
    ]
    assert len(mine) == target["frames"] and all(b["excluded"] for _, b in mine)
    checked = 0
    with FrameReader(src) as original, FrameReader(final) as out, FrameReader(master) as processed:
        for s, b in mine:
            free = np.zeros((480, 640), bool)
            free[b["y1"] : b["y2"], b["x1"] : b["x2"]] = True
            for x1, y1, x2, y2 in painted.boxes(s).tolist():
                free[y1:y2, x1:x2] = False
            if free.sum() < 400:
                continue  # under other people's masks on this frame
            orig = original.frame(s).astype(np.int16)
            now = float(np.abs(out.frame(s).astype(np.int16) - orig)[free].mean())
            before = float(np.abs(processed.frame(s).astype(np.int16) - orig)[free].mean())
            assert now < 6, (s, now, before)  # the original again, up to coding noise
            if before >= 8:
                assert now * 2 < before, (s, now, before)
                checked += 1
    assert checked >= target["frames"] // 4
