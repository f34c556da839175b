"""The reviewer-grade editor (issue 9) in a real browser against the real server: undo/redo and the local
draft, revision conflicts, the keyboard, moving/resizing regions, zoom, track lanes and operations, the final
variant and compare, review state, the report, and audio ranges.

Same setup as `test_web_editor.py` (its fixtures and helpers): `framemask serve` in its own process, Debian's
Chromium through Playwright, no API mocks; assertions read the saved documents, HTTP state and pixels.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
import test_web_editor
from playwright.sync_api import Browser, Page, expect
from support.videos import VideoSpec, make_video, vfr_times
from test_web_editor import _drag, _open_editor, _upload_ready

# the editor tests' fixtures: a server of this module's own, a Chromium, an editor token
server = test_web_editor.server
editor_token = test_web_editor.editor_token
chromium_browser = test_web_editor.chromium_browser

SPEC = VideoSpec(times=vfr_times(((20, 30), (10, 10), (30, 60))), size=(320, 240), gop=30, audio=True)
W, H = SPEC.size


@pytest.fixture(scope="module")
def clip(server: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A 60-frame VFR clip with a tone as audio (each test that saves uses its own frames)."""
    return _upload_ready(server, make_video(tmp_path_factory.mktemp("clip") / "numbers.mp4", SPEC), "numbers.mp4")


@pytest.fixture(scope="module")
def campus(server: str) -> str:
    from conftest import SHARED_MEDIA

    return _upload_ready(server, SHARED_MEDIA / "TUD-Campus.mp4", "tud.mp4")


_LIT = """() => {
  const c = document.querySelector('SEL');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 3; i < d.length; i += 4) if (d[i]) n++;
  return n;
}"""


def _page(browser: Browser) -> tuple[Page, list[str]]:
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    return page, errors


def _corrections(server: str, token: str, video_id: str) -> dict:
    resp = httpx.get(f"{server}/api/videos/{video_id}/corrections", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def _go(page: Page, seq: int) -> None:
    expect(page.get_by_test_id("frame-image")).to_be_visible()  # the index is loaded
    page.keyboard.press("Home")
    expect(page.get_by_test_id("frame")).to_have_text("1")
    for _ in range((seq - 1) // 10):
        page.keyboard.press("Shift+ArrowRight")
    for _ in range((seq - 1) % 10):
        page.keyboard.press("ArrowRight")
    expect(page.get_by_test_id("frame")).to_have_text(str(seq))
    expect(page.locator(f'[data-testid=frame-image][data-seq="{seq}"]')).to_be_visible()
    page.evaluate("window.scrollTo(0, 0)")  # the frame in view (clicking a lane scrolls down)


def _screen(page: Page, x: float, y: float) -> tuple[float, float]:
    box = page.get_by_test_id("frame-box").bounding_box()
    assert box is not None
    return box["x"] + x * box["width"] / W, box["y"] + y * box["height"] / H


def _still_box(page: Page, locator) -> dict:  # type: ignore[no-untyped-def]
    """The element's bounding box once it stopped moving (two reads 200 ms apart agree)."""
    box = locator.bounding_box()
    for _ in range(25):
        page.wait_for_timeout(200)
        again = locator.bounding_box()
        if again == box:
            break
        box = again
    assert box is not None
    return dict(box)


def _rect(r: dict) -> list[float]:
    return [r["x"], r["y"], r["width"], r["height"]]


def test_undo_redo_and_the_draft_survive_a_reload(
    server: str, clip: str, editor_token: str, chromium_browser: Browser
) -> None:
    page, errors = _page(chromium_browser)
    _open_editor(page, server, editor_token, clip)
    _go(page, 3)
    _drag(page, (20, 60, 80, 120))
    _drag(page, (150, 60, 200, 120))
    status = page.get_by_test_id("revision")
    expect(status).to_contain_text("unsaved")
    page.keyboard.press("Control+z")
    page.keyboard.press("Control+z")
    expect(status).not_to_contain_text("unsaved")
    expect(page.get_by_test_id("save")).to_be_disabled()
    page.keyboard.press("Control+Shift+z")
    expect(status).to_contain_text("unsaved")

    # leaving with unsaved edits asks first; after the reload the draft brings them back
    dialogs: list[str] = []

    def on_dialog(d) -> None:  # type: ignore[no-untyped-def]
        dialogs.append(d.type)
        d.accept()

    page.on("dialog", on_dialog)
    page.reload()
    assert dialogs == ["beforeunload"]
    # the draft comes back once the corrections arrive, after the video, its index and the first frame; the
    # module's first editor page (a cold server) took over 5 s for that once in CI
    expect(page.get_by_test_id("message")).to_contain_text("Restored your unsaved edits", timeout=20_000)
    expect(status).to_contain_text("unsaved")
    page.get_by_test_id("save").click()
    expect(page.get_by_test_id("message")).to_contain_text("Saved revision")
    [rect] = _corrections(server, editor_token, clip)["corrections"]["drawnRectangles"]["3"]
    assert _rect(rect) == pytest.approx([20, 60, 60, 60], abs=1.5)
    # saved: no draft left, and leaving asks nothing
    assert page.evaluate(f"localStorage.getItem('framemask.draft.{clip}')") is None
    page.reload()
    expect(page.get_by_test_id("frame")).to_have_text("1")
    assert dialogs == ["beforeunload"] and not errors, errors


def test_a_conflicting_save_offers_reload_or_reapply(
    server: str, clip: str, editor_token: str, chromium_browser: Browser
) -> None:
    page, errors = _page(chromium_browser)
    _open_editor(page, server, editor_token, clip)
    _go(page, 4)
    expect(page.get_by_test_id("revision")).to_be_visible()
    start = _corrections(server, editor_token, clip)
    base = start["revision"]["number"] if start["revision"] else 0
    _drag(page, (30, 40, 90, 100))

    # someone else saves meanwhile (another tab): a region on frame 6
    theirs = {**start["corrections"], "drawnRectangles": {"6": [{"x": 10, "y": 10, "width": 30, "height": 30}]}}
    auth = {"Authorization": f"Bearer {editor_token}"}
    put = httpx.put(f"{server}/api/videos/{clip}/corrections?base_revision={base}", json=theirs, headers=auth)
    assert put.status_code == 200, put.text

    page.get_by_test_id("save").click()
    expect(page.get_by_test_id("conflict")).to_contain_text(f"revision {base + 1}")
    page.get_by_test_id("conflict-reapply").click()
    expect(page.get_by_test_id("message")).to_contain_text(f"Saved revision {base + 2}")
    drawn = _corrections(server, editor_token, clip)["corrections"]["drawnRectangles"]
    assert set(drawn) == {"4", "6"}
    assert _rect(drawn["4"][0]) == pytest.approx([30, 40, 60, 60], abs=1.5)

    # again, and this time drop my edit
    _drag(page, (200, 40, 260, 100))
    put = httpx.put(f"{server}/api/videos/{clip}/corrections?base_revision={base + 2}", json=theirs, headers=auth)
    assert put.status_code == 200, put.text
    page.keyboard.press("Control+s")
    expect(page.get_by_test_id("conflict")).to_be_visible()
    page.get_by_test_id("conflict-reload").click()
    expect(page.get_by_test_id("revision")).to_have_text(f"revision {base + 3}")
    assert _corrections(server, editor_token, clip)["corrections"]["drawnRectangles"] == theirs["drawnRectangles"]
    assert not errors, errors


def test_keyboard_first(server: str, clip: str, editor_token: str, chromium_browser: Browser) -> None:
    page, errors = _page(chromium_browser)
    _open_editor(page, server, editor_token, clip)
    frame = page.get_by_test_id("frame")
    expect(page.get_by_test_id("frame-image")).to_be_visible()  # the index is loaded
    page.keyboard.press("End")
    expect(frame).to_have_text("60")
    page.keyboard.press("Home")
    page.keyboard.press("Shift+ArrowRight")
    page.keyboard.press("ArrowRight")
    expect(frame).to_have_text("12")
    # a clicked button keeps no focus: Space plays, it does not press "next" again
    page.get_by_test_id("next").click()
    expect(frame).to_have_text("13")
    assert page.evaluate("document.activeElement.tagName") == "BODY"
    page.keyboard.press("Space")
    expect(page.get_by_test_id("pause")).to_be_visible()
    page.keyboard.press("Space")
    expect(page.get_by_test_id("play")).to_be_visible()
    shown = int(frame.inner_text())
    assert shown >= 13
    expect(page.locator(f'[data-testid=frame-image][data-seq="{shown}"]')).to_be_visible()
    # J plays backwards through exact frames, K stops
    page.keyboard.press("End")
    page.keyboard.press("j")
    page.wait_for_function("Number(document.querySelector('[data-testid=frame]').textContent) < 55")
    page.keyboard.press("k")
    stopped = frame.inner_text()
    page.wait_for_timeout(300)
    expect(frame).to_have_text(stopped)
    # ? shows the shortcuts, Esc closes them
    page.keyboard.press("?")
    expect(page.get_by_test_id("shortcuts")).to_contain_text("Ctrl + Z")
    page.keyboard.press("Escape")
    expect(page.get_by_test_id("shortcuts")).to_be_hidden()
    assert not errors, errors


def test_move_resize_apply_to_range_delete_and_zoom(
    server: str, clip: str, editor_token: str, chromium_browser: Browser
) -> None:
    page, errors = _page(chromium_browser)
    _open_editor(page, server, editor_token, clip)
    _go(page, 40)
    _drag(page, (40, 40, 100, 100))
    expect(page.get_by_test_id("selection")).to_contain_text("40,40 – 100,100")
    # drag inside the region moves it (no second region), the corner handle resizes it
    _drag(page, (70, 70, 90, 80))
    expect(page.get_by_test_id("selection")).to_contain_text("60,50 – 120,110")
    _drag(page, (120, 110, 140, 130))
    expect(page.get_by_test_id("selection")).to_contain_text("60,50 – 140,130")
    # the same region on frames 40..50
    page.get_by_test_id("range-to").fill("50")
    page.get_by_test_id("range-apply").click()
    # Delete removes the selected region (the range track stays)
    page.keyboard.press("Delete")
    expect(page.get_by_test_id("selection")).to_be_hidden()
    page.get_by_test_id("save").click()
    expect(page.get_by_test_id("message")).to_contain_text("Saved revision")
    doc = _corrections(server, editor_token, clip)["corrections"]
    assert "40" not in doc["drawnRectangles"]
    [track] = [t for t in doc["tracks"] if t["keyframes"][0]["seq"] == 40]
    assert [k["seq"] for k in track["keyframes"]] == [40, 50]
    assert all(_rect(k) == pytest.approx([60, 50, 80, 80], abs=1.5) for k in track["keyframes"])
    auth = {"Authorization": f"Bearer {editor_token}"}
    mid = httpx.get(f"{server}/api/videos/{clip}/boxes?from=45&to=45", headers=auth).json()["frames"][0]["boxes"]
    assert any(b["source"] == "track" and abs(b["x1"] - 60) <= 1 and abs(b["y2"] - 130) <= 1 for b in mid)

    # zoom ×2 at the centre (Ctrl+wheel): a drag now lands in the zoomed-in video pixels
    cx, cy = _screen(page, W / 2, H / 2)
    page.mouse.move(cx, cy)
    page.keyboard.down("Control")
    page.mouse.wheel(0, -300 * 0.6931471805599453)
    page.keyboard.up("Control")
    expect(page.get_by_test_id("frame-box")).to_have_attribute("data-zoom", "2.00")
    _go(page, 33)
    x1, y1 = _screen(page, W / 4, H / 4)
    x2, y2 = _screen(page, 3 * W / 4 - 40, 3 * H / 4 - 40)
    page.mouse.move(x1, y1)
    page.mouse.down()
    page.mouse.move(x2, y2, steps=5)
    page.mouse.up()
    # then pan with Space held: the view moves, playback does not start
    page.keyboard.down("Space")
    page.mouse.move(cx, cy)
    page.mouse.down()
    page.mouse.move(cx + 100, cy + 60, steps=5)
    page.mouse.up()
    page.keyboard.up("Space")
    expect(page.get_by_test_id("play")).to_be_visible()
    page.get_by_test_id("save").click()
    expect(page.get_by_test_id("message")).to_contain_text("Saved revision")
    [rect] = _corrections(server, editor_token, clip)["corrections"]["drawnRectangles"]["33"]
    # screen quarter points at ×2 around the centre: video (W/4 + W/8, ...)
    assert _rect(rect) == pytest.approx([W / 2 - W / 4 + W / 8, H / 2 - H / 4 + H / 8, W / 4 - 20, H / 4 - 20], abs=1.5)
    assert not errors, errors


def test_track_lanes_and_operations(server: str, campus: str, editor_token: str, chromium_browser: Browser) -> None:
    auth = {"Authorization": f"Bearer {editor_token}"}
    tracks = httpx.get(f"{server}/api/videos/{campus}/tracks", headers=auth).json()["tracks"]
    people = sorted((t for t in tracks if t["label"] == "person"), key=lambda t: -t["frames"])
    assert len(people) >= 3
    long, second, third = people[:3]
    page, errors = _page(chromium_browser)
    _open_editor(page, server, editor_token, campus)
    lanes = page.get_by_test_id("lane")
    expect(lanes).to_have_count(len(tracks))
    expect(page.get_by_test_id("gap")).to_have_count(sum(len(t["gaps"]) for t in tracks))
    expect(page.locator(".lane .flag")).to_have_count(sum(len(t["flags"]) for t in tracks))

    def lane(tid: int):  # type: ignore[no-untyped-def]
        return page.locator(f'[data-testid=lane][data-track="{tid}"]')

    # click a lane: jump to its first frame and select it
    lane(long["id"]).locator(".lane-name").click()
    expect(page.get_by_test_id("frame")).to_have_text(str(long["start_seq"]))
    expect(page.get_by_test_id("selected-track")).to_have_text(f"person {long['id']}")
    # split it a few frames in
    at = long["start_seq"] + max(2, (long["end_seq"] - long["start_seq"]) // 2)
    for _ in range(at - long["start_seq"]):
        page.keyboard.press("ArrowRight")
    expect(page.get_by_test_id("frame")).to_have_text(str(at))
    page.get_by_test_id("track-split").click()
    base = max(t["id"] for t in tracks)
    expect(lane(base + 1)).to_have_attribute("data-start", str(at))
    expect(lane(long["id"])).to_have_attribute("data-end", str(at - 1))
    # exclude the second, merge the third into the second
    lane(second["id"]).locator(".lane-name").click()
    page.get_by_test_id("track-exclude").click()
    expect(lane(second["id"])).to_have_class(re.compile("excluded"))
    page.get_by_test_id("merge-with").select_option(str(third["id"]))
    page.get_by_test_id("track-merge").click()
    expect(lane(third["id"])).to_contain_text(f"→ {second['id']}")
    # bulk exclude: small faces... any label smaller than 30 px over frames 1..10
    page.get_by_test_id("rule-size").fill("30")
    page.get_by_test_id("rule-from").fill("1")
    page.get_by_test_id("rule-to").fill("10")
    page.get_by_test_id("rule-add").click()
    expect(page.get_by_test_id("rule")).to_contain_text("smaller than 30 px")
    # extend a track with a key box on a frame it has no box on (a gap, or just past an end)
    end = 71
    ext_track, target = next(
        (t, t["gaps"][0][0] if t["gaps"] else t["end_seq"] + 1 if t["end_seq"] < end else t["start_seq"] - 1)
        for t in people
        if t["gaps"] or t["end_seq"] < end or t["start_seq"] > 1
    )
    lane(ext_track["id"]).locator(".lane-name").click()
    page.get_by_test_id("track-extend").click()
    _go(page, target)
    page.keyboard.down("Shift")  # Shift: always draw, even over other boxes
    x1, y1 = _screen(page, 20 * 2, 20 * 2)
    x2, y2 = _screen(page, 50 * 2, 90 * 2)
    page.mouse.move(x1, y1)
    page.mouse.down()
    page.mouse.move(x2, y2, steps=4)
    page.mouse.up()
    page.keyboard.up("Shift")
    page.get_by_test_id("save").click()
    expect(page.get_by_test_id("message")).to_contain_text("Saved revision")
    doc = _corrections(server, editor_token, campus)["corrections"]
    assert doc["splitTracks"] == [{"track": long["id"], "at": at}]
    assert doc["excludedTracks"] == [second["id"]]
    assert doc["mergedTracks"] == [[second["id"], third["id"]]]
    assert doc["excludeRules"] == [{"smaller_than": 30, "from_seq": 1, "to_seq": 10}]
    [ext] = [t for t in doc["tracks"] if t.get("extends") == ext_track["id"]]
    assert ext["label"] == "person" and [k["seq"] for k in ext["keyframes"]] == [target]
    # the server agrees: after the split the track's boxes carry the new id
    boxes = httpx.get(f"{server}/api/videos/{campus}/boxes?from={at}&to={at}", headers=auth).json()
    assert base + 1 in {b["track"] for b in boxes["frames"][0]["boxes"]}
    assert not errors, errors


def test_move_a_detected_box_and_toggle_the_overlay(
    server: str, campus: str, editor_token: str, chromium_browser: Browser
) -> None:
    auth = {"Authorization": f"Bearer {editor_token}"}
    seq = 30
    frame = httpx.get(f"{server}/api/videos/{campus}/boxes?from={seq}&to={seq}", headers=auth).json()["frames"][0]
    people = [
        b
        for b in frame["boxes"]
        if b["source"] in ("detected", "candidate") and b["track"] is not None and not b["excluded"]
    ]
    assert people
    # the largest box, grabbed at a spot inside it and inside no smaller box
    box = max(people, key=lambda b: (b["x2"] - b["x1"]) * (b["y2"] - b["y1"]))
    others = [b for b in frame["boxes"] if b is not box]
    spot = next(
        (x, y)
        for y in range(box["y1"] + 6, box["y2"] - 6, 4)
        for x in range(box["x1"] + 6, box["x2"] - 6, 4)
        if not any(o["x1"] - 8 <= x <= o["x2"] + 8 and o["y1"] - 8 <= y <= o["y2"] + 8 for o in others)
    )
    page, errors = _page(chromium_browser)
    _open_editor(page, server, editor_token, campus)
    _go(page, seq)
    W2, H2 = 640, 480
    fb = page.get_by_test_id("frame-box").bounding_box()
    assert fb is not None
    sx, sy = fb["width"] / W2, fb["height"] / H2
    page.mouse.move(fb["x"] + spot[0] * sx, fb["y"] + spot[1] * sy)
    page.mouse.down()
    page.mouse.move(fb["x"] + (spot[0] + 12) * sx, fb["y"] + (spot[1] + 8) * sy, steps=5)
    page.mouse.up()
    expect(page.get_by_test_id("selection")).to_contain_text("override")
    page.get_by_test_id("save").click()
    expect(page.get_by_test_id("message")).to_contain_text("Saved revision")
    overrides = _corrections(server, editor_token, campus)["corrections"]["overrides"][str(seq)]
    [o] = [o for o in overrides if o["track"] == box["track"]]
    assert [o["x"], o["y"], o["width"], o["height"]] == pytest.approx(
        [box["x1"] + 12, box["y1"] + 8, box["x2"] - box["x1"], box["y2"] - box["y1"]], abs=1.5
    )

    # the boxes overlay goes off and on (O): the canvas is empty, then drawn again
    painted = _LIT.replace("SEL", "[data-testid=canvas]")
    page.wait_for_function(f"({painted})() > 0")
    page.keyboard.press("o")
    page.wait_for_function(f"({painted})() === 0")
    expect(page.get_by_test_id("overlay")).not_to_be_checked()
    page.get_by_test_id("overlay").check()
    page.wait_for_function(f"({painted})() > 0")
    assert not errors, errors


_MAD = """async ([a, b, x1, y1, x2, y2, inside]) => {
  const px = async (sel) => {
    const img = document.querySelector(sel); await img.decode();
    const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
    const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0);
    return ctx.getImageData(0, 0, c.width, c.height);
  };
  const [p, q] = [await px(a), await px(b)];
  let s = 0, n = 0;
  for (let y = 0; y < p.height; y++) for (let x = 0; x < p.width; x++) {
    if ((x >= x1 && x < x2 && y >= y1 && y < y2) !== inside) continue;
    const i = (y * p.width + x) * 4;
    for (let k = 0; k < 3; k++) s += Math.abs(p.data[i + k] - q.data[i + k]);
    n += 3;
  }
  return s / n;
}"""


def test_final_variant_compare_stale_banner_and_fresh_download(
    server: str, clip: str, editor_token: str, chromium_browser: Browser
) -> None:
    page, errors = _page(chromium_browser)
    _open_editor(page, server, editor_token, clip)
    _go(page, 25)
    region = (90, 4, 230, 124)
    _drag(page, region)
    page.get_by_test_id("render").click()
    expect(page.get_by_test_id("download")).to_be_visible(timeout=180_000)
    expect(page.get_by_test_id("stale-final")).to_be_hidden()

    # Show: final serves frames of the rendered video
    with page.expect_response(lambda r: "variant=final" in r.url and "seq=25" in r.url) as got:
        page.get_by_test_id("variant").select_option("final")
    assert got.value.status == 200
    expect(page.locator('[data-testid=frame-image][data-seq="25"]')).to_be_visible()

    # compare: processed and final side by side on the same frame; they differ where the region was masked
    page.get_by_test_id("compare").check()
    expect(page.get_by_test_id("compare-processed")).to_have_attribute("data-seq", "25")
    expect(page.get_by_test_id("compare-final")).to_be_visible()
    fp, ff, shown = "[data-testid=compare-processed]", "[data-testid=compare-final]", "[data-testid=frame-image]"
    inside = page.evaluate(_MAD, [fp, ff, *region, True])
    outside = page.evaluate(_MAD, [fp, ff, *region, False])
    assert inside > 4 and inside > 4 * outside, (inside, outside)
    assert page.evaluate(_MAD, [shown, ff, 0, 0, W, H, True]) < 0.5  # Show: final is that very frame
    page.get_by_test_id("compare").uncheck()
    page.get_by_test_id("variant").select_option("processed")

    # a new revision: the banner says the final is older; the download link is fetched at click time
    _go(page, 27)
    _drag(page, (20, 150, 60, 190))
    page.get_by_test_id("save").click()
    expect(page.get_by_test_id("stale-final")).to_be_visible()
    with page.expect_request(lambda r: "/final/url" in r.url) as fresh, page.expect_download() as dl:
        page.get_by_test_id("download").click()
    assert fresh.value
    assert dl.value.suggested_filename.endswith(".deidentified.mp4")
    assert not errors, errors


def test_review_state_and_report(server: str, clip: str, editor_token: str, chromium_browser: Browser) -> None:
    page, errors = _page(chromium_browser)
    _open_editor(page, server, editor_token, clip)
    expect(page.get_by_test_id("frame")).to_have_text("1")
    with page.expect_response(lambda r: r.request.method == "PATCH") as patched:
        page.get_by_test_id("review-state").select_option("approved")
    assert patched.value.status == 200
    auth = {"Authorization": f"Bearer {editor_token}"}
    video = httpx.get(f"{server}/api/videos/{clip}", headers=auth).json()
    assert video["review_state"] == "approved" and video["review_by"] == "reviewer"
    with page.expect_download() as dl:
        page.get_by_test_id("report").click()
    text = Path(dl.value.path()).read_text()
    assert text.startswith("#") and "revision" in text
    page.goto(f"{server}/#/videos")
    expect(page.locator(f'tr[data-video="{clip}"] [data-testid=review]')).to_have_text("approved")
    assert not errors, errors


def test_waveform_range_becomes_a_muted_range(
    server: str, clip: str, editor_token: str, chromium_browser: Browser
) -> None:
    page, errors = _page(chromium_browser)
    _open_editor(page, server, editor_token, clip)
    wave = page.get_by_test_id("waveform").locator("canvas")
    expect(wave).to_be_visible()
    # the tone is loud: the drawn waveform has lit pixels
    lit = page.evaluate(_LIT.replace("SEL", "[data-testid=waveform] canvas")) / page.evaluate(
        "() => { const c = document.querySelector('[data-testid=waveform] canvas'); return c.width * c.height }"
    )
    assert lit > 0.1, lit  # silence draws 1 px of 48
    # the drag must land where the waveform is: a banner arriving late (an earlier test's stale final) moves it
    page.wait_for_load_state("networkidle")
    b = _still_box(page, wave)
    assert b is not None
    end = 60
    # frames are laid out evenly: frame s covers [(s-1)/end, s/end) of the width
    page.mouse.move(b["x"] + b["width"] * (10.5 / end), b["y"] + b["height"] / 2)
    page.mouse.down()
    page.mouse.move(b["x"] + b["width"] * (19.5 / end), b["y"] + b["height"] / 2, steps=5)
    page.mouse.up()
    expect(page.get_by_test_id("audio-range")).to_have_text("frames 11–20")
    page.get_by_test_id("tone").click()
    expect(page.get_by_test_id("muted")).to_contain_text("tone 11–20")
    page.get_by_test_id("save").click()
    expect(page.get_by_test_id("message")).to_contain_text("Saved revision")
    doc = _corrections(server, editor_token, clip)["corrections"]
    assert doc["mutedRanges"] == [{"start_seq": 11, "end_seq": 20, "mode": "tone"}]
    assert not errors, errors
