"""Regularisation gates that act only while training: Dropout."""
from __future__ import annotations

import numpy as np

from .base import ElementwiseGate, Option, register_gate


@register_gate
class DropoutGate(ElementwiseGate):
    """Inverted dropout (Caffe's Dropout): in the train phase each element is zeroed with
    probability `dropout_ratio` and the survivors are scaled by 1 / (1 - dropout_ratio), so the
    expected output equals the input; in the test phase out = x, unchanged.
    Input: x, any shape. Returns: out, same shape. Local gradient: the same mask (0 or the scale).
    The mask is drawn from the gate's own seeded `rng`, once per forward pass; a gradient check
    must restore `rng`'s state before each forward (or run in the test phase)."""

    options = {"dropout_ratio": Option(float, 0.5, "probability of zeroing an element",
                                       range="[0, 1)")}

    def forward(self, x):
        if self.phase == "test" or self.dropout_ratio == 0.0:
            self.mask = None
            return x
        dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.float64
        draw = self.rng.random(x.shape, dtype=dtype)
        mask = np.greater_equal(draw, self.dropout_ratio, out=np.empty(x.shape, bool))
        self.mask = np.multiply(mask, 1.0 / (1.0 - self.dropout_ratio), dtype=dtype, out=draw)
        return x * self.mask

    def backward(self, dout):
        return (dout if self.mask is None else dout * self.mask,)
