"""The ONNX form of every gate type: one exporter per type (EXPORTERS), each writing the gate's
test-phase computation through a GateWriter, its docstring saying how where Caffe's layer and
ONNX's operator differ (pooling windows and divisors, LRN within channels, Scale axes, ArgMax
ties, the losses' normalisers). A gate type without an entry here has no ONNX form.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from gates import Gate
from gates.base import canonical_axis
from gates.losses import LOG_FLT_MIN, LOG_THRESHOLD
from gates.vision import FLT_MIN

from .onnx_writer import GateWriter, OnnxExportError, float_type, int_type

Exporter = Callable[[GateWriter], None]
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
def _direct(g: GateWriter) -> None:
    """One ONNX operator with the same meaning (numpy broadcasting is ONNX's; Dropout is the
    identity in the test phase)."""
    op_type = _DIRECT[g.step.spec.cls.type_name]
    attrs = {"axis": canonical_axis(g.gate.axis, g.ndim)} if op_type == "Concat" else {}
    g.op(op_type, g.inputs, g.tops[0], **attrs)


@exporter("ReLU")
def _relu(g: GateWriter) -> None:
    if g.gate.negative_slope == 0.0:
        g.op("Relu", g.inputs, g.tops[0])
    else:
        g.op("LeakyRelu", g.inputs, g.tops[0], alpha=g.gate.negative_slope)


@exporter("PReLU")
def _prelu(g: GateWriter) -> None:
    """PRelu, the (C,) slope written as a (C, 1, ...) initializer (its values unchanged) so
    that it lines up with axis 1, as PyTorch writes it."""
    x, slope = g.inputs
    if g.in_shapes[1]:
        g.graph.layouts[slope] = g.in_shapes[1] + (1,) * (g.ndim - 2)
    g.op("PRelu", [x, slope], g.tops[0])


@exporter("ELU")
def _elu(g: GateWriter) -> None:
    g.op("Elu", g.inputs, g.tops[0], alpha=g.gate.alpha)


@exporter("Threshold")
def _threshold(g: GateWriter) -> None:
    """1 where x > threshold: Greater, then Cast to the float type."""
    above = g.op("Greater", [g.x, g.const(g.gate.threshold)])
    g.op("Cast", [above], g.tops[0], to=float_type(g.graph.dtype))


@exporter("Clip")
def _clip(g: GateWriter) -> None:
    g.op("Clip", [g.x, g.const(g.gate.min), g.const(g.gate.max)], g.tops[0])


@exporter("Swish")
def _swish(g: GateWriter) -> None:
    """x * sigmoid(beta x)."""
    g.op("Mul", [g.x, g.op("Sigmoid", [g.scaled(g.x, g.gate.beta)])], g.tops[0])


@exporter("Softmax")
def _softmax(g: GateWriter) -> None:
    """Softmax along one axis (its meaning from opset 13 on)."""
    g.op("Softmax", g.inputs, g.tops[0], axis=canonical_axis(g.gate.axis, g.ndim))


@exporter("Power")
def _power(g: GateWriter) -> None:
    """(shift + scale x) ^ power as Mul, Add and Pow, each left out when it does nothing."""
    gate = g.gate
    if gate.power == 1.0:
        g.scaled(g.x, gate.scale, gate.shift, g.tops[0])
        return
    g.op("Pow", [g.scaled(g.x, gate.scale, gate.shift), g.const(gate.power)], g.tops[0])


@exporter("Exp")
def _exp(g: GateWriter) -> None:
    """base ^ (shift + scale x) = exp(ln(base) scale x) * base ^ shift."""
    g.scaled(g.op("Exp", [g.scaled(g.x, g.gate.inner)]), g.gate.outer, 0.0, g.tops[0])


@exporter("Log")
def _log(g: GateWriter) -> None:
    """log_base(shift + scale x) = ln(shift + scale x) / ln(base)."""
    inner = g.op("Log", [g.scaled(g.x, g.gate.scale, g.gate.shift)])
    g.scaled(inner, g.gate.base_scale, 0.0, g.tops[0])


# -- reductions and arithmetic with axes ---------------------------------------------------------
@exporter("Sum", "Mean")
def _reduce(g: GateWriter) -> None:
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
def _reduction(g: GateWriter) -> None:
    """Caffe's Reduction: every axis from `axis` on flattened into one (Reshape to
    [0, ..., 0, -1]), reduced, times coeff."""
    axis = canonical_axis(g.gate.axis, g.ndim)
    flat = g.op("Reshape", [g.x, g.ints([0] * axis + [-1])])
    coeff = g.gate.coeff
    out = g.reduce(_REDUCTION_OPS[g.gate.operation], flat, [axis], False,
                   None if coeff != 1.0 else g.tops[0])
    if coeff != 1.0:
        g.scaled(out, coeff, 0.0, g.tops[0])


def _along(g: GateWriter, blob: str, blob_shape: tuple) -> str:
    """A Scale or Bias blob laid along x.shape[axis : axis + b.ndim]: unsqueezed with trailing
    axes so that ONNX's right-aligned broadcasting puts it there."""
    if not blob_shape:
        return blob
    axis = canonical_axis(g.gate.axis, g.ndim)
    return g.unsqueeze(blob, list(range(len(blob_shape), g.ndim - axis)))


@exporter("Scale")
def _scale(g: GateWriter) -> None:
    """x * s (+ bias), s unsqueezed to line up with its axes (Caffe's axis, num_axes)."""
    scaled = g.op("Mul", [g.x, _along(g, g.inputs[1], g.in_shapes[1])],
                  None if len(g.inputs) == 3 else g.tops[0])
    if len(g.inputs) == 3:
        g.op("Add", [scaled, _along(g, g.inputs[2], g.in_shapes[2])], g.tops[0])


@exporter("Bias")
def _bias(g: GateWriter) -> None:
    g.op("Add", [g.x, _along(g, g.inputs[1], g.in_shapes[1])], g.tops[0])


@exporter("Eltwise")
def _eltwise(g: GateWriter) -> None:
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
def _argmax(g: GateWriter) -> None:
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


def _reversed_top(g: GateWriter, x: str, axis: int, size: int) -> tuple[str, str]:
    big = np.iinfo(np.int64).max
    flipped = g.op("Slice", [x, g.ints([-1]), g.ints([-big]), g.ints([axis]), g.ints([-1])])
    values, index = g.op("TopK", [flipped, g.ints([g.gate.top_k])], outputs=2, axis=axis,
                         largest=1, sorted=1)
    as_float = g.op("Cast", [index], to=float_type(g.graph.dtype))
    return values, g.op("Sub", [g.const(size - 1), as_float])


# -- matrix products -----------------------------------------------------------------------------
@exporter("InnerProduct")
def _inner_product(g: GateWriter) -> None:
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
def _embed(g: GateWriter) -> None:
    """Gather rows of W by the indices (cast to int64), plus b."""
    indices = g.op("Cast", [g.x], to=int_type())
    rows = g.op("Gather", [g.inputs[1], indices], None if len(g.inputs) == 3 else g.tops[0],
                axis=0)
    if len(g.inputs) == 3:
        g.op("Add", [rows, g.inputs[2]], g.tops[0])


# -- shapes --------------------------------------------------------------------------------------
@exporter("Reshape", "Flatten")
def _reshape(g: GateWriter) -> None:
    g.reshape_to(g.x, g.out_shapes[0], g.tops[0])


@exporter("Slice")
def _slice(g: GateWriter) -> None:
    """Split along the axis into the pieces' sizes."""
    if len(g.tops) == 1:
        g.op("Identity", [g.x], g.tops[0])
        return
    axis = canonical_axis(g.gate.axis, g.ndim)
    sizes = [g.known(shape[axis], f"the size of axis {axis}") for shape in g.out_shapes]
    g.op("Split", [g.x, g.ints(sizes)], list(g.tops), axis=axis)


@exporter("Split")
def _split(g: GateWriter) -> None:
    for top in g.tops:
        g.op("Identity", [g.x], top)


@exporter("Silence")
def _silence(g: GateWriter) -> None:
    """Nothing: its inputs are simply not outputs of the model."""


@exporter("Tile")
def _tile(g: GateWriter) -> None:
    repeats = [1] * g.ndim
    repeats[canonical_axis(g.gate.axis, g.ndim)] = g.gate.tiles
    g.op("Tile", [g.x, g.ints(repeats)], g.tops[0])


@exporter("Crop")
def _crop(g: GateWriter) -> None:
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
@exporter("Convolution", "Deconvolution")
def _convolution(g: GateWriter) -> None:
    """Conv, or ConvTranspose for Deconvolution: Caffe's output sizes are ONNX's (floor; for
    ConvTranspose with no output_padding), pads symmetric. Deconvolution's W keeps Caffe's
    layout (C, num_output / group, kh, kw), which is ONNX's."""
    gate = g.gate
    (ph, pw) = gate.pads
    op = "ConvTranspose" if gate.type_name == "Deconvolution" else "Conv"
    g.op(op, g.inputs, g.tops[0], kernel_shape=list(gate.kernel), strides=list(gate.strides),
         pads=[ph, pw, ph, pw], dilations=list(gate.dilations), group=gate.group)


@exporter("Pooling")
def _pooling(g: GateWriter) -> None:
    """MaxPool / AveragePool with Caffe's windows. Caffe rounds the output size up (and drops
    a last window that would start in the padding); ONNX's floor mode with extra padding at the
    end gives exactly those windows. AVE: AveragePool counting the padding divides every window
    by kh kw; Caffe divides a window hanging past the padding by its clipped size, so a constant
    (OH, OW) factor kh kw / divisor follows where they differ. Global pooling: GlobalMaxPool,
    GlobalAveragePool. (Both paddings stay below the kernel size, as ONNX runtimes require: Caffe
    drops a window that would start in the padding.)
    MAX's mask top: MaxPool's Indices (into the whole tensor, padding not counted) modulo H W,
    cast to floats: Caffe's index within each plane. At a tie the runtime picks the pixel (ONNX
    does not say which; onnxruntime takes the first, as Caffe).
    STOCHASTIC: the test phase's sum(x^2) / (FLT_MIN + sum(x)), each sum kh kw times an
    AveragePool counting the (zero) padding. Its train phase draws at random: not exported."""
    gate = g.gate
    is_max = gate.pool == "MAX"
    if gate.global_pooling and len(g.tops) == 1 and gate.pool != "STOCHASTIC":
        g.op("GlobalMaxPool" if is_max else "GlobalAveragePool", [g.x], g.tops[0])
        return
    height, width = (g.known(d, "the plane size") for d in g.in_shapes[0][2:])
    oh, ow = g.out_shapes[0][2:]
    (kh, kw), (sh, sw), (ph, pw) = gate._kernel(height, width), gate.strides, gate.pads
    end_h = max(0, (oh - 1) * sh + kh - height - ph)
    end_w = max(0, (ow - 1) * sw + kw - width - pw)
    attrs = dict(kernel_shape=[kh, kw], strides=[sh, sw], pads=[ph, pw, end_h, end_w])
    if is_max and len(g.tops) == 1:
        g.op("MaxPool", [g.x], g.tops[0], **attrs)
    elif is_max:
        _, indices = g.op("MaxPool", [g.x], [g.tops[0], g.graph.fresh(f"{g.name}/indices")],
                          **attrs)
        plane = g.op("Mod", [indices, g.ints(height * width)])
        g.op("Cast", [plane], g.tops[1], to=float_type(g.graph.dtype))
    elif gate.pool == "STOCHASTIC":
        sums = [g.scaled(g.op("AveragePool", [x], count_include_pad=1, **attrs), kh * kw)
                for x in (g.x, g.op("Mul", [g.x, g.x]))]
        g.op("Div", [sums[1], g.op("Add", [sums[0], g.const(FLT_MIN)])], g.tops[0])
    else:
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
def _batch_norm(g: GateWriter) -> None:
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
def _mvn(g: GateWriter) -> None:
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
def _lrn(g: GateWriter) -> None:
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
def _lstm_unit(g: GateWriter) -> None:
    """One LSTM step: Split the gate inputs into i, f, o, g (Caffe's order), then
    c = cont f c_prev + i g, h = o tanh(c)."""
    c_prev, x, cont = g.inputs
    hidden = g.known(g.in_shapes[0][-1], "the hidden size")
    i, f, o, cand = g.op("Split", [x, g.ints([hidden] * 4)], outputs=4, axis=-1)
    i, f, o = (g.op("Sigmoid", [part]) for part in (i, f, o))
    keep = g.unsqueeze(g.op("Cast", [cont], to=float_type(g.graph.dtype)), [-1])
    carried = g.op("Mul", [g.op("Mul", [keep, f]), c_prev])
    c = g.op("Add", [carried, g.op("Mul", [i, g.op("Tanh", [cand])])], g.tops[0])
    g.op("Mul", [o, g.op("Tanh", [c])], g.tops[1])


def _recurrent_inputs(g: GateWriter) -> tuple[str, str, list[str], dict[str, str], int]:
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
    cont = g.op("Cast", [g.inputs[1]], to=float_type(g.graph.dtype))
    initial = [g.op("Squeeze", [s, g.ints([0])]) for s in g.inputs[2 + static:bottoms]]
    return projected, cont, initial, params, steps


def _transposed(g: GateWriter, matrix: str) -> str:
    return g.op("Transpose", [matrix], perm=[1, 0])


def _at_step(g: GateWriter, x: str, t: int) -> str:
    return g.op("Gather", [x, g.ints(t)], axis=0)


def _carried(g: GateWriter, cont: str, t: int, state: str) -> str:
    """cont_t * state, cont_t (N,) lined up with the state's rows."""
    return g.op("Mul", [g.unsqueeze(_at_step(g, cont, t), [1]), state])


def _stacked(g: GateWriter, states: list[str], out: str | None = None) -> str:
    return g.op("Concat", [g.unsqueeze(h, [0]) for h in states], out, axis=0)


@exporter("RNN")
def _rnn(g: GateWriter) -> None:
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
def _lstm(g: GateWriter) -> None:
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
def _labels_as(g: GateWriter, label: str, shape: tuple) -> str:
    """The labels as int64, reshaped to the scores' shape with the class axis of length 1."""
    as_int = g.op("Cast", [label], to=int_type())
    return g.op("Reshape", [as_int, g.ints([-1 if d is None else d for d in shape])])


def _normaliser(g: GateWriter, mode: str, positions: str, valid: str | None, scores: str,
                axis: int = 1) -> str:
    """Caffe's normaliser (at least 1) as a float scalar: VALID counts the unignored positions,
    FULL all positions, BATCH_SIZE the outer count (the scores' dimensions before `axis`), NONE
    is 1."""
    as_float = float_type(g.graph.dtype)
    if mode == "NONE":
        return g.const(1.0)
    if mode == "VALID" and valid is not None:
        count = g.reduce("ReduceSum", valid, None, False)
    elif mode == "BATCH_SIZE":
        outer = g.op("Slice", [g.op("Shape", [scores]), g.ints([0]), g.ints([axis])])
        count = g.op("Cast", [g.reduce("ReduceProd", outer, None, False)], to=as_float)
    else:
        count = g.op("Cast", [g.op("Size", [positions])], to=as_float)
    return g.op("Max", [count, g.const(1.0)])


@exporter("SoftmaxWithLoss")
def _softmax_with_loss(g: GateWriter) -> None:
    """-sum of max(log p[label], log FLT_MIN) over the counted positions / normaliser: LogSoftmax,
    GatherElements at the labels, a mask for ignore_label; the probabilities second top is a
    Softmax."""
    scores, label = g.inputs
    axis = canonical_axis(g.gate.axis, g.ndim)
    labels, valid = _class_labels(g, label, axis)
    log_prob = g.op("LogSoftmax", [scores], axis=axis)
    picked = g.op("GatherElements", [log_prob, labels], axis=axis)
    terms = g.op("Neg", [g.op("Max", [picked, g.const(LOG_FLT_MIN)])])
    _class_loss(g, terms, labels, valid, scores, axis)


def _class_labels(g: GateWriter, label: str, axis: int) -> tuple[str, str | None]:
    """A softmax loss's labels shaped as the scores with the class axis 1, and with
    ignore_label the mask of the counted positions (their labels set to 0 so that gathering
    stays in range), else None."""
    shape = list(g.in_shapes[0])
    shape[axis] = 1
    labels, valid = _labels_as(g, label, tuple(shape)), None
    if g.gate.ignore_label is not None:
        keep = g.op("Not", [g.op("Equal", [labels, g.ints(g.gate.ignore_label)])])
        labels = g.op("Where", [keep, labels, g.ints(0)])
        valid = g.op("Cast", [keep], to=float_type(g.graph.dtype))
    return labels, valid


def _class_loss(g: GateWriter, terms: str, labels: str, valid: str | None, scores: str,
                axis: int) -> None:
    """A softmax loss's top from its per-position terms: the counted ones summed over the
    normaliser; the probabilities second top is a Softmax."""
    if valid is not None:
        terms = g.op("Mul", [terms, valid])
    total = g.reduce("ReduceSum", terms, None, False)
    g.op("Div", [total, _normaliser(g, g.gate.mode, labels, valid, scores, axis)], g.tops[0])
    if len(g.tops) == 2:
        g.op("Softmax", [scores], g.tops[1], axis=axis)


@exporter("EuclideanLoss")
def _euclidean_loss(g: GateWriter) -> None:
    """sum((a - b)^2) / (2 N)."""
    diff = g.op("Sub", g.inputs)
    total = g.reduce("ReduceSumSquare", diff, None, False)
    batch = _normaliser(g, "BATCH_SIZE", diff, None, g.inputs[0])
    g.op("Div", [total, g.op("Mul", [batch, g.const(2.0)])], g.tops[0])


@exporter("SigmoidCrossEntropyLoss")
def _sigmoid_cross_entropy(g: GateWriter) -> None:
    """sum(max(x, 0) - x t + log(1 + exp(-|x|))) over the counted elements / normaliser."""
    gate = g.gate
    x, t = g.inputs
    t = g.op("Reshape", [t, g.op("Shape", [x])])
    positive = g.op("Relu", [x])
    soft = g.op("Softplus", [g.op("Neg", [g.op("Abs", [x])])])
    terms = g.op("Add", [g.op("Sub", [positive, g.op("Mul", [x, t])]), soft])
    valid = None
    if gate.ignore_label is not None:
        truncated = g.op("Cast", [g.op("Cast", [t], to=int_type())], to=float_type(
            g.graph.dtype))
        keep = g.op("Not", [g.op("Equal", [truncated, g.const(gate.ignore_label)])])
        valid = g.op("Cast", [keep], to=float_type(g.graph.dtype))
        terms = g.op("Mul", [terms, valid])
    total = g.reduce("ReduceSum", terms, None, False)
    g.op("Div", [total, _normaliser(g, gate.mode, x, valid, x)], g.tops[0])


@exporter("Accuracy")
def _accuracy(g: GateWriter) -> None:
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
    as_float = float_type(g.graph.dtype)
    keep = None
    if gate.ignore_label is not None:
        keep = g.op("Not", [g.op("Equal", [labels, g.ints(gate.ignore_label)])])
        labels = g.op("Where", [keep, labels, g.ints(0)])
    true = g.op("GatherElements", [scores, labels], axis=axis)
    at_least = g.op("Cast", [g.op("GreaterOrEqual", [scores, true])], to=as_float)
    better = g.reduce("ReduceSum", at_least, [axis], True)
    correct = g.op("Less", [better, g.const(gate.top_k + 1.0)])
    nan = g.op("Cast", [g.op("IsNaN", [scores])], to=as_float)
    no_nan = g.op("Equal", [g.reduce("ReduceSum", nan, [axis], True), g.const(0.0)])
    right = g.op("Cast", [g.op("And", [correct, no_nan])], to=as_float)
    if keep is None:
        g.reduce("ReduceMean", right, None, False, g.tops[0])
        return
    counted = g.op("Cast", [keep], to=as_float)
    hits = g.reduce("ReduceSum", g.op("Mul", [right, counted]), None, False)
    g.op("Div", [hits, g.op("Max", [g.reduce("ReduceSum", counted, None, False),
                                      g.const(1.0)])], g.tops[0])


@exporter("MultinomialLogisticLoss")
def _multinomial_logistic(g: GateWriter) -> None:
    """-sum log(max(p[label], 1e-20)) / N, p flattened to (N, C)."""
    p = g.op("Flatten", [g.x], axis=1)
    labels = g.op("Reshape", [g.op("Cast", [g.inputs[1]], to=int_type()), g.ints([-1, 1])])
    picked = g.op("GatherElements", [p, labels], axis=1)
    logs = g.op("Log", [g.op("Max", [picked, g.const(LOG_THRESHOLD)])])
    total = g.op("Neg", [g.reduce("ReduceSum", logs, None, False)])
    g.op("Div", [total, _normaliser(g, "BATCH_SIZE", p, None, p)], g.tops[0])


def _one_hot(g: GateWriter, labels: str, classes: int) -> str:
    """Booleans (N, C): True at each row's label; labels as (N,) of any numeric type."""
    as_int = g.op("Reshape", [g.op("Cast", [labels], to=int_type()), g.ints([-1, 1])])
    return g.op("Equal", [as_int, g.ints(np.arange(classes))])


@exporter("HingeLoss")
def _hinge(g: GateWriter) -> None:
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
def _contrastive(g: GateWriter) -> None:
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
    truncated = g.op("Reshape", [g.op("Cast", [y], to=int_type()), g.ints([-1])])
    similar = g.op("Not", [g.op("Equal", [truncated, g.ints(0)])])
    total = g.reduce("ReduceSum", g.op("Where", [similar, dist_sq, dissimilar]), None, False)
    batch = _normaliser(g, "BATCH_SIZE", a, None, a)
    g.op("Div", [total, g.op("Mul", [batch, g.const(2.0)])], g.tops[0])


@exporter("InfogainLoss")
def _infogain(g: GateWriter) -> None:
    """-sum_l H[label, l] max(log p_l, log 1e-20) over the counted positions / normaliser:
    the rows of H gathered by label, moved to the class axis, times the clamped LogSoftmax."""
    gate = g.gate
    if len(g.inputs) < 3:
        raise OnnxExportError(f"gate {g.name!r} (InfogainLoss): H must be the third bottom")
    scores, label, matrix = g.inputs
    axis = canonical_axis(gate.axis, g.ndim)
    classes = g.known(g.in_shapes[0][axis], "the number of classes")
    labels, valid = _class_labels(g, label, axis)
    square = g.op("Reshape", [matrix, g.ints([classes, classes])])
    rows = g.op("Gather", [square, g.op("Squeeze", [labels, g.ints([axis])])], axis=0)
    order = list(range(axis)) + [g.ndim - 1] + list(range(axis, g.ndim - 1))
    rows = g.op("Transpose", [rows], perm=order)
    log_prob = g.op("Max", [g.op("LogSoftmax", [scores], axis=axis),
                            g.const(math.log(LOG_THRESHOLD))])
    terms = g.op("Neg", [g.reduce("ReduceSum", g.op("Mul", [rows, log_prob]), [axis], True)])
    _class_loss(g, terms, labels, valid, scores, axis)
