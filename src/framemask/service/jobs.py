"""Jobs as clients see them: a job together with the segment jobs its work was split into."""

from __future__ import annotations

from framemask.service.context import Services
from framemask.service.renders import RENDER_KIND
from framemask.service.videos import PROCESS_KIND
from framemask.store.models import Job

__all__ = ["FANS_OUT", "segments_of"]

FANS_OUT = frozenset({PROCESS_KIND, RENDER_KIND})
"""Job kinds whose work may be split into `segment` child jobs (listed as `segments` in the job JSON)."""


def segments_of(services: Services, job: Job) -> list[Job] | None:
    """The segment jobs of `job` in part order (empty if it never fanned out), None for a kind that never does."""
    return services.queue.children(job.id) if job.kind in FANS_OUT else None
