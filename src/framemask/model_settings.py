"""The detection models' settings (`FRAMEMASK_MODEL_DIR`, `_PERSON_INT8`, `_SMALL_FACES`, `_CROWD_PASS`), apart
from the service's (`framemask.settings`).

Every `framemask anonymize` reads these four, and nothing else of the environment. They are a pydantic model
validated from the `FRAMEMASK_*` variables exactly as the service's `BaseSettings` reads its own (names in any
case, pydantic's lax parsing: `1`/`true`/`yes` for a flag), without importing pydantic-settings: 50 ms of one
core at every start, for four variables.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from framemask.errors import InputError

__all__ = ["PREFIX", "ModelSettings", "bad_settings", "model_dir", "model_settings", "small_faces"]

PREFIX = "FRAMEMASK_"


class ModelSettings(BaseModel):
    """Where the prepared model weights live and how the detectors look. Read on each use, not cached: a
    running service sees `framemask models --prepare` into a new directory without a restart."""

    model_config = ConfigDict(extra="ignore", protected_namespaces=())

    model_dir: Path = Field(
        default_factory=lambda: Path.home() / ".cache" / "framemask" / "models",
        description="prepared ONNX models (built by `framemask models --prepare`)",
    )
    person_int8: bool = Field(
        default=False,
        description="anonymize with the INT8 person model on CPUs with VNNI (faster; see framemask.detect.quantize)",
    )
    small_faces: bool = Field(
        default=False,
        description="with people in the targets, look for faces at full resolution too (dense crowds; slower)",
    )
    crowd_pass: bool = Field(
        default=True,
        description="look again at 640 px where the person detector finds only small people (0: one look)",
    )

    @field_validator("model_dir")
    @classmethod
    def _expand_user(cls, value: Path) -> Path:
        return value.expanduser()

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> ModelSettings:
        """The settings `environ` (default: the process's) gives: `FRAMEMASK_<FIELD>` in any case."""
        names = {f"{PREFIX}{name}".lower(): name for name in cls.model_fields}
        given = os.environ if environ is None else environ
        return cls.model_validate({names[key.lower()]: value for key, value in given.items() if key.lower() in names})


def bad_settings(exc: ValidationError) -> InputError:
    """The one line a user sees for invalid settings, naming each variable and what is wrong with it."""
    problems = "; ".join(f"{PREFIX}{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
    return InputError(f"bad settings: {problems}")


def model_settings() -> ModelSettings:
    """The model settings the environment gives now (`model_dir` with `~` expanded); `InputError` if invalid."""
    try:
        return ModelSettings.from_environ()
    except ValidationError as exc:
        raise bad_settings(exc) from None


def model_dir() -> Path:
    """The model directory the environment names, `~` expanded."""
    return model_settings().model_dir


def small_faces() -> bool:
    """Whether the environment asks for full-resolution faces with people (`FRAMEMASK_SMALL_FACES`), read on each
    use (see `framemask.redact.pipeline.FACE_MAX_SIDE`)."""
    return model_settings().small_faces
