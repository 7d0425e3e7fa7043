"""Elementwise arithmetic and reductions: Add, Subtract, Multiply, Divide, Max, Min (numpy
broadcasting), Caffe's Power, Exp and Log (with scale and shift), Sum and Mean (over any axes),
Caffe's Scale and Bias (a learned or given blob laid along some axes), Eltwise (PROD, SUM, MAX of
same-shaped inputs), Reduction (over trailing axes) and ArgMax.

The two-input gates follow numpy broadcasting; each gradient is summed back to its input's shape.
They compute 0-d inputs as numpy scalars: the same results, an eighth of the time per operation.
Activations, matrix products and shape changes live in their own family files.
"""
from __future__ import annotations

import operator

import numpy as np

from .base import (ElementwiseGate, Gate, Option, RetiredOption, broadcast_shapes,
                   canonical_axis, format_shape, register_gate, short_repr, unbroadcast)


def _scalar(x: np.ndarray) -> np.ndarray | np.generic:
    """A 0-d array as its numpy scalar, anything else as it is. The value, dtype and type
    promotion are the same, and every result is the same numpy scalar, but an operation on two
    numpy scalars takes about 0.06 us where one on 0-d arrays takes 0.5 us (the lecture's scalar
    nets are made of those)."""
    return x[()] if x.ndim == 0 else x


class _Binary(Gate):
    """Shared by the two-input elementwise gates: numpy broadcasting's shape rule, and each
    gradient summed back to its input's shape."""

    def infer_shapes(self, a_shape, b_shape):
        return (broadcast_shapes(a_shape, b_shape),)

    def _take(self, a, b) -> tuple:
        """Remember the inputs' shapes; return the inputs as _scalar makes them."""
        self.shapes = a.shape, b.shape
        return a[()] if a.ndim == 0 else a, b[()] if b.ndim == 0 else b

    def _grads(self, da, db) -> tuple:
        """The gradients of a and b, each summed back to its input's shape (where the inputs
        have one shape, so have the gradients)."""
        a_shape, b_shape = self.shapes
        if a_shape == b_shape:
            return da, db
        return unbroadcast(da, a_shape), unbroadcast(db, b_shape)


@register_gate
class AddGate(_Binary):
    """out = a + b.  Inputs: a, b (broadcastable). Returns: out, the broadcast shape.
    Local gradients: d out/da = d out/db = 1."""

    def forward(self, a, b):
        a, b = self._take(a, b)
        return a + b

    def backward(self, dout):
        return self._grads(dout, dout)


@register_gate
class SubtractGate(_Binary):
    """out = a - b.  Inputs: a, b (broadcastable). Returns: out, the broadcast shape."""

    def forward(self, a, b):
        a, b = self._take(a, b)
        return a - b

    def backward(self, dout):
        return self._grads(dout, -_scalar(dout))


@register_gate
class MultiplyGate(_Binary):
    """out = a * b, elementwise.  Inputs: a, b (broadcastable). Returns: out.
    Local gradients: d out/da = b, d out/db = a (the lecture's MultiplyGate)."""

    def forward(self, a, b):
        self.a, self.b = self._take(a, b)  # must keep these around!
        return self.a * self.b

    def backward(self, dout):
        dout = _scalar(dout)
        return self._grads(dout * self.b, dout * self.a)


@register_gate
class DivideGate(_Binary):
    """out = a / b.  Inputs: a, b (broadcastable, b nonzero). Returns: out.
    Local gradients: 1/b and -a/b^2."""

    def forward(self, a, b):
        self.a, self.b = self._take(a, b)
        return self.a / self.b

    def backward(self, dout):
        da = _scalar(dout) / self.b
        return self._grads(da, -da * self.a / self.b)

    def sample_inputs(self, rng):
        a, b = (rng.standard_normal((3, 4)) for _ in range(2))
        return [a, np.sign(b) * (0.5 + np.abs(b))]


class _Select(_Binary):
    """Max and Min: the gradient goes to the selected input; at a tie it is split evenly.
    `pick` selects (np.maximum); `beats(a, b)` (>) is its rule for a (a also when NaN; at a tie,
    b, which tells -0.0 from 0.0); `wins(a, b)` says where a gets the gradient, what
    pick(a, b) == a says (>=: NaN, which pick propagates, never equals a, and never compares
    true)."""

    kink_note = "a == b: the gradient is split evenly between the two inputs"

    def forward(self, a, b):
        x, y = self.a, self.b = self._take(a, b)
        if type(x) is type(y) and isinstance(x, np.generic):
            # two scalars of one dtype: the ufunc's rule for float32, float64, ints and bools
            # (x if x beats y or is NaN, else y) without its call, a third of the lecture's
            # forward pass (at a tie of -0.0 and 0.0, float16 and longdouble may differ in sign)
            return x if self.beats(x, y) or x != x else y
        return self.pick(a, b)      # a ufunc takes arrays faster than scalars

    def backward(self, dout):
        dout = _scalar(dout)
        won, tie = self.wins(self.a, self.b), self.a == self.b
        da = dout * won - (dout * tie) * 0.5
        return self._grads(da, dout - da)

    def kinks(self, a, b):
        gap = np.abs(a - b)
        return unbroadcast(gap, a.shape, np.min), unbroadcast(gap, b.shape, np.min)


@register_gate
class MaxGate(_Select):
    """out = max(a, b), elementwise.  Inputs: a, b (broadcastable). Returns: out.
    Local gradients: 1 for the larger input, 0 for the other; at a tie (a == b) each gets 1/2,
    which is what a centred difference measures there."""

    pick = staticmethod(np.maximum)
    beats = staticmethod(operator.gt)
    wins = staticmethod(operator.ge)


@register_gate
class MinGate(_Select):
    """out = min(a, b), elementwise.  Inputs: a, b (broadcastable). Returns: out.
    Local gradients: 1 for the smaller input, 0 for the other; at a tie each gets 1/2."""

    pick = staticmethod(np.minimum)
    beats = staticmethod(operator.lt)
    wins = staticmethod(operator.le)


@register_gate
class PowerGate(ElementwiseGate):
    """out = (shift + scale * x) ^ power (Caffe's Power; with only `scale`, a constant factor).
    Input: x, any shape. Returns: out, same shape (NaN where shift + scale x is negative and power
    is not an integer, as numpy and Caffe give).
    Local gradient: power * scale * (shift + scale x)^(power - 1); 0 when power or scale is 0.
    Where shift + scale x == 0 and power is below 1 the slope is infinite (declared a kink)."""

    options = {"power": Option(float, 1.0, "the exponent"),
               "scale": Option(float, 1.0, "the factor on x"),
               "shift": Option(float, 0.0, "added after scaling")}
    check_options = {"power": 1.5, "scale": 0.5, "shift": 2.0}
    kink_note = "shift + scale x == 0 with a non-integer power"

    def forward(self, x):
        self.base = self.scale * x if self.shift == 0.0 else self.shift + self.scale * x
        return self.base if self.power == 1.0 else np.power(self.base, self.power)

    def backward(self, dout):
        slope = self.power * self.scale
        if slope == 0.0:
            return (np.zeros_like(dout),)
        if self.power == 1.0:
            return (dout * slope,)
        return (dout * (slope * np.power(self.base, self.power - 1)),)

    def kinks(self, x):
        if self.scale == 0.0 or (self.power >= 0 and self.power.is_integer()):
            return None
        return (np.abs(self.shift + self.scale * x) / abs(self.scale),)

    def sample_inputs(self, rng):
        return [rng.uniform(-1.0, 1.0, (3, 4))]


def _log_base(base: float, gate: str) -> float:
    """ln(base) for Caffe's `base` option, where -1 stands for e."""
    if base == -1.0:
        return 1.0
    if base <= 0:
        raise ValueError(f"{gate}: base must be positive, or -1 for e; got {base:g}")
    return float(np.log(base))


@register_gate
class ExpGate(ElementwiseGate):
    """out = base ^ (shift + scale * x) (Caffe's Exp; base -1, the default, means e, so by
    default out = exp(x)).  Input: x, any shape. Returns: out, same shape.
    Local gradient: ln(base) * scale * out."""

    options = {"base": Option(float, -1.0, "the base; -1 means e"),
               "scale": Option(float, 1.0, "the factor on x"),
               "shift": Option(float, 0.0, "added after scaling")}
    check_options = {"base": 2.0, "scale": 0.8, "shift": 0.3}

    def __init__(self, **options):
        super().__init__(**options)
        log_base = _log_base(self.base, "Exp")
        self.inner = log_base * self.scale
        self.outer = float(np.exp(log_base * self.shift))

    def forward(self, x):
        out = np.exp(x if self.inner == 1.0 else self.inner * x)
        self.out = out if self.outer == 1.0 else out * self.outer
        return self.out

    def backward(self, dout):
        return (dout * self.out if self.inner == 1.0 else dout * (self.inner * self.out),)


@register_gate
class LogGate(ElementwiseGate):
    """out = log_base(shift + scale * x) (Caffe's Log; base -1, the default, means e, so by
    default out = ln(x)).  Input: x with shift + scale x > 0, any shape. Returns: out, same shape.
    Local gradient: scale / ((shift + scale x) ln(base))."""

    options = {"base": Option(float, -1.0, "the base (positive, not 1); -1 means e"),
               "scale": Option(float, 1.0, "the factor on x"),
               "shift": Option(float, 0.0, "added after scaling")}
    check_options = {"base": 10.0, "scale": 1.5, "shift": 0.5}

    def __init__(self, **options):
        super().__init__(**options)
        if self.base == 1.0:
            raise ValueError("Log: base 1 has no logarithm; use a positive base other than 1, "
                             "or -1 for e")
        self.base_scale = 1.0 / _log_base(self.base, "Log")

    def forward(self, x):
        plain = self.scale == 1.0 and self.shift == 0.0
        self.arg = x if plain else self.shift + self.scale * x
        out = np.log(self.arg)
        return out if self.base_scale == 1.0 else out * self.base_scale

    def backward(self, dout):
        return (dout * (self.scale * self.base_scale) / self.arg,)

    def sample_inputs(self, rng):
        return [rng.uniform(0.5, 2.0, (3, 4))]


def _axes(axis, ndim: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    for a in axes:
        if not -ndim <= a < ndim:
            raise ValueError(f"axis {a} is out of range for an input of {ndim} dimensions")
    return tuple(sorted(a % ndim for a in axes))


class _Reduce(Gate):
    options = {"axis": Option((int, list, type(None)), None, "axis or axes to reduce; null: all"),
               "keepdims": Option(bool, False, "keep reduced axes with length 1")}
    check_options = {"axis": 1}

    def forward(self, x):
        self.shape = x.shape
        self.reduced = _axes(self.axis, x.ndim)
        return self.reduce(x, axis=self.reduced, keepdims=self.keepdims)

    def backward(self, dout):
        kept = dout if self.keepdims else np.expand_dims(dout, self.reduced)
        return (np.broadcast_to(kept * self.local_grad(), self.shape),)

    def infer_shapes(self, shape):
        axes = _axes(self.axis, len(shape))
        if self.keepdims:
            return (tuple(1 if i in axes else d for i, d in enumerate(shape)),)
        return (tuple(d for i, d in enumerate(shape) if i not in axes),)


@register_gate
class SumGate(_Reduce):
    """out = x summed over `axis` (all axes by default).  Input: x. Returns: x's shape without the
    reduced axes (kept as 1 with `keepdims`). Local gradient: 1 for every element."""

    reduce = staticmethod(np.sum)

    def local_grad(self):
        return 1


@register_gate
class MeanGate(_Reduce):
    """out = mean of x over `axis` (all axes by default).  Input: x. Returns: as Sum.
    Local gradient: 1/count, count being the number of elements averaged."""

    reduce = staticmethod(np.mean)

    def local_grad(self):
        return 1.0 / max(1, int(np.prod([self.shape[a] for a in self.reduced])))


# -- Caffe's Scale and Bias: a blob laid along some axes of x ------------------------------------
SCALE_RETIRED = ("Scale is now Caffe's learned Scale; for a constant factor use Power with "
                 "scale: k")


class _AlongAxes(Gate):
    """Shared by Scale and Bias: a blob b applied to x along the axes x.shape[axis : axis + b.ndim]
    (Caffe's outer x b x inner layout), so b's shape must equal those dimensions of x. A b of
    shape () applies to every element whatever `axis` says. b is a learned parameter (its shape
    from `axis` and `num_axes`) or, when the gate has two bottoms, the second bottom."""

    num_bottoms = (1, 2)
    check_shapes = ((2, 3, 4),)

    def learned_shape(self, x_shape) -> tuple:
        axis = canonical_axis(self.axis, len(x_shape))
        end = len(x_shape) if self.num_axes == -1 else axis + self.num_axes
        if end > len(x_shape):
            raise ValueError(f"num_axes {self.num_axes} from axis {axis} reaches past the "
                             f"{len(x_shape)} axes of the input {format_shape(x_shape)}")
        shape = tuple(x_shape[axis:end])
        if None in shape:
            raise ValueError(f"the input's axes {axis}..{end - 1} must be known to size the "
                             f"parameter, got {format_shape(x_shape)}")
        return shape

    def check_along(self, x_shape, b_shape, what: str) -> None:
        axis = 0 if len(b_shape) == 0 else canonical_axis(self.axis, len(x_shape))
        covered = tuple(x_shape[axis:axis + len(b_shape)])
        if len(covered) < len(b_shape) or any(
                None not in (a, b) and a != b for a, b in zip(covered, b_shape)):
            raise ValueError(f"{what} of shape {format_shape(b_shape)} does not match the input's "
                             f"axes from {axis} on: {format_shape(x_shape)}")

    def along(self, x: np.ndarray, b: np.ndarray) -> np.ndarray:
        """b shaped to broadcast against x; remembers the axes a gradient for b sums over."""
        axis = 0 if b.ndim == 0 else self.axis % x.ndim
        self.summed = tuple(range(axis)) + tuple(range(axis + b.ndim, x.ndim))
        return b.reshape(b.shape + (1,) * (x.ndim - axis - b.ndim))

    def sum_to_b(self, grad: np.ndarray) -> np.ndarray:
        return np.asarray(grad.sum(axis=self.summed), dtype=grad.dtype)


def _filler(given: dict | None, default_value: float) -> dict:
    """Caffe's filler for Scale and Bias: constant `default_value` when none is given; a given
    one is a FillerParameter, whose type defaults to constant (and value to 0)."""
    return {"type": "constant", "value": default_value} if given is None else \
        {"type": "constant", **given}


@register_gate
class ScaleGate(_AlongAxes):
    """out = x * s (+ bias), s laid along some axes of x (Caffe's Scale; with BatchNorm it is
    Caffe's learned per-channel gamma and beta).

    Inputs: x; then s, either a second bottom (no learned scale) or a learned parameter `scale`
    of shape x.shape[axis : axis + num_axes] (num_axes -1: every axis from `axis` on; 0: a
    scalar), filled by `filler` (Caffe: constant 1); with `bias_term`, a learned `bias` of s's
    shape (filler `bias_filler`, Caffe: constant 0). With two bottoms, `num_axes` is ignored:
    s's own shape says how many axes it covers, and s of shape () scales everything.
    Returns: out, the shape of x.
    Local gradients: dx = dout * s; ds = dout * x summed over the axes s does not cover;
    dbias = dout summed likewise.
    The constant-factor `Scale` of earlier Gatework versions is Power with `scale: k`.
    """

    options = {
        "axis": Option(int, 1, "first axis of x that s covers (negative counts from the end)"),
        "num_axes": Option(int, 1, "axes covered by a learned s; -1: all from axis on",
                           range="[-1, inf)"),
        "filler": Option((dict, type(None)), None, "how a learned s starts (null: constant 1)"),
        "bias_term": Option(bool, False, "also learn a bias of s's shape"),
        "bias_filler": Option((dict, type(None)), None, "how the bias starts (null: constant 0)"),
        "scale": RetiredOption(SCALE_RETIRED),
    }
    check_options = {"bias_term": True}

    def param_specs(self, x_shape, *scale_shape):
        specs = {}
        if scale_shape:
            shape = tuple(scale_shape[0])
            if None in shape:
                raise ValueError(f"the scale's shape {format_shape(shape)} must be known to size "
                                 "the bias")
        else:
            shape = self.learned_shape(x_shape)
            specs["scale"] = (shape, _filler(self.filler, 1.0))
        if self.bias_term:
            specs["bias"] = (shape, _filler(self.bias_filler, 0.0))
        return specs

    def infer_shapes(self, x_shape, scale_shape, *bias_shape):
        self.check_along(x_shape, scale_shape, "the scale")
        return (tuple(x_shape),)

    def forward(self, x, scale, bias=None):
        self.x, self.s = x, self.along(x, scale)
        self.with_bias = bias is not None
        out = x * self.s
        if self.with_bias:
            out += bias.reshape(self.s.shape)
        return out

    def backward(self, dout):
        needs = self.needs_input_grad
        grads = (dout * self.s if needs[0] else None,
                 self.sum_to_b(dout * self.x) if needs[1] else None)
        if self.with_bias:
            grads += (self.sum_to_b(dout) if needs[2] else None,)
        return grads


@register_gate
class BiasGate(_AlongAxes):
    """out = x + b, b laid along some axes of x (Caffe's Bias).

    Inputs: x; then b, either a second bottom or a learned parameter `bias` of shape
    x.shape[axis : axis + num_axes] (as Scale), filled by `filler` (Caffe: constant 0).
    Returns: out, the shape of x.
    Local gradients: dx = dout; db = dout summed over the axes b does not cover.
    """

    options = {
        "axis": Option(int, 1, "first axis of x that b covers (negative counts from the end)"),
        "num_axes": Option(int, 1, "axes covered by a learned b; -1: all from axis on",
                           range="[-1, inf)"),
        "filler": Option((dict, type(None)), None, "how a learned b starts (null: constant 0)"),
    }

    def param_specs(self, x_shape, *bias_shape):
        if bias_shape:
            return {}
        return {"bias": (self.learned_shape(x_shape), _filler(self.filler, 0.0))}

    def infer_shapes(self, x_shape, bias_shape):
        self.check_along(x_shape, bias_shape, "the bias")
        return (tuple(x_shape),)

    def forward(self, x, bias):
        return x + self.along(x, bias)

    def backward(self, dout):
        needs = self.needs_input_grad
        return (dout if needs[0] else None, self.sum_to_b(dout) if needs[1] else None)


# -- Caffe's Eltwise, Reduction and ArgMax --------------------------------------------------------
def _same_shapes(shapes) -> tuple:
    """The common shape of inputs that must agree exactly (an open dimension matches any)."""
    out = list(shapes[0])
    for index, shape in enumerate(shapes[1:], 2):
        if len(shape) != len(out) or any(None not in (a, b) and a != b
                                         for a, b in zip(out, shape)):
            raise ValueError(f"input {index} has shape {format_shape(shape)}, the first "
                             f"{format_shape(shapes[0])}: Eltwise inputs must have one shape")
        out = [b if a is None else a for a, b in zip(out, shape)]
    return tuple(out)


@register_gate
class EltwiseGate(Gate):
    """Caffe's Eltwise: the elementwise product (PROD), weighted sum (SUM: sum of coeff_i x_i)
    or maximum (MAX) of two or more inputs.

    Inputs: x1, x2, ... all of one shape (no broadcasting, as in Caffe). Returns: out, that shape.
    Local gradients: SUM: coeff_i * dout. PROD: dout times the product of the other inputs (with
    `stable_prod_grad: false`, Caffe's shortcut dout * out / x_i, NaN where x_i == 0).
    MAX: dout goes to the input that holds each maximum. Ties go as in Caffe's loop: between x1
    and x2 to x2, and a later input takes an element only by being strictly larger, so the winner
    is the first maximum in the order x2, x1, x3, x4, ...
    `coeff` belongs to SUM (one per input; all 1 when empty): PROD rejects it, MAX ignores it,
    as Caffe does.
    """

    num_bottoms = (2, None)
    options = {
        "operation": Option(str, "SUM", "PROD, SUM or MAX", choices=("PROD", "SUM", "MAX")),
        "coeff": Option(list, [], "SUM: one factor per input (empty: all 1)"),
        "stable_prod_grad": Option(bool, True, "PROD: multiply the other inputs (true) or "
                                               "divide the output by the input (false)"),
    }
    check_options = {"operation": "PROD"}
    check_shapes = ((3, 4),) * 3
    kink_note = "MAX: two inputs equal at the maximum; the tie goes as Caffe's loop sends it"

    def __init__(self, **options):
        super().__init__(**options)
        if any(isinstance(c, bool) or not isinstance(c, (int, float)) for c in self.coeff):
            raise ValueError(f"coeff must be a list of numbers, got {short_repr(self.coeff)}")
        if self.coeff and self.operation == "PROD":
            raise ValueError("coeff applies to SUM only; PROD takes none")
        self.coeff = [float(c) for c in self.coeff]

    def infer_shapes(self, *shapes):
        self._check_count(len(shapes))
        return (_same_shapes(shapes),)

    def _check_count(self, n: int) -> None:
        if self.coeff and self.operation == "SUM" and len(self.coeff) != n:
            raise ValueError(f"coeff has {len(self.coeff)} values for {n} inputs; give one "
                             "per input")

    def forward(self, *xs):
        self._check_count(len(xs))
        self.xs = xs
        if self.operation == "PROD":
            self.out = xs[0] * xs[1]
            for x in xs[2:]:
                self.out = self.out * x
            return self.out
        if self.operation == "SUM":
            coeff = self.coeff or [1.0] * len(xs)
            out = xs[0] * coeff[0]
            for c, x in zip(coeff[1:], xs[1:]):
                out += x if c == 1.0 else c * x
            return out
        self.winner = self._winner(xs)
        return np.choose(self.winner, xs)

    @staticmethod
    def _winner(xs) -> np.ndarray:
        """The index of the input holding each maximum, ties as in Caffe's loop."""
        order = [1, 0] + list(range(2, len(xs)))
        return np.asarray(order)[np.argmax(np.stack([xs[i] for i in order]), axis=0)]

    def backward(self, dout):
        needs = self.needs_input_grad
        return tuple(self._grad(i, dout) if needs[i] else None for i in range(len(self.xs)))

    def _grad(self, i: int, dout: np.ndarray) -> np.ndarray:
        if self.operation == "SUM":
            c = self.coeff[i] if self.coeff else 1.0
            return dout if c == 1.0 else dout * c
        if self.operation == "MAX":
            return dout * (self.winner == i)
        if not self.stable_prod_grad:
            return dout * self.out / self.xs[i]
        grad = dout
        for j, x in enumerate(self.xs):
            if j != i:
                grad = grad * x
        return grad

    def kinks(self, *xs):
        if self.operation != "MAX":
            return None
        top = np.max(xs, axis=0)
        second = np.sort(np.stack(xs), axis=0)[-2]
        winner = self._winner(xs)
        return tuple(np.where(winner == i, top - second, top - x) for i, x in enumerate(xs))


#: what Reduction sums, per operation (MEAN divides the sum afterwards)
_REDUCED = {"SUM": np.asarray, "ASUM": np.abs, "SUMSQ": np.square, "MEAN": np.asarray}


@register_gate
class ReductionGate(Gate):
    """Caffe's Reduction: reduces every axis from `axis` on (Caffe reduces only trailing axes),
    then multiplies by `coeff`. SUM: sum x; ASUM: sum |x|; SUMSQ: sum x^2; MEAN: the mean.
    Input: x. Returns: out of shape x.shape[:axis], a scalar () for axis 0 (the default).
    Local gradient: coeff times 1 (SUM), sign(x) (ASUM; 0 at x == 0, as in Caffe), 2x (SUMSQ),
    or 1/count (MEAN, count being the number of elements reduced into each output)."""

    num_bottoms = 1
    options = {
        "operation": Option(str, "SUM", "SUM, ASUM, SUMSQ or MEAN",
                            choices=("SUM", "ASUM", "SUMSQ", "MEAN")),
        "axis": Option(int, 0, "the first axis reduced; every later one is reduced too"),
        "coeff": Option(float, 1.0, "factor on the result"),
    }
    check_options = {"operation": "ASUM", "axis": 1, "coeff": 0.5}
    check_shapes = ((2, 3, 4),)
    kink_note = "ASUM at x == 0: the gradient there is taken as 0"

    def infer_shapes(self, shape):
        return (tuple(shape[:canonical_axis(self.axis, len(shape))]),)

    def forward(self, x):
        axis = canonical_axis(self.axis, x.ndim)
        self.x = x
        flat = x.reshape(x.shape[:axis] + (-1,))
        self.count = flat.shape[-1]
        out = _REDUCED[self.operation](flat).sum(axis=-1)
        factor = self.coeff / self.count if self.operation == "MEAN" else self.coeff
        return np.asarray(out * factor if factor != 1.0 else out, dtype=out.dtype)

    def backward(self, dout):
        upstream = np.reshape(dout, np.shape(dout) + (1,) * (self.x.ndim - np.ndim(dout)))
        upstream = upstream * (self.coeff / self.count if self.operation == "MEAN" else
                               self.coeff)
        if self.operation == "ASUM":
            return (upstream * np.sign(self.x),)
        if self.operation == "SUMSQ":
            return (upstream * (2 * self.x),)
        return (np.broadcast_to(upstream, self.x.shape),)

    def kinks(self, x):
        return (np.abs(x),) if self.operation == "ASUM" else None


@register_gate
class ArgMaxGate(Gate):
    """Caffe's ArgMax: the indices (or values) of the `top_k` largest entries, largest first.

    Input: x. Returns, with `axis` given: x's shape with `axis` cut to top_k, holding the indices
    along `axis`, or with `out_max_val` the values themselves. Without `axis`, each item x[n] is
    searched whole (flattened): out (N, 1, top_k), padded with 1s to x's number of axes when x has
    more than three, holding the indices; with `out_max_val`, (N, 2, top_k, ...): the indices,
    then the values. Indices are stored as numbers of x's (float) dtype, as in Caffe.
    Ties: the larger index first (Caffe sorts (value, index) pairs, largest first).
    Not differentiable: backward returns no gradient (Caffe's backward is not implemented).
    """

    num_bottoms = 1
    options = {
        "top_k": Option(int, 1, "how many of the largest entries", range="[1, inf)"),
        "out_max_val": Option(bool, False, "output the values (with axis) or indices and values"),
        "axis": Option((int, type(None)), None, "the axis searched; null: all but the first"),
    }
    check_options = {"top_k": 2, "axis": 1}
    check_shapes = ((2, 4, 3),)

    def infer_shapes(self, shape):
        if self.axis is not None:
            axis = canonical_axis(self.axis, len(shape))
            self._check_k(shape[axis])
            return (tuple(shape[:axis]) + (self.top_k,) + tuple(shape[axis + 1:]),)
        if not shape:
            raise ValueError("ArgMax without an axis needs an input of at least one dimension")
        rest = shape[1:]
        self._check_k(None if None in rest else int(np.prod(rest)))
        out = [shape[0], 2 if self.out_max_val else 1, self.top_k] + [1] * (len(shape) - 3)
        return (tuple(out),)

    def _check_k(self, size) -> None:
        if size is not None and size < self.top_k:
            raise ValueError(f"top_k {self.top_k} is more than the {size} entries searched")

    def forward(self, x):
        dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
        if self.axis is not None:
            axis = canonical_axis(self.axis, x.ndim)
            index, value = self._top(np.moveaxis(x, axis, -1))
            return np.moveaxis(value if self.out_max_val else index, -1, axis).astype(dtype)
        out_shape = self.infer_shapes(x.shape)[0]
        index, value = self._top(x.reshape(x.shape[0], -1))
        parts = [index, value] if self.out_max_val else [index]
        return np.stack(parts, axis=1).astype(dtype).reshape(out_shape)

    def _top(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Indices and values of the top_k largest entries along the last axis, larger index
        first among equal values."""
        self._check_k(x.shape[-1])
        size = x.shape[-1]
        reversed_order = np.argsort(-x[..., ::-1], axis=-1, kind="stable")[..., :self.top_k]
        index = size - 1 - reversed_order
        return index, np.take_along_axis(x, index, axis=-1)

    def backward(self, dout):
        return (None,)
