"""The durable job table as a queue: enqueue, claim with a lease, heartbeat, complete or retry.

Correctness rests on one idea that works the same on SQLite and PostgreSQL: every state change is a
conditional `UPDATE ... WHERE id = :id AND claim = :token` and only a row count of 1 counts. A worker
that claims a job gets a fresh random `claim` token and a lease; it renews the lease while it works.
If it dies, the lease lapses and any other worker may claim the job again (new token), after which
the dead worker's token matches nothing: its late heartbeats and completion are refused. Completion
and the job's results are committed in one transaction, so a job's results land exactly once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from framemask.errors import InputError, ModelError
from framemask.store.db import Database
from framemask.store.models import Job, new_id, utcnow

__all__ = ["PERMANENT", "Claim", "JobQueue", "backoff_seconds"]

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 300.0
PERMANENT = (InputError, ModelError, ValidationError, OverflowError, UnicodeError)
"""Deterministic failures: retrying cannot fix bad input, missing models, or stored data that fails its own
validation (a corrupt corrections document, numbers out of range); the job fails at its first attempt."""
Finalize = Callable[[Session], None]


@dataclass(frozen=True)
class Claim:
    """Proof that this worker currently owns `job_id` (until its lease lapses)."""

    job_id: str
    token: str
    attempt: int
    kind: str
    worker: str


def backoff_seconds(attempt: int, base: float) -> float:
    """Exponential back-off after failed attempt number `attempt` (1-based), capped."""
    return min(base * (2 ** max(attempt - 1, 0)), MAX_BACKOFF_SECONDS)


class JobQueue:
    """Job-table operations; `lease_seconds` is how long a claim lives without a heartbeat."""

    def __init__(self, db: Database, *, lease_seconds: float = 60.0, retry_base_seconds: float = 2.0) -> None:
        self.db = db
        self.lease = timedelta(seconds=lease_seconds)
        self.retry_base = retry_base_seconds

    # --- producers -----------------------------------------------------------------------------------

    def enqueue(
        self,
        kind: str,
        *,
        video_id: str | None = None,
        payload: dict[str, Any] | None = None,
        max_attempts: int = 3,
        session: Session | None = None,
    ) -> str:
        """Add a queued job and return its id (inside `session` if given, so it commits with the caller)."""
        job = Job(id=new_id(), kind=kind, video_id=video_id, payload=payload or {}, max_attempts=max_attempts)
        if session is not None:
            session.add(job)
            return job.id
        with self.db.begin() as own:
            own.add(job)
        return job.id

    def get(self, job_id: str) -> Job | None:
        with self.db.session() as session:
            return session.get(Job, job_id)

    # --- claiming ------------------------------------------------------------------------------------

    def _claimable(self) -> ColumnElement[bool]:
        now = utcnow()
        fresh = and_(Job.status == "queued", Job.not_before <= now)
        orphaned = and_(Job.status == "running", Job.lease_until < now)
        return and_(or_(fresh, orphaned), Job.attempts < Job.max_attempts)

    def claim_next(self, worker: str, kinds: tuple[str, ...] | None = None) -> Claim | None:
        """Claim the oldest claimable job (queued, or running with a lapsed lease), if any."""
        self.fail_exhausted()
        query = select(Job.id).where(self._claimable()).order_by(Job.created_at).limit(8)
        if kinds:
            query = query.where(Job.kind.in_(kinds))
        with self.db.session() as session:
            candidates = list(session.scalars(query))
        for job_id in candidates:
            claim = self.claim(job_id, worker)
            if claim is not None:
                return claim
        return None

    def claim(self, job_id: str, worker: str) -> Claim | None:
        """Claim one job if it is claimable right now; None if it is taken, done or unknown."""
        token, now = new_id(), utcnow()
        with self.db.begin() as session:
            changed = session.execute(
                update(Job)
                .where(Job.id == job_id, self._claimable())
                .values(
                    status="running",
                    claim=token,
                    worker=worker,
                    attempts=Job.attempts + 1,
                    lease_until=now + self.lease,
                    heartbeat_at=now,
                    started_at=func.coalesce(Job.started_at, now),
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            ).rowcount
            if changed != 1:
                return None
            attempt, kind = session.execute(select(Job.attempts, Job.kind).where(Job.id == job_id)).one()
        log.info("job %s (%s) claimed by %s, attempt %d", job_id, kind, worker, attempt)
        return Claim(job_id, token, int(attempt), str(kind), worker)

    def fail_exhausted(self) -> int:
        """Fail running jobs whose lease lapsed after their last allowed attempt (their worker died)."""
        now = utcnow()
        with self.db.begin() as session:
            return session.execute(
                update(Job)
                .where(Job.status == "running", Job.lease_until < now, Job.attempts >= Job.max_attempts)
                .values(
                    status="failed",
                    error="worker lost during the last allowed attempt",
                    finished_at=now,
                    updated_at=now,
                    claim=None,
                )
                .execution_options(synchronize_session=False)
            ).rowcount

    # --- while running -------------------------------------------------------------------------------

    def _owned(self, claim: Claim) -> ColumnElement[bool]:
        return and_(Job.id == claim.job_id, Job.claim == claim.token, Job.status == "running")

    def heartbeat(self, claim: Claim, progress: float | None = None, stage: str | None = None) -> bool:
        """Renew the lease (and record progress); False means the claim was lost."""
        now = utcnow()
        values: dict[str, Any] = {"lease_until": now + self.lease, "heartbeat_at": now, "updated_at": now}
        if progress is not None:
            values["progress"] = round(max(0.0, min(progress, 100.0)), 2)
        if stage is not None:
            values["stage"] = stage
        with self.db.begin() as session:
            stmt = update(Job).where(self._owned(claim)).values(**values)
            return session.execute(stmt.execution_options(synchronize_session=False)).rowcount == 1

    # --- endings -------------------------------------------------------------------------------------

    def complete(self, claim: Claim, finalize: Finalize | None = None, result: dict[str, Any] | None = None) -> bool:
        """Mark the job succeeded and run `finalize` in the same transaction; False if the claim was lost."""
        now = utcnow()
        with self.db.begin() as session:
            changed = session.execute(
                update(Job)
                .where(self._owned(claim))
                .values(
                    status="succeeded",
                    progress=100.0,
                    stage="done",
                    error=None,
                    result=result,
                    finished_at=now,
                    updated_at=now,
                    lease_until=None,
                    completions=Job.completions + 1,
                )
                .execution_options(synchronize_session=False)
            ).rowcount
            if changed != 1:
                log.warning("job %s: claim lost before completion; results discarded", claim.job_id)
                return False
            if finalize is not None:
                finalize(session)
        return True

    def fail(self, claim: Claim, error: BaseException | str, on_final: Finalize | None = None) -> str:
        """Record a failed attempt: retry later with back-off, or fail for good (bad input or missing
        models never retry).

        Returns the job's new status (`queued`, `failed`, or `lost` if the claim had lapsed).
        """
        message = _message(error)
        permanent = isinstance(error, PERMANENT)
        now = utcnow()
        with self.db.begin() as session:
            job = session.execute(select(Job).where(self._owned(claim)).with_for_update()).scalar_one_or_none()
            if job is None:
                return "lost"
            job.error, job.updated_at, job.claim, job.lease_until = message, now, None, None
            if permanent or job.attempts >= job.max_attempts:
                job.status, job.finished_at = "failed", now
                if on_final is not None:
                    on_final(session)
            else:
                job.status = "queued"
                job.not_before = now + timedelta(seconds=backoff_seconds(job.attempts, self.retry_base))
            log.warning("job %s attempt %d failed (%s): %s", claim.job_id, claim.attempt, job.status, message)
            return job.status

    def stale_ids(self, older_than: float) -> list[str]:
        """Jobs a dispatcher should (re)announce: queued and due, or running with a lapsed lease."""
        cutoff = utcnow() - timedelta(seconds=older_than)
        with self.db.session() as session:
            query = select(Job.id).where(self._claimable(), Job.updated_at <= cutoff).order_by(Job.created_at)
            return list(session.scalars(query.limit(100)))


def _message(error: BaseException | str) -> str:
    if isinstance(error, str):
        return error
    text = str(error).strip() or type(error).__name__
    return text if isinstance(error, PERMANENT) else f"{type(error).__name__}: {text}"[:2000]
