"""De-identification: masking styles, the anonymize pipeline, the H.264 master writer and the leak audit.

from framemask.redact import anonymize_file, render_with_boxes
result = anonymize_file("in.mp4", "out.mp4", boxes_path="out.json")
result.boxes        # detected, seed format: {"endSequence": N, "sequence": [{"seq": 1, "person": [...]}, ...]}
result.painted      # what the mask policy painted on every frame
result.gop_starts   # first seq of every closed GOP, for re-encoding single GOPs later
"""

from framemask.redact.boxes import BoxTrack, boxes_from_doc, load_boxes_doc
from framemask.redact.encode import EncodeSettings, VideoWriter
from framemask.redact.pipeline import (
    DEFAULT_STRIDE,
    DETECT_HZ,
    AnonymizeResult,
    anonymize_file,
    detect_frame,
    render_with_boxes,
)
from framemask.redact.policy import DEFAULT_POLICY, MaskPolicy, painted_from_doc
from framemask.redact.styles import SHAPES, STYLES, Blur, Fill, Masker, Mosaic, make_masker

__all__ = [
    "DEFAULT_POLICY",
    "DEFAULT_STRIDE",
    "DETECT_HZ",
    "SHAPES",
    "STYLES",
    "AnonymizeResult",
    "Blur",
    "BoxTrack",
    "EncodeSettings",
    "Fill",
    "MaskPolicy",
    "Masker",
    "Mosaic",
    "VideoWriter",
    "anonymize_file",
    "boxes_from_doc",
    "detect_frame",
    "load_boxes_doc",
    "make_masker",
    "painted_from_doc",
    "render_with_boxes",
]
