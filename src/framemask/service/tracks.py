"""Tracks: the confirmed detector tracks of a processed video (with their review hints)."""

from __future__ import annotations

from sqlalchemy import select

from framemask.service.context import Services
from framemask.store.models import Track

__all__ = ["list_tracks"]


def list_tracks(services: Services, *, video_id: str) -> list[Track]:
    """The video's numbered tracks, in number order."""
    with services.db.session() as session:
        query = select(Track).where(Track.video_id == video_id, Track.number.is_not(None)).order_by(Track.number)
        return list(session.scalars(query).all())
