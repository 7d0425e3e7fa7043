"""Nonlinearities: ReLU, Sigmoid, Tanh (elementwise) and Softmax (along one axis). Each keeps its
input's shape."""
from __future__ import annotations

import numpy as np

from .base import ElementwiseGate, Option, register_gate


@register_gate
class ReLUGate(ElementwiseGate):
    """out = max(x, 0).  Input: x, any shape. Returns: out, same shape.
    Local gradient: 1 where x > 0, else 0; at x == 0 the gradient is 0 (as in Caffe and PyTorch)."""

    kink_note = "x == 0: the gradient there is taken as 0"

    def forward(self, x):
        self.out = np.maximum(x, 0)
        return self.out

    def backward(self, dout):
        return (dout * (self.out > 0),)

    def kinks(self, x):
        return (np.abs(x),)


@register_gate
class SigmoidGate(ElementwiseGate):
    """out = 1 / (1 + exp(-x)).  Input: x, any shape. Returns: out, same shape.
    Local gradient: out * (1 - out)."""

    def forward(self, x):
        # exp of a non-positive number never overflows: split by sign for stability
        z = np.exp(-np.abs(x))
        self.out = np.where(x >= 0, 1 / (1 + z), z / (1 + z))
        return self.out

    def backward(self, dout):
        return (dout * self.out * (1 - self.out),)


@register_gate
class TanhGate(ElementwiseGate):
    """out = tanh(x).  Input: x, any shape. Returns: out, same shape. Local gradient: 1 - out^2."""

    def forward(self, x):
        self.out = np.tanh(x)
        return self.out

    def backward(self, dout):
        return (dout * (1 - self.out * self.out),)


@register_gate
class SoftmaxGate(ElementwiseGate):
    """out = exp(x) / sum(exp(x)) along `axis` (the class axis; 1 as in Caffe), computed from
    x minus its maximum along that axis so it never overflows.
    Input: x, any shape with at least axis + 1 dimensions. Returns: out, same shape, summing to 1
    along `axis`. Local gradient: dx = out * (dout - sum(dout * out, axis))."""

    options = {"axis": Option(int, 1, "the axis the probabilities sum over")}

    def forward(self, x):
        shifted = x - x.max(axis=self.axis, keepdims=True)
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
