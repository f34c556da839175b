"""The metadata database (SQLAlchemy 2 ORM). Alembic migrations in `store/migrations` mirror it.

Times are naive UTC (`utcnow()`), so SQLite and PostgreSQL compare them the same way. The per-frame
index itself is a blob in object storage (`Video.index_key`); the row keeps only its summary.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator, TypeEngine, UserDefinedType

__all__ = [
    "Analysis",
    "AnalysisSample",
    "ApiToken",
    "AuditLog",
    "Base",
    "Event",
    "Job",
    "ProcessedFrame",
    "Revision",
    "Track",
    "Video",
    "new_id",
    "utcnow",
]

VIDEO_STATUSES = ("uploaded", "queued", "processing", "ready", "failed")
JOB_STATUSES = ("queued", "running", "waiting", "succeeded", "failed")
"""`waiting`: a processing job whose segment jobs run (not claimable until they all succeeded)."""
ROLES = ("viewer", "editor", "admin")
REVIEW_STATES = ("unreviewed", "in_review", "changes_requested", "approved")


def utcnow() -> datetime:
    """Naive UTC now: the one clock the database sees."""
    return datetime.now(UTC).replace(tzinfo=None)


def new_id() -> str:
    """A random 32-hex-digit id (unguessable, so ids in URLs leak nothing)."""
    return uuid.uuid4().hex


class Base(DeclarativeBase):
    """Declarative base of every framemask table."""


class Video(Base):
    """One uploaded video: where its bytes live, what the probe found, and where processing is."""

    __tablename__ = "video"
    __table_args__ = (Index("uq_video_raw_object", "raw_bucket", "raw_key", unique=True),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(120))
    filename: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default="uploaded", index=True)
    error: Mapped[str | None] = mapped_column(Text)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    raw_bucket: Mapped[str] = mapped_column(String(63))
    raw_key: Mapped[str] = mapped_column(String(1024))
    processed_key: Mapped[str | None] = mapped_column(String(1024))
    final_key: Mapped[str | None] = mapped_column(String(1024))
    index_key: Mapped[str | None] = mapped_column(String(1024))
    proxy_key: Mapped[str | None] = mapped_column(String(1024))
    """The original's review proxy (`framemask.redact.proxy`), once made; None for short-GOP originals."""
    # probe facts (displayed size: rotation applied)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    rotation: Mapped[int | None] = mapped_column(Integer)
    coded_width: Mapped[int | None] = mapped_column(Integer)
    coded_height: Mapped[int | None] = mapped_column(Integer)
    codec: Mapped[str | None] = mapped_column(String(32))
    pix_fmt: Mapped[str | None] = mapped_column(String(32))
    sample_aspect_ratio: Mapped[str | None] = mapped_column(String(16))  # "num:den", displayed orientation
    time_base: Mapped[str | None] = mapped_column(String(32))
    duration_ms: Mapped[float | None] = mapped_column(Float)
    fps: Mapped[float | None] = mapped_column(Float)
    vfr: Mapped[bool | None] = mapped_column(Boolean)
    has_audio: Mapped[bool | None] = mapped_column(Boolean)
    end_sequence: Mapped[int | None] = mapped_column(Integer)
    # frame index summary (the index itself is the blob at index_key)
    key_frames: Mapped[int | None] = mapped_column(Integer)
    last_frame_ms: Mapped[float | None] = mapped_column(Float)
    # processing outcome
    gop_starts: Mapped[list[Any] | None] = mapped_column(JSON)
    boxes_total: Mapped[int | None] = mapped_column(Integer)
    render_params: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """How the processed master was painted and encoded (style, shape, strength, mask policy, x264)."""
    # review (set with PATCH /api/videos/{id}) and the chain of custody (hashes cached once computed)
    review_state: Mapped[str] = mapped_column(String(32), default="unreviewed", server_default="unreviewed")
    review_by: Mapped[str | None] = mapped_column(String(120))
    review_at: Mapped[datetime | None] = mapped_column(DateTime)
    original_sha256: Mapped[str | None] = mapped_column(String(64))
    final_sha256: Mapped[str | None] = mapped_column(String(64))
    """SHA-256 of the object at `final_key` (set with it by the render; cleared when the final changes)."""


class ProcessedFrame(Base):
    """The boxes shown on one frame, in the seed format (`{"person": [{x1,x2,y1,y2}], "face": [...]}`)."""

    __tablename__ = "processed_frame"

    video_id: Mapped[str] = mapped_column(ForeignKey("video.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    boxes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Track(Base):
    """A confirmed detector track of a video: `number` is the tracker's id, the `track` of its boxes in
    `processed_frame`; `data` holds `frames`, `gaps`, `mean_score` and review `flags`."""

    __tablename__ = "track"
    __table_args__ = (Index("ix_track_video_number", "video_id", "number", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    video_id: Mapped[str] = mapped_column(ForeignKey("video.id", ondelete="CASCADE"), index=True)
    number: Mapped[int | None] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(16), default="detector")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    first_seq: Mapped[int] = mapped_column(Integer)
    last_seq: Mapped[int] = mapped_column(Integer)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Revision(Base):
    """One saved correction; append-only so every re-render is reproducible and auditable."""

    __tablename__ = "revision"
    __table_args__ = (UniqueConstraint("video_id", "number", name="uq_revision_video_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    video_id: Mapped[str] = mapped_column(ForeignKey("video.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    author: Mapped[str | None] = mapped_column(String(120))
    note: Mapped[str | None] = mapped_column(Text)
    edits: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class EmbeddingVector(TypeDecorator[list[float]]):
    """An event's key-frame embedding: a pgvector `vector(256)` column on PostgreSQL where the extension is
    installed (migration 0005; HNSW index, cosine), a JSON array elsewhere (SQLite, PostgreSQL without
    pgvector). On PostgreSQL it is bound as its text form `[x,y,...]`, an untyped literal that PostgreSQL
    casts to the column's type (vector or json); read back, both forms become a list of floats."""

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return dialect.type_descriptor(_VectorLiteral() if dialect.name == "postgresql" else JSON(none_as_null=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        floats = [float(v) for v in value]
        return "[" + ",".join(repr(v) for v in floats) + "]" if dialect.name == "postgresql" else floats

    def process_result_value(self, value: Any, dialect: Dialect) -> list[float] | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = json.loads(value)
        return [float(v) for v in value]


class _VectorLiteral(UserDefinedType[str]):
    """A parameter PostgreSQL types from its column (psycopg sends a `str` as `unknown`)."""

    cache_ok = True

    def get_col_spec(self, **_kw: Any) -> str:
        return "json"  # DDL of the plain column; migration 0005 turns it into vector(256) where it can


class Event(Base):
    """A scene or presence interval with its key frame (thumbnail in the thumbnails bucket)."""

    __tablename__ = "event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    video_id: Mapped[str] = mapped_column(ForeignKey("video.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    start_seq: Mapped[int] = mapped_column(Integer)
    end_seq: Mapped[int] = mapped_column(Integer)
    start_ms: Mapped[float] = mapped_column(Float)
    end_ms: Mapped[float] = mapped_column(Float)
    key_seq: Mapped[int | None] = mapped_column(Integer)
    key_ms: Mapped[float | None] = mapped_column(Float)
    description: Mapped[str | None] = mapped_column(Text)
    thumbnail_key: Mapped[str | None] = mapped_column(String(1024))
    tags: Mapped[list[Any] | None] = mapped_column(JSON)
    """`[{"label": "person", "peak": 2, "count": 3}, {"label": "car", "peak": 1}, ...]` (`framemask.events.tags`)."""
    people: Mapped[int | None] = mapped_column(Integer)
    """Distinct people (tracks) of the event, at least the most at once (0: nobody)."""
    embedding: Mapped[list[float] | None] = mapped_column(EmbeddingVector())
    """The key frame's embedding (pooled NanoDet neck features, 256 floats, L2-normalised), never a face's."""


class Job(Base):
    """A durable unit of background work. A worker owns it while `lease_until` is in the future and
    proves ownership with `claim`; a lapsed lease lets another worker take it over."""

    __tablename__ = "job"
    __table_args__ = (
        Index("ix_job_status_not_before", "status", "not_before"),
        Index("ix_job_parent_part", "parent_id", "part", unique=True),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(32))
    video_id: Mapped[str | None] = mapped_column(ForeignKey("video.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    stage: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    error: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    not_before: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime)
    worker: Mapped[str | None] = mapped_column(String(255))
    claim: Mapped[str | None] = mapped_column(String(32))
    completions: Mapped[int] = mapped_column(Integer, default=0)
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("job.id", ondelete="CASCADE", name="fk_job_parent_id_job"))
    """The processing job a segment job belongs to (its `part` is the segment's index, 0-based)."""
    part: Mapped[int | None] = mapped_column(Integer)


class ApiToken(Base):
    """An API bearer token; only its SHA-256 is stored."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(120))
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class AuditLog(Base):
    """Who touched what, when: every access to an original and every administrative change."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    token_id: Mapped[int | None] = mapped_column(Integer)
    actor: Mapped[str | None] = mapped_column(String(120))
    role: Mapped[str | None] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(64))
    video_id: Mapped[str | None] = mapped_column(String(32), index=True)
    client: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class Analysis(Base):
    """A sampled analysis of a video that its owner asked for (`POST /api/videos/{id}/analyses`).

    `kind` is `pose`: keypoints of people are personal data, so they exist only for videos whose owner
    requested them, are read under the rules of originals, and go with the video (cascade). Its state is
    its job's (`job_id`); `sample_count` and `model` are set when the samples are stored."""

    __tablename__ = "analysis"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    video_id: Mapped[str] = mapped_column(ForeignKey("video.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[str | None] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(32))
    rate: Mapped[float] = mapped_column(Float)
    requested_by: Mapped[str | None] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    model: Mapped[str | None] = mapped_column(String(64))
    sample_count: Mapped[int | None] = mapped_column(Integer)


class AnalysisSample(Base):
    """One fixed-rate sample of an analysis: its time, the frame on screen then, and what was found there
    (`people`: `[{"track", "box": [x1, y1, x2, y2], "keypoints": [[x, y, score] x 17]}]` for pose)."""

    __tablename__ = "analysis_sample"

    analysis_id: Mapped[str] = mapped_column(ForeignKey("analysis.id", ondelete="CASCADE"), primary_key=True)
    k: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    time_ms: Mapped[float] = mapped_column(Float)
    frame_time_ms: Mapped[float] = mapped_column(Float)
    people: Mapped[list[Any]] = mapped_column(JSON, default=list)
