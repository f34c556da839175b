"""Events like a given one: nearest key-frame embeddings (cosine), optionally filtered.

PostgreSQL with pgvector (migration 0005 made `event.embedding` a `vector(256)` with an HNSW index): the
database orders by `embedding <=> query` (with pgvector 0.8's iterative index scan, so filters do not
starve the result). Anywhere else (SQLite, PostgreSQL without pgvector: a JSON column) the embeddings of
the rows that pass the filters are read in batches and ranked by brute force in numpy.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from sqlalchemy import Float, Select, exists, func, select, text
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from framemask.store.models import Event

__all__ = ["Match", "cosine_top_k", "embedding_is_vector", "similar_events"]

_BATCH = 2000
_Query = TypeVar("_Query", bound="Select[*tuple[Any, ...]]")
_vector_columns: dict[str, bool] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class Match:
    event: Event
    distance: float
    """Cosine distance to the query event (0: identical direction, 2: opposite)."""


def embedding_is_vector(session: Session) -> bool:
    """Whether `event.embedding` is a pgvector column on this database (checked once per database URL)."""
    bind = session.get_bind()
    if bind.dialect.name != "postgresql":
        return False
    key = bind.engine.url.render_as_string(hide_password=True)
    with _lock:
        if key in _vector_columns:
            return _vector_columns[key]
    kind = session.execute(
        text(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = 'event'::regclass AND attname = 'embedding'"
        )
    ).scalar()
    with _lock:
        _vector_columns[key] = str(kind).startswith("vector")
        return _vector_columns[key]


def _has_tag(session: Session, tag: str) -> ColumnElement[bool]:
    """The event's `tags` list holds an entry with this label (JSON functions of the dialect)."""
    if session.get_bind().dialect.name == "postgresql":
        elements = func.json_array_elements(Event.tags).table_valued("value").alias("tag")
        return exists(select(1).select_from(elements).where(elements.c.value.op("->>")("label") == tag))
    elements = func.json_each(Event.tags).table_valued("value").alias("tag")
    return exists(select(1).select_from(elements).where(func.json_extract(elements.c.value, "$.label") == tag))


def _filtered(
    session: Session,
    query: _Query,
    exclude: int,
    video: str | None,
    tag: str | None,
    min_people: int | None,
) -> _Query:
    query = query.where(Event.embedding.is_not(None), Event.id != exclude)
    if video is not None:
        query = query.where(Event.video_id == video)
    if tag is not None:
        query = query.where(_has_tag(session, tag))
    if min_people is not None:
        query = query.where(func.coalesce(Event.people, 0) >= min_people)
    return query


def cosine_top_k(query: np.ndarray, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the `k` rows of `vectors` nearest to `query` by cosine distance, and their distances."""
    if len(vectors) == 0 or k <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float64)
    q = np.asarray(query, np.float64)
    v = np.asarray(vectors, np.float64)
    sims = v @ q / np.maximum(np.linalg.norm(v, axis=1) * np.linalg.norm(q), 1e-12)
    k = min(k, len(sims))
    top = np.argpartition(-sims, k - 1)[:k]
    top = top[np.lexsort((top, -sims[top]))]
    return top, 1.0 - sims[top]


def similar_events(
    session: Session,
    like: Event,
    k: int = 10,
    *,
    video: str | None = None,
    tag: str | None = None,
    min_people: int | None = None,
) -> list[Match]:
    """`like` itself (distance 0), then the `k - 1` events nearest to it that pass the filters, nearest first
    (ties by id). `like` must have an embedding."""
    if like.embedding is None:
        raise ValueError(f"event {like.id} has no embedding")
    out = [Match(like, 0.0)]
    want = k - 1
    if want <= 0:
        return out
    if embedding_is_vector(session):
        literal = "[" + ",".join(repr(float(v)) for v in like.embedding) + "]"
        distance = Event.embedding.op("<=>", return_type=Float())(text("CAST(:q AS vector)"))
        query = _filtered(session, select(Event, distance.label("distance")), like.id, video, tag, min_people)
        query = query.order_by(distance, Event.id).limit(want)
        with session.begin_nested():
            session.execute(text("SET LOCAL hnsw.iterative_scan = strict_order"))
            rows = session.execute(query, {"q": literal}).all()
        return out + [Match(row[0], float(row[1])) for row in rows]
    return out + _brute_force(session, like, want, video, tag, min_people)


def _brute_force(
    session: Session, like: Event, want: int, video: str | None, tag: str | None, min_people: int | None
) -> list[Match]:
    query = _filtered(session, select(Event.id, Event.embedding), like.id, video, tag, min_people).order_by(Event.id)
    q = np.asarray(like.embedding, np.float64)
    best_ids: list[int] = []
    best_d: list[float] = []
    for batch in session.execute(query.execution_options(yield_per=_BATCH)).partitions(_BATCH):
        ids = [row[0] for row in batch]
        vectors = np.asarray([row[1] for row in batch], np.float64).reshape(len(ids), -1)
        top, dist = cosine_top_k(q, vectors, want)
        pool_ids = best_ids + [ids[i] for i in top]
        pool_d = best_d + dist.tolist()
        order = sorted(range(len(pool_ids)), key=lambda i: (pool_d[i], pool_ids[i]))[:want]
        best_ids, best_d = [pool_ids[i] for i in order], [pool_d[i] for i in order]
    events = {e.id: e for e in session.scalars(select(Event).where(Event.id.in_(best_ids)))} if best_ids else {}
    return [Match(events[i], d) for i, d in zip(best_ids, best_d, strict=True)]
