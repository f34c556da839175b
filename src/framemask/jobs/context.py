"""Moved: `Services` is the app's dependency root and lives in `framemask.service.context`. This re-export
keeps callers outside the packages this change owns (e.g. `api/frames.py`) working until they import it there."""

from framemask.service.context import Services

__all__ = ["Services"]
