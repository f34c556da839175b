"""Running claimed jobs: heartbeat, progress, completion; the embedded pool and the standalone loop.

The same `execute()` runs a job whether the claim came from the embedded pool polling the job table
or from a Celery message, so both paths share lease, retry and exactly-once semantics.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time

from framemask.detect.tracking import preload
from framemask.jobs.housekeeping import DISK_FULL, active_work_dirs, is_disk_full
from framemask.jobs.queue import PERMANENT, Claim
from framemask.jobs.run import TaskRun
from framemask.jobs.segments import SEGMENT_KIND, FanOut, on_segment_failed
from framemask.jobs.tasks import HANDLERS, cleanup_work_dir, mark_video_failed
from framemask.redact.pipeline import default_detectors
from framemask.service.context import Services
from framemask.store.models import utcnow

__all__ = ["ClaimLost", "WorkerPool", "execute", "run_worker", "set_worker_name", "warm_up", "worker_name"]

log = logging.getLogger(__name__)

PROGRESS_WRITE_SECONDS = 0.5


class ClaimLost(Exception):
    """Another worker took this job over (our lease lapsed); stop without touching its results."""


_configured_name: str | None = None


def set_worker_name(name: str | None) -> None:
    """Use `name` (FRAMEMASK_WORKER_NAME or `framemask worker --name`) instead of the host name."""
    global _configured_name
    _configured_name = name or None


def worker_name(suffix: str = "") -> str:
    """host:pid[:suffix] (or name:pid[:suffix] when one is configured) — enough to find the process that
    holds a job; the pid keeps two processes with one configured name apart."""
    base = f"{_configured_name or socket.gethostname()}:{os.getpid()}"
    return f"{base}:{suffix}" if suffix else base


class _Lease(threading.Thread):
    """Renews a claim's lease in the background and carries the latest progress to the job row."""

    def __init__(self, services: Services, claim: Claim) -> None:
        super().__init__(name=f"lease-{claim.job_id[:8]}", daemon=True)
        self._queue = services.queue
        self._claim = claim
        self._interval = max(services.settings.job_lease_seconds / 3.0, 0.05)
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self._progress: tuple[float, str] | None = None
        self._written_at = 0.0
        self.lost = False

    def run(self) -> None:
        failing = False
        while not self._halt.wait(self._interval):
            try:
                self._write()
                failing = False
            except Exception as exc:  # a missed beat is harmless; the next one renews the lease
                if is_disk_full(exc):
                    DISK_FULL.report("renewing a job lease", exc)
                elif not failing:  # one traceback per streak of failures
                    log.exception("job %s: heartbeat failed", self._claim.job_id)
                failing = True

    def _write(self) -> None:
        with self._lock:
            pct, stage = self._progress if self._progress else (None, None)
            if not self._queue.heartbeat(self._claim, pct, stage):
                self.lost = True
            self._written_at = time.monotonic()

    def report(self, percent: float, stage: str) -> None:
        """Progress callback handed to the pipeline; raises `ClaimLost` once the job is not ours."""
        if self.lost:
            raise ClaimLost(self._claim.job_id)
        new_stage = self._progress is None or self._progress[1] != stage
        self._progress = (percent, stage)
        if new_stage or time.monotonic() - self._written_at >= PROGRESS_WRITE_SECONDS:
            self._write()
        if self.lost:
            raise ClaimLost(self._claim.job_id)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)


def execute(services: Services, claim: Claim) -> str:
    """Run a claimed job to its end; returns the job's status afterwards (or `lost`)."""
    job = services.queue.get(claim.job_id)
    if job is None:
        return "lost"
    video_id, payload = job.video_id, dict(job.payload or {})
    handler = HANDLERS.get(claim.kind)
    if handler is None:
        return services.queue.fail(claim, f"unknown job kind {claim.kind!r}")
    scratch = services.settings.cache_dir / "jobs"
    work_dir = scratch / f"{claim.job_id}-{claim.token[:8]}"
    lease = _Lease(services, claim)
    lease.start()
    try:
        with active_work_dirs(work_dir):
            for stale in scratch.glob(f"{claim.job_id}-*"):  # earlier attempts' scratch: theirs is gone
                if stale != work_dir:
                    cleanup_work_dir(stale)
            work_dir.mkdir(parents=True, exist_ok=True)
            run = TaskRun(services, claim.job_id, claim.attempt, video_id, payload, lease.report, work_dir)
            try:
                finalize = handler(run)
            except FanOut as fan:
                return _fan_out(services, claim, fan)
            if lease.lost:
                raise ClaimLost(claim.job_id)
            done = "succeeded" if services.queue.complete(claim, finalize) else "lost"
            DISK_FULL.resolved()
            after = getattr(finalize, "after_commit", None)
            if done == "succeeded" and after is not None:
                try:
                    after()
                except Exception:  # the job's results are committed; what follows is tidying up
                    log.warning("job %s: after-commit step failed", claim.job_id, exc_info=True)
            return done
    except ClaimLost:
        log.warning("job %s: lease lost to another worker; abandoning attempt %d", claim.job_id, claim.attempt)
        return "lost"
    except Exception as exc:  # every failure becomes a retry or a readable `failed`
        if is_disk_full(exc):
            cleanup_work_dir(work_dir)  # its scratch may be what filled the disk
            return _wait_for_space(services, claim, video_id, exc)
        log.exception("job %s attempt %d failed", claim.job_id, claim.attempt)
        on_final = None
        if claim.kind == "process_video":
            on_final = mark_video_failed(video_id, _readable(exc))
        elif claim.kind == SEGMENT_KIND:
            on_final = on_segment_failed(services, claim.job_id, _readable(exc))
        status = services.queue.fail(claim, exc, on_final=on_final)
        if status == "queued" and services.settings.queue == "celery":
            services.announce(claim.job_id, countdown=_due_in(services, claim.job_id))
        return status
    finally:
        lease.stop()
        cleanup_work_dir(work_dir)


def _fan_out(services: Services, claim: Claim, fan: FanOut) -> str:
    """The handler handed its work to child jobs: park the job (`waiting`) and announce them."""
    ids = services.queue.fan_out(claim, fan.children)
    if ids is None:
        return "lost"
    for job_id in ids:
        services.announce(job_id)
    return "waiting"


def _wait_for_space(services: Services, claim: Claim, video_id: str | None, exc: BaseException) -> str:
    """Disk full: put the job back without spending an attempt, due again after `disk_full_retry_seconds`.

    The job (and its video) show why they wait. If even that cannot be written (the database is on the
    full disk), the lease lapses and the job is taken again once there is space.
    """
    DISK_FULL.report(f"job {claim.job_id}", exc)
    DISK_FULL.give_up_reserve()  # the database is usually on the same disk: room for the lines below
    wait = services.settings.disk_full_retry_seconds
    message = f"waiting for disk space: no space left on the server's disk; retrying every {wait:g} s"
    try:
        changed = services.queue.requeue_for_space(claim, video_id, message, wait)
    except Exception as again:
        if not is_disk_full(again):
            log.warning("job %s: could not put the job back to wait for space: %s", claim.job_id, again)
        return "running"
    if services.settings.queue == "celery" and changed:
        services.announce(claim.job_id, countdown=wait)
    return "queued" if changed else "lost"


def _readable(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if isinstance(exc, PERMANENT) else f"processing failed: {text}"


def _due_in(services: Services, job_id: str) -> float:
    job = services.queue.get(job_id)
    return max((job.not_before - utcnow()).total_seconds(), 0.0) if job else 0.0


def run_worker(services: Services, name: str, stop: threading.Event, kinds: tuple[str, ...] | None = None) -> None:
    """Claim and run jobs until `stop` is set (one thread or one standalone process)."""
    poll = services.settings.job_poll_seconds
    failures = 0
    while not stop.is_set():
        if not DISK_FULL.space_back():  # no new attempt (and no tracebacks) until there is room again
            stop.wait(poll * 4)
            continue
        try:
            claim = services.queue.claim_next(name, kinds)
        except Exception as exc:  # a database hiccup must not kill the worker
            if is_disk_full(exc):
                DISK_FULL.report("claiming jobs", exc)
            elif failures == 0:  # one traceback per streak, not one every few seconds
                log.exception("worker %s: claiming failed (retrying quietly until it works)", name)
            failures += 1
            stop.wait(poll * 4)
            continue
        if failures:
            log.warning("worker %s: claiming works again after %d failed tries", name, failures)
            failures = 0
        if claim is None:
            services.wake.wait(poll)
            services.wake.clear()
            continue
        try:
            execute(services, claim)
        except Exception:  # e.g. the database went away mid-job; the lease brings the job back
            log.exception("worker %s: job %s crashed", name, claim.job_id)


def warm_up() -> threading.Thread:
    """Load what every anonymize job needs on a daemon thread as a worker starts: the tracker library
    (`tracking.preload`, ~0.1 s of one core) and the default detectors (kept for the process,
    `pipeline.default_detectors`). A fresh worker's first job then starts as fast as its later ones. Models
    that are not ready are left for the job to report."""
    thread = threading.Thread(target=_warm_up, name="framemask-warm-up", daemon=True)
    thread.start()
    return thread


def _warm_up() -> None:
    preload()
    with contextlib.suppress(Exception):
        default_detectors(("person", "face"))


class WorkerPool:
    """`size` worker threads running `run_worker`: the embedded pool of `framemask serve` and the standalone
    `framemask worker` without a broker (the one home of the worker-thread loop)."""

    def __init__(self, services: Services, size: int) -> None:
        self.services = services
        self.size = size
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        if self.size > 0:  # an API-only process (FRAMEMASK_WORKERS=0) runs no job: nothing to load
            warm_up()
        for i in range(self.size):
            name = worker_name(f"t{i}")
            thread = threading.Thread(
                target=run_worker, args=(self.services, name, self._stop), name=f"framemask-worker-{i}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def request_stop(self) -> None:
        """Ask every thread to stop after its current job (safe from a signal handler: it only sets events)."""
        self._stop.set()
        self.services.wake.set()

    def wait(self) -> None:
        """Block until every thread has stopped, waking twice a second so the main thread still gets signals."""
        while any(t.is_alive() for t in self._threads):
            for thread in self._threads:
                thread.join(0.5)

    def stop(self, timeout: float = 10.0) -> None:
        self.request_stop()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()
