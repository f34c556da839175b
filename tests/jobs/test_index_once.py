"""The frame index is built once per file: upload -> processing -> events -> frame reads.

A counting wrapper around `FrameIndex.build` (it still builds for real) records every build the running
service does; the stored blobs are checked under their one key helper and loaded through the one loader.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import ffprobe_count
from support.api import ADMIN, auth, make_settings, service, stored_files, upload_processed

from framemask.media import FrameIndex
from framemask.store.layout import index_key, load_index


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every path `FrameIndex.build` indexes while the test runs (the real build still runs)."""
    seen: list[Path] = []
    real = FrameIndex.build.__func__  # type: ignore[attr-defined]

    def counting(cls: type[FrameIndex], path: object) -> FrameIndex:
        seen.append(Path(str(path)))
        return real(cls, path)

    monkeypatch.setattr(FrameIndex, "build", classmethod(counting))
    return seen


def test_each_file_is_indexed_once(make, tmp_path: Path, builds: list[Path]) -> None:
    src = make("cfr")
    settings = make_settings(tmp_path / "data")
    with service(settings) as client:
        _created, video = upload_processed(client, src)
        assert video["status"] == "ready", video
        vid = video["id"]
        # the upload (validated in its spool file) and the freshly rendered master, nothing else
        assert [p.parent.name == "uploads" for p in builds] == [True, False], builds
        assert builds[1].name == "processed.mp4", builds
        for variant in ("original", "processed"):  # readers open on the stored indexes
            for seq in (1, 45, 90):
                resp = client.get(
                    f"/api/videos/{vid}/frame",
                    params={"seq": seq, "variant": variant, "format": "png"},
                    headers=auth(ADMIN),
                )
                assert resp.status_code == 200, resp.text
                assert resp.headers["x-frame-seq"] == str(seq)
        resp = client.get(f"/api/videos/{vid}/index", headers=auth(ADMIN))
        assert resp.status_code == 200 and resp.json()["endSequence"] == ffprobe_count(src) == 90
        assert len(builds) == 2, builds

        services = client.app.state.services
        bucket = settings.bucket_processed
        keys = [k for k in stored_files(settings.data_dir) if "index" in k.rsplit("/", 1)[-1]]
        assert keys == sorted(f"{bucket}/{index_key(vid, v)}" for v in ("original", "processed"))
        original = load_index(services.store, bucket, index_key(vid, "original"))
        processed = load_index(services.store, bucket, index_key(vid, "processed"))
        assert original is not None and processed is not None
        assert original.end_sequence == processed.end_sequence == 90
        # the master keeps every timestamp: same times, whatever its own time base
        assert np.allclose(original.time_ms, processed.time_ms, atol=1e-3)
