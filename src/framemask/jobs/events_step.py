"""The event-timeline step of processing (SPEC §5, seed 002): scenes and people-present intervals of the
processed video, each key frame as a JPEG in the thumbnails bucket, and the rows of the `event` table.

Key frames are cut from the PROCESSED video, so a thumbnail never shows more than the masked frame does.
Thumbnails live under the video's key prefix (a video delete removes them); a retried job first removes
what an earlier attempt wrote, and `replace_events` swaps the rows in the job's final transaction.

Each event carries tags (people from the tracks, other COCO classes NanoDet sees in frames sampled from its
span), its people count and its key frame's embedding (`framemask.events.tags`). After a re-render,
`events_after_render` recomputes the events of the changed spans from the new final and the effective
boxes; their thumbnails come from the final, so a region added in the editor is masked in them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

from framemask.errors import FramemaskError, StorageError
from framemask.events import Describer, Event, extract_events, keyframe_jpeg, refresh_events
from framemask.events.tags import Analyzer, default_analyzer, tags_from_json
from framemask.jobs.run import TaskRun, put_bytes
from framemask.media import FrameIndex, FrameReader
from framemask.redact.corrections import EffectiveBoxes
from framemask.service import events as service_events
from framemask.service.context import Services
from framemask.store.layout import load_index, local_copy, save_index, sidecar_index_key, thumbnail_key, video_prefix
from framemask.store.models import Event as EventRow
from framemask.store.models import Video
from framemask.store.objects import ObjectStore, delete_prefix

__all__ = ["EVENTS_END", "EVENTS_START", "events_after_render", "events_prefix", "replace_events", "store_events"]

Report = Callable[[float, str], None]
log = logging.getLogger(__name__)

EVENTS_START = 90.0  # job percent when the step starts (the pipeline ends its render at 90 %)
EVENTS_END = 98.0  # ... and when every thumbnail is stored
_EXTRACTED = 95.0  # scenes and presence found, thumbnails next
THUMBNAIL_WIDTH = 320


def events_prefix(video_id: str) -> str:
    """Key prefix of a video's event thumbnails (inside its video prefix, so deletes cover it)."""
    return f"{video_prefix(video_id)}events/"


def _tagger(analyzer: Analyzer | str | None) -> Analyzer | None:
    """The analyzer to tag events with: the prepared NanoDet for "default", else the one given (None: none)."""
    if isinstance(analyzer, str):
        if analyzer != "default":
            raise ValueError(f"unknown analyzer {analyzer!r}")
        return default_analyzer()
    return analyzer


def event_thumbnail_key(video_id: str, number: int, event: Event) -> str:
    return thumbnail_key(video_id, f"events/{number:04d}-{event.kind}-{event.key_seq}.jpg")


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
    analyzer: Analyzer | str | None = "default",
    original: Path | None = None,
    original_index: FrameIndex | None = None,
) -> list[dict[str, Any]]:
    """Extract the events of `processed`, store their key frames in `bucket`; returns the `event` rows.

    `index` is the processed master's frame index when the caller has it (processing does); it is built
    from `processed` only when not given. `analyzer` tags events and embeds key frames: by default the
    prepared NanoDet (`default_analyzer`); None leaves tags to the tracks and embeddings empty. Object tags are
    read from `original` when given (same frames; masks next to an object can hide it in the processed
    video), else from `processed`; embeddings always come from the processed key frames."""
    say = report or (lambda _pct, _stage: None)
    say(EVENTS_START, "events")
    index = index if index is not None else FrameIndex.build(processed)
    if boxes is not None and int(boxes["endSequence"]) != index.end_sequence:
        raise FramemaskError(f"boxes cover {boxes['endSequence']} frames, the processed video {index.end_sequence}")
    tagger = _tagger(analyzer)
    events = extract_events(
        processed,
        boxes=boxes,
        index=index,
        describer=describer,
        analyzer=tagger,
        tag_path=original,
        tag_index=original_index,
    )
    say(_EXTRACTED, "events")
    delete_prefix(store, bucket, events_prefix(video_id))  # a retry must not leave an earlier attempt's files
    rows = []
    with FrameReader(processed, index) as reader:
        for number, event in enumerate(events, start=1):
            key = event_thumbnail_key(video_id, number, event)
            put_bytes(store, bucket, key, keyframe_jpeg(reader, event.key_seq, THUMBNAIL_WIDTH))
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
        "tags": [t.to_json() for t in event.tags],
        "people": max(event.people, event.peak_count),
        "embedding": list(event.embedding) if event.embedding is not None else None,
    }


def replace_events(session: Session, video_id: str, rows: list[dict[str, Any]]) -> None:
    """The video's events become exactly `rows` (inside the caller's transaction; `service.events`)."""
    service_events.replace_events(session, video_id=video_id, rows=rows)


# --- after a re-render -----------------------------------------------------------------------------------------


def _previous_event(row: EventRow) -> Event:
    tags = tags_from_json(row.tags)
    person = next((t for t in tags if t.label == "person"), None)
    return Event(
        kind=row.kind,
        start_seq=row.start_seq,
        end_seq=row.end_seq,
        start_ms=row.start_ms,
        end_ms=row.end_ms,
        key_seq=row.key_seq or row.start_seq,
        key_ms=row.key_ms or row.start_ms,
        peak_count=person.peak if person else 0,
        people=(person.count or 0) if person else 0,
        description=row.description or "",
        tags=tags,
        embedding=tuple(row.embedding) if row.embedding is not None else None,
    )


def events_after_render(
    run: TaskRun,
    video: Video,
    final: Path,
    final_key: str,
    boxes: EffectiveBoxes,
    changed: Iterable[int],
    finalize: Callable[[Session], None],
    *,
    analyzer: Analyzer | str | None = "default",
) -> Callable[[Session], None]:
    """The re-render job's last step: the events of the spans a correction changed, recomputed from the new
    `final` (stored at `final_key`) and the effective `boxes`; returns `finalize` extended to swap the rows.

    Scenes keep their spans; presence intervals are recomputed from the effective boxes (excluded boxes do
    not count, a split or deleted track changes them). An event whose span holds a changed frame, or that is
    new, gets new tags (objects from the original), a new embedding and a new thumbnail cut from the final;
    the others keep theirs.
    Rows keep their ids where the event (kind and span) survives. Thumbnails the new rows no longer use are
    deleted after the commit. The final's frame index is stored next to it on the way (`<final>.index`).
    Failing here never fails the render: the events then stay as they were and the job result says why."""
    services, settings = run.services, run.services.settings
    bucket = settings.bucket_thumbnails
    try:
        cache = settings.cache_dir / "videos" / video.id
        if not final.is_file():  # a local store adopted the rendered file: read it where it now lives
            final = local_copy(services.store, settings.bucket_processed, final_key, cache / Path(final_key).name)
        index = FrameIndex.build(final)
        save_index(services.store, settings.bucket_processed, sidecar_index_key(final_key), index)
        rows = service_events.list_events(services, video_id=video.id, by_kind=False)
        previous = [_previous_event(r) for r in rows]
        by_span = {(r.kind, r.start_seq, r.end_seq): r for r in rows}
        used = {r.thumbnail_key for r in rows if r.thumbnail_key}
        for key in services.store.list(bucket, events_prefix(video.id)):  # left by an attempt that failed
            if key not in used:
                services.store.delete(bucket, key)
        tagger = _tagger(analyzer)
        original = local_copy(services.store, video.raw_bucket, video.raw_key, cache / Path(video.raw_key).name)
        original_index = load_index(services.store, settings.bucket_processed, video.index_key)
        pairs = refresh_events(
            final,
            index,
            boxes.to_doc(),
            previous,
            changed,
            tagger,
            tag_path=original,
            tag_index=original_index,
        )
        stem = Path(final_key).stem
        plan: list[tuple[int | None, dict[str, Any]]] = []
        with FrameReader(final, index) as reader:
            for number, (event, recomputed) in enumerate(pairs, start=1):
                old = by_span.get((event.kind, event.start_seq, event.end_seq))
                thumb = old.thumbnail_key if old is not None and not recomputed else None
                if thumb is None:
                    thumb = thumbnail_key(video.id, f"events/{stem}-{number:04d}-{event.kind}-{event.key_seq}.jpg")
                    put_bytes(services.store, bucket, thumb, keyframe_jpeg(reader, event.key_seq, THUMBNAIL_WIDTH))
                plan.append((old.id if old is not None else None, _row(video.id, event, thumb)))
        info = {"events": len(pairs), "recomputed": sum(1 for _, r in pairs if r)}
    except Exception as exc:
        log.exception("video %s: events not recomputed after the render", video.id)
        return _with_result(run, finalize, {"error": f"{type(exc).__name__}: {exc}"})
    return _with_result(run, _swap_events(services, video.id, plan, finalize), info)


def _swap_events(
    services: Services,
    video_id: str,
    plan: list[tuple[int | None, dict[str, Any]]],
    finalize: Callable[[Session], None],
) -> Callable[[Session], None]:
    bucket = services.settings.bucket_thumbnails

    def swap(session: Session) -> None:
        finalize(session)
        stale = service_events.swap_events(session, video_id=video_id, plan=plan)
        if stale is None:
            return

        @sa_event.listens_for(session, "after_commit", once=True)
        def _drop_stale(_session: Session) -> None:
            for key in stale:
                try:
                    services.store.delete(bucket, key)
                except StorageError:
                    log.warning("could not delete the stale event thumbnail %s", key)

    return swap


def _with_result(run: TaskRun, finalize: Callable[[Session], None], info: dict[str, Any]) -> Callable[[Session], None]:
    """`finalize`, then `info` added to the job's result under "events"."""

    def with_info(session: Session) -> None:
        finalize(session)
        run.services.queue.add_to_result(session, run.job_id, "events", info)

    return with_info
