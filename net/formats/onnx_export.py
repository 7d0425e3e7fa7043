"""Writing a Gatework net as an ONNX model: the test-phase graph, ready for onnxruntime.

    from net.formats.onnx_export import export_onnx
    model = export_onnx(net, "lenet.onnx")          # an onnx.ModelProto, also written to the file

What is written: the gates of the test phase, in execution order, each as one ONNX operator or
a few; every open dimension of an input (the batch) as the symbolic dimension "N"; every
parameter as an initializer under its Gatework name (`conv1.W`); BatchNorm's moving averages as
the initializers `<gate>.mean` and `<gate>.variance` (already divided by Caffe's scale factor);
the constants a composition needs as Constant nodes, so that only learned arrays are
initializers. `onnx.checker` checks the model before it is returned.

Losses. A deployed model has no labels, so by default the gates that read them are left out:
SoftmaxWithLoss becomes its probabilities (a Softmax along its class axis, named after its
second top if it has one, else `prob`), every other loss and Accuracy is dropped, and an input
read only by them (the label) is not an input of the model. `losses=True` writes them as well,
as the ONNX computations of Caffe's formulas, the labels becoming int64 inputs.

Where ONNX's operator differs from Caffe's layer, the export composes operators so the numbers
stay Caffe's (each exporter's docstring says how): Pooling's ceil-mode output size (explicit end
padding) and AVE divisor (a constant correction factor), LRN within each channel (an average
pool of the squares), Scale and Bias along any axes (Unsqueeze), ArgMax's tie order (a reversed
search). A gate with no exporter here (a plugin gate, RNN, LSTM) stops the export with one error
naming every such gate.

`onnx` is needed here only (the `onnx` extra); importing this module without it is fine, the
export says what to install.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from gates import Gate
from gates.base import canonical_axis
from gates.losses import LOG_FLT_MIN, LOG_THRESHOLD

from ..core.net import Net
from ..core.runner import Step
from ..errors import GateworkError

DEFAULT_OPSET = 17
MIN_OPSET = 13
MAX_OPSET = 21
BATCH_DIM = "N"
#: the gate types that read labels: left out of a deployed model (SoftmaxWithLoss is replaced)
LABEL_READERS = ("Accuracy",)


class OnnxExportError(GateworkError):
    """A net that cannot be written as ONNX; the message names every gate in the way."""


def require_onnx():
    """The `onnx` module, or an error saying how to install it."""
    try:
        import onnx
    except ImportError:
        raise OnnxExportError("ONNX export and import need the onnx package: "
                              "pip install 'gatework[onnx]'") from None
    return onnx


# -- the builder: nodes, constants and fresh names -------------------------------------------------
@dataclass
class _Graph:
    """The ONNX graph being written: nodes, initializers, and the names in use."""
    opset: int
    dtype: np.dtype
    nodes: list = field(default_factory=list)
    initializers: dict[str, np.ndarray] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)
    nodes_named: set[str] = field(default_factory=set)
    layouts: dict[str, tuple] = field(default_factory=dict)   # parameter -> shape written

    def fresh(self, hint: str) -> str:
        """A value name not used yet: `hint`, else `hint_1`, `hint_2`, ..."""
        return _fresh(hint, self.used)

    def fresh_node(self, hint: str) -> str:
        return _fresh(hint, self.nodes_named)


def _fresh(hint: str, used: set[str]) -> str:
    name, count = hint, 1
    while name in used:
        name, count = f"{hint}_{count}", count + 1
    used.add(name)
    return name


class _Gate:
    """What one gate's exporter works with: its input and top names and shapes, and helpers
    that add nodes named after the gate (`conv1/Conv`) with fresh output names."""

    def __init__(self, graph: _Graph, step: Step, shapes: dict[str, tuple]):
        self.graph, self.step, self.gate = graph, step, step.gate
        self.inputs = list(step.inputs)
        self.tops = list(step.tops)
        self.in_shapes = [shapes[name] for name in step.inputs]
        self.out_shapes = [shapes[name] for name in step.tops]
        self.name = step.spec.name

    @property
    def x(self) -> str:
        return self.inputs[0]

    @property
    def ndim(self) -> int:
        return len(self.in_shapes[0])

    def op(self, op_type: str, inputs: list[str], out: str | list[str] | None = None,
           outputs: int = 1, **attrs: Any) -> Any:
        """Add a node; returns its output name (a list when `outputs` > 1 or `out` is a list).
        Without `out`, outputs get fresh names `<gate>/<op>`."""
        from onnx import helper
        names = out if isinstance(out, list) else [out] if out else [
            self.graph.fresh(f"{self.name}/{op_type}") for _ in range(outputs)]
        main = bool(self.tops) and self.tops[0] in names and \
            self.name not in self.graph.nodes_named
        node_name = self.name if main else self.graph.fresh_node(f"{self.name}/{op_type}")
        self.graph.nodes_named.add(node_name)
        self.graph.nodes.append(helper.make_node(op_type, inputs, names, name=node_name,
                                                 **attrs))
        return names if isinstance(out, list) or outputs > 1 else names[0]

    def const(self, value: Any, dtype: Any = None, hint: str = "const") -> str:
        """A Constant node holding `value` (the net's float type unless `dtype` is given)."""
        from onnx import numpy_helper
        array = np.asarray(value, dtype=dtype or self.graph.dtype)
        name = self.graph.fresh(f"{self.name}/{hint}")
        self.op("Constant", [], name, value=numpy_helper.from_array(array, name))
        return name

    def ints(self, values: Any) -> str:
        return self.const(np.asarray(values, dtype=np.int64), np.int64, "ints")

    def unsqueeze(self, x: str, axes: list[int]) -> str:
        return self.op("Unsqueeze", [x, self.ints(axes)]) if axes else x

    def reduce(self, op_type: str, x: str, axes: list[int] | None, keepdims: bool,
               out: str | None = None) -> str:
        """A Reduce* node over `axes` (None: all): axes are an attribute before opset 18 (13
        for ReduceSum) and an input from then on."""
        takes_input = self.graph.opset >= (13 if op_type == "ReduceSum" else 18)
        if axes is None:
            return self.op(op_type, [x], out, keepdims=int(keepdims))
        if takes_input:
            return self.op(op_type, [x, self.ints(axes)], out, keepdims=int(keepdims))
        return self.op(op_type, [x], out, axes=list(axes), keepdims=int(keepdims))

    def scaled(self, x: str, scale: float, shift: float = 0.0, out: str | None = None) -> str:
        """scale * x + shift, skipping a factor of 1 and a shift of 0."""
        if scale == 1.0 and shift == 0.0:
            return self.op("Identity", [x], out) if out else x
        if scale != 1.0:
            x = self.op("Mul", [x, self.const(scale)], None if shift else out)
        if shift != 0.0:
            x = self.op("Add", [x, self.const(shift)], out)
        return x

    def reshape_to(self, x: str, shape: tuple, out: str | None = None) -> str:
        """Reshape to a shape known but for open dimensions: one that sits where the input has
        an open dimension copies it (0), one other is inferred (-1)."""
        target = []
        for index, dim in enumerate(shape):
            if dim is not None:
                target.append(dim)
            elif index < self.ndim and self.in_shapes[0][index] is None:
                target.append(0)
            else:
                target.append(-1)
        if target.count(-1) > 1 or (0 in [d for d in shape if d is not None]):
            raise OnnxExportError(f"gate {self.name!r}: cannot write the reshape to "
                                  f"{shape} with more than one open dimension moved")
        return self.op("Reshape", [x, self.ints(target)], out)

    def known(self, value: Any, what: str) -> int:
        if value is None:
            raise OnnxExportError(f"gate {self.name!r} ({self.step.spec.type}): {what} must be "
                                  "known to export it (it is an open dimension)")
        return int(value)


Exporter = Callable[[_Gate], None]
EXPORTERS: dict[str, Exporter] = {}


def exporter(*type_names: str):
    """Register the function as the ONNX writer of these gate types."""
    def register(fn: Exporter) -> Exporter:
        for name in type_names:
            EXPORTERS[name] = fn
        return fn
    return register


# -- neurons -------------------------------------------------------------------------------------
_DIRECT = {"AbsVal": "Abs", "BNLL": "Softplus", "Sigmoid": "Sigmoid", "Tanh": "Tanh",
           "Dropout": "Identity", "Add": "Add", "Subtract": "Sub", "Multiply": "Mul",
           "Divide": "Div", "Max": "Max", "Min": "Min", "MatMul": "MatMul", "Concat": "Concat"}


@exporter(*_DIRECT)
def _direct(g: _Gate) -> None:
    """One ONNX operator with the same meaning (numpy broadcasting is ONNX's; Dropout is the
    identity in the test phase)."""
    op_type = _DIRECT[g.step.spec.cls.type_name]
    attrs = {"axis": canonical_axis(g.gate.axis, g.ndim)} if op_type == "Concat" else {}
    g.op(op_type, g.inputs, g.tops[0], **attrs)


@exporter("ReLU")
def _relu(g: _Gate) -> None:
    if g.gate.negative_slope == 0.0:
        g.op("Relu", g.inputs, g.tops[0])
    else:
        g.op("LeakyRelu", g.inputs, g.tops[0], alpha=g.gate.negative_slope)


@exporter("PReLU")
def _prelu(g: _Gate) -> None:
    """PRelu, the (C,) slope written as a (C, 1, ...) initializer (its values unchanged) so
    that it lines up with axis 1, as PyTorch writes it."""
    x, slope = g.inputs
    if g.in_shapes[1]:
        g.graph.layouts[slope] = g.in_shapes[1] + (1,) * (g.ndim - 2)
    g.op("PRelu", [x, slope], g.tops[0])


@exporter("ELU")
def _elu(g: _Gate) -> None:
    g.op("Elu", g.inputs, g.tops[0], alpha=g.gate.alpha)


@exporter("Threshold")
def _threshold(g: _Gate) -> None:
    """1 where x > threshold: Greater, then Cast to the float type."""
    above = g.op("Greater", [g.x, g.const(g.gate.threshold)])
    g.op("Cast", [above], g.tops[0], to=_float_type(g.graph.dtype))


@exporter("Clip")
def _clip(g: _Gate) -> None:
    g.op("Clip", [g.x, g.const(g.gate.min), g.const(g.gate.max)], g.tops[0])


@exporter("Swish")
def _swish(g: _Gate) -> None:
    """x * sigmoid(beta x)."""
    g.op("Mul", [g.x, g.op("Sigmoid", [g.scaled(g.x, g.gate.beta)])], g.tops[0])


@exporter("Softmax")
def _softmax(g: _Gate) -> None:
    """Softmax along one axis (its meaning from opset 13 on)."""
    g.op("Softmax", g.inputs, g.tops[0], axis=canonical_axis(g.gate.axis, g.ndim))


@exporter("Power")
def _power(g: _Gate) -> None:
    """(shift + scale x) ^ power as Mul, Add and Pow, each left out when it does nothing."""
    gate = g.gate
    if gate.power == 1.0:
        g.scaled(g.x, gate.scale, gate.shift, g.tops[0])
        return
    g.op("Pow", [g.scaled(g.x, gate.scale, gate.shift), g.const(gate.power)], g.tops[0])


@exporter("Exp")
def _exp(g: _Gate) -> None:
    """base ^ (shift + scale x) = exp(ln(base) scale x) * base ^ shift."""
    g.scaled(g.op("Exp", [g.scaled(g.x, g.gate.inner)]), g.gate.outer, 0.0, g.tops[0])


@exporter("Log")
def _log(g: _Gate) -> None:
    """log_base(shift + scale x) = ln(shift + scale x) / ln(base)."""
    inner = g.op("Log", [g.scaled(g.x, g.gate.scale, g.gate.shift)])
    g.scaled(inner, g.gate.base_scale, 0.0, g.tops[0])


# -- reductions and arithmetic with axes ---------------------------------------------------------
@exporter("Sum", "Mean")
def _reduce(g: _Gate) -> None:
    axis = g.gate.axis
    axes = None if axis is None else sorted(canonical_axis(a, g.ndim) for a in (
        [axis] if isinstance(axis, int) else axis))
    op_type = "ReduceSum" if g.step.spec.cls.type_name == "Sum" else "ReduceMean"
    if axes == []:
        g.op("Identity", [g.x], g.tops[0])
        return
    g.reduce(op_type, g.x, axes, g.gate.keepdims, g.tops[0])


_REDUCTION_OPS = {"SUM": "ReduceSum", "ASUM": "ReduceL1", "SUMSQ": "ReduceSumSquare",
                  "MEAN": "ReduceMean"}


@exporter("Reduction")
def _reduction(g: _Gate) -> None:
    """Caffe's Reduction: every axis from `axis` on flattened into one (Reshape to
    [0, ..., 0, -1]), reduced, times coeff."""
    axis = canonical_axis(g.gate.axis, g.ndim)
    flat = g.op("Reshape", [g.x, g.ints([0] * axis + [-1])])
    coeff = g.gate.coeff
    out = g.reduce(_REDUCTION_OPS[g.gate.operation], flat, [axis], False,
                   None if coeff != 1.0 else g.tops[0])
    if coeff != 1.0:
        g.scaled(out, coeff, 0.0, g.tops[0])


def _along(g: _Gate, blob: str, blob_shape: tuple) -> str:
    """A Scale or Bias blob laid along x.shape[axis : axis + b.ndim]: unsqueezed with trailing
    axes so that ONNX's right-aligned broadcasting puts it there."""
    if not blob_shape:
        return blob
    axis = canonical_axis(g.gate.axis, g.ndim)
    return g.unsqueeze(blob, list(range(len(blob_shape), g.ndim - axis)))


@exporter("Scale")
def _scale(g: _Gate) -> None:
    """x * s (+ bias), s unsqueezed to line up with its axes (Caffe's axis, num_axes)."""
    scaled = g.op("Mul", [g.x, _along(g, g.inputs[1], g.in_shapes[1])],
                  None if len(g.inputs) == 3 else g.tops[0])
    if len(g.inputs) == 3:
        g.op("Add", [scaled, _along(g, g.inputs[2], g.in_shapes[2])], g.tops[0])


@exporter("Bias")
def _bias(g: _Gate) -> None:
    g.op("Add", [g.x, _along(g, g.inputs[1], g.in_shapes[1])], g.tops[0])


@exporter("Eltwise")
def _eltwise(g: _Gate) -> None:
    """SUM: Sum of the inputs times their coeff; PROD: Mul; MAX: Max (ties do not change the
    value, only where Gatework's gradient goes)."""
    operation = g.gate.operation
    if operation == "MAX":
        g.op("Max", g.inputs, g.tops[0])
    elif operation == "PROD":
        product = g.inputs[0]
        for index, x in enumerate(g.inputs[1:], 2):
            product = g.op("Mul", [product, x], g.tops[0] if index == len(g.inputs) else None)
    else:
        coeff = g.gate.coeff or [1.0] * len(g.inputs)
        terms = [g.scaled(x, c) for x, c in zip(g.inputs, coeff)]
        g.op("Sum", terms, g.tops[0])


@exporter("ArgMax")
def _argmax(g: _Gate) -> None:
    """TopK over the search axis, reversed first so that among equal values the larger index
    comes first (Caffe's order; TopK's is the smaller), indices as floats as in Caffe."""
    gate = g.gate
    if gate.axis is not None:
        axis = canonical_axis(gate.axis, g.ndim)
        size = g.known(g.in_shapes[0][axis], f"the size of axis {axis}")
        values, index = _reversed_top(g, g.x, axis, size)
        g.op("Identity", [values if gate.out_max_val else index], g.tops[0])
        return
    rest = g.in_shapes[0][1:]
    size = g.known(None if None in rest else int(np.prod(rest)), "the item size")
    flat = g.op("Flatten", [g.x], axis=1)
    values, index = _reversed_top(g, flat, 1, size)
    parts = [index, values] if gate.out_max_val else [index]
    stacked = g.op("Concat", [g.unsqueeze(p, [1]) for p in parts], axis=1)
    out_shape = g.out_shapes[0]
    g.op("Reshape", [stacked, g.ints([0] + list(out_shape[1:]))], g.tops[0])


def _reversed_top(g: _Gate, x: str, axis: int, size: int) -> tuple[str, str]:
    big = np.iinfo(np.int64).max
    flipped = g.op("Slice", [x, g.ints([-1]), g.ints([-big]), g.ints([axis]), g.ints([-1])])
    values, index = g.op("TopK", [flipped, g.ints([g.gate.top_k])], outputs=2, axis=axis,
                         largest=1, sorted=1)
    as_float = g.op("Cast", [index], to=_float_type(g.graph.dtype))
    return values, g.op("Sub", [g.const(size - 1), as_float])


# -- matrix products -----------------------------------------------------------------------------
@exporter("InnerProduct")
def _inner_product(g: _Gate) -> None:
    """Gemm(transB=1) with W as is (the layout of Caffe and of torch's Linear) on x flattened
    to 2-D (Flatten at `axis`); another axis than 1: the product reshaped back to
    x.shape[:axis] + (num_output,) (one open dimension at most)."""
    gate = g.gate
    axis = canonical_axis(gate.axis, g.ndim)
    x = g.op("Flatten", [g.x], axis=axis) if g.ndim > 2 or axis != 1 else g.x
    product = g.op("Gemm", [x, g.inputs[1]] + g.inputs[2:], g.tops[0] if axis == 1 else None,
                   transB=1)
    if axis != 1:
        target = [-1 if d is None else d for d in g.out_shapes[0]]
        if target.count(-1) > 1:
            raise OnnxExportError(f"gate {g.name!r} (InnerProduct): axis {gate.axis} with more "
                                  "than one open dimension before it")
        g.op("Reshape", [product, g.ints(target)], g.tops[0])


@exporter("Embed")
def _embed(g: _Gate) -> None:
    """Gather rows of W by the indices (cast to int64), plus b."""
    indices = g.op("Cast", [g.x], to=_int_type())
    rows = g.op("Gather", [g.inputs[1], indices], None if len(g.inputs) == 3 else g.tops[0],
                axis=0)
    if len(g.inputs) == 3:
        g.op("Add", [rows, g.inputs[2]], g.tops[0])


# -- shapes --------------------------------------------------------------------------------------
@exporter("Reshape", "Flatten")
def _reshape(g: _Gate) -> None:
    g.reshape_to(g.x, g.out_shapes[0], g.tops[0])


@exporter("Slice")
def _slice(g: _Gate) -> None:
    """Split along the axis into the pieces' sizes."""
    if len(g.tops) == 1:
        g.op("Identity", [g.x], g.tops[0])
        return
    axis = canonical_axis(g.gate.axis, g.ndim)
    sizes = [g.known(shape[axis], f"the size of axis {axis}") for shape in g.out_shapes]
    g.op("Split", [g.x, g.ints(sizes)], list(g.tops), axis=axis)


@exporter("Split")
def _split(g: _Gate) -> None:
    for top in g.tops:
        g.op("Identity", [g.x], top)


@exporter("Silence")
def _silence(g: _Gate) -> None:
    """Nothing: its inputs are simply not outputs of the model."""


@exporter("Tile")
def _tile(g: _Gate) -> None:
    repeats = [1] * g.ndim
    repeats[canonical_axis(g.gate.axis, g.ndim)] = g.gate.tiles
    g.op("Tile", [g.x, g.ints(repeats)], g.tops[0])


@exporter("Crop")
def _crop(g: _Gate) -> None:
    """Slice of the window: starts at the offsets, sizes from the reference's known shape."""
    out_shape = g.out_shapes[0]
    axis = canonical_axis(g.gate.axis, g.ndim)
    axes = list(range(axis, g.ndim))
    offsets = g.gate.offsets
    starts = offsets * len(axes) if len(offsets) == 1 else offsets or [0] * len(axes)
    ends = [start + g.known(out_shape[a], f"the reference's size on axis {a}")
            for start, a in zip(starts, axes)]
    g.op("Slice", [g.x, g.ints(starts), g.ints(ends), g.ints(axes)], g.tops[0])


# -- vision --------------------------------------------------------------------------------------
@exporter("Convolution")
def _convolution(g: _Gate) -> None:
    """Conv: Caffe's output size is ONNX's (floor), pads symmetric."""
    gate = g.gate
    (ph, pw) = gate.pads
    g.op("Conv", g.inputs, g.tops[0], kernel_shape=list(gate.kernel),
         strides=list(gate.strides), pads=[ph, pw, ph, pw], dilations=list(gate.dilations),
         group=gate.group)


@exporter("Pooling")
def _pooling(g: _Gate) -> None:
    """MaxPool / AveragePool with Caffe's windows. Caffe rounds the output size up (and drops
    a last window that would start in the padding); ONNX's floor mode with extra padding at the
    end gives exactly those windows. AVE: AveragePool counting the padding divides every window
    by kh kw; Caffe divides a window hanging past the padding by its clipped size, so a constant
    (OH, OW) factor kh kw / divisor follows where they differ. Global pooling: GlobalMaxPool,
    GlobalAveragePool. (Both paddings stay below the kernel size, as ONNX runtimes require: Caffe
    drops a window that would start in the padding.)"""
    gate = g.gate
    is_max = gate.pool == "MAX"
    if gate.global_pooling:
        g.op("GlobalMaxPool" if is_max else "GlobalAveragePool", [g.x], g.tops[0])
        return
    height, width = (g.known(d, "the plane size") for d in g.in_shapes[0][2:])
    oh, ow = g.out_shapes[0][2:]
    (kh, kw), (sh, sw), (ph, pw) = gate.kernel, gate.strides, gate.pads
    end_h = max(0, (oh - 1) * sh + kh - height - ph)
    end_w = max(0, (ow - 1) * sw + kw - width - pw)
    attrs = dict(kernel_shape=[kh, kw], strides=[sh, sw], pads=[ph, pw, end_h, end_w])
    if is_max:
        g.op("MaxPool", [g.x], g.tops[0], **attrs)
        return
    correction = (kh * kw) / caffe_divisor(gate, height, width, oh, ow)
    exact = np.all(correction == 1.0)
    pooled = g.op("AveragePool", [g.x], g.tops[0] if exact else None, count_include_pad=1,
                  **attrs)
    if not exact:
        g.op("Mul", [pooled, g.const(correction, hint="divisor_correction")], g.tops[0])


def caffe_divisor(gate: Gate, height: int, width: int, oh: int, ow: int) -> np.ndarray:
    """Caffe's AVE divisor per output: each window clipped to the padded input (H + pad)."""
    (kh, kw), (sh, sw), (ph, pw) = gate.kernel, gate.strides, gate.pads
    start_h, start_w = np.arange(oh) * sh - ph, np.arange(ow) * sw - pw
    size_h = np.minimum(start_h + kh, height + ph) - start_h
    size_w = np.minimum(start_w + kw, width + pw) - start_w
    return np.outer(size_h, size_w).astype(np.float64)


# -- normalisation -------------------------------------------------------------------------------
@exporter("BatchNorm")
def _batch_norm(g: _Gate) -> None:
    """With the moving averages (the test phase's default): BatchNormalization, the statistics
    as initializers `<gate>.mean`, `<gate>.variance` (divided by Caffe's scale factor), gamma
    and beta the learned ones or constant 1 and 0. With `use_global_stats: false` the batch's
    own statistics are computed (ReduceMean over N and the spatial axes)."""
    gate = g.gate
    channels = g.in_shapes[0][1]
    if gate.affine:
        gamma, beta = g.inputs[1:]
    else:
        gamma, beta = g.const(np.ones(channels)), g.const(np.zeros(channels))
    if gate.use_global_stats is False:
        axes = [0] + list(range(2, g.ndim))
        mean = g.reduce("ReduceMean", g.x, axes, True)
        centred = g.op("Sub", [g.x, mean])
        var = g.reduce("ReduceMean", g.op("Mul", [centred, centred]), axes, True)
        std = g.op("Sqrt", [g.op("Add", [var, g.const(gate.eps)])])
        normed = g.op("Div", [centred, std], g.tops[0] if not gate.affine else None)
        if gate.affine:
            trailing = list(range(1, g.ndim - 1))
            scaled = g.op("Mul", [normed, g.unsqueeze(gamma, trailing)])
            g.op("Add", [scaled, g.unsqueeze(beta, trailing)], g.tops[0])
        return
    factor = float(gate.buffers["scale_factor"][0])
    scale = 0.0 if factor == 0 else 1.0 / factor
    names = []
    for key in ("mean", "variance"):
        name = g.graph.fresh(f"{g.name}.{key}")
        g.graph.initializers[name] = (gate.buffers[key] * scale).astype(g.graph.dtype)
        names.append(name)
    g.op("BatchNormalization", [g.x, gamma, beta] + names, g.tops[0], epsilon=gate.eps,
         momentum=gate.moving_average_fraction)


@exporter("MVN")
def _mvn(g: _Gate) -> None:
    """(x - mean) / (std + eps) over each item (and channel): ReduceMean, Sub, Sqrt, Div."""
    gate = g.gate
    axes = list(range(1 if gate.across_channels else 2, g.ndim))
    centred = g.op("Sub", [g.x, g.reduce("ReduceMean", g.x, axes, True)],
                   None if gate.normalize_variance else g.tops[0])
    if gate.normalize_variance:
        var = g.reduce("ReduceMean", g.op("Mul", [centred, centred]), axes, True)
        std = g.op("Add", [g.op("Sqrt", [var]), g.const(gate.eps)])
        g.op("Div", [centred, std], g.tops[0])


@exporter("LRN")
def _lrn(g: _Gate) -> None:
    """ACROSS_CHANNELS: ONNX's LRN (the same formula for odd sizes). WITHIN_CHANNEL: x times
    (1 + alpha / n^2 S)^-beta, S / n^2 being an average pool of x^2 over n x n windows padded
    with zeros (counted in the divisor)."""
    gate = g.gate
    if gate.norm_region == "ACROSS_CHANNELS":
        g.op("LRN", [g.x], g.tops[0], size=gate.local_size, alpha=gate.alpha, beta=gate.beta,
             bias=gate.k)
        return
    n, half = gate.local_size, (gate.local_size - 1) // 2
    squares = g.op("Mul", [g.x, g.x])
    mean = g.op("AveragePool", [squares], kernel_shape=[n, n], strides=[1, 1],
                pads=[half] * 4, count_include_pad=1)
    base = g.scaled(mean, gate.alpha, 1.0)
    g.op("Mul", [g.x, g.op("Pow", [base, g.const(-gate.beta)])], g.tops[0])


# -- recurrent -----------------------------------------------------------------------------------
@exporter("LSTMUnit")
def _lstm_unit(g: _Gate) -> None:
    """One LSTM step: Split the gate inputs into i, f, o, g (Caffe's order), then
    c = cont f c_prev + i g, h = o tanh(c)."""
    c_prev, x, cont = g.inputs
    hidden = g.known(g.in_shapes[0][-1], "the hidden size")
    i, f, o, cand = g.op("Split", [x, g.ints([hidden] * 4)], outputs=4, axis=-1)
    i, f, o = (g.op("Sigmoid", [part]) for part in (i, f, o))
    keep = g.unsqueeze(g.op("Cast", [cont], to=_float_type(g.graph.dtype)), [-1])
    carried = g.op("Mul", [g.op("Mul", [keep, f]), c_prev])
    c = g.op("Add", [carried, g.op("Mul", [i, g.op("Tanh", [cand])])], g.tops[0])
    g.op("Mul", [o, g.op("Tanh", [c])], g.tops[1])


def _recurrent_inputs(g: _Gate) -> tuple[str, str, list[str], dict[str, str], int]:
    """The projected inputs W x_t + b (+ W_static x_static) as (T, N, width H), cont as floats,
    the exposed initial states as (N, H), the parameters by name, and T."""
    gate = g.gate
    static = len(g.inputs) - len(gate.param_names(False)) - 2 - gate._exposed() > 0
    bottoms = 2 + static + gate._exposed()
    params = dict(zip(gate.param_names(static), g.inputs[bottoms:]))
    steps = g.known(g.in_shapes[0][0], "the number of timesteps T")
    w_x, b, w_static = gate.input_params
    x = g.op("Reshape", [g.x, g.ints([0, 0, -1])])
    projected = g.op("Add", [g.op("MatMul", [x, _transposed(g, params[w_x])]), params[b]])
    if static:
        flat = g.op("Flatten", [g.inputs[2]], axis=1)
        projected = g.op("Add", [projected, g.op("MatMul", [flat, _transposed(
            g, params[w_static])])])
    cont = g.op("Cast", [g.inputs[1]], to=_float_type(g.graph.dtype))
    initial = [g.op("Squeeze", [s, g.ints([0])]) for s in g.inputs[2 + static:bottoms]]
    return projected, cont, initial, params, steps


def _transposed(g: _Gate, matrix: str) -> str:
    return g.op("Transpose", [matrix], perm=[1, 0])


def _at_step(g: _Gate, x: str, t: int) -> str:
    return g.op("Gather", [x, g.ints(t)], axis=0)


def _carried(g: _Gate, cont: str, t: int, state: str) -> str:
    """cont_t * state, cont_t (N,) lined up with the state's rows."""
    return g.op("Mul", [g.unsqueeze(_at_step(g, cont, t), [1]), state])


def _stacked(g: _Gate, states: list[str], out: str | None = None) -> str:
    return g.op("Concat", [g.unsqueeze(h, [0]) for h in states], out, axis=0)


@exporter("RNN")
def _rnn(g: _Gate) -> None:
    """Unrolled over the T steps (T must be known): h_t = tanh(a_t + W_hh (cont_t h_{t-1})),
    a_t the projected input; o = tanh(W_ho h + b_o) over all steps."""
    projected, cont, initial, params, steps = _recurrent_inputs(g)
    recurrent = _transposed(g, params["W_hh"])
    h, states = (initial[0] if initial else None), []
    for t in range(steps):
        a = _at_step(g, projected, t)
        if h is not None:
            a = g.op("Add", [a, g.op("MatMul", [_carried(g, cont, t, h), recurrent])])
        h = g.op("Tanh", [a])
        states.append(h)
    hidden = _stacked(g, states)
    out = g.op("Add", [g.op("MatMul", [hidden, _transposed(g, params["W_ho"])]),
                       params["b_o"]])
    g.op("Tanh", [out], g.tops[0])
    if len(g.tops) == 2:
        g.op("Unsqueeze", [h, g.ints([0])], g.tops[1])


@exporter("LSTM")
def _lstm(g: _Gate) -> None:
    """Unrolled over the T steps (T must be known): a_t = projected input + W_hc (cont_t h_{t-1}),
    then the LSTMUnit formulas in Caffe's gate order i, f, o, g."""
    projected, cont, initial, params, steps = _recurrent_inputs(g)
    recurrent = _transposed(g, params["W_hc"])
    hidden = g.known(g.out_shapes[0][-1], "num_output")
    h, c = initial if initial else (None, None)
    states = []
    for t in range(steps):
        a = _at_step(g, projected, t)
        if h is not None:
            a = g.op("Add", [a, g.op("MatMul", [_carried(g, cont, t, h), recurrent])])
        i, f, o, cand = g.op("Split", [a, g.ints([hidden] * 4)], outputs=4, axis=-1)
        i, f, o = (g.op("Sigmoid", [part]) for part in (i, f, o))
        new = g.op("Mul", [i, g.op("Tanh", [cand])])
        if c is not None:
            new = g.op("Add", [g.op("Mul", [_carried(g, cont, t, f), c]), new])
        c = new
        h = g.op("Mul", [o, g.op("Tanh", [c])])
        states.append(h)
    _stacked(g, states, g.tops[0])
    if len(g.tops) == 3:
        g.op("Unsqueeze", [h, g.ints([0])], g.tops[1])
        g.op("Unsqueeze", [c, g.ints([0])], g.tops[2])


# -- losses (with losses=True) -------------------------------------------------------------------
def _labels_as(g: _Gate, label: str, shape: tuple) -> str:
    """The labels as int64, reshaped to the scores' shape with the class axis of length 1."""
    as_int = g.op("Cast", [label], to=_int_type())
    return g.op("Reshape", [as_int, g.ints([-1 if d is None else d for d in shape])])


def _normaliser(g: _Gate, mode: str, positions: str, valid: str | None, scores: str,
                axis: int = 1) -> str:
    """Caffe's normaliser (at least 1) as a float scalar: VALID counts the unignored positions,
    FULL all positions, BATCH_SIZE the outer count (the scores' dimensions before `axis`), NONE
    is 1."""
    float_type = _float_type(g.graph.dtype)
    if mode == "NONE":
        return g.const(1.0)
    if mode == "VALID" and valid is not None:
        count = g.reduce("ReduceSum", valid, None, False)
    elif mode == "BATCH_SIZE":
        outer = g.op("Slice", [g.op("Shape", [scores]), g.ints([0]), g.ints([axis])])
        count = g.op("Cast", [g.reduce("ReduceProd", outer, None, False)], to=float_type)
    else:
        count = g.op("Cast", [g.op("Size", [positions])], to=float_type)
    return g.op("Max", [count, g.const(1.0)])


@exporter("SoftmaxWithLoss")
def _softmax_with_loss(g: _Gate) -> None:
    """-sum of max(log p[label], log FLT_MIN) over the counted positions / normaliser: LogSoftmax,
    GatherElements at the labels, a mask for ignore_label; the probabilities second top is a
    Softmax."""
    gate = g.gate
    scores, label = g.inputs
    axis = canonical_axis(gate.axis, g.ndim)
    shape = list(g.in_shapes[0])
    shape[axis] = 1
    labels = _labels_as(g, label, tuple(shape))
    log_prob = g.op("LogSoftmax", [scores], axis=axis)
    valid = None
    if gate.ignore_label is not None:
        keep = g.op("Not", [g.op("Equal", [labels, g.ints(gate.ignore_label)])])
        labels = g.op("Where", [keep, labels, g.ints(0)])
        valid = g.op("Cast", [keep], to=_float_type(g.graph.dtype))
    picked = g.op("GatherElements", [log_prob, labels], axis=axis)
    terms = g.op("Neg", [g.op("Max", [picked, g.const(LOG_FLT_MIN)])])
    if valid is not None:
        terms = g.op("Mul", [terms, valid])
    total = g.reduce("ReduceSum", terms, None, False)
    g.op("Div", [total, _normaliser(g, gate.mode, labels, valid, scores, axis)], g.tops[0])
    if len(g.tops) == 2:
        g.op("Softmax", [scores], g.tops[1], axis=axis)


@exporter("EuclideanLoss")
def _euclidean_loss(g: _Gate) -> None:
    """sum((a - b)^2) / (2 N)."""
    diff = g.op("Sub", g.inputs)
    total = g.reduce("ReduceSumSquare", diff, None, False)
    batch = _normaliser(g, "BATCH_SIZE", diff, None, g.inputs[0])
    g.op("Div", [total, g.op("Mul", [batch, g.const(2.0)])], g.tops[0])


@exporter("SigmoidCrossEntropyLoss")
def _sigmoid_cross_entropy(g: _Gate) -> None:
    """sum(max(x, 0) - x t + log(1 + exp(-|x|))) over the counted elements / normaliser."""
    gate = g.gate
    x, t = g.inputs
    t = g.op("Reshape", [t, g.op("Shape", [x])])
    positive = g.op("Relu", [x])
    soft = g.op("Softplus", [g.op("Neg", [g.op("Abs", [x])])])
    terms = g.op("Add", [g.op("Sub", [positive, g.op("Mul", [x, t])]), soft])
    valid = None
    if gate.ignore_label is not None:
        truncated = g.op("Cast", [g.op("Cast", [t], to=_int_type())], to=_float_type(
            g.graph.dtype))
        keep = g.op("Not", [g.op("Equal", [truncated, g.const(gate.ignore_label)])])
        valid = g.op("Cast", [keep], to=_float_type(g.graph.dtype))
        terms = g.op("Mul", [terms, valid])
    total = g.reduce("ReduceSum", terms, None, False)
    g.op("Div", [total, _normaliser(g, gate.mode, x, valid, x)], g.tops[0])


@exporter("Accuracy")
def _accuracy(g: _Gate) -> None:
    """The share of counted positions whose label's score has fewer than top_k scores at or
    above it (other than itself), a NaN score never counting: GatherElements, GreaterOrEqual,
    ReduceSum along the class axis."""
    gate = g.gate
    if len(g.tops) == 2:
        raise OnnxExportError(f"gate {g.name!r} (Accuracy): the per-class accuracy top has no "
                              "ONNX export; use one top")
    scores, label = g.inputs
    axis = canonical_axis(gate.axis, g.ndim)
    shape = list(g.in_shapes[0])
    shape[axis] = 1
    labels = _labels_as(g, label, tuple(shape))
    float_type = _float_type(g.graph.dtype)
    keep = None
    if gate.ignore_label is not None:
        keep = g.op("Not", [g.op("Equal", [labels, g.ints(gate.ignore_label)])])
        labels = g.op("Where", [keep, labels, g.ints(0)])
    true = g.op("GatherElements", [scores, labels], axis=axis)
    at_least = g.op("Cast", [g.op("GreaterOrEqual", [scores, true])], to=float_type)
    better = g.reduce("ReduceSum", at_least, [axis], True)
    correct = g.op("Less", [better, g.const(gate.top_k + 1.0)])
    nan = g.op("Cast", [g.op("IsNaN", [scores])], to=float_type)
    no_nan = g.op("Equal", [g.reduce("ReduceSum", nan, [axis], True), g.const(0.0)])
    right = g.op("Cast", [g.op("And", [correct, no_nan])], to=float_type)
    if keep is None:
        g.reduce("ReduceMean", right, None, False, g.tops[0])
        return
    counted = g.op("Cast", [keep], to=float_type)
    hits = g.reduce("ReduceSum", g.op("Mul", [right, counted]), None, False)
    g.op("Div", [hits, g.op("Max", [g.reduce("ReduceSum", counted, None, False),
                                      g.const(1.0)])], g.tops[0])


@exporter("MultinomialLogisticLoss")
def _multinomial_logistic(g: _Gate) -> None:
    """-sum log(max(p[label], 1e-20)) / N, p flattened to (N, C)."""
    p = g.op("Flatten", [g.x], axis=1)
    labels = g.op("Reshape", [g.op("Cast", [g.inputs[1]], to=_int_type()), g.ints([-1, 1])])
    picked = g.op("GatherElements", [p, labels], axis=1)
    logs = g.op("Log", [g.op("Max", [picked, g.const(LOG_THRESHOLD)])])
    total = g.op("Neg", [g.reduce("ReduceSum", logs, None, False)])
    g.op("Div", [total, _normaliser(g, "BATCH_SIZE", p, None, p)], g.tops[0])


def _one_hot(g: _Gate, labels: str, classes: int) -> str:
    """Booleans (N, C): True at each row's label; labels as (N,) of any numeric type."""
    as_int = g.op("Reshape", [g.op("Cast", [labels], to=_int_type()), g.ints([-1, 1])])
    return g.op("Equal", [as_int, g.ints(np.arange(classes))])


@exporter("HingeLoss")
def _hinge(g: _Gate) -> None:
    """sum max(0, 1 + s x)^(1 or 2) / N, s = -1 at the label and +1 elsewhere (x as (N, C))."""
    x = g.op("Flatten", [g.x], axis=1)
    rest = g.in_shapes[0][1:]
    classes = g.known(None if None in rest else int(np.prod(rest)), "the number of classes")
    sign = g.op("Where", [_one_hot(g, g.inputs[1], classes), g.const(-1.0), g.const(1.0)])
    hinge = g.op("Relu", [g.op("Add", [g.op("Mul", [sign, x]), g.const(1.0)])])
    total = g.reduce("ReduceSum" if g.gate.norm == "L1" else "ReduceSumSquare", hinge, None,
                     False)
    g.op("Div", [total, _normaliser(g, "BATCH_SIZE", x, None, x)], g.tops[0])


@exporter("ContrastiveLoss")
def _contrastive(g: _Gate) -> None:
    """sum over pairs of d^2 (similar) or max(margin - d, 0)^2 (legacy: max(margin - d^2, 0))
    / (2 N); a pair is similar when y truncates to a nonzero integer."""
    gate = g.gate
    a, b, y = g.inputs
    diff = g.op("Flatten", [g.op("Sub", [a, b])], axis=1)
    dist_sq = g.reduce("ReduceSumSquare", diff, [1], False)
    margin = g.const(gate.margin)
    if gate.legacy_version:
        dissimilar = g.op("Relu", [g.op("Sub", [margin, dist_sq])])
    else:
        gap = g.op("Relu", [g.op("Sub", [margin, g.op("Sqrt", [dist_sq])])])
        dissimilar = g.op("Mul", [gap, gap])
    truncated = g.op("Reshape", [g.op("Cast", [y], to=_int_type()), g.ints([-1])])
    similar = g.op("Not", [g.op("Equal", [truncated, g.ints(0)])])
    total = g.reduce("ReduceSum", g.op("Where", [similar, dist_sq, dissimilar]), None, False)
    batch = _normaliser(g, "BATCH_SIZE", a, None, a)
    g.op("Div", [total, g.op("Mul", [batch, g.const(2.0)])], g.tops[0])


@exporter("InfogainLoss")
def _infogain(g: _Gate) -> None:
    """-sum_l H[label, l] max(log p_l, log 1e-20) over the counted positions / normaliser:
    the rows of H gathered by label, moved to the class axis, times the clamped LogSoftmax."""
    gate = g.gate
    if len(g.inputs) < 3:
        raise OnnxExportError(f"gate {g.name!r} (InfogainLoss): H must be the third bottom")
    scores, label, matrix = g.inputs
    axis = canonical_axis(gate.axis, g.ndim)
    classes = g.known(g.in_shapes[0][axis], "the number of classes")
    shape = list(g.in_shapes[0])
    shape[axis] = 1
    labels = _labels_as(g, label, tuple(shape))
    valid = None
    if gate.ignore_label is not None:
        keep = g.op("Not", [g.op("Equal", [labels, g.ints(gate.ignore_label)])])
        labels = g.op("Where", [keep, labels, g.ints(0)])
        valid = g.op("Cast", [keep], to=_float_type(g.graph.dtype))
    square = g.op("Reshape", [matrix, g.ints([classes, classes])])
    rows = g.op("Gather", [square, g.op("Squeeze", [labels, g.ints([axis])])], axis=0)
    order = list(range(axis)) + [g.ndim - 1] + list(range(axis, g.ndim - 1))
    rows = g.op("Transpose", [rows], perm=order)
    log_prob = g.op("Max", [g.op("LogSoftmax", [scores], axis=axis),
                            g.const(math.log(LOG_THRESHOLD))])
    terms = g.op("Neg", [g.reduce("ReduceSum", g.op("Mul", [rows, log_prob]), [axis], True)])
    if valid is not None:
        terms = g.op("Mul", [terms, valid])
    total = g.reduce("ReduceSum", terms, None, False)
    g.op("Div", [total, _normaliser(g, gate.mode, labels, valid, scores, axis)], g.tops[0])
    if len(g.tops) == 2:
        g.op("Softmax", [scores], g.tops[1], axis=axis)


# -- the model -----------------------------------------------------------------------------------
def _float_type(dtype: np.dtype) -> int:
    from onnx import TensorProto
    return TensorProto.DOUBLE if np.dtype(dtype) == np.float64 else TensorProto.FLOAT


def _int_type() -> int:
    from onnx import TensorProto
    return TensorProto.INT64


def _deploy_steps(net: Net, steps: list[Step]) -> tuple[list[Step], dict[str, str]]:
    """The steps of a deployed model: label readers left out, SoftmaxWithLoss replaced by its
    probabilities. Returns the steps and, per replaced gate, the name of its probabilities."""
    kept, probabilities = [], {}
    taken = set(net.shapes)
    for step in steps:
        cls = step.spec.cls
        if cls.type_name == "SoftmaxWithLoss":
            name = step.tops[1] if len(step.tops) == 2 else (
                "prob" if "prob" not in taken else f"{step.spec.name}_prob")
            taken.add(name)
            probabilities[step.spec.name] = name
            kept.append(step)
        elif not cls.loss_gate() and cls.type_name not in LABEL_READERS:
            kept.append(step)
    return kept, probabilities


def _needed(steps: list[Step], wanted: list[str]) -> list[Step]:
    required, kept = set(wanted), []
    for step in reversed(steps):
        if required.intersection(step.tops):
            kept.append(step)
            required.update(step.inputs)
    return kept[::-1]


def export_onnx(net: Net, path: str | Path | None = None, opset: int = DEFAULT_OPSET,
                losses: bool = False, outputs: list[str] | None = None) -> Any:
    """The net's test-phase graph as an `onnx.ModelProto`, checked by `onnx.checker`, and
    written to `path` when given (see the module docstring for what is written).

    losses: also write the loss and Accuracy gates (labels become inputs); by default a
        deployed model: SoftmaxWithLoss becomes its probabilities, other label readers go.
    outputs: the blobs the model outputs (default: those no exported gate consumes); only the
        gates they depend on are written.
    Raises OnnxExportError naming every gate that has no ONNX form."""
    onnx = require_onnx()
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise OnnxExportError(f"opset {opset} is not supported: choose {MIN_OPSET} to "
                              f"{MAX_OPSET}")
    phase = net.phase
    net.phase = "test"
    try:
        return _export(onnx, net, path, opset, losses, outputs)
    finally:
        net.phase = phase


def _export(onnx: Any, net: Net, path: str | Path | None, opset: int, losses: bool,
            outputs: list[str] | None) -> Any:
    from onnx import helper, numpy_helper
    steps = list(net.runner.steps)
    probabilities: dict[str, str] = {}
    if not losses:
        steps, probabilities = _deploy_steps(net, steps)
    shapes = net.shapes
    for name in probabilities.values():
        step = next(s for s in steps if probabilities.get(s.spec.name) == name)
        shapes[name] = shapes[step.inputs[0]]
    produced = [t for s in steps for t in _step_tops(s, probabilities)]
    consumed = {i for s in steps for i in _step_inputs(s, probabilities)}
    wanted = outputs or [t for t in produced if t not in consumed]
    if not wanted:
        raise OnnxExportError(f"net {net.name!r}: the exported graph has no outputs")
    unknown = [name for name in wanted if name not in shapes]
    if unknown:
        raise OnnxExportError(f"no blob {', '.join(map(repr, unknown))} in the exported graph "
                              f"of net {net.name!r}")
    steps = [s for s in steps if s.spec.name in {
        n.spec.name for n in _needed(_renamed(steps, probabilities), wanted)}]
    missing = [s for s in steps if s.spec.cls.type_name not in EXPORTERS]
    if missing:
        listed = ", ".join(f"{s.spec.name!r} ({s.spec.type})" for s in missing)
        plural = "s" if len(missing) > 1 else ""
        raise OnnxExportError(f"net {net.name!r}: no ONNX form for gate{plural} {listed} "
                              f"(exported: {', '.join(sorted(EXPORTERS))})")
    graph = _Graph(opset, net.dtype)
    graph.used.update(shapes)
    for step in _renamed(steps, probabilities):
        if step.spec.name in probabilities:
            _Gate(graph, step, shapes).op("Softmax", [step.inputs[0]], step.tops[0],
                                          axis=canonical_axis(step.gate.axis,
                                                              len(shapes[step.inputs[0]])))
        else:
            EXPORTERS[step.spec.cls.type_name](_Gate(graph, step, shapes))
    read = {i for s in steps for i in _step_inputs(s, probabilities)} | set(wanted)
    inputs = [helper.make_tensor_value_info(name, _input_type(net, name), _dims(shapes[name]))
              for name in net.inputs if name in read]
    params = [numpy_helper.from_array(np.asarray(net.params[name], dtype=net.dtype).reshape(
        graph.layouts.get(name, net.params[name].shape)), name) for name in net.params
        if name in read]
    params += [numpy_helper.from_array(array, name) for name, array in
               graph.initializers.items()]
    out_info = [helper.make_tensor_value_info(name, _float_type(net.dtype), _dims(shapes[name]))
                for name in wanted]
    onnx_graph = helper.make_graph(graph.nodes, net.name, inputs, out_info, params)
    model = helper.make_model(onnx_graph, producer_name="gatework",
                              opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = min(model.ir_version, _IR_VERSION.get(opset, model.ir_version))
    onnx.checker.check_model(model, full_check=True)
    if path is not None:
        _write(Path(path), model.SerializeToString())
    return model


#: the IR version each opset came with, so that older runtimes load the model
_IR_VERSION = {13: 7, 14: 7, 15: 8, 16: 8, 17: 8, 18: 8, 19: 9, 20: 9, 21: 10}


def _renamed(steps: list[Step], probabilities: dict[str, str]) -> list[Step]:
    """The steps with each replaced SoftmaxWithLoss reading its scores and writing its
    probabilities."""
    return [Step(s.gate, s.spec, s.inputs[:1], (probabilities[s.spec.name],))
            if s.spec.name in probabilities else s for s in steps]


def _step_tops(step: Step, probabilities: dict[str, str]) -> tuple[str, ...]:
    name = probabilities.get(step.spec.name)
    return (name,) if name else step.tops


def _step_inputs(step: Step, probabilities: dict[str, str]) -> tuple[str, ...]:
    return step.inputs[:1] if step.spec.name in probabilities else step.inputs


def _input_type(net: Net, name: str) -> int:
    return _int_type() if net.inputs[name].dtype == "int" else _float_type(net.dtype)


def _dims(shape: tuple) -> list:
    return [BATCH_DIM if d is None else d for d in shape]


def _write(path: Path, data: bytes) -> None:
    """Write through a temporary file in the same folder, so no reader sees half a model."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    temporary.replace(path)


__all__ = ["export_onnx", "OnnxExportError", "DEFAULT_OPSET", "EXPORTERS",
           "caffe_divisor", "require_onnx"]
