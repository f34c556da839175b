"""The thumbnail-sprite cache: a least-recently-used cache with a byte cap per video.

Any viewer may ask for a sprite with any `every`/`width`, so cached sprites must not grow without bound:
each video keeps at most `MAX_SPRITES_PER_VIDEO` sprites and `MAX_SPRITE_BYTES_PER_VIDEO` bytes of them in
the thumbnails bucket; storing one more evicts the least recently used. Recency is kept in memory (a
sprite this process has not served since it started counts as the oldest), so a restart only changes
which sprite goes first. A sprite is also bounded in pixels before it is drawn (`MAX_SPRITE_PIXELS`).
"""

from __future__ import annotations

import logging
import threading
import time

from framemask.errors import NotFoundError
from framemask.store.layout import thumbnail_key, video_prefix
from framemask.store.objects import ObjectStore

__all__ = [
    "MAX_SPRITES_PER_VIDEO",
    "MAX_SPRITE_BYTES_PER_VIDEO",
    "MAX_SPRITE_PIXELS",
    "SpriteCache",
    "sprite_key",
]

log = logging.getLogger(__name__)

MAX_SPRITES_PER_VIDEO = 16
MAX_SPRITE_BYTES_PER_VIDEO = 32 * 1024 * 1024
MAX_SPRITE_PIXELS = 40_000_000
"""Pixels of one sprite (all tiles): about 120 MB of RGB while it is drawn."""
SPRITE_PREFIX = "sprite-"
LOOK = "sdr"
"""Part of every sprite's key: what the tiles look like. Sprites drawn before HDR video was tone-mapped
(`media.tonemap`) have none, so they are drawn again; the old ones are evicted first (never used since)."""


def sprite_key(video_id: str, variant: str, every: int, width: int) -> str:
    return thumbnail_key(video_id, f"{SPRITE_PREFIX}{LOOK}-{variant}-{every}-{width}.jpg")


class SpriteCache:
    """Sprites in the thumbnails bucket, LRU-evicted per video (see the module docstring)."""

    def __init__(
        self,
        store: ObjectStore,
        bucket: str,
        max_count: int = MAX_SPRITES_PER_VIDEO,
        max_bytes: int = MAX_SPRITE_BYTES_PER_VIDEO,
    ) -> None:
        self.store, self.bucket = store, bucket
        self.max_count, self.max_bytes = max_count, max_bytes
        self._used: dict[str, float] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        try:
            with self.store.open_read(self.bucket, key) as fh:
                body = fh.read()
        except NotFoundError:
            return None
        with self._lock:
            self._used[key] = time.monotonic()
        return body

    def put(self, video_id: str, key: str, body: bytes) -> None:
        """Store `body` at `key`, first evicting this video's least recently used sprites to stay in bounds."""
        with self._lock:
            prefix = video_prefix(video_id) + SPRITE_PREFIX
            others = [k for k in self.store.list(self.bucket, prefix) if k != key]
            sizes = {k: self._size(k) for k in others}
            others.sort(key=lambda k: self._used.get(k, float("-inf")))
            total = sum(sizes.values()) + len(body)
            while others and (len(others) + 1 > self.max_count or total > self.max_bytes):
                victim = others.pop(0)
                self.store.delete(self.bucket, victim)
                self._used.pop(victim, None)
                total -= sizes[victim]
                log.debug("sprite cache: evicted %s", victim)
            with self.store.open_write(self.bucket, key) as fh:
                fh.write(body)
            self._used[key] = time.monotonic()

    def _size(self, key: str) -> int:
        try:
            return self.store.size(self.bucket, key)
        except NotFoundError:
            return 0

    def forget(self, video_id: str) -> None:
        prefix = video_prefix(video_id)
        with self._lock:
            for key in [k for k in self._used if k.startswith(prefix)]:
                del self._used[key]
