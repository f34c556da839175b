"""Fuzzing the real service from its own OpenAPI document, and a property of corrections validation.

- schemathesis generates valid and invalid requests for every operation of `/openapi.json` and sends
  them to `framemask serve` (a real uvicorn process on loopback, embedded default, one processed video)
  as each role (admin, editor, viewer): no answer may be a 5xx. Path ids are mostly the real video's and
  job's, so the generated queries and bodies reach the code behind the 404. The in-suite run is short;
  `FRAMEMASK_FUZZ_EXAMPLES=500 pytest tests/api/test_api_fuzz.py` runs it as a long benchmark-style job.
- hypothesis: any JSON sent as a corrections document either validates to a revision whose boxes read
  back without error, or is refused with 422 and no revision is stored.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import zlib
from collections import Counter
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from sqlalchemy import func, select
from support.api import ADMIN, auth, make_settings, new_token, service, settings_env, stop_process, wait_for
from support.servers import free_port

from framemask.store.models import Revision

ROLES = ("admin", "editor", "viewer")
EXAMPLES = int(os.environ.get("FRAMEMASK_FUZZ_EXAMPLES", "4"))
"""Examples per operation, per generation mode (valid / invalid) and role."""
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=not os.environ.get("FRAMEMASK_FUZZ_EXAMPLES"),
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
PROTECTED_TOKEN_IDS = 10
"""The first token ids (the admin seed and the fuzzers' own tokens) are never revoked by the fuzzer."""


def _wait_healthy(base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, make):
    root = tmp_path_factory.mktemp("fuzz")
    settings_ = make_settings(root / "data", max_upload_mb=2)
    port = free_port()
    log_path = root / "serve.log"
    cli = Path(sys.executable).with_name("framemask")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(cli), "serve", "--port", str(port), "--log-level", "warning"],
            env=settings_env(settings_),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base, proc, log_path)
        with httpx.Client(base_url=base, headers=auth(ADMIN), timeout=60) as http, open(make("cfr"), "rb") as fh:
            created = http.post("/api/videos", files={"file": ("cfr.mp4", fh, "video/mp4")})
            assert created.status_code == 201, created.text
            vid, job = created.json()["id"], created.json()["job_id"]
            deadline = time.monotonic() + 240
            while http.get(f"/api/videos/{vid}").json()["status"] not in ("ready", "failed"):
                assert time.monotonic() < deadline
                time.sleep(0.2)
            tokens = {"admin": ADMIN}
            for role in ("editor", "viewer"):
                resp = http.post("/api/tokens", json={"role": role, "name": f"fuzz {role}"})
                assert resp.status_code == 201, resp.text
                tokens[role] = resp.json()["token"]
        yield base, {"video_id": vid, "job_id": job}, tokens, log_path
    finally:
        stop_process(proc)


def _aim(case, ids: dict[str, str]) -> None:
    """Point most cases at the real video/job (random ids only test the 404); never delete the video or
    revoke the tokens the fuzzer itself uses."""
    params = case.path_parameters or {}
    method = case.method.upper()
    for name in ("video_id", "job_id"):
        deleting = method == "DELETE" and name == "video_id"
        if name in params and not deleting and zlib.crc32(repr(sorted(params.items())).encode()) % 4:
            params[name] = ids[name]
    if method == "DELETE" and "token_id" in params:
        value = params["token_id"]
        if isinstance(value, int) and 0 < value <= PROTECTED_TOKEN_IDS:
            params["token_id"] = 2**62


def _fuzz(operation, mode: GenerationMode, base: str, token: str, ids: dict[str, str], seen: Counter[int]) -> list[str]:
    """Send `EXAMPLES` generated requests of one operation; the 5xx answers (and dropped connections)."""
    failures: list[str] = []

    @SETTINGS
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case) -> None:
        _aim(case, ids)
        where = f"{case.method} {case.formatted_path} query={case.query} body={str(case.body)[:200]!r}"
        try:
            response = case.call(base_url=base, headers=auth(token), timeout=30)
        except Exception as exc:  # a dropped connection is as bad as a 500
            failures.append(f"{where}: {type(exc).__name__}: {exc}")
            return
        seen[response.status_code] += 1
        if response.status_code >= 500:
            failures.append(f"{where} -> {response.status_code} {response.text[:200]}")

    run()
    return failures


@pytest.mark.parametrize("role", ROLES)
def test_no_operation_answers_5xx(server, role: str) -> None:
    base, ids, tokens, log_path = server
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    failures: list[str] = []
    statuses: Counter[int] = Counter()
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            failures += _fuzz(operation, mode, base, tokens[role], ids, statuses)
    calls = sum(statuses.values())
    print(f"fuzz {role}: {calls} requests, {len(operations)} operations, statuses {dict(sorted(statuses.items()))}")
    assert not failures, "\n".join(failures[:20]) + "\n" + log_path.read_text()[-4000:]
    assert calls >= len(operations) * 2
    assert httpx.get(f"{base}/healthz").json()["status"] == "ok"


# --- corrections validation as a property ------------------------------------------------------------------------

_plausible = st.one_of(st.integers(0, 400), st.floats(0, 400))
_numbers = st.one_of(
    _plausible,
    _plausible,
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, 1, 5, 90, 91, -1, 0.5, 1e308, -1e308, 65536, 65537, 1e-300]),
)
_seqs = st.one_of(st.integers(min_value=-3, max_value=95).map(str), st.sampled_from(["x", "1e3", "", "99999999999"]))
_rect = st.fixed_dictionaries(
    {"x": _numbers, "y": _numbers, "width": _numbers, "height": _numbers},
    optional={"extra": st.just(1)},
)
_box = st.fixed_dictionaries(
    {"x1": _numbers, "x2": _numbers, "y1": _numbers, "y2": _numbers},
    optional={"label": st.sampled_from(["person", "face", None, 3])},
)
_keybox = st.fixed_dictionaries(
    {"seq": st.integers(-1, 95), "x": _numbers, "y": _numbers, "width": _numbers, "height": _numbers}
)
_track = st.fixed_dictionaries(
    {"id": st.text(max_size=5), "keyframes": st.lists(_keybox, max_size=3)},
    optional={"label": st.sampled_from(["manual", "face", "Bad Label"])},
)
_json_leaf = st.one_of(st.none(), st.booleans(), _numbers, st.text(max_size=8))
_anything = st.recursive(
    _json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
_documents = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "drawnRectangles": st.dictionaries(_seqs, st.lists(_rect, max_size=3), max_size=3),
            "excluded": st.dictionaries(_seqs, st.lists(_box, max_size=2), max_size=2),
            "excludedTracks": st.lists(st.one_of(st.integers(-5, 2**64), st.text(max_size=3)), max_size=3),
            "tracks": st.lists(_track, max_size=2),
            "note": st.one_of(st.text(max_size=20), st.integers()),
        },
    ),
    _anything,
)  # fmt: skip


@pytest.fixture(scope="module")
def corrections_svc(tmp_path_factory: pytest.TempPathFactory, make):
    settings_ = make_settings(tmp_path_factory.mktemp("fuzz-corrections") / "data", workers=1)
    with service(settings_) as client:
        resp = client.post(
            "/api/videos", files={"file": ("cfr.mp4", make("cfr").read_bytes(), "video/mp4")}, headers=auth(ADMIN)
        )
        assert resp.status_code == 201, resp.text
        video = wait_for(client, resp.json()["id"])
        assert video["status"] == "ready", video
        yield client, video["id"], new_token(client, "editor"), new_token(client, "viewer")


def _revisions(client, vid: str) -> int:
    with client.app.state.services.db.session() as session:
        return int(session.scalar(select(func.count()).where(Revision.video_id == vid)) or 0)


def test_any_corrections_json_validates_and_renders_or_is_refused(corrections_svc) -> None:
    client, vid, editor, viewer = corrections_svc
    outcomes: Counter[int] = Counter()

    @settings(
        max_examples=max(EXAMPLES * 15, 60), deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(doc=_documents)
    def check(doc) -> None:
        before = _revisions(client, vid)
        resp = client.put(f"/api/videos/{vid}/corrections", json=doc, headers=auth(editor))
        outcomes[resp.status_code] += 1
        if resp.status_code == 200:
            assert _revisions(client, vid) == before + 1
            number = resp.json()["revision"]["number"]
            boxes = client.get(f"/api/videos/{vid}/boxes", headers=auth(viewer))
            assert boxes.status_code == 200 and boxes.json()["revision"] == number, boxes.text
            frames = client.get(f"/api/videos/{vid}/frames", headers=auth(viewer))
            assert frames.status_code == 200 and len(frames.json()["sequence"]) == 90, frames.text
            for frame in boxes.json()["frames"]:
                for box in frame["boxes"]:
                    assert 0 <= box["x1"] < box["x2"] <= 320 and 0 <= box["y1"] < box["y2"] <= 240, box
            saved = client.get(f"/api/videos/{vid}/corrections", headers=auth(editor)).json()
            assert saved["revision"]["number"] == number
        else:
            assert resp.status_code == 422, (doc, resp.status_code, resp.text)
            assert _revisions(client, vid) == before

    check()
    print(f"corrections property: {sum(outcomes.values())} documents, statuses {dict(sorted(outcomes.items()))}")
    assert outcomes[200] > 0 and outcomes[422] > 0, outcomes
