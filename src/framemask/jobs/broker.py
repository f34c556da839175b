"""The Celery side that only sends: the task's name and queue, the app's configuration, the producer.

Kept apart from `celery_app` (which runs jobs and so needs the worker) so that `Services.announce` can
publish without importing the worker: the import graph of `jobs/` stays acyclic.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from kombu.exceptions import OperationalError as KombuOperationalError

from framemask.settings import Settings

__all__ = ["BROKER_ERRORS", "QUEUE_NAME", "TASK_NAME", "make_producer", "send_job", "visibility_timeout"]

TASK_NAME = "framemask.run_job"
QUEUE_NAME = "framemask"

BROKER_ERRORS: tuple[type[BaseException], ...] = (KombuOperationalError, ConnectionError, OSError, TimeoutError)
"""What publishing raises while the broker is unreachable (the job row stays queued; the sweep re-announces)."""

PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0.0, "interval_step": 0.2, "interval_max": 0.5}
"""Publishing gives up after about half a second: a request must not hang on a broker outage."""


def visibility_timeout(settings: Settings | None) -> float:
    """The broker's visibility timeout: far longer than the longest segment (or whole video) a worker runs.

    Redis and SQS redeliver a message whose task still runs at this timeout (celery#5935); a redelivery is
    harmless here (the claim refuses a job with a live lease) but wastes a worker's slot while it waits."""
    if settings is None:
        return 3600.0
    return max(3600.0, 30.0 * settings.segment_seconds, 10.0 * settings.job_lease_seconds)


def configure(app: Celery, settings: Settings | None) -> Celery:
    """The framemask configuration of a Celery app (producer or worker).

    `acks_late` + `task_reject_on_worker_lost`: a message is acknowledged only after its job ended, so a
    worker killed mid-job leaves it to be redelivered; `worker_prefetch_multiplier=1`: a busy worker does not
    sit on messages other workers could run. The job table's lease decides who runs a job either way."""
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
        task_publish_retry_policy=PUBLISH_RETRY,
        worker_hijack_root_logger=False,
    )
    return app


def make_producer(broker_url: str) -> Celery:
    """A Celery app that only sends (the transport options matter to consumers)."""
    return configure(Celery("framemask", broker=broker_url), None)


def send_job(producer: Celery, job_id: str, countdown: float = 0.0) -> None:
    """Announce a job to the Celery workers; raises one of `BROKER_ERRORS` when the broker is down."""
    options: dict[str, Any] = {"countdown": countdown} if countdown > 0 else {}
    producer.send_task(TASK_NAME, args=[job_id], queue=QUEUE_NAME, **options)
