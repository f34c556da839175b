"""Print the runtime lock of framemask: `name==version` of every distribution `framemask[rtsp]` needs, as
installed in the running environment (the versions the test suite runs with), plus the --no-deps weight
carriers of scripts/requirements-extra.txt.

Used by scripts/bundle.sh to fill the offline wheelhouse. The closure follows each installed package's
requirements (markers evaluated for this interpreter and for Python 3.11.0, extras followed); a package only
the other interpreter needs is listed with its specifier and pinned to the wheel fetched for it (--pin).
`opencv-python` (the GUI build that `scenedetect` and `trackers` declare) is replaced by
`opencv-python-headless`, which provides the same `cv2` without X11/OpenGL libraries; the bundle installs its
lock with --no-deps, so nothing pulls the GUI build back in.

    python scripts/bundle_lock.py [--extra rtsp] [--requirements-extra FILE]   # the lock
    python scripts/bundle_lock.py --lock FILE --missing DIR     # lock lines with no usable wheel in DIR
    python scripts/bundle_lock.py --lock FILE --select DIR      # the wheel file in DIR for each lock line
    python scripts/bundle_lock.py --lock FILE --pin DIR         # the lock pinned to those wheels' versions
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.tags import sys_tags
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
REPLACED = {"opencv-python": "opencv-python-headless"}
SKIPPED = {"framemask", "pip", "setuptools", "wheel"}


# Markers are evaluated for this interpreter and for an early 3.11 (Debian 12's python3 is 3.11.2): redis needs
# async-timeout below 3.11.3, which a venv on 3.11.7 never installs.
ENVIRONMENTS = [default_environment(), {**default_environment(), "python_full_version": "3.11.0"}]


def _wanted(req: Requirement, extras: set[str]) -> bool:
    if req.marker is None:
        return True
    return any(req.marker.evaluate({**env, "extra": e}) for env in ENVIRONMENTS for e in (extras or {""}))


def declared(extras: set[str]) -> list[Requirement]:
    """framemask's own requirements as pyproject.toml declares them now (the installed editable metadata may be
    older than the file)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"])
    for extra in sorted(extras):
        lines += project.get("optional-dependencies", {}).get(extra, [])
    return [Requirement(line) for line in lines]


def closure(extras: set[str]) -> dict[str, str]:
    """{canonical name: "==installed version"} of everything framemask[extras] needs. A package needed only by
    the other environment (not installed here) gets its specifier instead, e.g. ">=4.0.3"."""
    found: dict[str, str] = {}
    queue: list[tuple[Requirement, set[str]]] = []
    for req in declared(extras):
        if not _wanted(req, set()):
            continue
        try:
            installed = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            sys.exit(f"bundle_lock: pyproject.toml requires {req} but it is not installed here (run ./dev setup)")
        if not req.specifier.contains(installed, prereleases=True):
            sys.exit(f"bundle_lock: pyproject.toml requires {req}, installed is {installed} (run ./dev setup)")
        queue.append((req, set(req.extras)))
    seen: set[tuple[str, frozenset[str]]] = set()
    while queue:
        req, req_extras = queue.pop()
        key = (canonicalize_name(req.name), frozenset(req_extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            found.setdefault(canonicalize_name(req.name), str(req.specifier))
            continue
        canonical = canonicalize_name(dist.metadata["Name"])
        if canonical not in SKIPPED:
            found[canonical] = f"=={dist.version}"
        for line in dist.requires or []:
            dep = Requirement(line)
            if _wanted(dep, req_extras):
                if canonicalize_name(dep.name) in REPLACED:
                    dep = Requirement(REPLACED[canonicalize_name(dep.name)])
                queue.append((dep, set(dep.extras)))
    return found


def wheels_for(lock: list[str], folder: Path) -> dict[str, Path | None]:
    """For each `name==version` of the lock, the best wheel in `folder` this interpreter can install (or None)."""
    rank = {tag: i for i, tag in enumerate(sys_tags())}
    best: dict[tuple[str, Version], tuple[int, Path]] = {}
    for path in folder.glob("*.whl") if folder.is_dir() else ():
        try:
            name, version, _build, tags = parse_wheel_filename(path.name)
        except ValueError:
            continue
        score = min((rank[t] for t in tags if t in rank), default=None)
        if score is not None and ((name, version) not in best or score < best[(name, version)][0]):
            best[(name, version)] = (score, path)
    out: dict[str, Path | None] = {}
    for line in lock:
        req = Requirement(line)
        name = canonicalize_name(req.name)
        hits = [(version, score, path) for (n, version), (score, path) in best.items() if n == name]
        hits = [h for h in hits if req.specifier.contains(h[0], prereleases=True)]
        # the newest matching version, then the most specific tag
        out[line] = max(hits, key=lambda h: (h[0], -h[1]))[2] if hits else None
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extra", action="append", default=["rtsp"], help="framemask extras (default rtsp)")
    parser.add_argument("--requirements-extra", type=Path, default=ROOT / "scripts" / "requirements-extra.txt")
    parser.add_argument("--lock", type=Path, help="a lock written by this script (for --missing / --select)")
    parser.add_argument("--missing", type=Path, metavar="DIR", help="print the lock lines without a wheel in DIR")
    parser.add_argument("--select", type=Path, metavar="DIR", help="print the wheel in DIR of every lock line")
    parser.add_argument("--pin", type=Path, metavar="DIR", help="print name==version of those wheels")
    args = parser.parse_args()
    folder = args.missing or args.select or args.pin
    if folder:
        lines = [ln.strip() for ln in args.lock.read_text().splitlines() if ln.strip()]
        found = wheels_for(lines, folder)
        if args.missing:
            print("\n".join(line for line, path in found.items() if path is None))
            return 0
        absent = [line for line, path in found.items() if path is None]
        if absent:
            sys.exit(f"bundle_lock: no wheel for {', '.join(absent)} in {folder}")
        for path in found.values():
            assert path is not None
            name, version, _build, _tags = parse_wheel_filename(path.name)
            print(path if args.select else f"{name}=={version}")
        return 0
    lock = closure(set(args.extra))
    for line in args.requirements_extra.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            lock[canonicalize_name(req.name)] = f"=={metadata.version(req.name)}"
    for name in sorted(lock):
        print(f"{name}{lock[name]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
