"""The detection models' settings read from `FRAMEMASK_*` as pydantic-settings would read them, without it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from framemask.model_settings import ModelSettings


class _AsBaseSettings(ModelSettings, BaseSettings):  # type: ignore[misc]
    """The same fields read by pydantic-settings: what `from_environ` must match."""

    model_config = SettingsConfigDict(env_prefix="FRAMEMASK_", extra="ignore", protected_namespaces=())


ENVIRONMENTS = [
    {},
    {"FRAMEMASK_MODEL_DIR": "~/models", "FRAMEMASK_PERSON_INT8": "1"},
    {"framemask_small_faces": "yes", "FRAMEMASK_Crowd_Pass": "0", "FRAMEMASK_DATA_DIR": "/elsewhere"},
    {"FRAMEMASK_PERSON_INT8": "true", "FRAMEMASK_SMALL_FACES": "off", "OTHER": "x", "FRAMEMASK_MODEL_DIR": "/m"},
]


@pytest.mark.parametrize("environ", ENVIRONMENTS)
def test_read_as_pydantic_settings_reads_them(environ: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.upper().startswith("FRAMEMASK_")]:
        monkeypatch.delenv(name)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    ours = ModelSettings.from_environ()
    assert ours == ModelSettings(**_AsBaseSettings().model_dump())
    assert ours == ModelSettings.from_environ(environ)
    assert ours.model_dir == Path(environ.get("FRAMEMASK_MODEL_DIR", "~/.cache/framemask/models")).expanduser()


def test_a_bad_value_is_refused_by_name() -> None:
    with pytest.raises(ValidationError, match="small_faces"):
        ModelSettings.from_environ({"FRAMEMASK_SMALL_FACES": "maybe"})


def test_an_anonymize_start_does_not_import_pydantic_settings() -> None:
    """In a fresh interpreter: the CLI's commands and the default detectors (which read the model settings)
    leave pydantic-settings unimported (50 ms of every start); the service's settings still import it."""
    code = """
import sys
from framemask.cli import build_parser
build_parser()
from framemask.redact.pipeline import default_detectors
default_detectors(("person", "face"))
before = "pydantic_settings" in sys.modules
from framemask.settings import get_settings
get_settings()
print(before, "pydantic_settings" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True"]
