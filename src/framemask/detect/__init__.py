"""Detection: models (RetinaFace faces, NanoDet persons), the `Detections` type, tracking.

from framemask.detect import load_detectors, Tracker, interpolate
detectors = load_detectors(("person", "face"))
dets = Detections.merge(d.detect(rgb) for d in detectors)
tracked = tracker.update(dets)
"""

from framemask.detect.base import Detector
from framemask.detect.detections import LABELS, Detections, box_ioa, box_iou, label_id
from framemask.detect.models import ModelStatus, load_detectors, model_status, prepare_models
from framemask.detect.tracking import Tracker, interpolate

__all__ = [
    "LABELS",
    "Detections",
    "Detector",
    "ModelStatus",
    "Tracker",
    "box_ioa",
    "box_iou",
    "interpolate",
    "label_id",
    "load_detectors",
    "model_status",
    "prepare_models",
]
