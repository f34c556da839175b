"""Hard cuts found as frames stream past (`ShotCuts`): one frame late, not fooled by a flash or by motion."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import SHARED_MEDIA
from support.videos import pattern

from framemask.media import iter_frames
from framemask.media.cuts import RESUME_FRAMES, ShotCuts, small_bgr_i420, small_bgr_rgb

W, H = 320, 240


def scene_b(i: int) -> np.ndarray:
    """Another shot: stripes in other colours, and a bar moving the other way."""
    img = np.zeros((H, W, 3), np.uint8)
    img[:, :, 0] = 200
    img[::8] = (30, 90, 60)
    bar = W - 16 - (i * 5) % (W - 16)
    img[:, bar : bar + 8] = 255
    return img


def feed_all(frames: list[np.ndarray], min_frames: int = 4) -> tuple[list[int], list[int]]:
    """Cuts found, and at which frame each was reported (0-based)."""
    shots = ShotCuts(min_frames)
    found, when = [], []
    for i, rgb in enumerate(frames):
        for cut in shots.feed(small_bgr_rgb(rgb)):
            found.append(cut)
            when.append(i)
    return found, when


def test_a_hard_cut_is_reported_one_frame_late() -> None:
    frames = [pattern(i, W, H) for i in range(20)] + [scene_b(i) for i in range(20, 40)]
    found, when = feed_all(frames)
    assert found == [20] and when == [20 + ShotCuts.latency]


def test_moving_content_and_a_flash_are_not_cuts() -> None:
    frames = [pattern(i, W, H) for i in range(40)]
    frames[17] = np.full((H, W, 3), 250, np.uint8)  # a camera flash: one white frame
    assert feed_all(frames)[0] == []


def test_cuts_closer_than_min_frames_are_reported_once() -> None:
    frames = [pattern(i, W, H) for i in range(20)] + [scene_b(i) for i in range(20, 22)]
    frames += [pattern(i, W, H) for i in range(22, 40)]  # back to the first shot two frames later
    assert feed_all(frames, min_frames=5)[0] == [20]
    assert feed_all(frames, min_frames=2)[0] == [20, 22]


def test_a_cut_back_to_a_view_of_the_last_moments_is_resumed() -> None:
    """A run of corrupt frames (noise, then frozen) in a shot: its start and its end are cuts; the end goes back
    to the view of two dozen frames before (resumed: the tracker keeps its ids), the start does not, nor does a
    cut to another shot, nor one back to a view last seen longer ago than RESUME_FRAMES."""
    rng = np.random.default_rng(3)
    corrupt = [rng.integers(0, 256, (H, W, 3), dtype=np.uint8)] * 6
    frames = [pattern(i, W, H) for i in range(20)] + corrupt + [pattern(i, W, H) for i in range(26, 40)]
    frames += [scene_b(i) for i in range(40, 50)]
    shots = ShotCuts(4)
    found = [cut for rgb in frames for cut in shots.feed(small_bgr_rgb(rgb))]
    assert found == [20, 26, 40] and shots.resumed == {26}
    gone = [pattern(i, W, H) for i in range(10)] + [scene_b(i) for i in range(10, 10 + RESUME_FRAMES + 2)]
    shots = ShotCuts(4)
    found = [cut for rgb in [*gone, pattern(70, W, H), pattern(71, W, H)] for cut in shots.feed(small_bgr_rgb(rgb))]
    assert found == [10, RESUME_FRAMES + 12] and shots.resumed == set()


def test_the_planes_copy_matches_the_rgb_copy() -> None:
    rgb = pattern(7, W, H)
    i420 = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)
    a, b = small_bgr_i420(i420), small_bgr_rgb(rgb)
    assert a.shape == b.shape == (96, 128, 3)
    assert np.abs(a.astype(int) - b.astype(int)).mean() < 4


@pytest.mark.skipif(not (SHARED_MEDIA / "TUD-Campus.mp4").is_file(), reason="shared media missing")
def test_real_street_footage_and_its_mirror_image() -> None:
    """A street, then the same street mirrored (the least a cut changes among the shared clips): one cut."""
    street = [f.to_ndarray(format="rgb24") for _, f in iter_frames(SHARED_MEDIA / "TUD-Campus.mp4")]
    assert feed_all(street)[0] == []
    assert feed_all(street[:40] + [f[:, ::-1].copy() for f in street[40:]])[0] == [40]
