"""`api/rsgi.asgi_scope`: the ASGI scope the app sees under `framemask serve` (Granian's RSGI interface).

RSGI scopes are built by Granian's Rust core; these stand-ins carry the same attributes, so the mapping
of each field is checked here and the whole bridge over a real socket in `test_api_server.py`."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from framemask.api.rsgi import asgi_scope


def rsgi_scope(**fields: object) -> SimpleNamespace:
    base: dict[str, object] = {
        "proto": "http",
        "http_version": "1.1",
        "rsgi_version": "1.5",
        "server": "127.0.0.1:8000",
        "client": "127.0.0.1:50000",
        "scheme": "http",
        "method": "GET",
        "path": "/api/videos/a b",
        "query_string": "variant=original&x=%20",
        "headers": {"range": "bytes=0-9", "authorization": "Bearer t"},
        "authority": None,
    }
    return SimpleNamespace(**{**base, **fields})


def test_fields_map_to_asgi() -> None:
    scope = asgi_scope(rsgi_scope())  # type: ignore[arg-type]
    assert scope["type"] == "http" and scope["asgi"]["version"] == "3.0"
    assert scope["method"] == "GET" and scope["scheme"] == "http" and scope["root_path"] == ""
    assert scope["path"] == "/api/videos/a b"  # Granian decoded it; decoding again would turn %2525 into %
    assert "raw_path" not in scope
    assert scope["query_string"] == b"variant=original&x=%20"
    assert scope["headers"] == [(b"range", b"bytes=0-9"), (b"authorization", b"Bearer t")]
    assert scope["client"] == ("127.0.0.1", 50000) and scope["server"] == ("127.0.0.1", 8000)
    assert scope["extensions"] == {"http.response.pathsend": {}}


@pytest.mark.parametrize(("rsgi", "asgi"), [("1", "1.0"), ("1.1", "1.1"), ("2", "2")])
def test_http_versions(rsgi: str, asgi: str) -> None:
    assert asgi_scope(rsgi_scope(http_version=rsgi))["http_version"] == asgi  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("client", "expected"),
    [("[::1]:5000", ("::1", 5000)), ("::1:5000", ("::1", 5000)), ("10.0.0.2:1", ("10.0.0.2", 1)), ("unix", None)],
)
def test_client_addresses(client: str, expected: tuple[str, int] | None) -> None:
    assert asgi_scope(rsgi_scope(client=client))["client"] == expected  # type: ignore[arg-type]


def test_each_request_gets_its_own_state() -> None:
    first, second = asgi_scope(rsgi_scope()), asgi_scope(rsgi_scope())  # type: ignore[arg-type]
    first["state"]["x"] = 1
    assert second["state"] == {}
