"""Nonlinearities, each keeping its input's shape: Caffe's neuron layers (ReLU with
`negative_slope`, PReLU, ELU, AbsVal, BNLL, Threshold, Clip, Swish, Sigmoid, TanH) and Softmax
(along one axis). Power, Exp and Log, which take scale and shift options, live in arithmetic.

Where a gate has a kink, the gradient there follows Caffe (stated in each docstring).
"""
from __future__ import annotations

import numpy as np

from .base import (ElementwiseGate, Gate, Option, known_channels, max_along, register_alias,
                   register_gate)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)), split by sign so that exp never overflows."""
    z = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + z), z / (1 + z))


@register_gate
class ReLUGate(ElementwiseGate):
    """out = max(x, 0) + negative_slope * min(x, 0) (Caffe's ReLU; "leaky" when negative_slope is
    not 0).  Input: x, any shape. Returns: out, same shape.
    Local gradient: 1 where x > 0, negative_slope where x <= 0, so at x == 0 it is negative_slope
    (0 by default), as in Caffe and PyTorch."""

    options = {"negative_slope": Option(float, 0.0, "slope for x <= 0 (0: the plain ReLU)")}
    kink_note = "x == 0: the gradient there is taken as 0"

    def __init__(self, **options):
        super().__init__(**options)
        if self.negative_slope != 0.0:
            self.kink_note = f"x == 0: the gradient there is taken as {self.negative_slope:g}"

    def forward(self, x):
        if self.negative_slope == 0.0:
            # the plain ReLU keeps its output: out > 0 exactly where x > 0 (NaN in both cases
            # not), and the output is what the next gate read last, still in the cache when
            # backward comes (as in a hand-written loop: an MLP step measured 1.5-2% faster)
            self.out = np.maximum(x, 0)
            return self.out
        self.x = x
        return np.where(x > 0, x, x * self.negative_slope)

    def backward(self, dout):
        if self.negative_slope == 0.0:
            return (dout * (self.out > 0),)
        return (dout * np.where(self.x > 0, 1.0, self.negative_slope).astype(dout.dtype),)

    def kinks(self, x):
        return (np.abs(x),)


@register_gate
class PReLUGate(Gate):
    """out = max(x, 0) + a * min(x, 0) with a learned slope `a` per channel (Caffe's PReLU).

    Input: x (N, C, ...), at least two axes; parameter slope (C,), or one slope of shape () when
    `channel_shared` (Caffe's blob shapes). Returns: out, the shape of x.
    Local gradients: dx = dout where x > 0, a * dout where x <= 0 (a at x == 0, as in Caffe);
    da = sum of dout * x over the elements with x <= 0 (of its channel, or of all).
    """

    num_bottoms = 1
    options = {
        "channel_shared": Option(bool, False, "one slope for every channel"),
        "filler": Option(dict, {"type": "constant", "value": 0.25},
                         "how the slope is initialised (Caffe: constant 0.25)"),
    }
    check_shapes = ((2, 3, 2, 2),)
    kink_note = "x == 0: the gradient there is taken as the slope"

    def param_specs(self, x_shape):
        channels = known_channels(self, x_shape)
        shape = () if self.channel_shared else (channels,)
        return {"slope": (shape, {"type": "constant", **self.filler})}

    def infer_shapes(self, x_shape, *param_shapes):
        known_channels(self, x_shape)
        return (tuple(x_shape),)

    def forward(self, x, slope):
        self.x = x
        self.slope = slope.reshape((1, -1) + (1,) * (x.ndim - 2)) if slope.ndim else slope
        return np.where(x > 0, x, x * self.slope)

    def backward(self, dout):
        positive = self.x > 0
        dx = dout * np.where(positive, 1.0, self.slope) if self.needs_input_grad[0] else None
        dslope = None
        if self.needs_input_grad[1]:
            product = np.where(positive, 0.0, dout * self.x)
            dslope = product.sum() if self.channel_shared else \
                product.sum(axis=(0,) + tuple(range(2, product.ndim)))
            dslope = np.asarray(dslope, dtype=dout.dtype)
        return dx, dslope

    def kinks(self, x, slope):
        return np.abs(x), None


@register_gate
class ELUGate(ElementwiseGate):
    """out = x where x > 0, alpha * (exp(x) - 1) where x <= 0 (Caffe's ELU).
    Input: x, any shape. Returns: out, same shape.
    Local gradient: 1 where x > 0, alpha * exp(x) = out + alpha where x <= 0 (alpha at x == 0,
    as in Caffe and PyTorch)."""

    options = {"alpha": Option(float, 1.0, "the negative saturation value is -alpha")}
    check_options = {"alpha": 0.7}
    kink_note = "x == 0 (when alpha != 1): the gradient there is taken as alpha"

    def forward(self, x):
        self.x = x
        self.out = np.where(x > 0, x, self.alpha * np.expm1(np.minimum(x, 0)))
        return self.out

    def backward(self, dout):
        return (dout * np.where(self.x > 0, 1.0, self.out + self.alpha),)

    def kinks(self, x):
        return (None if self.alpha == 1.0 else np.abs(x),)


@register_gate
class AbsValGate(ElementwiseGate):
    """out = |x| (Caffe's AbsVal).  Input: x, any shape. Returns: out, same shape.
    Local gradient: sign(x); 0 at x == 0, as in Caffe."""

    kink_note = "x == 0: the gradient there is taken as 0"

    def forward(self, x):
        self.x = x
        return np.abs(x)

    def backward(self, dout):
        return (dout * np.sign(self.x),)

    def kinks(self, x):
        return (np.abs(x),)


@register_gate
class BNLLGate(ElementwiseGate):
    """out = log(1 + exp(x)), the "binomial normal log likelihood" (Caffe's BNLL; PyTorch's
    softplus), computed as max(x, 0) + log1p(exp(-|x|)) so it never overflows.
    Input: x, any shape. Returns: out, same shape. Local gradient: sigmoid(x)."""

    def forward(self, x):
        self.x = x
        return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))

    def backward(self, dout):
        return (dout * _sigmoid(self.x),)


@register_gate
class ThresholdGate(ElementwiseGate):
    """out = 1 where x > threshold, else 0 (Caffe's Threshold).
    Input: x, any shape. Returns: out, same shape, of 0s and 1s in x's dtype.
    Not differentiable: the step has no useful gradient (Caffe's backward is not implemented),
    so backward returns no gradient and nothing flows back through this gate."""

    options = {"threshold": Option(float, 0.0, "out is 1 strictly above this value")}
    kink_note = "x == threshold: the step"

    def forward(self, x):
        return (x > self.threshold).astype(x.dtype if x.dtype.kind == "f" else np.float64)

    def backward(self, dout):
        return (None,)

    def kinks(self, x):
        return (np.abs(x - self.threshold),)


@register_gate
class ClipGate(ElementwiseGate):
    """out = min(max(x, min), max) (Caffe's Clip; PyTorch's hardtanh).
    Input: x, any shape. Returns: out, same shape.
    Local gradient: 1 where min <= x <= max, else 0. At x == min or x == max the gradient is 1,
    as in Caffe (PyTorch's hardtanh takes 0 there)."""

    options = {"min": Option(float, doc="the lower bound"),
               "max": Option(float, doc="the upper bound (not below min)")}
    check_options = {"min": -0.5, "max": 0.8}
    kink_note = "x == min or x == max: the gradient there is taken as 1 (Caffe)"

    def __init__(self, **options):
        super().__init__(**options)
        if self.min > self.max:
            raise ValueError(f"min ({self.min:g}) is above max ({self.max:g})")

    def forward(self, x):
        self.x = x
        return np.clip(x, self.min, self.max)

    def backward(self, dout):
        return (dout * ((self.x >= self.min) & (self.x <= self.max)),)

    def kinks(self, x):
        return (np.minimum(np.abs(x - self.min), np.abs(x - self.max)),)


@register_gate
class SwishGate(ElementwiseGate):
    """out = x * sigmoid(beta * x) (Caffe's Swish; SiLU when beta is 1).
    Input: x, any shape. Returns: out, same shape.
    Local gradient, as Caffe writes it: beta * out + sigmoid(beta x) * (1 - beta * out)."""

    options = {"beta": Option(float, 1.0, "the sharpness of the sigmoid")}
    check_options = {"beta": 1.5}

    def forward(self, x):
        self.sig = _sigmoid(self.beta * x)
        self.out = x * self.sig
        return self.out

    def backward(self, dout):
        beta_out = self.beta * self.out
        return (dout * (beta_out + self.sig * (1 - beta_out)),)


@register_gate
class SigmoidGate(ElementwiseGate):
    """out = 1 / (1 + exp(-x)).  Input: x, any shape. Returns: out, same shape.
    Local gradient: out * (1 - out)."""

    def forward(self, x):
        self.out = _sigmoid(x)
        return self.out

    def backward(self, dout):
        return (dout * self.out * (1 - self.out),)


@register_gate
class TanhGate(ElementwiseGate):
    """out = tanh(x) (Caffe's TanH: both names work).  Input: x, any shape.
    Returns: out, same shape. Local gradient: 1 - out^2."""

    def forward(self, x):
        self.out = np.tanh(x)
        return self.out

    def backward(self, dout):
        return (dout * (1 - self.out * self.out),)


register_alias("TanH", "Tanh")


@register_gate
class SoftmaxGate(ElementwiseGate):
    """out = exp(x) / sum(exp(x)) along `axis` (the class axis; 1 as in Caffe), computed from
    x minus its maximum along that axis so it never overflows.
    Input: x, any shape with at least axis + 1 dimensions. Returns: out, same shape, summing to 1
    along `axis`. Local gradient: dx = out * (dout - sum(dout * out, axis))."""

    options = {"axis": Option(int, 1, "the axis the probabilities sum over")}

    def forward(self, x):
        shifted = x - max_along(x, self.axis)
        out = np.exp(shifted, out=shifted)
        out /= out.sum(axis=self.axis, keepdims=True)
        self.out = out
        return out

    def backward(self, dout):
        dx = dout * self.out
        dx -= self.out * dx.sum(axis=self.axis, keepdims=True)
        return (dx,)

    def infer_shapes(self, shape):
        if not -len(shape) <= self.axis < len(shape):
            raise ValueError(f"axis {self.axis} is out of range for an input of "
                             f"{len(shape)} dimensions")
        return (shape,)
