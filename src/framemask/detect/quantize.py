"""INT8 person model: NanoDet's convolutions quantised with activation ranges measured once and committed.

Static QDQ quantisation (`onnxruntime.quantization`) of the Conv nodes only: per-channel int8 weights,
uint8 activations. Quantising every op loses the class scores (their correlation with FP32 fell to 0.08 on
a TUD-Campus frame); quantising the convolutions keeps them (0.99) and halves NanoDet's time on a CPU with
VNNI (16.5 -> 8.4 ms a 416x256 input). Weights use 7 of their 8 bits (`reduce_range`): CPUs without VNNI
multiply uint8 x int8 pairs with a saturating 16-bit add that full-range weights can overflow.

The activation ranges (`nanodet_int8_ranges.json`) are statistics, not footage: min/max of each
convolution input over frames of clips the evaluations do not use, written by
`scripts/calibrate_person_int8.py`. With them the INT8 model is rebuilt from the registry weights on any
machine, byte for byte, without calibration data.

INT8 pays off only where the CPU multiplies int8 in one instruction (VNNI): on an AMD EPYC with AVX2 alone
an earlier INT8 NanoDet was slower than FP32 (173 vs 142 ms a frame). `int8_pays_off` says which.
"""

from __future__ import annotations

import functools
import hashlib
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from framemask.errors import ModelError

if TYPE_CHECKING:
    from onnxruntime.quantization import CalibrationDataReader

__all__ = ["RANGES", "int8_pays_off", "quantize_convs", "ranges_digest"]

RANGES = Path(__file__).with_name("nanodet_int8_ranges.json")


@functools.cache
def int8_pays_off(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this CPU has VNNI (x86 `avx512_vnni` or `avx_vnni`), where onnxruntime's INT8 convolutions
    are fast; elsewhere (or when the flags cannot be read) FP32 is the faster choice."""
    try:
        lines = cpuinfo.read_text().splitlines()
    except OSError:
        return False
    flags = next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), [])
    return bool({"avx512_vnni", "avx_vnni"} & set(flags))


def ranges_digest(ranges: Path = RANGES) -> str:
    """sha256 of the ranges file: part of the cached INT8 model's name, so new ranges rebuild it."""
    try:
        return hashlib.sha256(ranges.read_bytes()).hexdigest()
    except OSError as exc:
        raise ModelError(f"INT8 activation ranges unreadable: {exc}") from exc


def quantize_convs(model: bytes, ranges: Path = RANGES, calibration: CalibrationDataReader | None = None) -> bytes:
    """`model` (ONNX bytes) with every Conv quantised using the activation `ranges`.

    With `calibration` (frames already turned into model inputs) and no `ranges` file yet, the ranges are
    measured on those inputs and written to `ranges` first (what the calibration script does)."""
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if calibration is None and not ranges.is_file():
        raise ModelError(f"INT8 activation ranges missing: {ranges}")
    ort.set_default_logger_severity(3)  # the optimiser's notes on unused initializers are not for users
    with tempfile.TemporaryDirectory(prefix="framemask-int8-") as tmp:
        source, prepared, quantised = (Path(tmp) / name for name in ("source.onnx", "prepared.onnx", "int8.onnx"))
        source.write_bytes(model)
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        try:
            quantize_static(
                str(prepared),
                str(quantised),
                calibration,
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=["Conv"],
                per_channel=True,
                reduce_range=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
                calibration_cache_path=ranges,
            )
        except ValueError as exc:  # a tensor the ranges do not name
            raise ModelError(f"INT8 ranges do not fit this model: {str(exc).splitlines()[0]}") from exc
        data = quantised.read_bytes()
    _check_every_conv_quantised(data)
    return data


def _check_every_conv_quantised(model: bytes) -> None:
    """Ranges measured on another graph (another converter or onnxruntime version renames tensors) must not
    leave a convolution in float unnoticed (onnxruntime refuses a missing range today; this does not rely
    on it)."""
    import onnx

    graph = onnx.load_from_string(model).graph
    dequantised = {out for node in graph.node if node.op_type == "DequantizeLinear" for out in node.output}
    convs = [node for node in graph.node if node.op_type == "Conv"]
    left = [node.name for node in convs if node.input[0] not in dequantised]
    if not convs or left:
        raise ModelError(
            f"INT8 ranges do not fit this model: {len(left)} of {len(convs)} convolutions left in float "
            "(measure them again with scripts/calibrate_person_int8.py)"
        )
