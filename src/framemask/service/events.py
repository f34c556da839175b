"""Events of a video's timeline (scenes, presence intervals): list, find one, search by look-alike, replace."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from framemask.errors import NotFoundError
from framemask.events.search import Match, similar_events
from framemask.service.context import Services
from framemask.store.models import Event

__all__ = ["NoEmbeddingError", "get_event", "list_events", "replace_events", "similar"]


class NoEmbeddingError(Exception):
    """The event has no key-frame embedding (its video was processed without one): nothing to compare."""


def list_events(services: Services, *, video_id: str, kind: str | None = None) -> list[Event]:
    """A video's events in timeline order (start frame, kind, id), optionally of one kind."""
    with services.db.session() as session:
        query = select(Event).where(Event.video_id == video_id)
        if kind is not None:
            query = query.where(Event.kind == kind)
        return list(session.scalars(query.order_by(Event.start_seq, Event.kind, Event.id)).all())


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
