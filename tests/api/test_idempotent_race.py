"""Two uploads racing with one `Idempotency-Key` (issue 11, "durable and idempotent"): both answer the same
video, and that video's stored original and frame index are exactly the bytes of the upload whose row won,
whatever order the two attempts stored their objects in; the loser leaves nothing behind."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any

import pytest
from conftest import SHARED_MEDIA
from support.api import ADMIN, auth, make_settings, service

from framemask.media import FrameIndex
from framemask.store.layout import load_index, video_prefix
from framemask.store.models import Video

FILES = (SHARED_MEDIA / "TUD-Campus.mp4", SHARED_MEDIA / "carphone_pristine.mp4")


def _post(client: Any, path: Path, key: str, out: list[Any], barrier: threading.Barrier) -> None:
    data = path.read_bytes()
    barrier.wait()  # both requests leave together, so both pass the replay check before either commits
    resp = client.post(
        "/api/videos",
        files={"file": ("clip.mp4", data, "video/mp4")},  # same name: the same object key without attempts
        headers={**auth(ADMIN), "Idempotency-Key": key},
    )
    out.append(resp)


@pytest.mark.skipif(not all(p.is_file() for p in FILES), reason="shared media not present")
def test_racing_idempotent_uploads_keep_the_winners_bytes(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", workers=0)
    with service(settings) as client:
        services = client.app.state.services
        for round_ in range(3):
            key = f"race-key-{round_}"
            responses: list[Any] = []
            barrier = threading.Barrier(2)
            threads = [threading.Thread(target=_post, args=(client, p, key, responses, barrier)) for p in FILES]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
            assert sorted(r.status_code for r in responses) == [201, 201], [r.text for r in responses]
            (video_id,) = {r.json()["id"] for r in responses}
            with services.db.session() as session:
                video = session.get(Video, video_id)
                assert video is not None
            winner = next(p for p in FILES if p.stat().st_size == video.size_bytes)
            stored = services.store.local_path(video.raw_bucket, video.raw_key)
            assert stored is not None
            assert hashlib.sha256(stored.read_bytes()).digest() == hashlib.sha256(winner.read_bytes()).digest()
            index = load_index(services.store, settings.bucket_processed, video.index_key)
            assert index is not None
            assert index.end_sequence == FrameIndex.build(winner).end_sequence == video.end_sequence
            # the loser removed its own original and index; nothing else was touched
            prefix = video_prefix(video_id)
            assert services.store.list(video.raw_bucket, prefix) == [video.raw_key]
            assert services.store.list(settings.bucket_processed, prefix) == [video.index_key]
