"""A user's gate file with a wrong backward, for `scripts/gradcheck.py --all --plugin` (exit 1).

The gradient for `b` forgets the minus sign of d(a - b)/db; the checker must point at `b`.
"""
from __future__ import annotations

from gates import Gate, register_gate


@register_gate
class SquaredDifferenceGate(Gate):
    """out = (a - b) ** 2, elementwise.  Inputs: a, b (same shape). Returns: out, same shape."""

    def forward(self, a, b):
        self.diff = a - b
        return self.diff ** 2

    def backward(self, dout):
        grad = 2 * self.diff * dout
        return grad, grad          # wrong: d out/db = -2 (a - b)
