"""The container image, proven on this machine: built with podman from the offline bundle (scripts/image.sh),
then `framemask db upgrade`, `framemask serve` and one `framemask worker` run from it (host network) against
PostgreSQL and Redis started on the host; a real clip uploaded over HTTP comes back `ready`, processed by the
worker container, with every frame kept.

On a fresh machine scripts/image.sh first installs podman with apt and bootstraps the Debian base with mmdebstrap:
about 3 minutes in all here on 2026-12-02 (6-7 minutes for a cold build on a loaded machine). The image is tagged
with the hash of the bundle's inputs (lock, src/, models, deploy files) and reused while they do not change; a
change to src/ alone rebuilds only the last layer. Needs root.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from support.api import ADMIN, PEOPLE_VIDEO
from support.servers import free_port, fresh_database

from framemask.media import FrameIndex

ROOT = Path(__file__).resolve().parents[2]
IMAGE_UID = 10001  # the image's `framemask` user

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(1800),  # a cold image build is ~6 min on 2 shared cores
    pytest.mark.skipif(  # scripts/image.sh installs podman, runc and mmdebstrap with apt when they are missing
        shutil.which("podman") is None and shutil.which("apt-get") is None,
        reason="podman is not installed and there is no apt-get to install it with; see docs/deploy.md",
    ),
    pytest.mark.skipif(
        os.geteuid() != 0, reason="podman runs containers here as root only (rootless needs subuid/cgroup setup)"
    ),
]


def podman_env() -> dict[str, str]:
    env = dict(os.environ)
    if "CONTAINERS_CONF" not in env:  # containers here may not raise RLIMIT_NOFILE (podman's default ulimits)
        conf = Path(os.environ.get("TMPDIR", "/tmp")) / "framemask-containers.conf"
        conf.write_text("[containers]\ndefault_ulimits = []\n")
        env["CONTAINERS_CONF"] = str(conf)
    return env


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["podman", "--runtime", "runc", "--cgroup-manager=cgroupfs", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=podman_env(),
        check=False,
    )
    if check and done.returncode != 0:
        pytest.fail(f"podman {' '.join(args[:3])} … exited {done.returncode}: {done.stderr[-3000:]}")
    return done


@pytest.fixture(scope="module")
def image() -> str:
    """The image of the current tree: built by scripts/image.sh, or reused when its inputs did not change."""
    t0 = time.monotonic()
    done = subprocess.run(
        [str(ROOT / "scripts" / "image.sh")], capture_output=True, text=True, timeout=1700, env=podman_env()
    )
    if done.returncode != 0:
        pytest.fail(f"scripts/image.sh failed ({done.returncode}):\n{done.stderr[-5000:]}")
    ref = done.stdout.strip().splitlines()[-1]
    print(f"\nimage {ref} ready in {time.monotonic() - t0:.0f} s")
    return ref


@pytest.fixture(scope="module")
def stack(
    image: str, postgres_server: str, redis_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """`db upgrade`, then `serve` and one `worker` from the image, sharing one data volume (local object store)."""
    data = tmp_path_factory.mktemp("image-data")
    os.chown(data, IMAGE_UID, IMAGE_UID)
    port = free_port()
    suffix = uuid.uuid4().hex[:8]
    names = {"api": f"fm-test-api-{suffix}", "worker": f"fm-test-worker-{suffix}"}
    with fresh_database(postgres_server, "fm_image") as db_url:
        env = {
            "FRAMEMASK_DATABASE_URL": db_url,  # 127.0.0.1: the containers share the host's network
            "FRAMEMASK_QUEUE": "celery",
            "FRAMEMASK_BROKER_URL": redis_server,
            "FRAMEMASK_ADMIN_TOKEN": ADMIN,
            "FRAMEMASK_REDACT_STRIDE": "4",
            "FRAMEMASK_JOB_POLL_SECONDS": "0.2",
        }
        common = ["--network=host", "-v", f"{data}:/data"]
        for key, value in env.items():
            common += ["-e", f"{key}={value}"]
        migrate = podman("run", "--rm", *common, image, "db", "upgrade", timeout=180)
        assert "database at head" in migrate.stdout, migrate.stderr[-2000:]
        try:
            podman(
                "run",
                "-d",
                "--name",
                names["api"],
                *common,
                "-e",
                "FRAMEMASK_WORKERS=0",
                image,
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            )
            podman(
                "run",
                "-d",
                "--name",
                names["worker"],
                *common,
                "-e",
                "FRAMEMASK_WORKER_NAME=image-worker",
                image,
                "-v",
                "worker",
                "--concurrency",
                "1",
            )
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 180
            while True:
                try:
                    with urllib.request.urlopen(f"{base}/healthz", timeout=5) as resp:
                        if resp.status == 200:
                            break
                except (urllib.error.URLError, OSError):
                    pass
                state = podman("inspect", "--format", "{{.State.Status}}", names["api"], check=False).stdout.strip()
                if state != "running" or time.monotonic() > deadline:
                    logs = podman("logs", names["api"], check=False)
                    pytest.fail(f"serve is {state}, /healthz not 200:\n{(logs.stdout + logs.stderr)[-4000:]}")
                time.sleep(0.5)
            yield {"base": base, "db_url": db_url, "data": str(data), **names}
        finally:
            for role, name in names.items():
                logs = podman("logs", name, check=False)
                print(f"--- {role} container log (tail) ---\n{(logs.stdout + logs.stderr)[-3000:]}")
                podman("rm", "-f", "-t", "5", name, check=False, timeout=60)


def test_serve_and_worker_from_the_image_process_an_upload(stack: dict[str, str], tmp_path: Path) -> None:
    base, headers = stack["base"], {"Authorization": f"Bearer {ADMIN}"}
    with httpx.Client(base_url=base, timeout=60) as client:
        assert client.get("/api/videos").status_code == 401  # no token
        editor = client.get("/")
        assert editor.status_code == 200 and '<div id="app"' in editor.text  # the built editor is in the image
        with PEOPLE_VIDEO.open("rb") as fh:
            resp = client.post("/api/videos", files={"file": ("people.mp4", fh, "video/mp4")}, headers=headers)
        assert resp.status_code == 201, resp.text
        created = resp.json()
        deadline = time.monotonic() + 300
        while (video := client.get(f"/api/videos/{created['id']}", headers=headers).json())["status"] not in (
            "ready",
            "failed",
        ):
            assert time.monotonic() < deadline, f"not ready after 300 s: {video}"
            time.sleep(0.5)
        assert video["status"] == "ready", video
        assert video["endSequence"] == 71  # TUD-Campus: 71 frames

        job = client.get(f"/api/jobs/{created['job_id']}", headers=headers).json()
        assert job["status"] == "succeeded" and job["attempts"] == 1, job
        assert job["worker"].startswith("image-worker"), job  # done by the worker container, not by serve

        stream = client.get(f"/api/videos/{created['id']}/stream", headers=headers, follow_redirects=True)
        assert stream.status_code == 200 and stream.headers["content-type"] == "video/mp4"
        processed = tmp_path / "processed.mp4"
        processed.write_bytes(stream.content)
        assert FrameIndex.build(processed).end_sequence == 71  # every frame kept

        doc = client.get(f"/api/videos/{created['id']}/frames", headers=headers).json()
        assert [e["seq"] for e in doc["sequence"]] == list(range(1, 72))
        assert sum(1 for e in doc["sequence"] if e.get("person")) > 50  # the detectors ran inside the image

    with psycopg.connect(stack["db_url"].replace("postgresql+psycopg://", "postgresql://")) as conn:
        row = conn.execute("SELECT status, end_sequence FROM video WHERE id = %s", (created["id"],)).fetchone()
        assert row == ("ready", 71)
        frames = conn.execute("SELECT count(*) FROM processed_frame WHERE video_id = %s", (created["id"],)).fetchone()
        assert frames == (71,)

    # the objects are on the shared volume, written by the image's non-root user
    written = [p for p in Path(stack["data"]).rglob("processed.mp4") if created["id"] in str(p)]
    assert written and written[0].stat().st_uid == IMAGE_UID


def test_image_runs_as_a_non_root_user_with_a_healthcheck(stack: dict[str, str], image: str) -> None:
    assert podman("exec", stack["api"], "id", "-u").stdout.strip() == str(IMAGE_UID)
    inspected = json.loads(podman("image", "inspect", image).stdout)[0]
    config = inspected["Config"]
    assert "FRAMEMASK_DATA_DIR=/data" in config["Env"] and "/data" in config["Volumes"]
    assert config["Entrypoint"] == ["tini", "--", "framemask"]
    assert inspected["Healthcheck"]["Test"][-1].endswith("healthcheck.py")  # kept by --format docker
    # the image's HEALTHCHECK runs GET /healthz against serve's real port
    health = podman("healthcheck", "run", stack["api"], check=False)
    assert health.returncode == 0, health.stdout + health.stderr
    assert podman("healthcheck", "run", stack["worker"], check=False).returncode == 0
