"""The service's shared handles, built once per process: the dependency root of the API and the workers.

Settings, database, object store, job queue, the broker producer, and the per-process caches (members
here, never module globals, so two `Services` in one process — tests, a worker beside an API — share none).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from threading import Event
from typing import TYPE_CHECKING

from framemask.jobs import broker
from framemask.jobs.queue import JobQueue
from framemask.service.cache import Lru
from framemask.settings import Settings
from framemask.store.db import Database
from framemask.store.objects import ObjectStore, open_store

if TYPE_CHECKING:
    from celery import Celery

    from framemask.redact.corrections import EffectiveBoxes

__all__ = ["BOXES_CACHE_SIZE", "Services"]

log = logging.getLogger(__name__)

BOXES_CACHE_SIZE = 8
"""Effective-box documents kept per process (per video state and revision; see `service.revisions`)."""


@dataclass
class Services:
    """Everything a request handler or a task needs; tasks resolve ids through it."""

    settings: Settings
    db: Database
    store: ObjectStore
    queue: JobQueue
    wake: Event = field(default_factory=Event)
    boxes: Lru[tuple[object, ...], EffectiveBoxes] = field(default_factory=lambda: Lru(BOXES_CACHE_SIZE))
    _producer: Celery | None = field(default=None, repr=False)
    _producer_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _broker_down: bool = field(default=False, repr=False)

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

    def producer(self) -> Celery:
        """The Celery producer of this process (made on first use)."""
        with self._producer_lock:
            if self._producer is None:
                self._producer = broker.make_producer(self.settings.broker_url)
            return self._producer

    def announce(self, job_id: str, *, countdown: float = 0.0) -> bool:
        """Tell the workers a job is waiting: wake the embedded pool, or send a Celery message.

        The job row, committed before this, is the truth (a transactional outbox): when the broker is down
        the message is not sent, one warning per outage is logged, and False is returned; the re-announce
        sweep (`jobs.celery_app.start_sweeper`, every `FRAMEMASK_REANNOUNCE_SECONDS`) sends it later."""
        self.wake.set()
        if self.settings.queue != "celery":
            return True
        try:
            broker.send_job(self.producer(), job_id, countdown)
        except broker.BROKER_ERRORS as exc:
            if not self._broker_down:
                log.warning("broker unreachable (%s): job %s stays queued until the sweep re-announces it", exc, job_id)
            self._broker_down = True
            return False
        if self._broker_down:
            log.info("broker reachable again")
            self._broker_down = False
        return True

    def close(self) -> None:
        self.db.dispose()
