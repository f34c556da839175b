"""`anonymize_file` with the real detectors on real footage: ground-truth coverage, no blinking masks,
exact frames and timestamps, the seed JSON, and the leak audit in both directions."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from conftest import SHARED_MEDIA, ffprobe_count
from support.reshoot import ANAMORPHIC, WIDE_SHOT, Box, reshoot

from framemask.detect import Detector
from framemask.redact import AnonymizeResult, anonymize_file, render_with_boxes
from framemask.redact.audit import audit_detectors, audit_file
from framemask.redact.pipeline import default_detectors
from framemask.redact.policy import MaskPolicy
from framemask.redact.scoring import TrackScore, load_gt, load_regions, score_tracks

TUD = SHARED_MEDIA / "TUD-Campus.mp4"
GT = SHARED_MEDIA / "TUD-Campus.gt.txt"
W, H = 640, 480


@pytest.fixture(scope="module")
def detectors() -> list[Detector]:
    return default_detectors(("person", "face"))  # a ModelError here means: run ./dev setup


@pytest.fixture(scope="module")
def auditors() -> list[Detector]:
    return audit_detectors(("person", "face"))


@pytest.fixture(scope="module")
def tud(tmp_path_factory: pytest.TempPathFactory, detectors: list[Detector]) -> AnonymizeResult:
    out = tmp_path_factory.mktemp("tud")
    return anonymize_file(TUD, out / "tud.mp4", boxes_path=out / "tud.json", detectors=detectors)


def ground_truth() -> dict[int, list[tuple[int, list[float]]]]:
    """seq -> [(track id, [x1, y1, x2, y2])]; MOT frame N is the N-th decoded frame."""
    gt: dict[int, list[tuple[int, list[float]]]] = defaultdict(list)
    for line in GT.read_text().splitlines():
        frame, tid, left, top, w, h = (float(v) for v in line.split(",")[:6])
        gt[int(frame)].append((int(tid), [left, top, left + w, top + h]))
    return gt


def masked_share(box: list[float], painted: np.ndarray) -> float:
    """Share of `box` inside the union of a frame's painted (N, 4) regions."""
    x1, y1 = max(0, int(box[0])), max(0, int(box[1]))
    x2, y2 = min(W, int(np.ceil(box[2]))), min(H, int(np.ceil(box[3])))
    grid = np.zeros((H, W), bool)
    for mx1, my1, mx2, my2 in painted.tolist():
        grid[my1:my2, mx1:mx2] = True
    return float(grid[y1:y2, x1:x2].mean()) if x2 > x1 and y2 > y1 else 1.0


def gray_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="gray").astype(np.float32) for f in c.decode(video=0)]


def detail_correlation(a: np.ndarray, b: np.ndarray) -> float:
    ha, hb = a - cv2.GaussianBlur(a, (0, 0), 1.5), b - cv2.GaussianBlur(b, (0, 0), 1.5)
    return float((ha * hb).sum() / np.sqrt((ha * ha).sum() * (hb * hb).sum() + 1e-9))


def test_at_least_99_percent_of_ground_truth_people_are_masked(tud: AnonymizeResult) -> None:
    assert tud.painted is not None
    shares = [masked_share(box, tud.painted.boxes(seq)) for seq, items in ground_truth().items() for _, box in items]
    assert len(shares) == 359
    covered = sum(s >= 0.5 for s in shares) / len(shares)
    assert covered >= 0.99, f"only {covered:.1%} of ground-truth boxes are >= 50% masked"


def test_masked_regions_really_are_masked_in_the_pixels(tud: AnonymizeResult) -> None:
    """Spot-check: where the painted regions claim a ground-truth person is masked, the pixels agree."""
    before, after = gray_frames(TUD), gray_frames(tud.output)
    assert tud.painted is not None
    checked = 0
    for seq, items in ground_truth().items():
        if seq % 7:
            continue
        for _, box in items:
            if masked_share(box, tud.painted.boxes(seq)) < 0.99:
                continue
            x1, y1, x2, y2 = (int(v) for v in box)
            region = (slice(max(0, y1), y2), slice(max(0, x1), x2))
            assert detail_correlation(before[seq - 1][region], after[seq - 1][region]) < 0.4
            checked += 1
    assert checked >= 10


def test_a_track_mask_never_drops_out_for_single_frames(tud: AnonymizeResult) -> None:
    """Per ground-truth track: no frame is unmasked while the frames either side of it are masked."""
    assert tud.painted is not None
    per_track: dict[int, dict[int, bool]] = defaultdict(dict)
    for seq, items in ground_truth().items():
        for tid, box in items:
            per_track[tid][seq] = masked_share(box, tud.painted.boxes(seq)) >= 0.5
    blinks = [
        (tid, seq)
        for tid, frames in per_track.items()
        for seq, ok in frames.items()
        if not ok and frames.get(seq - 1) and frames.get(seq + 1)
    ]
    assert blinks == []


def test_our_own_masks_do_not_blink(tud: AnonymizeResult) -> None:
    """A painted region present one frame before and after is present in between too (IoU > 0.3)."""
    painted = tud.painted
    assert painted is not None

    def boxes(seq: int) -> list[list[int]]:
        return painted.boxes(seq).tolist()

    def iou(a: list[int], b: list[int]) -> float:
        ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
        iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
        return ix * iy / union if union else 0.0

    for now in range(2, tud.end_sequence):
        for box in boxes(now - 1):
            if any(iou(box, b) > 0.5 for b in boxes(now + 1)):
                assert any(iou(box, b) > 0.3 for b in boxes(now)), f"a mask blinks off at seq {now}"


def test_frames_and_timestamps_equal_the_input(tud: AnonymizeResult) -> None:
    assert tud.end_sequence == 71 == ffprobe_count(tud.output)
    with av.open(str(TUD)) as a, av.open(str(tud.output)) as b:
        ta = [f.pts * a.streams.video[0].time_base for f in a.decode(video=0)]
        tb = [f.pts * b.streams.video[0].time_base for f in b.decode(video=0)]
    assert ta == tb


def test_boxes_json_is_complete_seed_format(tud: AnonymizeResult) -> None:
    doc = json.loads(Path(tud.output).with_suffix(".json").read_text())
    assert doc == tud.boxes
    assert doc["endSequence"] == 71 and [e["seq"] for e in doc["sequence"]] == list(range(1, 72))
    people = 0
    for entry in doc["sequence"]:
        assert set(entry) - {"candidates"} == {"seq", "person", "face"}
        for box in entry["person"] + entry["face"]:
            assert set(box) - {"filled"} == {"x1", "x2", "y1", "y2", "track", "score"}
            assert all(isinstance(box[k], int) for k in ("x1", "x2", "y1", "y2", "track")) and 0 < box["score"] <= 1
            assert 0 <= box["x1"] < box["x2"] <= W and 0 <= box["y1"] < box["y2"] <= H
        for box in entry.get("candidates", []):
            assert box["label"] in ("person", "face") and 0 < box["score"] <= 1
        people += len(entry["person"])
    # 359 ground-truth people, plus people seen through the glass facade (not annotated): about one
    # tight box per person, not two
    assert 300 <= people <= 1.3 * 359


def test_audit_of_the_processed_video_finds_no_leaks(tud: AnonymizeResult, auditors: list[Detector]) -> None:
    report = audit_file(tud.output, original=TUD, detectors=auditors)
    assert report["frames_checked"] == 71 and report["basis"] == "original"
    assert report["detections"]["original"] > 100  # the input had people to hide
    assert report["leaks"] == []


def test_audit_catches_a_person_left_unmasked(tud: AnonymizeResult, auditors: list[Detector], tmp_path: Path) -> None:
    """Drop the masks of frames 30-40 and re-render: the audit must report those frames."""
    doc = tud.boxes
    for entry in doc["sequence"][29:40]:
        entry["person"], entry["face"], entry["candidates"] = [], [], []
    # no hold: the default policy would keep a lost track masked for 8 more frames
    leaky = render_with_boxes(TUD, tmp_path / "leaky.mp4", doc, policy=MaskPolicy(hold_frames=0)).output
    report = audit_file(leaky, original=TUD, stride=3, detectors=auditors)
    seqs = {leak["seq"] for leak in report["leaks"] if leak["label"] == "person"}
    assert seqs == {31, 34, 37, 40}, report["leaks"]  # the checked frames among 30-40, and nothing else
    for seq in seqs:  # what the input showed is reported, not only what the detector sees in the output
        assert any("original" in leak["found_in"] for leak in report["leaks"] if leak["seq"] == seq)
    by_boxes = audit_file(leaky, boxes_doc=doc, stride=3, detectors=auditors)
    assert {leak["seq"] for leak in by_boxes["leaks"]} & set(range(30, 41))


def test_face_only_targets_mask_faces_only(tmp_path: Path) -> None:
    src = SHARED_MEDIA / "mmaction2_test_ApplyEyeMakeup.avi"  # one large face, often half hidden by a hand
    result = anonymize_file(src, tmp_path / "face.mp4", targets=("face",))
    seqs = result.boxes["sequence"]
    assert all(e["person"] == [] for e in seqs)
    with_face = sum(bool(e["face"]) for e in seqs)
    assert with_face >= 0.8 * len(seqs), f"a face was masked on only {with_face} of {len(seqs)} frames"
    assert ffprobe_count(result.output) == 164


def test_tracks_meet_the_mot_floors(tud: AnonymizeResult) -> None:
    """One tight box per walker with a stable id (motmetrics against the MOT15 ground truth; people behind
    the glass facade and cut by the frame edge are unannotated, so unmatched boxes there are excused)."""
    assert tud.painted is not None
    painted = {s: tud.painted.boxes(s) for s in range(1, tud.end_sequence + 1)}
    ignore = load_regions(SHARED_MEDIA / "TUD-Campus.ignore.txt")
    score = score_tracks(tud.boxes, load_gt(GT), W, H, ignore=ignore, painted=painted)
    # measured 0.72 / 0.78 / 1.28 / 1.0; the targets on unseen footage are MOTA 0.60, IDF1 0.55, 1.3 boxes
    assert score.mota >= 0.65 and score.idf1 >= 0.70, score
    assert score.boxes_per_gt <= 1.3 and score.gt_masked >= 0.99, score


def _anonymized_score(
    src: Path,
    gt: dict[int, list[tuple[int, Box]]],
    size: tuple[int, int],
    ignore: list[Box],
    out: Path,
    detectors: list[Detector],
) -> TrackScore:
    """The anonymizer's tracks and painted masks of `src` against its ground truth."""
    result = anonymize_file(src, out, detectors=detectors)
    assert result.painted is not None
    painted = {s: result.painted.boxes(s) for s in range(1, result.end_sequence + 1)}
    return score_tracks(result.boxes, gt, *size, ignore=ignore, painted=painted)


def test_anamorphic_footage_is_detected_as_it_is_shown(detectors: list[Detector], tmp_path: Path) -> None:
    """TUD-Campus squeezed to 480x480 with 4:3 pixels (shown 640x480, as DV or anamorphic broadcast is): the
    detectors look at it with square pixels. Measured: recall 0.83 and MOTA 0.71, against 0.65 and 0.60 when
    they looked at the squeezed people (the padded masks covered every annotated person either way)."""
    shot = reshoot(SHARED_MEDIA, ANAMORPHIC, tmp_path / "anamorphic.mp4")
    score = _anonymized_score(shot.path, shot.gt, shot.size, shot.ignore, tmp_path / "out.mp4", detectors)
    assert score.recall >= 0.75 and score.mota >= 0.65 and score.gt_masked >= 0.99, score


def test_a_wide_shot_of_few_small_people_is_looked_at_closer(detectors: list[Detector], tmp_path: Path) -> None:
    """TUD-Campus at half size on a grey 1080p canvas, a street seen from afar: its walkers are 65-155 px tall
    and too few for a crowd, so the person detector's closer look comes from the wide-shot rule. Measured:
    recall 0.62 and MOTA 0.48, with 0.98 of the people inside their tight boxes; one look gave 0.43, 0.25 and
    0.91."""
    shot = reshoot(SHARED_MEDIA, WIDE_SHOT, tmp_path / "wide.mp4")
    score = _anonymized_score(shot.path, shot.gt, shot.size, shot.ignore, tmp_path / "out.mp4", detectors)
    assert score.recall >= 0.55 and score.mota >= 0.4 and score.gt_masked >= 0.99, score


def test_a_street_crowd_is_mostly_masked(detectors: list[Detector], tmp_path: Path) -> None:
    """MOT17-04 at 1080p (42 annotated pedestrians a frame, 130-240 px tall): the default detectors look at a
    crowd of small people twice (`NanoDet` crowd pass). Measured: 0.86 of the people >= 50% masked, 0.71 with
    one look at 416 px; every box the tracker keeps is on a person."""
    mot = SHARED_MEDIA / "mmtracking_demo_MOT17-04_frames1-8.mp4"
    gt = load_gt(Path(__file__).resolve().parents[2] / "bench/data/MOT17-04-frames1-8.gt.txt")
    score = _anonymized_score(mot, gt, (1920, 1080), [], tmp_path / "mot.mp4", detectors)
    assert score.gt_masked >= 0.8, score
    assert score.precision >= 0.9, score
