"""Model registry: where each model comes from, whether it is ready, and building detectors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from framemask.detect.base import Detector
from framemask.errors import ModelError

__all__ = ["load_detectors", "model_status"]


def model_status() -> list[dict[str, Any]]:
    """One entry per model: name, label, source, licence, path, sha256, ready."""
    return []


def load_detectors(targets: Sequence[str] = ("person", "face"), **opts: Any) -> list[Detector]:
    """Detectors for the given labels (work in progress)."""
    raise ModelError("detectors are not built yet")
