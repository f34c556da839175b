"""Score tracked boxes against MOTChallenge ground truth: MOTA, IDF1 and friends (motmetrics), HOTA
(TrackEval), boxes per person, and how much of each annotated person the painted mask covers.

MOTChallenge ground truth leaves some real people unannotated: cut by the frame edge, or seen through a
window. An unmatched box touching the border, or lying mostly inside a don't-care region, is therefore
not counted as a false positive. Those people must still be detected and masked; the score only stops
punishing it. `motmetrics` and `trackeval` are development dependencies (`./dev setup` installs them;
TrackEval with `--no-deps`, as its declared GUI OpenCV would replace the headless one).
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from framemask.detect import box_iou
from framemask.errors import InputError

__all__ = ["TrackScore", "load_gt", "load_regions", "score_tracks"]

MATCH_IOU = 0.5
BORDER_PX = 2.0
INSIDE_REGION = 0.8
COVERED = 0.5
"""A ground-truth person counts as masked when this fraction of their box is painted over."""

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class TrackScore:
    mota: float
    idf1: float
    precision: float
    recall: float
    id_switches: int
    boxes_per_gt: float
    gt_boxes: int
    boxes: int
    gt_masked: float
    """Fraction of ground-truth boxes with at least `COVERED` of their area painted."""
    hota: float = float("nan")
    """Higher Order Tracking Accuracy (TrackEval, averaged over IoU thresholds 0.05..0.95); NaN without it."""
    deta: float = float("nan")
    """HOTA's detection part."""
    assa: float = float("nan")
    """HOTA's association part."""

    def to_json(self) -> dict[str, Any]:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}


def load_gt(path: str | os.PathLike[str]) -> dict[int, list[tuple[int, Box]]]:
    """MOTChallenge `gt.txt` (`frame,id,left,top,width,height,...`): {frame: [(id, x1y1x2y2)]}."""
    gt: dict[int, list[tuple[int, Box]]] = defaultdict(list)
    for line in Path(path).read_text().split():
        cols = line.split(",")
        if len(cols) < 6:
            raise InputError(f"{path}: not a MOTChallenge ground-truth line: {line!r}")
        frame, tid, left, top, w, h = (float(c) for c in cols[:6])
        gt[int(frame)].append((int(tid), (left, top, left + w, top + h)))
    return dict(gt)


def load_regions(path: str | os.PathLike[str] | None) -> list[Box]:
    """Don't-care regions, `x1,y1,x2,y2` per line."""
    if path is None:
        return []
    regions = []
    for line in Path(path).read_text().split():
        x1, y1, x2, y2 = (float(v) for v in line.split(","))
        regions.append((x1, y1, x2, y2))
    return regions


def score_tracks(
    boxes: Mapping[str, Any],
    gt: Mapping[int, Sequence[tuple[int, Box]]],
    width: int,
    height: int,
    *,
    ignore: Sequence[Box] = (),
    painted: Mapping[int, np.ndarray] | None = None,
    label: str = "person",
) -> TrackScore:
    """Score the `label` boxes (with `track` ids) of a seed document; `painted` {seq: (N, 4)} for masking."""
    import motmetrics as mm

    acc = mm.MOTAccumulator(auto_id=False)
    frames: list[tuple[list[int], list[Any], np.ndarray]] = []
    n_gt = n_hyp = masked = 0
    for entry in boxes["sequence"]:
        seq = int(entry["seq"])
        people = gt.get(seq, [])
        hyps = [
            # (a box without a track id is its own one-frame track; motmetrics wants numeric ids)
            (b.get("track", -(seq * 100_000 + i + 1)), (b["x1"], b["y1"], b["x2"], b["y2"]))
            for i, b in enumerate(entry.get(label, []))
        ]
        n_gt, n_hyp = n_gt + len(people), n_hyp + len(hyps)
        hyps = _not_excused(hyps, people, width, height, ignore)
        g = np.array([b for _, b in people], np.float64).reshape(-1, 4)
        h = np.array([b for _, b in hyps], np.float64).reshape(-1, 4)
        iou = box_iou(g, h)
        frames.append(([i for i, _ in people], [t for t, _ in hyps], iou))
        dist = 1.0 - iou
        dist[dist > 1.0 - MATCH_IOU] = np.nan
        acc.update([i for i, _ in people], [t for t, _ in hyps], dist, frameid=seq)
        if painted is not None:
            masked += sum(_covered(b, painted.get(seq, np.zeros((0, 4)))) >= COVERED for _, b in people)
    summary = (
        mm.metrics.create()
        .compute(acc, metrics=["mota", "idf1", "precision", "recall", "num_switches"], name="all")
        .iloc[0]
    )
    hota = _hota(frames)
    return TrackScore(
        **hota,
        mota=float(summary["mota"]),
        idf1=float(summary["idf1"]),
        precision=float(summary["precision"]),
        recall=float(summary["recall"]),
        id_switches=int(summary["num_switches"]),
        boxes_per_gt=n_hyp / max(n_gt, 1),
        gt_boxes=n_gt,
        boxes=n_hyp,
        gt_masked=masked / max(n_gt, 1) if painted is not None else float("nan"),
    )


def _hota(frames: Sequence[tuple[list[int], list[Any], np.ndarray]]) -> dict[str, float]:
    """HOTA, DetA and AssA from TrackEval over per-frame (gt ids, track ids, IoU matrix); NaNs without it."""
    try:
        from trackeval.metrics import HOTA
    except ImportError:
        return {}
    gt_index: dict[int, int] = {}
    track_index: dict[Any, int] = {}
    data: dict[str, Any] = {"gt_ids": [], "tracker_ids": [], "similarity_scores": []}
    for gts, tracks, iou in frames:  # TrackEval wants ids numbered 0..n-1 per side
        data["gt_ids"].append(np.array([gt_index.setdefault(g, len(gt_index)) for g in gts], int))
        data["tracker_ids"].append(np.array([track_index.setdefault(t, len(track_index)) for t in tracks], int))
        data["similarity_scores"].append(iou)
    data.update(
        num_timesteps=len(frames),
        num_gt_dets=sum(len(g) for g in data["gt_ids"]),
        num_tracker_dets=sum(len(t) for t in data["tracker_ids"]),
        num_gt_ids=len(gt_index),
        num_tracker_ids=len(track_index),
    )
    result = HOTA().eval_sequence(data)
    return {key.lower(): float(np.mean(result[key])) for key in ("HOTA", "DetA", "AssA")}


def _not_excused(
    hyps: list[tuple[Any, Box]], people: Sequence[tuple[int, Box]], width: int, height: int, ignore: Sequence[Box]
) -> list[tuple[Any, Box]]:
    """Drop boxes that match no annotated person and lie where the annotation leaves people out."""
    if not hyps:
        return hyps
    iou = box_iou([b for _, b in people], [b for _, b in hyps])
    rows, cols = linear_sum_assignment(-iou) if iou.size else ([], [])
    matched = {c for r, c in zip(rows, cols, strict=True) if iou[r, c] >= MATCH_IOU}
    return [h for j, h in enumerate(hyps) if j in matched or not _excused(h[1], width, height, ignore)]


def _excused(box: Box, width: int, height: int, ignore: Sequence[Box]) -> bool:
    x1, y1, x2, y2 = box
    if x1 <= BORDER_PX or y1 <= BORDER_PX or x2 >= width - BORDER_PX or y2 >= height - BORDER_PX:
        return True
    area = max((x2 - x1) * (y2 - y1), 1e-9)
    for a, b, c, d in ignore:
        inter = max(0.0, min(x2, c) - max(x1, a)) * max(0.0, min(y2, d) - max(y1, b))
        if inter / area >= INSIDE_REGION:
            return True
    return False


def _covered(box: Box, painted: np.ndarray) -> float:
    """Fraction of `box` painted over by any of the (N, 4) regions (sampled on a 16 x 16 grid)."""
    x1, y1, x2, y2 = box
    xs = x1 + (np.arange(16) + 0.5) * (x2 - x1) / 16
    ys = y1 + (np.arange(16) + 0.5) * (y2 - y1) / 16
    px, py = np.meshgrid(xs, ys)
    inside = np.zeros(px.shape, bool)
    for a, b, c, d in np.asarray(painted, np.float64).reshape(-1, 4):
        inside |= (px >= a) & (px < c) & (py >= b) & (py < d)
    return float(inside.mean())
