"""Editor benchmark: keypress to painted frame, and time to open the editor, in Chromium against `framemask serve`.

    .venv/bin/python bench/editor.py [--video ../shared/media/TUD-Campus.mp4] [--steps 50] [--opens 5]

`framemask serve` (embedded defaults, one in-process worker) processes the video; Debian's Chromium (Playwright,
headless) opens the editor as an editor-role user.

1. Open: from navigation to the first exact frame painted (image decoded, then the next animation frame),
   `--opens` times in fresh browser contexts (cold HTTP cache). Median and max.
2. Stepping: `--steps` presses of → from frame 1, then as many of ←. For each press, the time from the
   keydown event (its own timestamp) to the animation frame after the image of the new frame is decoded
   (measured inside the page, so no Playwright round trip is counted). Median and p95 per direction.
3. Anchor, in the same run and browser: what CVAT does before the first step (it buffers frames in chunks,
   36 frames per chunk by default, as JPEGs): fetch frames 1..36 as JPEG (`/frame?format=jpeg`) one after
   the other and decode them, from a fresh context. The editor fetches one exact frame per step instead and
   keeps 8 frames ahead and 4 behind prefetched (all 12 behind when it stands on the last frame).

Writes bench/results/editor.json and bench/results/editor.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.common import pct, write_results  # noqa: E402

ADMIN = "bench-admin-token-0123456789abcdef"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
CHUNK = 36
AHEAD, BEHIND = 8, 4  # web/src/composables/useFrameImages.ts

# resolves with the painted time of frame `seq` (an animation frame after its image decoded)
_PAINTED = """async (seq) => {
  for (;;) {
    const img = document.querySelector(`[data-testid=frame-image][data-seq="${seq}"]`);
    if (img && img.complete && img.naturalWidth > 0) { await img.decode(); break; }
    await new Promise((r) => requestAnimationFrame(r));
  }
  await new Promise((r) => requestAnimationFrame(r));
  return performance.now();
}"""

_ARM = """() => new Promise((resolve) => {
  window.__keyAt = null;
  window.addEventListener('keydown', (e) => { window.__keyAt = e.timeStamp; }, { once: true, capture: true });
  resolve(true);
})"""

_CHUNK = """async ([id, n]) => {
  const token = localStorage.getItem('framemask.token');
  const t0 = performance.now();
  let bytes = 0;
  for (let s = 1; s <= n; s++) {
    const r = await fetch(`/api/videos/${id}/frame?seq=${s}&variant=processed&format=jpeg&quality=90`,
      { headers: { Authorization: `Bearer ${token}` } });
    const blob = await r.blob();
    bytes += blob.size;
    const bmp = await createImageBitmap(blob);
    bmp.close();
  }
  return { ms: performance.now() - t0, bytes };
}"""


_FLOOR = """async ([id, n]) => {
  const token = localStorage.getItem('framemask.token');
  const out = [];
  for (let s = 40; s < 40 + n; s++) {
    const t0 = performance.now();
    const r = await fetch(`/api/videos/${id}/frame?seq=${s}&variant=processed&format=jpeg&quality=90`,
      { headers: { Authorization: `Bearer ${token}` } });
    (await createImageBitmap(await r.blob())).close();
    out.push(performance.now() - t0);
  }
  return out;
}"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(data_dir: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAMEMASK_")}
    env.update(FRAMEMASK_DATA_DIR=str(data_dir), FRAMEMASK_WORKERS="1", FRAMEMASK_ADMIN_TOKEN=ADMIN)
    cli = Path(sys.executable).with_name("framemask")
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [str(cli), "serve", "--port", str(port), "--log-level", "warning"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.terminate()
    raise RuntimeError(f"server did not start: {log.read_text()[-2000:]}")


def upload(base: str, video: Path) -> str:
    admin = {"Authorization": f"Bearer {ADMIN}"}
    with open(video, "rb") as fh:
        resp = httpx.post(
            f"{base}/api/videos", files={"file": (video.name, fh, "video/mp4")}, headers=admin, timeout=300
        )
    resp.raise_for_status()
    video_id = str(resp.json()["id"])
    deadline = time.monotonic() + 600
    while (state := httpx.get(f"{base}/api/videos/{video_id}", headers=admin, timeout=60).json())["status"] != "ready":
        if state["status"] == "failed" or time.monotonic() > deadline:
            raise RuntimeError(f"processing failed: {state}")
        time.sleep(0.5)
    return video_id


def measure(base: str, video_id: str, token: str, frames: int, steps: int, opens: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    out: dict[str, Any] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)

        def context():  # type: ignore[no-untyped-def]
            ctx = browser.new_context(viewport={"width": 1280, "height": 900})
            ctx.add_init_script(f"localStorage.setItem('framemask.token', {token!r})")
            return ctx

        open_ms = []
        for _ in range(opens):
            ctx = context()
            page = ctx.new_page()
            page.goto(f"{base}/#/videos")  # the app shell, then open the editor route
            page.wait_for_selector("[data-testid=who]")
            t0 = page.evaluate("performance.now()")
            page.evaluate(f"location.hash = '#/videos/{video_id}'")
            open_ms.append(page.evaluate(_PAINTED, 1) - t0)
            ctx.close()
        out["open_ms"] = open_ms

        ctx = context()
        page = ctx.new_page()
        page.goto(f"{base}/#/videos/{video_id}")
        page.evaluate(_PAINTED, 1)
        page.wait_for_timeout(500)  # boxes, tracks, thumbnails settle
        forward, backward = [], []
        for i in range(steps):
            page.evaluate(_ARM)
            page.keyboard.press("ArrowRight")
            painted = page.evaluate(_PAINTED, 2 + i)
            forward.append(painted - page.evaluate("window.__keyAt"))
        ctx.close()
        # backwards from the last frame in a fresh context (cold cache: only the backward prefetch helps)
        ctx = context()
        page = ctx.new_page()
        page.goto(f"{base}/#/videos/{video_id}")
        page.evaluate(_PAINTED, 1)
        page.keyboard.press("End")
        page.evaluate(_PAINTED, frames)
        page.wait_for_timeout(500)
        for i in range(steps):
            page.evaluate(_ARM)
            page.keyboard.press("ArrowLeft")
            painted = page.evaluate(_PAINTED, frames - 1 - i)
            backward.append(painted - page.evaluate("window.__keyAt"))
        out["forward_ms"], out["backward_ms"] = forward, backward
        ctx.close()

        ctx = context()
        page = ctx.new_page()
        page.goto(f"{base}/#/videos")
        page.wait_for_selector("[data-testid=who]")
        out["chunk"] = page.evaluate(_CHUNK, [video_id, CHUNK])
        out["floor_ms"] = page.evaluate(_FLOOR, [video_id, 20])
        ctx.close()
        browser.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", type=Path, default=ROOT.parent / "shared" / "media" / "TUD-Campus.mp4")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--opens", type=int, default=5)
    args = ap.parse_args()
    if not (ROOT / "src" / "framemask" / "api" / "static" / "index.html").is_file():
        sys.exit("build the editor first: cd web && npm run build")
    tmp = Path(tempfile.mkdtemp(prefix="bench-editor-"))
    load_before = os.getloadavg()[0]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_server(tmp / "data", port, tmp / "server.log")
    try:
        video_id = upload(base, args.video)
        frames = int(
            httpx.get(f"{base}/api/videos/{video_id}", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=60).json()[
                "endSequence"
            ]
        )
        steps = min(args.steps, frames - 1)
        resp = httpx.post(
            f"{base}/api/tokens",
            json={"role": "editor", "name": "bench"},
            headers={"Authorization": f"Bearer {ADMIN}"},
            timeout=60,
        )
        resp.raise_for_status()
        got = measure(base, video_id, resp.json()["token"], frames, steps, args.opens)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)

    def stats(values: list[float]) -> dict[str, float]:
        return {"median": statistics.median(values), "p95": pct(values, 95), "max": max(values), "n": len(values)}

    fwd, bwd, opened = stats(got["forward_ms"]), stats(got["backward_ms"]), stats(got["open_ms"])
    chunk = got["chunk"]
    floor = stats(got["floor_ms"])
    load = os.getloadavg()[0]
    data = {
        "video": args.video.name,
        "frames": frames,
        "steps": steps,
        "forward_ms": fwd,
        "backward_ms": bwd,
        "open_ms": opened,
        "floor_single_frame_ms": floor,
        "load_average": load,
        "load_average_before": load_before,
        "anchor_cvat_chunk": {"frames": CHUNK, "ms": chunk["ms"], "bytes": chunk["bytes"]},
        "target_p95_ms": 40,
        "raw": got,
    }
    md = f"""# Editor: keypress to painted frame

{args.video.name} ({frames} frames), Chromium headless (software rendering), `framemask serve` on this machine.
Keypress to painted: keydown timestamp to the animation frame after the new exact frame's image is decoded.

| measure | median ms | p95 ms | max ms | n |
|---|---:|---:|---:|---:|
| step forward (→) | {fwd["median"]:.1f} | {fwd["p95"]:.1f} | {fwd["max"]:.1f} | {fwd["n"]} |
| step backward (←) | {bwd["median"]:.1f} | {bwd["p95"]:.1f} | {bwd["max"]:.1f} | {bwd["n"]} |
| open the editor (route to first frame painted) | {opened["median"]:.1f} | – | {opened["max"]:.1f} | {opened["n"]} |
| **anchor**: CVAT-like chunk before the first step ({CHUNK} JPEGs, fetched, decoded) | {chunk["ms"]:.1f} | – | – | 1 |

Forward: from frame 1 just after opening; backward: from the last frame in a fresh browser context (cold
cache, so only the backward prefetch helps). Floor: one exact frame fetched alone (`/frame`, JPEG, as the
editor asks for it) and decoded, {floor["median"]:.1f} ms median over {floor["n"]} frames: a step cannot be
faster unless its frame was prefetched.
Target: p95 ≤ 40 ms both ways. The editor keeps {AHEAD} frames ahead and {BEHIND} behind prefetched in the
direction of travel (at either end of the video the whole budget goes the one way there is), refilling the
window as frames arrive; CVAT pays the whole chunk ({chunk["bytes"] / 1024:.0f} KiB) before showing the first
frame of it. Load average before / after the run: {load_before:.1f} / {load:.1f} on {os.cpu_count()} cores
(shared machine: compare against the chunk anchor and the single-frame floor of the same run).
"""
    write_results("editor", data, md)


if __name__ == "__main__":
    main()
