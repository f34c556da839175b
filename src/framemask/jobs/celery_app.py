"""Celery on Redis (or any Celery broker) for scale-out: `FRAMEMASK_QUEUE=celery`, `framemask worker`.

A Celery message only says "job X may be ready"; the job table stays the source of truth. The task
claims the job with the same lease as the embedded pool, so duplicate or redelivered messages are
harmless. A sweeper thread in every worker re-announces jobs whose message was lost or whose worker
died (lapsed lease), which is how a SIGKILLed worker's job gets finished by another.
"""

from __future__ import annotations

import logging
import threading
from functools import lru_cache
from typing import Any

from celery import Celery

from framemask.jobs.context import Services
from framemask.settings import Settings, get_settings

__all__ = ["TASK_NAME", "make_celery", "run_celery_worker", "send_job"]

log = logging.getLogger(__name__)

TASK_NAME = "framemask.run_job"
QUEUE_NAME = "framemask"


def visibility_timeout(settings: Settings | None) -> float:
    """The broker's visibility timeout: far longer than the longest segment (or whole video) a worker runs.

    Redis and SQS redeliver a message whose task still runs at this timeout (celery#5935); a redelivery is
    harmless here (the claim refuses a job with a live lease) but wastes a worker's slot while it waits."""
    if settings is None:
        return 3600.0
    return max(3600.0, 30.0 * settings.segment_seconds, 10.0 * settings.job_lease_seconds)


def make_celery(broker_url: str, settings: Settings | None = None) -> Celery:
    """A Celery app whose only task runs one framemask job by id.

    `acks_late` + `task_reject_on_worker_lost`: a message is acknowledged only after its job ended, so a
    worker killed mid-job leaves it to be redelivered; `worker_prefetch_multiplier=1`: a busy worker does not
    sit on messages other workers could run. The job table's lease decides who runs a job either way."""
    app = Celery("framemask", broker=broker_url)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=QUEUE_NAME,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": visibility_timeout(settings)},
        worker_hijack_root_logger=False,
    )

    @app.task(name=TASK_NAME, ignore_result=True)
    def run_job(job_id: str) -> str:
        from framemask.jobs.worker import execute, worker_name

        services = _worker_services()
        claim = services.queue.claim(job_id, worker_name("celery"))
        if claim is None:  # done, taken by a live worker, not yet due, or unknown
            return "skipped"
        return execute(services, claim)

    return app


@lru_cache(maxsize=4)
def _producer(broker_url: str) -> Celery:
    return make_celery(broker_url)  # only sends: the transport options matter to consumers


def send_job(settings: Settings, job_id: str, countdown: float = 0.0) -> None:
    """Announce a job to the Celery workers."""
    options: dict[str, Any] = {"countdown": countdown} if countdown > 0 else {}
    _producer(settings.broker_url).send_task(TASK_NAME, args=[job_id], queue=QUEUE_NAME, **options)


_services_lock = threading.Lock()
_services: Services | None = None


def _worker_services() -> Services:
    """The worker process's Services, built once from the environment."""
    global _services
    with _services_lock:
        if _services is None:
            _services = Services.create(get_settings())
        return _services


def _sweep_forever(services: Services, stop: threading.Event, every: float, older_than: float) -> None:
    while not stop.wait(every):
        try:
            services.queue.fail_exhausted()
            for job_id in services.queue.release_waiting():  # joins whose last segment's release was lost
                send_job(services.settings, job_id)
            for job_id in services.queue.stale_ids(older_than):
                send_job(services.settings, job_id)
        except Exception:
            log.exception("sweeper: re-announcing stale jobs failed")


def start_sweeper(services: Services) -> threading.Event:
    """Re-announce stale jobs every lease/2 seconds in a daemon thread; set the event to stop it."""
    stop = threading.Event()
    lease = services.settings.job_lease_seconds
    thread = threading.Thread(
        target=_sweep_forever,
        args=(services, stop, max(lease / 2, 0.5), lease),
        name="framemask-sweeper",
        daemon=True,
    )
    thread.start()
    return stop


def run_celery_worker(settings: Settings, concurrency: int, name: str) -> None:
    """Run a Celery worker in this process (thread pool: the pipeline's heavy work releases the GIL)."""
    global _services
    with _services_lock:  # migrate and create buckets before taking work
        if _services is None:
            _services = Services.create(settings)
        services = _services
    from framemask.jobs.housekeeping import Housekeeper
    from framemask.jobs.worker import set_worker_name

    set_worker_name(settings.worker_name)
    housekeeper = Housekeeper(services)  # orphaned scratch, stale cached originals, now and periodically
    housekeeper.start()
    stop = start_sweeper(services)
    app = make_celery(settings.broker_url, settings)
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
