"""Elementwise arithmetic and reductions: Add, Subtract, Multiply, Divide, Max, Min, Scale, Exp,
Log, Sum, Mean.

The two-input gates follow numpy broadcasting; each gradient is summed back to its input's shape.
Activations, matrix products and shape changes live in their own family files.
"""
from __future__ import annotations

import numpy as np

from .base import (ElementwiseGate, Gate, Option, broadcast_shapes, register_gate,
                   unbroadcast)


class _Binary(Gate):
    """Shared shape rule of the two-input elementwise gates: numpy broadcasting."""

    def infer_shapes(self, a_shape, b_shape):
        return (broadcast_shapes(a_shape, b_shape),)


@register_gate
class AddGate(_Binary):
    """out = a + b.  Inputs: a, b (broadcastable). Returns: out, the broadcast shape.
    Local gradients: d out/da = d out/db = 1."""

    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return a + b

    def backward(self, dout):
        return unbroadcast(dout, self.shapes[0]), unbroadcast(dout, self.shapes[1])


@register_gate
class SubtractGate(_Binary):
    """out = a - b.  Inputs: a, b (broadcastable). Returns: out, the broadcast shape."""

    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return a - b

    def backward(self, dout):
        return unbroadcast(dout, self.shapes[0]), unbroadcast(-dout, self.shapes[1])


@register_gate
class MultiplyGate(_Binary):
    """out = a * b, elementwise.  Inputs: a, b (broadcastable). Returns: out.
    Local gradients: d out/da = b, d out/db = a (the lecture's MultiplyGate)."""

    def forward(self, a, b):
        self.a, self.b = a, b  # must keep these around!
        return a * b

    def backward(self, dout):
        return unbroadcast(dout * self.b, self.a.shape), unbroadcast(dout * self.a, self.b.shape)


@register_gate
class DivideGate(_Binary):
    """out = a / b.  Inputs: a, b (broadcastable, b nonzero). Returns: out.
    Local gradients: 1/b and -a/b^2."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return a / b

    def backward(self, dout):
        da = dout / self.b
        return unbroadcast(da, self.a.shape), unbroadcast(-da * self.a / self.b, self.b.shape)

    def sample_inputs(self, rng):
        a, b = (rng.standard_normal((3, 4)) for _ in range(2))
        return [a, np.sign(b) * (0.5 + np.abs(b))]


class _Select(_Binary):
    """Max and Min: the gradient goes to the selected input; at a tie it is split evenly."""

    kink_note = "a == b: the gradient is split evenly between the two inputs"

    def forward(self, a, b):
        self.a, self.b = a, b
        return self.pick(a, b)

    def backward(self, dout):
        won, tie = self.pick(self.a, self.b) == self.a, self.a == self.b
        da = dout * won - (dout * tie) * 0.5
        return unbroadcast(da, self.a.shape), unbroadcast(dout - da, self.b.shape)

    def kinks(self, a, b):
        gap = np.abs(a - b)
        return unbroadcast(gap, a.shape, np.min), unbroadcast(gap, b.shape, np.min)


@register_gate
class MaxGate(_Select):
    """out = max(a, b), elementwise.  Inputs: a, b (broadcastable). Returns: out.
    Local gradients: 1 for the larger input, 0 for the other; at a tie (a == b) each gets 1/2,
    which is what a centred difference measures there."""

    pick = staticmethod(np.maximum)


@register_gate
class MinGate(_Select):
    """out = min(a, b), elementwise.  Inputs: a, b (broadcastable). Returns: out.
    Local gradients: 1 for the smaller input, 0 for the other; at a tie each gets 1/2."""

    pick = staticmethod(np.minimum)


@register_gate
class ScaleGate(ElementwiseGate):
    """out = scale * x for a constant `scale`.  Input: x, any shape. Returns: out, same shape."""

    options = {"scale": Option(float, 1.0, "the constant factor")}

    def forward(self, x):
        return x * self.scale

    def backward(self, dout):
        return (dout * self.scale,)


@register_gate
class ExpGate(ElementwiseGate):
    """out = exp(x).  Input: x, any shape. Returns: out, same shape. Local gradient: exp(x)."""

    def forward(self, x):
        self.out = np.exp(x)
        return self.out

    def backward(self, dout):
        return (dout * self.out,)


@register_gate
class LogGate(ElementwiseGate):
    """out = ln(x).  Input: x > 0, any shape. Returns: out, same shape. Local gradient: 1/x."""

    def forward(self, x):
        self.x = x
        return np.log(x)

    def backward(self, dout):
        return (dout / self.x,)

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
