"""docs/service.md claims to list every endpoint: hold it to that against the app's own OpenAPI document."""

from __future__ import annotations

import re
from pathlib import Path

from support.api import make_settings

from framemask.api.app import create_app

SERVICE_MD = Path(__file__).resolve().parents[2] / "docs" / "service.md"
_METHODS = {"get", "put", "post", "patch", "delete", "head"}
_PARAM = re.compile(r"\{[^}]*\}")
_VERB = "(?:GET|PUT|POST|PATCH|DELETE|HEAD)"
_CELL = re.compile(rf"`({_VERB}(?:(?:\\\||/|\|){_VERB})*) ([^`]+)`")


def _documented() -> set[tuple[str, str]]:
    """(method, path) of every backticked `METHOD /path` in the document: `GET/PUT`, `GET\\|HEAD` and
    `A, B` lists expand; query strings, `[optional]` parts and `(multipart ...)` notes are cut."""
    found: set[tuple[str, str]] = set()
    for methods, rest in _CELL.findall(SERVICE_MD.read_text()):
        path = _PARAM.sub("{}", re.split(r"[?\[ ]", rest.strip(), maxsplit=1)[0])
        for method in re.split(r"\\\||/|\|", methods):
            found.add((method.lower(), path))
    return found


def _routes(tmp_path: Path) -> set[tuple[str, str]]:
    """(method, path) of the app's OpenAPI document, path parameters written `{}`."""
    spec = create_app(make_settings(tmp_path)).openapi()
    return {(m, _PARAM.sub("{}", p)) for p, ops in spec["paths"].items() for m in ops if m in _METHODS}


def test_every_api_route_is_documented(tmp_path: Path) -> None:
    routes = _routes(tmp_path)
    assert routes, "the app has no routes"
    missing = sorted(f"{m.upper()} {p}" for m, p in routes - _documented())
    assert not missing, f"docs/service.md does not list: {missing}"


def test_documented_routes_exist(tmp_path: Path) -> None:
    # HEAD (served with GET) and /healthz (outside the schema) are not in the OpenAPI document
    listed = {(m, p) for m, p in _documented() if m != "head" and p.startswith("/api")}
    stale = sorted(f"{m.upper()} {p}" for m, p in listed - _routes(tmp_path))
    assert not stale, f"docs/service.md lists endpoints the app does not have: {stale}"
