"""Where the sample video with people is found: the team's shared media, which the repository does not hold."""

from __future__ import annotations

import subprocess
from pathlib import Path

__all__ = ["REPO", "SAMPLE", "sample_video", "shared_media"]

REPO = Path(__file__).resolve().parents[2]
SAMPLE = "TUD-Campus.mp4"
ORIGIN_HOPS = 3
"""How far up a chain of local clones (a clone of CI's clone of the main checkout) the search goes."""


def shared_media(repo: Path = REPO) -> Path | None:
    """The team's shared third-party videos (`shared/media`): beside the checkout or one of its ancestors, or
    beside the repository it was cloned from, and so on up a chain of local clones (CI's clean clone)."""
    root: Path | None = repo
    for _ in range(ORIGIN_HOPS + 1):
        if root is None:
            break
        for folder in (root, *root.parents):
            if (folder / "shared" / "media" / SAMPLE).exists():
                return folder / "shared" / "media"
        root = _local_origin(root)
    return None


def _local_origin(repo: Path) -> Path | None:
    """The directory `repo` was cloned from, when it is a local one."""
    url = subprocess.run(["git", "-C", str(repo), "remote", "get-url", "origin"], capture_output=True, text=True)
    path = Path(url.stdout.strip()) if url.returncode == 0 and url.stdout.strip() else None
    return path.resolve() if path is not None and path.is_dir() else None


def sample_video(repo: Path = REPO) -> Path | None:
    """The sample clip with people (TUD-Campus): from the shared media, else `data/samples/` of the checkout."""
    media = shared_media(repo)
    for path in ((media / SAMPLE) if media else None, repo / "data" / "samples" / SAMPLE):
        if path is not None and path.exists():
            return path
    return None
