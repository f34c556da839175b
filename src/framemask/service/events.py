"""Events of a video's timeline (scenes, presence intervals): list, find one, search by look-alike, replace."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from framemask.errors import NotFoundError
from framemask.events.search import Match, similar_events
from framemask.service.context import Services
from framemask.store.models import Event, Video

__all__ = ["NoEmbeddingError", "get_event", "list_events", "replace_events", "similar", "swap_events"]


class NoEmbeddingError(Exception):
    """The event has no key-frame embedding (its video was processed without one): nothing to compare."""


def list_events(services: Services, *, video_id: str, kind: str | None = None, by_kind: bool = True) -> list[Event]:
    """A video's events in timeline order (start frame, then kind unless `by_kind` is False, then id),
    optionally of one kind."""
    with services.db.session() as session:
        query = select(Event).where(Event.video_id == video_id)
        if kind is not None:
            query = query.where(Event.kind == kind)
        order = (Event.start_seq, Event.kind, Event.id) if by_kind else (Event.start_seq, Event.id)
        return list(session.scalars(query.order_by(*order)).all())


def get_event(services: Services, *, event_id: int) -> Event | None:
    with services.db.session() as session:
        return session.get(Event, event_id)


def similar(
    services: Services,
    *,
    like: int,
    k: int,
    video: str | None = None,
    tag: str | None = None,
    min_people: int | None = None,
) -> list[Match]:
    """Events whose key frames look like event `like`'s, nearest first (`like` itself first).

    NotFoundError for an unknown event, `NoEmbeddingError` for one without an embedding."""
    with services.db.session() as session:
        event = session.get(Event, like)
        if event is None:
            raise NotFoundError(f"no event {like}")
        if event.embedding is None:
            raise NoEmbeddingError(f"event {like} has no embedding (processed without one)")
        return similar_events(session, event, k, video=video, tag=tag, min_people=min_people)


def replace_events(session: Session, *, video_id: str, rows: list[dict[str, Any]]) -> None:
    """The video's events become exactly `rows` (inside the caller's transaction)."""
    session.execute(delete(Event).where(Event.video_id == video_id))
    if rows:
        session.execute(insert(Event), rows)


def swap_events(session: Session, *, video_id: str, plan: list[tuple[int | None, dict[str, Any]]]) -> set[str] | None:
    """Make the video's events exactly `plan` (row id to keep and update, or None for a new row; its values),
    inside the caller's transaction; returns the thumbnail keys no row uses any more (None: video deleted)."""
    if session.get(Video, video_id) is None:
        return None
    current = dict(session.execute(select(Event.id, Event.thumbnail_key).where(Event.video_id == video_id)).all())
    stale = {k for k in current.values() if k} - {v["thumbnail_key"] for _, v in plan}
    keep = {i for i, _ in plan if i is not None and i in current}
    session.execute(delete(Event).where(Event.video_id == video_id, Event.id.not_in(keep)))
    for row_id, values in plan:
        if row_id in keep:
            session.execute(update(Event).where(Event.id == row_id).values(**values))
    fresh = [values for row_id, values in plan if row_id not in keep]
    if fresh:
        session.execute(insert(Event), fresh)
    return stale
