"""Response and request bodies, one schema per role (separate from the ORM rows)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WrapSerializer

from framemask.api.hardening import scrub_paths
from framemask.redact.corrections import Corrections
from framemask.service.renders import final_revision
from framemask.store.models import Job, Video, utcnow

__all__ = [
    "AnalysisCreate",
    "AnalysisList",
    "AnalysisPublic",
    "AnalysisResult",
    "AnalysisSamplePublic",
    "AuditEntry",
    "BoxesDoc",
    "CorrectionsPublic",
    "FrameIndexDoc",
    "JobPublic",
    "PosePerson",
    "RenderQueued",
    "Report",
    "ReportRevision",
    "ReportRow",
    "ReviewBox",
    "ReviewUpdate",
    "RevisionConflict",
    "RevisionPublic",
    "RevisionSaved",
    "SeedBox",
    "SeedDoc",
    "SeedFrame",
    "SegmentPublic",
    "TokenCreate",
    "TokenCreated",
    "TokenPublic",
    "TrackList",
    "TrackPublic",
    "VideoCreated",
    "VideoList",
    "VideoPublic",
    "Waveform",
]

Variant = Literal["original", "processed", "final"]
ReviewState = Literal["unreviewed", "in_review", "changes_requested", "approved"]
Number = int | float
"""A pixel coordinate: stored boxes are integers, older seed documents may hold floats (kept as given)."""


class SegmentPublic(BaseModel):
    """One segment job of a processing job that fanned out (`framemask.jobs.segments`)."""

    index: int
    start_seq: int
    end_seq: int
    status: str
    progress: float
    worker: str | None
    attempts: int
    stalled: bool = False


class JobPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    kind: str
    video_id: str | None
    status: str = Field(description="queued, running (also while its segments run), succeeded or failed")
    progress: float = Field(description="percent, 0-100 (over all segments of a fanned-out job)")
    stage: str | None
    attempts: int
    max_attempts: int
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    worker: str | None = Field(None, description="the worker holding (or that last held) the job: host:pid[:thread]")
    heartbeat_at: datetime | None = None
    stalled: bool = Field(False, description="running, but its worker's lease lapsed: another worker takes it over")
    segments: list[SegmentPublic] | None = Field(None, description="the segment jobs, when the video was cut")

    @classmethod
    def of(cls, job: Job, children: list[Job] | None = None) -> JobPublic:
        public = cls.model_validate(job)
        update: dict[str, object] = {"error": scrub_paths(public.error), "stalled": _stalled(job)}
        if job.status == "waiting":  # its segments run: to a client the job is running
            update["status"] = "running"
        if children:
            update["segments"] = [
                SegmentPublic(
                    index=int(c.part or 0),
                    start_seq=int(c.payload["span"][2]),
                    end_seq=int(c.payload["span"][3]),
                    status=c.status,
                    progress=c.progress,
                    worker=c.worker,
                    attempts=c.attempts,
                    stalled=_stalled(c),
                )
                for c in children
            ]
        return public.model_copy(update=update)


def _stalled(job: Job) -> bool:
    return job.status == "running" and job.lease_until is not None and job.lease_until < utcnow()


class VideoCreated(BaseModel):
    id: str
    status: str
    job_id: str


class VideoPublic(BaseModel):
    """A video as any role sees it: probe facts, status and the processing job's progress."""

    model_config = ConfigDict(populate_by_name=True)

    id: str
    filename: str
    status: str
    error: str | None
    created_at: datetime
    created_by: str | None
    size_bytes: int
    width: int | None
    height: int | None
    rotation: int | None
    coded_width: int | None
    coded_height: int | None
    codec: str | None
    pix_fmt: str | None
    sample_aspect_ratio: str | None = Field(
        None, description='shape of a pixel as displayed, "num:den" ("1:1" square); a frame is shown width x ratio wide'
    )
    time_base: str | None
    duration_ms: float | None
    fps: float | None
    vfr: bool | None
    has_audio: bool | None
    end_sequence: int | None = Field(serialization_alias="endSequence")
    key_frames: int | None
    processed: bool
    proxy: bool = Field(
        False, description="the original has a review proxy: the editor's original frames come from it (`exact` not)"
    )
    job: JobPublic | None = Field(
        None, description="the latest processing, re-render or final-render job (not a review-proxy job)"
    )
    review_state: ReviewState = "unreviewed"
    review_by: str | None = Field(None, description="who set the review state last")
    review_at: datetime | None = Field(None, description="when the review state was set last (UTC)")
    latest_revision: int | None = Field(None, description="number of the latest saved corrections revision")
    rendered_revision: int | None = Field(
        None,
        description="revision the final video shows (0: rendered without corrections; null: no final yet); "
        "lower than `latest_revision` when the final is older than the latest corrections",
    )

    @classmethod
    def of(cls, video: Video, job: JobPublic | None = None, latest_revision: int | None = None) -> VideoPublic:
        fields = {name: getattr(video, name) for name in cls.model_fields if hasattr(video, name)}
        fields.update(processed=video.processed_key is not None, proxy=video.proxy_key is not None, job=job)
        fields["error"] = scrub_paths(fields.get("error"))
        fields["review_state"] = video.review_state or "unreviewed"
        fields.update(latest_revision=latest_revision, rendered_revision=final_revision(video))
        return cls(**fields)


class ReviewUpdate(BaseModel):
    """`PATCH /api/videos/{id}`: move the video through review (editors and admins)."""

    model_config = ConfigDict(extra="forbid")

    review_state: Literal["in_review", "changes_requested", "approved"]


class VideoList(BaseModel):
    items: list[VideoPublic]
    total: int


class FrameIndexDoc(BaseModel):
    end_sequence: int = Field(serialization_alias="endSequence")
    time_base: str
    frames: list[dict[str, Any]] = Field(description="[{seq, time_ms, key}] in presentation order")


class TokenCreate(BaseModel):
    role: Literal["viewer", "editor", "admin"]
    name: str | None = Field(None, max_length=120)


class TokenPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    role: str
    created_at: datetime
    last_used_at: datetime | None
    revoked: bool


class TokenCreated(TokenPublic):
    token: str = Field(description="the bearer token; shown only once")


class AuditEntry(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    actor: str | None
    role: str | None
    action: str
    video_id: str | None
    client: str | None
    detail: dict[str, Any] | None


class TrackPublic(BaseModel):
    """One confirmed track: the `track` id its boxes carry in `/frames` and `/boxes`, and review hints."""

    id: int = Field(description="the tracker's id, unique within the video")
    label: str
    start_seq: int
    end_seq: int
    frames: int = Field(description="frames with a box of this track")
    gaps: list[list[int]] = Field(description="[[first, last], ...] spans where the detector lost the track")
    mean_score: float
    flags: list[str] = Field(
        description="what to review: starts_inside / ends_inside (appears or vanishes away from the frame "
        "edge: a possible missed person), fragmented (gaps, or a new id right where it ended), short"
    )


class TrackList(BaseModel):
    tracks: list[TrackPublic]


# --- boxes -------------------------------------------------------------------------------------------------------


class SeedBox(BaseModel):
    """A box in the seed format (displayed-frame pixels); optional keys are present only when they apply."""

    model_config = ConfigDict(extra="allow")

    x1: Number
    x2: Number
    y1: Number
    y2: Number
    track: int | None = Field(None, description="the tracker's id (absent on boxes without one)")
    score: float | None = Field(None, description="detector confidence 0-1 (absent on boxes painted as given)")
    excluded: bool | None = Field(None, description="true: a correction removed it (not painted)")
    filled: bool | None = Field(None, description="true: filled in over a gap of its track")
    label: str | None = Field(None, description="class of a candidate (only in `candidates`)")


class SeedFrame(BaseModel):
    """One frame of the seed document: its boxes by label (`person`, `face`, `manual`, a manual track's own
    label, ...) and `candidates` (weak detections no track confirmed: masked, not counted)."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, list[SeedBox]] = Field(init=False)

    seq: int
    cut: bool | None = Field(default=None, description="true on a frame that starts a new shot (a hard cut)")
    person: list[SeedBox] | None = None
    face: list[SeedBox] | None = None
    candidates: list[SeedBox] | None = None
    manual: list[SeedBox] | None = None


class SeedDoc(BaseModel):
    """`GET /frames`: what is masked on every frame, in the seed format."""

    end_sequence: int = Field(alias="endSequence")
    sequence: list[SeedFrame]


class ReviewBox(BaseModel):
    """One box of a frame as the editor shows it."""

    x1: Number
    x2: Number
    y1: Number
    y2: Number
    label: str
    source: Literal["detected", "candidate", "override", "drawn", "track"]
    track: int | str | None = Field(description="detector track id (after splits and merges); a manual track's id")
    score: float | None
    excluded: bool


class BoxesFrame(BaseModel):
    seq: int
    boxes: list[ReviewBox]


class BoxesDoc(BaseModel):
    """`GET /boxes`: every box of each frame with the latest revision applied."""

    end_sequence: int = Field(alias="endSequence")
    revision: int | None = Field(description="the revision applied (null: none saved)")
    frames: list[BoxesFrame]
    cuts: list[int] = Field(
        default_factory=list,
        description="frames that start a new shot (hard cuts the anonymizer found), ascending, over the whole "
        "video whatever the range: tracks are not interpolated and masks are not held across them",
    )


# --- corrections -------------------------------------------------------------------------------------------------


def _corrections_doc(value: Corrections, _handler: Any):  # type: ignore[no-untyped-def]
    # no return annotation on purpose: the documented schema stays `Corrections`
    return value.to_doc()


CorrectionsDoc = Annotated[Corrections, WrapSerializer(_corrections_doc)]
"""The corrections document as stored (`Corrections.to_doc`: seed key names, unset optional fields left out)."""


class RevisionPublic(BaseModel):
    """One saved correction (without its document)."""

    number: int
    author: str | None
    created_at: datetime
    note: str | None


class CorrectionsPublic(BaseModel):
    """The latest corrections and what the final video shows."""

    revision: RevisionPublic | None
    corrections: CorrectionsDoc
    rendered_revision: int | None = Field(description="revision shown by the final video (0: none applied)")
    final: bool = Field(description="a final video exists")


class RevisionSaved(BaseModel):
    revision: RevisionPublic
    changed_frames: int = Field(description="frames whose masked regions differ from the previous revision")


class RevisionConflict(BaseModel):
    """409 of `PUT /corrections?base_revision=N` when another revision was saved since N."""

    detail: str
    latest_revision: int = Field(description="the latest revision's number (0: none)")


class RenderQueued(BaseModel):
    job_id: str
    revision: int | None


# --- redaction report and waveform -------------------------------------------------------------------------------

ReportKind = Literal[
    "track", "region", "manual_track", "excluded_detection", "exclude_rule", "override", "split", "merge", "muted_range"
]


class ReportRow(BaseModel):
    """One redaction decision: what, where (frames and ms), which revision introduced it, who, when."""

    kind: ReportKind
    label: str | None
    track: int | str | None
    start_seq: int
    end_seq: int
    start_ms: float
    end_ms: float = Field(description="where the frame after end_seq starts (the video's end for the last frame)")
    action: str = Field(description="masked, excluded, added, moved, split, merged, mute or tone")
    revision: int | None = Field(description="the revision that introduced it (null: automatic detection)")
    author: str | None
    time: datetime | None
    detail: str = Field("", description="the box, rule or ids involved, as compact text")


class ReportRevision(BaseModel):
    number: int
    author: str | None
    time: datetime
    note: str | None


class Report(BaseModel):
    """`GET /report?format=json`: the redaction report (chain of custody) of a video."""

    video_id: str
    filename: str
    generated_at: datetime
    generated_by: str
    original_sha256: str
    final_sha256: str | None = Field(description="null: no final video yet")
    final_revision: int | None
    latest_revision: int | None
    review_state: ReviewState
    review_by: str | None
    review_at: datetime | None
    end_sequence: int = Field(alias="endSequence")
    duration_ms: float
    revisions: list[ReportRevision] = Field(description="every saved revision, oldest first")
    rows: list[ReportRow]


class Waveform(BaseModel):
    """`GET /waveform`: peak level of the original audio over equal slices of the video's duration."""

    duration_ms: float
    buckets: int
    peaks: list[float] = Field(description="0..1, one per bucket; empty when the video has no audio")


# --- sampled analyses (pose keypoints: personal data, read like originals) -------------------------------------


class AnalysisCreate(BaseModel):
    """What the owner asks for: `{"kind": "pose", "rate": N}` (N samples per second)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    kind: Literal["pose"] = Field(description="`pose`: COCO's 17 keypoints of every tracked person")
    rate: float = Field(gt=0, le=60, description="samples per second (exactly floor(duration x rate) samples)")


class PosePerson(BaseModel):
    track: int = Field(description="the track id of the person's boxes (`/tracks`, `/frames`)")
    box: list[float] = Field(description="x1, y1, x2, y2 (displayed-frame pixels)")
    keypoints: list[list[float]] = Field(description="17 x [x, y, score] in COCO order (`keypoint_names`)")


class AnalysisSamplePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    k: int = Field(description="sample number, 0-based; its time is k / rate")
    time_ms: float
    seq: int = Field(description="the frame on screen at time_ms (from the frame index)")
    frame_time_ms: float = Field(description="that frame's own presentation time")
    people: list[PosePerson]


class AnalysisPublic(BaseModel):
    id: str
    video_id: str
    kind: str
    rate: float
    status: str = Field(description="its job's: queued, running, succeeded or failed")
    progress: float
    error: str | None
    job_id: str | None
    requested_by: str | None
    created_at: datetime
    finished_at: datetime | None
    model: str | None = Field(description="the model that produced it (movenet-lightning)")
    sample_count: int | None = Field(description="samples stored (set when the job succeeded)")
    keypoint_names: list[str]


class AnalysisResult(AnalysisPublic):
    offset: int
    samples: list[AnalysisSamplePublic] = Field(description="samples offset.. in order (empty until it succeeded)")


class AnalysisList(BaseModel):
    video_id: str
    items: list[AnalysisPublic]
