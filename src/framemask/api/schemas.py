"""Response and request bodies, one schema per role (separate from the ORM rows)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from framemask.api.hardening import scrub_paths
from framemask.store.models import Job, Video

__all__ = [
    "AuditEntry",
    "FrameIndexDoc",
    "JobPublic",
    "TokenCreate",
    "TokenCreated",
    "TokenPublic",
    "VideoCreated",
    "VideoList",
    "VideoPublic",
]

Variant = Literal["original", "processed"]


class JobPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    kind: str
    video_id: str | None
    status: str
    progress: float = Field(description="percent, 0-100")
    stage: str | None
    attempts: int
    max_attempts: int
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, job: Job) -> JobPublic:
        public = cls.model_validate(job)
        return public.model_copy(update={"error": scrub_paths(public.error)})


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
    time_base: str | None
    duration_ms: float | None
    fps: float | None
    vfr: bool | None
    has_audio: bool | None
    end_sequence: int | None = Field(serialization_alias="endSequence")
    key_frames: int | None
    processed: bool
    job: JobPublic | None = None

    @classmethod
    def of(cls, video: Video, job: Job | None = None) -> VideoPublic:
        fields = {name: getattr(video, name) for name in cls.model_fields if hasattr(video, name)}
        fields.update(processed=video.processed_key is not None, job=JobPublic.of(job) if job else None)
        fields["error"] = scrub_paths(fields.get("error"))
        return cls(**fields)


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
