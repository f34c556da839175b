"""Measure the INT8 person model's activation ranges (`src/framemask/detect/nanodet_int8_ranges.json`).

Run once when the person model or the quantisation changes: `.venv/bin/python scripts/calibrate_person_int8.py`.
It needs the shared test media (`../shared/media`, or $FRAMEMASK_TEST_MEDIA). Calibration frames: 12 from
each clip below at its own size and again scaled to 1280 px wide, letterboxed as `NanoDet.detect` does.
None of them is an evaluation clip (TUD-Campus, MOT17-04, the arm-wrestling bench clip), so the tracking and
coverage benchmarks score the INT8 model on footage it was not calibrated on.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import av
import cv2
import numpy as np
from onnxruntime.quantization import CalibrationDataReader

from framemask.detect.models import NANODET_ONNX, default_model_dir
from framemask.detect.nanodet import NanoDet, open_input_size
from framemask.detect.quantize import RANGES, quantize_convs

CLIPS = (
    "mmaction2_test_video_structuralize.mp4",  # gym, 2-3 small full bodies
    "torchcodec_nasa_13013_vfr.mp4",  # dark hall, one small worker
    "flipping_a_pancake.mkv",  # kitchen, a person close up, handheld
    "mmaction2_test_ApplyEyeMakeup.avi",  # face close up
    "carphone_pristine.mp4",  # talking head in a car
)
PER_CLIP = 12


def frames(media: Path) -> list[np.ndarray]:
    out = []
    for name in CLIPS:
        with av.open(str(media / name)) as container:
            decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        out += decoded[:: max(1, len(decoded) // PER_CLIP)][:PER_CLIP]
    return out + [cv2.resize(f, (1280, round(f.shape[0] * 1280 / f.shape[1]))) for f in out]


class Inputs(CalibrationDataReader):  # type: ignore[misc]
    def __init__(self, detector: NanoDet, rgbs: list[np.ndarray]) -> None:
        self._feeds = iter([{detector.input_name: detector._letterbox(rgb, square=False)[0]} for rgb in rgbs])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


def main() -> int:
    media = Path(os.environ.get("FRAMEMASK_TEST_MEDIA") or Path(__file__).resolve().parents[2] / "shared" / "media")
    if not all((media / name).is_file() for name in CLIPS):
        print(f"calibration clips not found in {media} (set FRAMEMASK_TEST_MEDIA)", file=sys.stderr)
        return 1
    model = default_model_dir() / NANODET_ONNX
    if not model.is_file():  # not `prepare_models`: it builds the INT8 model, which needs these ranges
        print(f"{model} missing: run `framemask models --prepare` first", file=sys.stderr)
        return 1
    detector = NanoDet(model, threads=1)
    RANGES.unlink(missing_ok=True)
    rgbs = frames(media)
    quantize_convs(open_input_size(model), RANGES, Inputs(detector, rgbs))
    print(f"{RANGES}: ranges from {len(rgbs)} frames of {len(CLIPS)} clips")
    return 0


if __name__ == "__main__":
    sys.exit(main())
