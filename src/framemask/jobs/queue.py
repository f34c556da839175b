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
from typing import Any, cast

from pydantic import ValidationError
from sqlalchemy import CursorResult, Result, and_, func, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from framemask.errors import InputError, ModelError
from framemask.store.db import Database
from framemask.store.models import Job, Video, new_id, utcnow

__all__ = ["BACKGROUND_KINDS", "PERMANENT", "Claim", "JobQueue", "SegmentSpec", "backoff_seconds"]

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


@dataclass(frozen=True)
class SegmentSpec:
    """One child job of a fan-out: its kind, part number (segment index) and payload."""

    kind: str
    part: int
    payload: dict[str, Any]


SEGMENTS_SHARE = (5.0, 85.0)
"""A fanned-out job's progress runs from 5 % to 85 % over its segments (their mean), the join does the rest."""


BACKGROUND_KINDS = frozenset({"review_proxy"})
"""Job kinds claimed only when no other job is claimable: conveniences (an original's review proxy,
`jobs/proxy_step.py`) that must not hold up the processing of uploads queued after them."""


def backoff_seconds(attempt: int, base: float) -> float:
    """Exponential back-off after failed attempt number `attempt` (1-based), capped."""
    return min(base * float(2 ** max(attempt - 1, 0)), MAX_BACKOFF_SECONDS)


def rows_changed(result: Result[Any]) -> int:
    """Rows an UPDATE matched (`Session.execute` is typed as returning `Result`; DML gives a `CursorResult`)."""
    return int(cast(CursorResult[Any], result).rowcount)


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
        """Claim the oldest claimable job (queued, or running with a lapsed lease), if any; a job of one of the
        `BACKGROUND_KINDS` only when no other job is claimable."""
        self.fail_exhausted()
        self.release_waiting()
        order = (Job.kind.in_(BACKGROUND_KINDS), Job.created_at)
        query = select(Job.id).where(self._claimable()).order_by(*order).limit(8)
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
            changed = rows_changed(
                session.execute(
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
                )
            )
            if changed != 1:
                return None
            attempt, kind = session.execute(select(Job.attempts, Job.kind).where(Job.id == job_id)).one()
        log.info("job %s (%s) claimed by %s, attempt %d", job_id, kind, worker, attempt)
        return Claim(job_id, token, int(attempt), str(kind), worker)

    def fail_exhausted(self) -> int:
        """Fail running jobs whose lease lapsed after their last allowed attempt (their worker died)."""
        now = utcnow()
        with self.db.begin() as session:
            return rows_changed(
                session.execute(
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
                )
            )

    # --- fan-out: a job that waits for its segment jobs ----------------------------------------------

    def fan_out(self, claim: Claim, children: list[SegmentSpec]) -> list[str] | None:
        """Park the claimed job as `waiting` and insert its child jobs, in one transaction.

        The parked job gives its attempt back (fanning out is not an attempt) and becomes claimable again
        only when every child succeeded (`release`). Children take the parent's video and max attempts; the
        unique (parent, part) index makes a second fan-out of the same job impossible. None if the claim
        was lost (nothing inserted)."""
        now = utcnow()
        with self.db.begin() as session:
            parent = session.execute(select(Job).where(self._owned(claim)).with_for_update()).scalar_one_or_none()
            if parent is None:
                return None
            parent.status, parent.claim, parent.lease_until = "waiting", None, None
            parent.attempts = max(parent.attempts - 1, 0)
            parent.stage, parent.progress, parent.updated_at = "segments", SEGMENTS_SHARE[0], now
            ids = []
            for spec in children:
                child = Job(
                    id=new_id(),
                    kind=spec.kind,
                    video_id=parent.video_id,
                    parent_id=parent.id,
                    part=spec.part,
                    payload=spec.payload,
                    max_attempts=parent.max_attempts,
                )
                session.add(child)
                ids.append(child.id)
        log.info("job %s waits for %d segment jobs", claim.job_id, len(ids))
        return ids

    def children(self, job_id: str) -> list[Job]:
        """The child jobs of `job_id` in part order (empty for a job that never fanned out)."""
        with self.db.session() as session:
            return list(session.scalars(select(Job).where(Job.parent_id == job_id).order_by(Job.part)))

    def release(self, session: Session, parent_id: str) -> bool:
        """Inside a child's completion: make the waiting parent claimable once all its children succeeded.

        The parent row is locked first, so two children completing at once on PostgreSQL see each other's
        commits (the second waits for the first); SQLite serializes writers anyway."""
        parent = session.execute(select(Job).where(Job.id == parent_id).with_for_update()).scalar_one_or_none()
        if parent is None or parent.status != "waiting":
            return False
        pending = session.scalar(
            select(func.count()).select_from(Job).where(Job.parent_id == parent_id, Job.status != "succeeded")
        )
        if pending:
            return False
        now = utcnow()
        parent.status, parent.stage, parent.not_before, parent.updated_at = "queued", "join", now, now
        parent.progress = SEGMENTS_SHARE[1]
        return True

    def fail_parent(self, session: Session, parent_id: str, message: str) -> None:
        """A child failed for good: the waiting parent (and its video) fail, queued siblings are cancelled."""
        now = utcnow()
        parent = session.execute(select(Job).where(Job.id == parent_id).with_for_update()).scalar_one_or_none()
        if parent is None or parent.status not in ("waiting", "queued"):
            return
        parent.status, parent.error, parent.finished_at, parent.updated_at = "failed", message, now, now
        session.execute(
            update(Job)
            .where(Job.parent_id == parent_id, Job.status == "queued")
            .values(status="failed", error="cancelled: another segment failed", finished_at=now, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if parent.video_id is not None:
            session.execute(
                update(Video)
                .where(Video.id == parent.video_id, Video.status != "ready")
                .values(status="failed", error=message, updated_at=now)
                .execution_options(synchronize_session=False)
            )

    def release_waiting(self) -> list[str]:
        """Safety net run with every claim and sweep: waiting parents whose children all succeeded become
        claimable (ids returned, to announce), those with a failed child fail."""
        with self.db.session() as session:
            waiting = list(session.scalars(select(Job.id).where(Job.status == "waiting").limit(100)))
        released = []
        for parent_id in waiting:
            with self.db.begin() as session:
                failed = session.scalars(
                    select(Job).where(Job.parent_id == parent_id, Job.status == "failed").limit(1)
                ).first()
                if failed is not None:
                    self.fail_parent(session, parent_id, f"segment {failed.part} failed: {failed.error}")
                elif self.release(session, parent_id):
                    released.append(parent_id)
        return released

    def aggregate_progress(self, parent_id: str) -> None:
        """The waiting parent's progress from its children's (their mean over the segments' share)."""
        with self.db.begin() as session:
            mean = session.scalar(select(func.avg(Job.progress)).where(Job.parent_id == parent_id))
            if mean is None:
                return
            low, high = SEGMENTS_SHARE
            session.execute(
                update(Job)
                .where(Job.id == parent_id, Job.status == "waiting")
                .values(progress=round(low + (high - low) * float(mean) / 100.0, 2))
                .execution_options(synchronize_session=False)
            )

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
            return rows_changed(session.execute(stmt.execution_options(synchronize_session=False))) == 1

    # --- endings -------------------------------------------------------------------------------------

    def complete(self, claim: Claim, finalize: Finalize | None = None, result: dict[str, Any] | None = None) -> bool:
        """Mark the job succeeded and run `finalize` in the same transaction; False if the claim was lost."""
        now = utcnow()
        with self.db.begin() as session:
            changed = rows_changed(
                session.execute(
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
                )
            )
            if changed != 1:
                log.warning("job %s: claim lost before completion; results discarded", claim.job_id)
                return False
            if finalize is not None:
                finalize(session)
        return True

    def requeue_for_space(self, claim: Claim, video_id: str | None, message: str, wait: float) -> bool:
        """Put a job that ran out of disk back to `queued` without spending an attempt, due in `wait` seconds,
        with `message` on the job and its video; False if the claim was lost meanwhile."""
        now = utcnow()
        with self.db.begin() as session:
            changed = rows_changed(
                session.execute(
                    update(Job)
                    .where(self._owned(claim))
                    .values(
                        status="queued",
                        attempts=Job.attempts - 1,
                        error=message,
                        claim=None,
                        lease_until=None,
                        not_before=now + timedelta(seconds=wait),
                        updated_at=now,
                    )
                    .execution_options(synchronize_session=False)
                )
            )
            if changed == 1 and video_id is not None:
                session.execute(
                    update(Video)
                    .where(Video.id == video_id, Video.status.in_(("queued", "processing")))
                    .values(status="queued", error=message, updated_at=now)
                    .execution_options(synchronize_session=False)
                )
        return changed == 1

    def add_to_result(self, session: Session, job_id: str, key: str, value: Any) -> None:
        """Add `key: value` to a job's recorded result (if it has one) inside the caller's transaction."""
        result = session.scalar(select(Job.result).where(Job.id == job_id))
        if isinstance(result, dict):
            session.execute(update(Job).where(Job.id == job_id).values(result={**result, key: value}))

    def set_result(self, session: Session, job_id: str, result: dict[str, Any]) -> None:
        """Record a job's result inside the caller's transaction (a handler's finalize)."""
        session.execute(
            update(Job).where(Job.id == job_id).values(result=result).execution_options(synchronize_session=False)
        )

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
