"""The job table as a queue: exclusive claims, leases that lapse, refused stale workers, retries, failures.

Runs on SQLite always and on PostgreSQL (marked `services`) with the same assertions.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from framemask.errors import NotAVideoError
from framemask.jobs.queue import JobQueue, backoff_seconds
from framemask.store.db import Database
from framemask.store.models import Job, utcnow


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.services)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    url = f"sqlite:///{tmp_path / 'jobs.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_db")
    database = Database(url)
    yield database
    database.dispose()


def _expire_lease(db: Database, job_id: str) -> None:
    with db.begin() as session:
        session.execute(update(Job).where(Job.id == job_id).values(lease_until=utcnow() - timedelta(seconds=1)))


def test_claims_are_exclusive_under_contention(db: Database) -> None:
    queue = JobQueue(db, lease_seconds=30)
    ids = {queue.enqueue("test") for _ in range(12)}
    claimed: list[str] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        while (claim := queue.claim_next(f"w{n}")) is not None:
            with lock:
                claimed.append(claim.job_id)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed) == sorted(ids)  # every job once, none twice
    assert queue.claim_next("late") is None


def test_lapsed_lease_is_taken_over_and_the_old_claim_is_refused(db: Database) -> None:
    queue = JobQueue(db, lease_seconds=30)
    job_id = queue.enqueue("test", max_attempts=3)
    first = queue.claim_next("dead-worker")
    assert first is not None and first.attempt == 1
    assert queue.claim_next("other") is None  # leased
    assert queue.heartbeat(first, 40.0, "detect")
    _expire_lease(db, job_id)
    second = queue.claim_next("survivor")
    assert second is not None and second.job_id == job_id and second.attempt == 2
    assert second.token != first.token
    # the first worker wakes up: its heartbeat, completion and failure are all refused
    assert not queue.heartbeat(first, 90.0)
    assert not queue.complete(first)
    assert queue.fail(first, RuntimeError("late")) == "lost"
    assert queue.complete(second, result={"ok": True})
    job = queue.get(job_id)
    assert job is not None
    assert (job.status, job.attempts, job.completions, job.progress) == ("succeeded", 2, 1, 100.0)
    assert job.worker == "survivor"


def test_completion_runs_finalize_in_the_same_transaction(db: Database) -> None:
    queue = JobQueue(db)
    job_id = queue.enqueue("test")
    claim = queue.claim(job_id, "w")
    assert claim is not None

    def finalize(session) -> None:
        raise RuntimeError("results could not be written")

    with pytest.raises(RuntimeError):
        queue.complete(claim, finalize)
    job = queue.get(job_id)
    assert job is not None and job.status == "running" and job.completions == 0  # rolled back together


def test_transient_failure_retries_with_backoff_then_fails(db: Database) -> None:
    queue = JobQueue(db, retry_base_seconds=0.0)
    job_id = queue.enqueue("test", max_attempts=2)
    claim = queue.claim_next("w")
    assert claim is not None
    assert queue.fail(claim, ConnectionError("storage hiccup")) == "queued"
    job = queue.get(job_id)
    assert job is not None and job.status == "queued" and "storage hiccup" in (job.error or "")
    claim = queue.claim_next("w")
    assert claim is not None and claim.attempt == 2
    final: list[str] = []
    assert queue.fail(claim, ConnectionError("again"), on_final=lambda _s: final.append("called")) == "failed"
    job = queue.get(job_id)
    assert job is not None and job.status == "failed" and job.finished_at is not None
    assert final == ["called"]
    assert queue.claim_next("w") is None


def test_backoff_delays_the_retry(db: Database) -> None:
    queue = JobQueue(db, retry_base_seconds=60.0)
    job_id = queue.enqueue("test")
    claim = queue.claim_next("w")
    assert claim is not None
    queue.fail(claim, OSError("disk"))
    assert queue.claim_next("w") is None  # not due for a minute
    job = queue.get(job_id)
    assert job is not None and job.not_before - utcnow() > timedelta(seconds=50)
    assert [backoff_seconds(n, 2.0) for n in (1, 2, 3)] == [2.0, 4.0, 8.0]
    assert backoff_seconds(30, 2.0) == 300.0


def test_bad_input_fails_at_once_with_the_message(db: Database) -> None:
    queue = JobQueue(db)
    job_id = queue.enqueue("test", max_attempts=5)
    claim = queue.claim_next("w")
    assert claim is not None
    assert queue.fail(claim, NotAVideoError("clip.mp4: not a decodable video")) == "failed"
    job = queue.get(job_id)
    assert job is not None and job.error == "clip.mp4: not a decodable video" and job.attempts == 1


def test_worker_lost_on_last_attempt_fails_the_job(db: Database) -> None:
    queue = JobQueue(db, lease_seconds=30)
    job_id = queue.enqueue("test", max_attempts=1)
    assert queue.claim_next("w") is not None
    _expire_lease(db, job_id)
    assert queue.claim_next("w2") is None
    job = queue.get(job_id)
    assert job is not None and job.status == "failed" and "worker lost" in (job.error or "")


def test_stale_jobs_are_listed_for_re_announcement(db: Database) -> None:
    queue = JobQueue(db, lease_seconds=30)
    job_id = queue.enqueue("test")
    time.sleep(0.05)
    assert queue.stale_ids(older_than=0.0) == [job_id]
    assert queue.stale_ids(older_than=3600.0) == []


def test_missing_models_fail_at_once(db: Database) -> None:
    from framemask.errors import ModelError

    queue = JobQueue(db)
    job_id = queue.enqueue("test", max_attempts=5)
    claim = queue.claim_next("w")
    assert claim is not None
    assert queue.fail(claim, ModelError("person model missing: run ./dev setup")) == "failed"
    job = queue.get(job_id)
    assert job is not None and job.error == "person model missing: run ./dev setup"


def test_background_jobs_wait_for_the_others(db: Database) -> None:
    """A review proxy queued first is claimed after an upload's processing queued later, and then as usual."""
    from framemask.jobs.proxy_step import PROXY_KIND
    from framemask.jobs.queue import BACKGROUND_KINDS

    assert PROXY_KIND in BACKGROUND_KINDS
    queue = JobQueue(db, lease_seconds=30)
    proxy = queue.enqueue(PROXY_KIND)
    time.sleep(0.01)
    first, second = queue.enqueue("process_video"), queue.enqueue("process_video")
    order = [claim.job_id for _ in range(3) if (claim := queue.claim_next("w")) is not None]
    assert order == [first, second, proxy]
