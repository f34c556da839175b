"""Corrections revisions and the boxes they give: append a revision, read the history, the effective boxes.

The detected boxes (`processed_frame`) never change after processing; each saved correction is a new
`revision` row holding the whole corrections document (append-only, so what was rendered stays reproducible).
The effective boxes of a video are the detected ones with a revision applied (`framemask.redact.corrections`),
cached per video state and revision in `Services.boxes`.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from framemask.errors import InputError, NotFoundError
from framemask.media import FrameIndex
from framemask.redact.corrections import Corrections, EffectiveBoxes
from framemask.redact.patch import changed_seqs
from framemask.redact.policy import MaskPolicy
from framemask.service.auth import Principal, audit_row
from framemask.service.context import Services
from framemask.store.layout import load_index
from framemask.store.models import ProcessedFrame, Revision, Video

__all__ = [
    "SAVE_ATTEMPTS",
    "ConcurrentSavesError",
    "InvalidRevisionError",
    "RevisionConflictError",
    "changed_frames",
    "current_revision",
    "detected_doc",
    "detected_frames",
    "effective_boxes",
    "latest_number",
    "latest_revision",
    "list_revisions",
    "masked_frames",
    "render_policy",
    "revision",
    "save_revision",
    "video_index",
]

SAVE_ATTEMPTS = 3
"""Saves without a base revision that lose a race for the next revision number retry this often."""


class RevisionConflictError(Exception):
    """Another revision was saved since the one the client edited."""

    def __init__(self, video_id: str, base: int, latest: int) -> None:
        super().__init__(f"video {video_id} has revision {latest}, not {base}: reload it or re-apply your edits")
        self.latest = latest


class ConcurrentSavesError(Exception):
    """Every attempt at the next revision number lost to another save."""


class InvalidRevisionError(InputError):
    """A stored revision fails today's validation (saved before the limits existed): the API answers 409
    naming it instead of failing every read with 500 (its own handler, ahead of InputError's 422); a render
    of it fails at its first attempt (bad input); the next save replaces it."""


def latest_revision(session: Session, *, video_id: str) -> Revision | None:
    query = select(Revision).where(Revision.video_id == video_id).order_by(Revision.number.desc()).limit(1)
    return session.scalar(query)


def current_revision(services: Services, *, video_id: str) -> Revision | None:
    """The latest revision of a video (None: no corrections saved)."""
    with services.db.session() as session:
        return latest_revision(session, video_id=video_id)


def revision(session: Session, *, video_id: str, number: int | None) -> Revision | None:
    """Revision `number` (None for None; NotFoundError if the video has no such revision)."""
    if number is None:
        return None
    row = session.scalar(select(Revision).where(Revision.video_id == video_id, Revision.number == number))
    if row is None:
        raise NotFoundError(f"video {video_id} has no revision {number}")
    return row


def latest_number(session: Session, *, video_id: str) -> int:
    return int(session.scalar(select(func.max(Revision.number)).where(Revision.video_id == video_id)) or 0)


def list_revisions(services: Services, *, video_id: str, oldest_first: bool = False) -> list[Revision]:
    """Every saved revision of a video, newest first (or oldest first)."""
    order = Revision.number.asc() if oldest_first else Revision.number.desc()
    with services.db.session() as session:
        return list(session.scalars(select(Revision).where(Revision.video_id == video_id).order_by(order)).all())


def save_revision(
    services: Services, *, video: Video, body: Corrections, by: Principal, client: str | None, base: int | None
) -> Revision:
    """Append the revision (number = previous + 1) with an audit entry, in one transaction.

    With `base`, the latest revision must still be `base` (else `RevisionConflictError`, nothing stored). Two
    saves racing for the same number meet the unique (video, number) constraint: the loser is a conflict
    too when it gave a base, else it retries with the next number (last write wins)."""
    for _attempt in range(SAVE_ATTEMPTS):
        try:
            with services.db.begin() as session:
                latest = latest_number(session, video_id=video.id)
                if base is not None and latest != base:
                    raise RevisionConflictError(video.id, base, latest)
                number = latest + 1
                row = Revision(video_id=video.id, number=number, author=by.name, note=body.note, edits=body.to_doc())
                session.add(row)
                session.flush()
                detail = {
                    "revision": number,
                    "base_revision": base,
                    "frames": len(set(body.seqs())),
                    "excluded_tracks": len(body.excluded_tracks),
                    "muted_ranges": len(body.muted_ranges),
                }
                audit_row(session, by, "corrections.save", video_id=video.id, detail=detail, client=client)
                session.expunge(row)
            return row
        except IntegrityError:
            if base is not None:
                with services.db.session() as session:
                    latest = latest_number(session, video_id=video.id)
                raise RevisionConflictError(video.id, base, latest) from None
    raise ConcurrentSavesError(f"too many concurrent saves of video {video.id}")


def detected_doc(session: Session, *, video: Video) -> dict[str, Any]:
    """The detected boxes of every frame in the seed format."""
    rows = session.execute(
        select(ProcessedFrame.seq, ProcessedFrame.boxes)
        .where(ProcessedFrame.video_id == video.id)
        .order_by(ProcessedFrame.seq)
    ).all()
    return {"endSequence": int(video.end_sequence or 0), "sequence": [{"seq": s, **(b or {})} for s, b in rows]}


def detected_frames(services: Services, *, video: Video, first: int, last: int) -> dict[str, Any]:
    """The detected boxes of frames first..last in the seed format."""
    with services.db.session() as session:
        rows = session.execute(
            select(ProcessedFrame.seq, ProcessedFrame.boxes)
            .where(ProcessedFrame.video_id == video.id, ProcessedFrame.seq.between(first, last))
            .order_by(ProcessedFrame.seq)
        ).all()
    return {"endSequence": int(video.end_sequence or 0), "sequence": [{"seq": s, **(b or {})} for s, b in rows]}


def video_index(services: Services, *, video: Video) -> FrameIndex:
    """The original's stored frame index (NotFoundError before there is one)."""
    index = load_index(services.store, services.settings.bucket_processed, video.index_key)
    if index is None:
        raise NotFoundError(f"video {video.id} has no frame index yet")
    return index


def effective_boxes(services: Services, *, video: Video, revision: Revision | None) -> EffectiveBoxes:
    """The video's boxes with `revision` applied (None: as detected); cached per video state and revision.

    `InvalidRevisionError` for a stored revision that fails today's validation."""
    key = (video.id, video.updated_at, video.processed_key, revision.number if revision else 0)

    def make() -> EffectiveBoxes:
        with services.db.session() as session:
            detected = detected_doc(session, video=video)
        try:
            corrections = Corrections.model_validate(revision.edits if revision else {})
        except ValidationError:
            number = revision.number if revision else None
            raise InvalidRevisionError(
                f"stored corrections revision {number} of video {video.id} is invalid; save a new revision"
            ) from None
        index = video_index(services, video=video)
        return EffectiveBoxes(detected, corrections, index.time_ms, video.width or 0, video.height or 0)

    return services.boxes.get_or_make(key, make)


def render_policy(video: Video) -> MaskPolicy:
    """The mask policy the video's master was rendered with (re-renders must paint the same way)."""
    params = video.render_params or {}
    return MaskPolicy.from_dict(params["policy"]) if "policy" in params else MaskPolicy.for_fps(video.fps or 0)


def changed_frames(*, video: Video, before: EffectiveBoxes, after: EffectiveBoxes) -> list[int]:
    """Frames whose painted regions differ between two revisions: what a render re-encodes (and what a
    save reports as changed)."""
    policy = render_policy(video)
    return changed_seqs(before.painted(policy), after.painted(policy))


def masked_frames(services: Services, *, video: Video, first: int, last: int) -> dict[str, Any]:
    """Frames first..last in the seed format as they are masked: the latest revision applied, if any."""
    row = current_revision(services, video_id=video.id)
    if row is None:
        return detected_frames(services, video=video, first=first, last=last)
    return effective_boxes(services, video=video, revision=row).to_doc(first, last)
