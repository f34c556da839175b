"""The event-timeline step of processing (SPEC §5, seed 002): scenes and people-present intervals of the
processed video, each key frame as a JPEG in the thumbnails bucket, and the rows of the `event` table.

Key frames are cut from the PROCESSED video, so a thumbnail never shows more than the masked frame does.
Thumbnails live under the video's key prefix (a video delete removes them); a retried job first removes
what an earlier attempt wrote, and `replace_events` swaps the rows in the job's final transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, insert
from sqlalchemy.orm import Session
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from framemask.errors import FramemaskError, StorageError
from framemask.media import FrameIndex, FrameReader
from framemask.store.layout import thumbnail_key, video_prefix
from framemask.store.models import Event as EventRow
from framemask.store.objects import ObjectStore, delete_prefix

if TYPE_CHECKING:
    from framemask.events import Describer, Event

__all__ = ["EVENTS_END", "EVENTS_START", "events_prefix", "replace_events", "store_events"]

Report = Callable[[float, str], None]

EVENTS_START = 90.0  # job percent when the step starts (the pipeline ends its render at 90 %)
EVENTS_END = 98.0  # ... and when every thumbnail is stored
_EXTRACTED = 95.0  # scenes and presence found, thumbnails next
THUMBNAIL_WIDTH = 320


def events_prefix(video_id: str) -> str:
    """Key prefix of a video's event thumbnails (inside its video prefix, so deletes cover it)."""
    return f"{video_prefix(video_id)}events/"


def event_thumbnail_key(video_id: str, number: int, event: Event) -> str:
    return thumbnail_key(video_id, f"events/{number:04d}-{event.kind}-{event.key_seq}.jpg")


@retry(
    retry=retry_if_exception_type(StorageError),
    wait=wait_exponential(multiplier=0.5, max=8),
    stop=stop_after_attempt(4),
    reraise=True,
)
def _put_bytes(store: ObjectStore, bucket: str, key: str, data: bytes) -> None:
    with store.open_write(bucket, key) as fh:
        fh.write(data)


def store_events(
    store: ObjectStore,
    bucket: str,
    video_id: str,
    processed: Path,
    boxes: dict[str, Any] | None,
    *,
    report: Report | None = None,
    describer: Describer | None = None,
    index: FrameIndex | None = None,
) -> list[dict[str, Any]]:
    """Extract the events of `processed`, store their key frames in `bucket`; returns the `event` rows.

    `index` is the processed master's frame index when the caller has it (processing does); it is built
    from `processed` only when not given."""
    from framemask.events import extract_events, keyframe_jpeg  # scene detection loads OpenCV: only in workers

    say = report or (lambda _pct, _stage: None)
    say(EVENTS_START, "events")
    index = index if index is not None else FrameIndex.build(processed)
    if boxes is not None and int(boxes["endSequence"]) != index.end_sequence:
        raise FramemaskError(f"boxes cover {boxes['endSequence']} frames, the processed video {index.end_sequence}")
    events = extract_events(processed, boxes=boxes, index=index, describer=describer)
    say(_EXTRACTED, "events")
    delete_prefix(store, bucket, events_prefix(video_id))  # a retry must not leave an earlier attempt's files
    rows = []
    with FrameReader(processed, index) as reader:
        for number, event in enumerate(events, start=1):
            key = event_thumbnail_key(video_id, number, event)
            _put_bytes(store, bucket, key, keyframe_jpeg(reader, event.key_seq, THUMBNAIL_WIDTH))
            rows.append(_row(video_id, event, key))
            say(_EXTRACTED + (EVENTS_END - _EXTRACTED) * number / len(events), "events")
    return rows


def _row(video_id: str, event: Event, key: str) -> dict[str, Any]:
    return {
        "video_id": video_id,
        "kind": event.kind,
        "start_seq": event.start_seq,
        "end_seq": event.end_seq,
        "start_ms": round(float(event.start_ms), 3),
        "end_ms": round(float(event.end_ms), 3),
        "key_seq": event.key_seq,
        "key_ms": round(float(event.key_ms), 3),
        "description": event.description,
        "thumbnail_key": key,
    }  # `embedding` stays NULL: no offline captioning/embedding model is used (and pgvector is not required)


def replace_events(session: Session, video_id: str, rows: list[dict[str, Any]]) -> None:
    """The video's events become exactly `rows` (inside the caller's transaction)."""
    session.execute(delete(EventRow).where(EventRow.video_id == video_id))
    if rows:
        session.execute(insert(EventRow), rows)
