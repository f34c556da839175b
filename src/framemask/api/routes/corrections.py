"""Review corrections: save them as revisions, read the effective boxes, render, fetch the final video.

- `GET/PUT /api/videos/{id}/corrections` (editors): the latest corrections document / a new revision
  (append-only: every save is a new row, so what was rendered stays reproducible and auditable);
  `PUT ...?base_revision=N` saves only if N is still the latest revision (0: none), else 409 with
  `latest_revision`, so two editors (or tabs) never silently overwrite each other;
- `GET /api/videos/{id}/corrections/revisions`: the history (who, when, note);
- `GET /api/videos/{id}/boxes?from=&to=`: every box of each frame with its track id, source and
  `excluded` flag, for the editor's canvas;
- `POST /api/videos/{id}/render` (editors): a `rerender` job that re-encodes only the changed GOPs;
- `GET /api/videos/{id}/final` (+ `/final/url` for a signed link): the final video, Range-seekable.
"""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import ValidationError

from framemask.api.deps import (
    CurrentUser,
    EditorUser,
    FirstSeq,
    LastSeq,
    ServicesDep,
    SignedRequestDep,
    VideoDep,
    VideoId,
    client_of,
    frame_range,
    load_video,
    require_ready,
    signed_or_bearer_principal,
    signing_key,
)
from framemask.api.hardening import MAX_DB_INT, StrictRangeFileResponse
from framemask.api.schemas import (
    BoxesDoc,
    CorrectionsPublic,
    RenderQueued,
    RevisionConflict,
    RevisionPublic,
    RevisionSaved,
)
from framemask.api.signing import signed_stream_query
from framemask.errors import NotFoundError
from framemask.redact.corrections import Corrections
from framemask.service import renders, revisions
from framemask.service.auth import Principal
from framemask.service.context import Services
from framemask.service.revisions import RevisionConflictError
from framemask.store.models import Revision, Video

__all__ = ["conflict_response", "router"]

router = APIRouter(prefix="/api/videos", tags=["corrections"])

FINAL_VARIANT = "final"


def conflict_response(exc: RevisionConflictError) -> JSONResponse:
    """The 409 of a save whose base revision is no longer the latest."""
    body = RevisionConflict(detail=str(exc), latest_revision=exc.latest)
    return JSONResponse(body.model_dump(), status_code=status.HTTP_409_CONFLICT)


def _public(row: Revision | None) -> RevisionPublic | None:
    if row is None:
        return None
    return RevisionPublic(number=row.number, author=row.author, created_at=row.created_at, note=row.note)


@router.get("/{video_id}/corrections", response_model=CorrectionsPublic)
def get_corrections(video: VideoDep, services: ServicesDep, _user: EditorUser) -> CorrectionsPublic:
    """The latest saved corrections (`drawnRectangles`, `excluded`, `excludedTracks`, `tracks`, `overrides`,
    `splitTracks`, `mergedTracks`, `excludeRules`, `mutedRanges`). Send `revision.number` (0 when null) back
    as `base_revision` when saving."""
    row = revisions.current_revision(services, video_id=video.id)
    return CorrectionsPublic(
        revision=_public(row),
        corrections=_stored(row),
        rendered_revision=renders.final_revision(video),
        final=video.final_key is not None,
    )


def _stored(row: Revision | None) -> Corrections:
    try:
        return Corrections.model_validate(row.edits if row else {})
    except ValidationError:
        return Corrections()  # an invalid stored revision reads as empty; the next save replaces it


BaseRevision = Annotated[
    int | None,
    Query(
        ge=0,
        le=MAX_DB_INT,
        description="the revision the edits were made on (0: none existed); another revision saved since "
        "answers 409 with `latest_revision` and nothing is stored. Without it the save always lands.",
    ),
]


@router.put(
    "/{video_id}/corrections",
    response_model=RevisionSaved,
    responses={409: {"model": RevisionConflict, "description": "another revision was saved since base_revision"}},
)
def put_corrections(
    video: VideoDep,
    services: ServicesDep,
    user: EditorUser,
    body: Corrections,
    request: Request,
    base_revision: BaseRevision = None,
) -> RevisionSaved | JSONResponse:
    """Save the whole corrections document as a new revision (frames outside 1..endSequence: 422)."""
    require_ready(video, processed=True)
    body.check_range(int(video.end_sequence or 0))
    previous = revisions.current_revision(services, video_id=video.id)
    latest = previous.number if previous else 0
    if base_revision is not None and base_revision != latest:  # early answer; checked again when saving
        return conflict_response(RevisionConflictError(video.id, base_revision, latest))
    try:
        before = revisions.effective_boxes(services, video=video, revision=previous)
    except revisions.InvalidRevisionError:  # the previous revision is invalid: compare with the detection alone
        before = revisions.effective_boxes(services, video=video, revision=None)
    try:
        row = revisions.save_revision(
            services, video=video, body=body, by=user, client=client_of(request), base=base_revision
        )
    except RevisionConflictError as exc:
        return conflict_response(exc)
    except revisions.ConcurrentSavesError:
        raise HTTPException(status.HTTP_409_CONFLICT, "too many concurrent saves; try again") from None
    after = revisions.effective_boxes(services, video=video, revision=row)
    changed = len(revisions.changed_frames(video=video, before=before, after=after))
    return RevisionSaved(revision=_public(row), changed_frames=changed)


@router.get("/{video_id}/corrections/revisions", response_model=list[RevisionPublic])
def list_revisions(video: VideoDep, services: ServicesDep, _user: EditorUser) -> list[RevisionPublic]:
    """Every saved revision, newest first."""
    rows = revisions.list_revisions(services, video_id=video.id)
    return [p for p in map(_public, rows) if p is not None]


@router.get("/{video_id}/boxes", response_model=BoxesDoc)
def get_boxes(
    video: VideoDep,
    services: ServicesDep,
    _user: CurrentUser,
    first: FirstSeq = None,
    last: LastSeq = None,
) -> dict[str, Any]:
    """Each frame's boxes for review: `{x1, x2, y1, y2, label, source, track, excluded}` (latest revision), and
    the frames that start a shot."""
    require_ready(video, processed=True)
    first, last = frame_range(int(video.end_sequence or 0), first, last)
    row = revisions.current_revision(services, video_id=video.id)
    boxes = revisions.effective_boxes(services, video=video, revision=row)
    frames = [{"seq": s, "boxes": boxes.frame(s)} for s in range(first, last + 1)]
    number = row.number if row else None
    return {"endSequence": boxes.end_sequence, "revision": number, "frames": frames, "cuts": sorted(boxes.stored.cuts)}


@router.post("/{video_id}/render", status_code=status.HTTP_202_ACCEPTED, response_model=RenderQueued)
def render(video: VideoDep, services: ServicesDep, user: EditorUser, request: Request) -> RenderQueued:
    """Queue a re-render of the latest revision; only GOPs whose frames changed are re-encoded."""
    require_ready(video, processed=True)
    try:
        job_id, number = renders.queue_render(services, video=video, by=user, client=client_of(request))
    except renders.RenderBusyError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    services.announce(job_id)
    return RenderQueued(job_id=job_id, revision=number)


def _final_principal(video_id: VideoId, signed: SignedRequestDep) -> Principal:
    """A bearer token, or the signature of a link issued by `/final/url` (for `<a href>` and `<video src>`)."""
    return signed_or_bearer_principal(signed, video_id, FINAL_VARIANT, "link")


def _final_video(services: Services, video_id: str) -> Video:
    video = load_video(services, video_id)
    if video.final_key is None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"video {video_id} has no final render yet")
    return video


@router.get(
    "/{video_id}/final",
    response_class=Response,
    responses={206: {"description": "partial content"}, 307: {"description": "presigned S3 URL"}},
)
async def get_final(
    video_id: VideoId,
    services: ServicesDep,
    _user: Annotated[Principal, Depends(_final_principal)],
    download: bool = False,
) -> Response:
    """The final (corrected) video, with Range support; `download=true` asks the browser to save it."""
    video = await anyio.to_thread.run_sync(_final_video, services, video_id)
    bucket, key = services.settings.bucket_processed, str(video.final_key)
    name = f"{video.filename.rsplit('.', 1)[0]}.deidentified.mp4"
    path = services.store.local_path(bucket, key)
    if path is None:
        url = services.store.presign_get(bucket, key, services.settings.signed_url_seconds)
        return RedirectResponse(str(url), status_code=status.HTTP_307_TEMPORARY_REDIRECT)
    if not path.is_file():
        raise NotFoundError(f"the final video of {video_id} is missing from storage")
    disposition = "attachment" if download else "inline"
    return StrictRangeFileResponse(path, media_type="video/mp4", filename=name, content_disposition_type=disposition)


@router.get("/{video_id}/final/url")
def final_url(request: Request, video: VideoDep, services: ServicesDep, user: CurrentUser) -> dict[str, Any]:
    """A short-lived link to the final video that needs no Authorization header."""
    if video.final_key is None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"video {video.id} has no final render yet")
    seconds = services.settings.signed_url_seconds
    query = signed_stream_query(signing_key(request), video.id, FINAL_VARIANT, seconds, user.token_id)
    query = query.replace(f"variant={FINAL_VARIANT}&", "")
    return {"url": f"{request.url_for('get_final', video_id=video.id).path}?{query}", "expires_in": seconds}
