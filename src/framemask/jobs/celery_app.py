"""Celery on Redis (or any Celery broker) for scale-out: `FRAMEMASK_QUEUE=celery`, `framemask worker`.

A Celery message only says "job X may be ready"; the job table stays the source of truth (a transactional
outbox: the row is committed first, the message sent after). The task claims the job with the same lease as
the embedded pool, so duplicate or redelivered messages are harmless. A sweeper thread in the API and in
every worker re-announces claimable jobs nobody took for `FRAMEMASK_REANNOUNCE_SECONDS`: a message lost, one
never sent because the broker was down when the job was queued, or a worker that died (lapsed lease).
"""

from __future__ import annotations

import logging
import threading

from celery import Celery

from framemask.jobs.broker import QUEUE_NAME, TASK_NAME, configure
from framemask.jobs.housekeeping import Housekeeper
from framemask.jobs.worker import execute, warm_up, worker_name
from framemask.service.context import Services
from framemask.settings import Settings

__all__ = ["make_celery", "run_celery_worker", "start_sweeper", "sweep_once"]

log = logging.getLogger(__name__)


def make_celery(services: Services) -> Celery:
    """A Celery app whose only task runs one framemask job by id, against `services`."""
    app = configure(Celery("framemask", broker=services.settings.broker_url), services.settings)

    @app.task(name=TASK_NAME, ignore_result=True)  # type: ignore[untyped-decorator]
    def run_job(job_id: str) -> str:
        claim = services.queue.claim(job_id, worker_name("celery"))
        if claim is None:  # done, taken by a live worker, not yet due, or unknown
            return "skipped"
        return execute(services, claim)

    return app


def sweep_once(services: Services) -> int:
    """One pass of the sweep: fail exhausted jobs, release parents, re-announce jobs nobody took; returns how
    many were announced (0 while the broker is down: they stay queued for the next pass)."""
    services.queue.fail_exhausted()
    stale = services.queue.release_waiting() + services.queue.stale_ids(services.settings.reannounce_after)
    sent = 0
    for job_id in stale:  # joins whose last segment's release was lost, then jobs whose message was lost
        if not services.announce(job_id):
            break  # broker down: announce logged it once; the next pass tries again
        sent += 1
    return sent


def _sweep_forever(services: Services, stop: threading.Event, every: float) -> None:
    while not stop.wait(every):
        try:
            sweep_once(services)
        except Exception:
            log.exception("sweeper: re-announcing stale jobs failed")


def start_sweeper(services: Services) -> threading.Event:
    """Sweep every `reannounce_after / 2` seconds in a daemon thread; set the event to stop it."""
    stop = threading.Event()
    thread = threading.Thread(
        target=_sweep_forever,
        args=(services, stop, max(services.settings.reannounce_after / 2, 0.5)),
        name="framemask-sweeper",
        daemon=True,
    )
    thread.start()
    return stop


def run_celery_worker(settings: Settings, concurrency: int, name: str) -> None:
    """Run a Celery worker in this process (thread pool: the pipeline's heavy work releases the GIL)."""
    services = Services.create(settings)  # migrate and create buckets before taking work (the CLI named us)
    housekeeper = Housekeeper(services)  # orphaned scratch, stale cached originals, now and periodically
    housekeeper.start()
    stop = start_sweeper(services)
    app = make_celery(services)
    warm_up()
    try:
        app.worker_main(
            [
                "worker",
                "--pool=threads",
                f"--concurrency={max(concurrency, 1)}",
                "-Q",
                QUEUE_NAME,
                "-n",
                name,
                "--loglevel=INFO",
                "--without-gossip",
                "--without-mingle",
            ]
        )
    finally:
        stop.set()
        housekeeper.stop()
        services.close()
