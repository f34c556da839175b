"""Service settings: the one place that reads the environment (`FRAMEMASK_*`).

The embedded default needs nothing set: a SQLite file and a local object directory under
`FRAMEMASK_DATA_DIR`, in-process workers. Setting `FRAMEMASK_DATABASE_URL`,
`FRAMEMASK_S3_ENDPOINT` and `FRAMEMASK_QUEUE=celery` moves to PostgreSQL, S3 and Celery.
Library code takes a `Settings` argument; `get_settings()` builds the cached one from the environment.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from framemask.model_settings import PREFIX, ModelSettings, bad_settings, model_dir, model_settings, small_faces

__all__ = ["ModelSettings", "Settings", "bad_settings", "get_settings", "model_dir", "model_settings", "small_faces"]

_MIN_SECRET_LEN = 16
_WEAK_SECRETS = {"changeme", "change-me", "admin", "secret", "password", "token"}


class Settings(BaseSettings):
    """Every knob of the service; environment variables are `FRAMEMASK_<FIELD>` (case-insensitive)."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="ignore")

    data_dir: Path = Field(Path("./data"), description="root of the SQLite file, local objects, caches")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default sqlite under data_dir")

    s3_endpoint: str | None = Field(None, description="S3-compatible endpoint URL; unset = local directory")
    s3_public_endpoint: str | None = Field(None, description="endpoint used in presigned URLs for clients")
    s3_access_key: str | None = None
    s3_secret_key: SecretStr | None = None
    s3_region: str = "us-east-1"
    bucket_raw: str = "raw"
    bucket_processed: str = "processed"
    bucket_thumbnails: str = "thumbnails"
    s3_part_mb: int = Field(8, ge=5, le=512, description="multipart part size for streamed uploads")

    queue: Literal["embedded", "celery"] = "embedded"
    broker_url: str = "redis://127.0.0.1:6379/0"
    workers: int = Field(1, ge=0, le=64, description="embedded worker threads (0 = API only)")
    segment_jobs: int = Field(
        1, ge=1, le=64, description="processes one video is anonymized in: segments of a long video run side by side"
    )
    segment_seconds: float = Field(60.0, gt=0, description="length of those segments (cut at key frames)")
    segment_mode: Literal["auto", "local", "queue"] = Field(
        "auto",
        description="where segments run: `local` process pool of the worker, `queue` one job each in the job table "
        "(any worker takes them), `auto` = queue when FRAMEMASK_QUEUE=celery and segment_jobs > 1",
    )
    worker_name: str | None = Field(None, max_length=120, description="name shown for this worker's jobs (host:pid)")
    video_cache_mb: int = Field(
        2048, ge=0, description="local copies of originals a worker keeps (cache/videos), least recently used first out"
    )
    job_lease_seconds: float = Field(60.0, gt=0, description="a job whose lease lapses is taken again")
    job_max_attempts: int = Field(3, ge=1)
    job_poll_seconds: float = Field(0.5, gt=0)
    job_retry_base_seconds: float = Field(2.0, ge=0, description="exponential back-off base for retries")
    reannounce_seconds: float | None = Field(
        None,
        gt=0,
        description="Celery: a queued job without a taker (its message lost, or never sent while the broker was down) "
        "is announced again after this long; checked every half of it (default: job_lease_seconds)",
    )

    max_upload_mb: int = Field(4096, ge=1)
    sweep_seconds: float = Field(
        600.0, gt=0, description="how often orphaned upload spools and job scratch dirs are removed (also at start)"
    )
    scratch_max_age_seconds: float = Field(
        3600.0, gt=0, description="partial objects of the local store older than this are removed by the sweep"
    )
    disk_reserve_mb: int = Field(
        2, ge=0, le=1024, description="space kept in data_dir/.disk-reserve and given up when the disk is full"
    )
    disk_full_retry_seconds: float = Field(
        30.0, gt=0, description="Retry-After of 503s when the disk is full; how long a job waits before retrying"
    )
    admin_token: SecretStr | None = Field(None, description="seeds the first admin API token")
    webhook_secret: SecretStr | None = Field(None, description="accepted as bearer on /api/hooks/s3")
    webhook_url_token: SecretStr | None = Field(
        None,
        description="accepted as `?token=` on /api/hooks/s3, for S3 servers whose bucket notifications cannot send "
        "an Authorization header (radosgw, MinIO webhook targets without auth_token)",
    )
    signed_url_seconds: int = Field(300, ge=1, le=7 * 24 * 3600)
    accel_redirect_prefix: str | None = Field(
        None,
        pattern=r"^/[A-Za-z0-9_./-]*/$",
        description="behind nginx: answer streams with X-Accel-Redirect to this internal location + bucket/key",
    )
    url_signing_key: SecretStr | None = Field(None, description="HMAC key of signed stream URLs (default: random)")

    redact_style: Literal["mosaic", "blur", "fill"] = "mosaic"
    redact_targets: tuple[str, ...] = ("person", "face")
    redact_stride: int | None = Field(None, ge=1, description="detect every Nth frame (None = default)")
    keep_audio: bool = True
    review_proxy: bool = Field(
        True,
        description="after processing an original with GOPs over 1 s, make a short-GOP proxy of it for the "
        "editor's random frame access (framemask.redact.proxy; about half a transcode of CPU per such video)",
    )

    @field_validator("admin_token", "webhook_secret", "webhook_url_token", "url_signing_key")
    @classmethod
    def _reject_weak_secret(cls, value: SecretStr | None) -> SecretStr | None:
        """A guessable admin token is worse than none: refuse to start with one."""
        if value is None:
            return None
        raw = value.get_secret_value()
        if len(raw) < _MIN_SECRET_LEN or raw.lower() in _WEAK_SECRETS:
            raise ValueError(f"must be at least {_MIN_SECRET_LEN} characters and not a default secret")
        return value

    @property
    def db_url(self) -> str:
        """The database URL, defaulting to a SQLite file in the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'framemask.db').resolve()}"

    @property
    def objects_dir(self) -> Path:
        """Root of the local object store (one sub-directory per bucket)."""
        return self.data_dir / "objects"

    @property
    def cache_dir(self) -> Path:
        """Scratch space: downloaded originals for frame reads, temporary files."""
        return self.data_dir / "cache"

    @property
    def segments_on_queue(self) -> bool:
        """Whether a long video's segments become jobs of their own (spread over the workers)."""
        if self.segment_mode == "auto":
            return self.queue == "celery" and self.segment_jobs > 1
        return self.segment_mode == "queue"

    @property
    def reannounce_after(self) -> float:
        """Seconds a claimable job waits without a taker before the sweep announces it again."""
        return self.reannounce_seconds if self.reannounce_seconds is not None else self.job_lease_seconds

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    @property
    def buckets(self) -> tuple[str, str, str]:
        return (self.bucket_raw, self.bucket_processed, self.bucket_thumbnails)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings from the environment (cached; tests build their own `Settings`)."""
    return Settings()
