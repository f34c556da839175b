"""The service's shared handles (settings, database, object store, job queue), built once per process."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from threading import Event

from framemask.jobs.queue import JobQueue
from framemask.settings import Settings
from framemask.store.db import Database
from framemask.store.objects import ObjectStore, open_store

__all__ = ["Services"]

log = logging.getLogger(__name__)


@dataclass
class Services:
    """Everything a request handler or a task needs; tasks resolve ids through it."""

    settings: Settings
    db: Database
    store: ObjectStore
    queue: JobQueue
    wake: Event = field(default_factory=Event)

    @classmethod
    def create(cls, settings: Settings, *, migrate: bool = True) -> Services:
        """Open the database (migrating it) and the object store (creating the buckets)."""
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = Database(settings.db_url, migrate=migrate)
        store = open_store(settings)
        for bucket in settings.buckets:
            store.ensure_bucket(bucket)
        queue = JobQueue(
            db, lease_seconds=settings.job_lease_seconds, retry_base_seconds=settings.job_retry_base_seconds
        )
        return cls(settings, db, store, queue)

    def announce(self, job_id: str) -> None:
        """Tell the workers a job is waiting: wake the embedded pool, or send a Celery message."""
        if self.settings.queue == "celery":
            from framemask.jobs.celery_app import send_job

            send_job(self.settings, job_id)
        self.wake.set()

    def close(self) -> None:
        self.db.dispose()
