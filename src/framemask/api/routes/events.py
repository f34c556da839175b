"""A video's event timeline (SPEC §5): scenes and people-present intervals with key-frame thumbnails, tags
(people from the tracks, other COCO classes NanoDet sees) and search for similar events by key-frame embedding.

Thumbnails are cut from the processed video, so every role may see them. The listing hands out
short-lived URLs: presigned S3 URLs, or (local storage) this API's own signed thumbnail URLs, which bind
video, event, expiry and the issuing token like the signed stream URLs do.
"""

from __future__ import annotations

import time
from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, field_validator

from framemask.api.deps import (
    CurrentUser,
    DbId,
    ServicesDep,
    SignedRequestDep,
    VideoDep,
    VideoId,
    require_ready,
    signed_or_bearer_principal,
    signing_key,
)
from framemask.api.hardening import MAX_DB_INT
from framemask.api.signing import sign_stream
from framemask.service import events as service_events
from framemask.service.auth import Principal
from framemask.service.context import Services
from framemask.store.models import Event

__all__ = ["router"]

router = APIRouter(tags=["events"])

EventKind = Literal["scene", "presence"]


class EventTag(BaseModel):
    label: str = Field(description="COCO class name (`person`, `car`, `bicycle`, ...)")
    peak: int = Field(description="most of them on one frame")
    count: int | None = Field(None, description="distinct tracks (people only)")


class EventPublic(BaseModel):
    """One event; times are ms from the first frame, seqs 1-based, `key_*` is the thumbnail's frame."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    video_id: str
    kind: str
    start_seq: int
    end_seq: int
    start_ms: float
    end_ms: float = Field(description="end of the last frame (start of the next one)")
    key_seq: int | None
    key_ms: float | None
    description: str | None
    tags: list[EventTag] = Field(default_factory=list, description="people (from the tracks) and other COCO classes")
    people: int | None = Field(None, description="distinct people (tracks) of the event")
    thumbnail_key: str | None
    thumbnail_url: str | None = Field(None, description="short-lived URL of the key-frame JPEG")

    @field_validator("tags", mode="before")
    @classmethod
    def _no_tags(cls, value: object) -> object:
        return [] if value is None else value


class EventMatch(EventPublic):
    distance: float = Field(0.0, description="cosine distance of the key-frame embeddings to the query event (0: same)")


class EventSearch(BaseModel):
    like: int
    expires_in: int = Field(description="seconds the thumbnail URLs stay valid")
    events: list[EventMatch] = Field(description="the query event first, then the nearest events, nearest first")


class EventList(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    video_id: str
    end_sequence: int | None = Field(serialization_alias="endSequence")
    expires_in: int = Field(description="seconds the thumbnail URLs stay valid")
    events: list[EventPublic]


def _resource(event_id: int) -> str:
    """What a thumbnail signature covers besides the video (never a valid stream variant)."""
    return f"event-thumbnail/{event_id}"


def _thumbnail_url(request: Request, services: Services, event: Event, token_id: int | None) -> str | None:
    if event.thumbnail_key is None:
        return None
    seconds = services.settings.signed_url_seconds
    presigned = services.store.presign_get(services.settings.bucket_thumbnails, event.thumbnail_key, seconds)
    if presigned is not None:
        return presigned
    expires = int(time.time()) + seconds
    params: dict[str, int | str] = {
        "expires": expires,
        "signature": sign_stream(signing_key(request), event.video_id, _resource(event.id), expires, token_id),
    }
    if token_id is not None:
        params["tid"] = token_id
    path = request.url_for("event_thumbnail", video_id=event.video_id, event_id=event.id).path
    return f"{path}?{urlencode(params)}"


@router.get("/api/videos/{video_id}/events", response_model=EventList, response_model_by_alias=True)
def list_events(
    request: Request,
    video: VideoDep,
    services: ServicesDep,
    user: CurrentUser,
    kind: EventKind | None = None,
) -> EventList:
    """Scenes and presence intervals in timeline order, each with a short-lived key-frame thumbnail URL."""
    require_ready(video)
    rows = service_events.list_events(services, video_id=video.id, kind=kind)
    events = [
        EventPublic.model_validate(row).model_copy(
            update={"thumbnail_url": _thumbnail_url(request, services, row, user.token_id)}
        )
        for row in rows
    ]
    return EventList(
        video_id=video.id,
        end_sequence=video.end_sequence,
        expires_in=services.settings.signed_url_seconds,
        events=events,
    )


@router.get("/api/events/search", response_model=EventSearch)
def search_events(
    request: Request,
    services: ServicesDep,
    user: CurrentUser,
    like: Annotated[int, Query(ge=1, le=MAX_DB_INT, description="id of the event to find others like")],
    k: Annotated[int, Query(ge=1, le=100, description="how many events, the query event included")] = 10,
    video: Annotated[str | None, Query(pattern=r"^[0-9a-f]{32}$", description="only this video's events")] = None,
    tag: Annotated[str | None, Query(max_length=40, description="only events with this tag (e.g. car)")] = None,
    min_people: Annotated[int | None, Query(ge=0, le=10000, description="only events with this many people")] = None,
) -> EventSearch:
    """Events whose key frames look like event `like`'s (cosine distance of the pooled detector features),
    nearest first; `like` itself always comes first. Filters apply to the others. Every role may search."""
    try:
        matches = service_events.similar(services, like=like, k=k, video=video, tag=tag, min_people=min_people)
    except service_events.NoEmbeddingError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    events = [
        EventMatch.model_validate(m.event).model_copy(
            update={
                "distance": round(max(m.distance, 0.0), 6),
                "thumbnail_url": _thumbnail_url(request, services, m.event, user.token_id),
            }
        )
        for m in matches
    ]
    return EventSearch(like=like, expires_in=services.settings.signed_url_seconds, events=events)


def thumbnail_principal(video_id: VideoId, event_id: DbId, signed: SignedRequestDep) -> Principal:
    """A bearer token, or a valid signature (issued by the events listing) for this exact thumbnail."""
    return signed_or_bearer_principal(signed, video_id, _resource(event_id), "thumbnail")


@router.get(
    "/api/videos/{video_id}/events/{event_id}/thumbnail",
    name="event_thumbnail",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}, "description": "the event's key frame (processed video)"}},
)
def event_thumbnail(
    video_id: VideoId,
    event_id: DbId,
    services: ServicesDep,
    _user: Annotated[Principal, Depends(thumbnail_principal)],
) -> Response:
    """The key-frame JPEG of one event (bearer token, or the signed URL from the listing)."""
    event = service_events.get_event(services, event_id=event_id)
    if event is None or event.video_id != video_id or event.thumbnail_key is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"video {video_id} has no event {event_id} with a thumbnail")
    with services.store.open_read(services.settings.bucket_thumbnails, event.thumbnail_key) as fh:
        body = fh.read()
    return Response(body, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=300"})
