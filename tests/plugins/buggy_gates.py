"""Gates with the mistakes people make in a backward, one each, for the checker's own tests."""
from __future__ import annotations

import numpy as np

from gates import Gate, register_gate, unbroadcast


@register_gate
class ForgetsFactorGate(Gate):
    """out = x ** 3, whose backward forgets the factor 3."""

    def forward(self, x):
        self.x = x
        return x ** 3

    def backward(self, dout):
        return (self.x ** 2 * dout,)


@register_gate
class SwapsGradientsGate(Gate):
    """out = a * b, whose backward returns the two gradients in the wrong order."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, dout):
        return dout * self.a, dout * self.b


@register_gate
class WrongShapeGate(Gate):
    """out = a + b with b (4,) broadcast over a (3, 4); backward does not sum b's gradient back."""

    check_shapes = ((3, 4), (4,))

    def forward(self, a, b):
        return a + b

    def backward(self, dout):
        return dout, dout


@register_gate
class MisdeclaredShapeGate(Gate):
    """out = the sum of each row of x (3, 4), but infer_shapes says the rows stay (3, 1)."""

    check_shapes = ((3, 4),)

    def forward(self, x):
        return x.sum(axis=1)

    def backward(self, dout):
        return (np.repeat(dout[:, None], 4, axis=1),)

    def infer_shapes(self, shape):
        return ((shape[0], 1),)


@register_gate
class ModifiesDoutGate(Gate):
    """out = 2 x, whose backward doubles dout in place (right values, broken contract)."""

    def forward(self, x):
        return 2 * x

    def backward(self, dout):
        dout *= 2
        return (dout,)


@register_gate
class WrongCountGate(Gate):
    """out = a + b, whose backward returns one gradient for two inputs."""

    def forward(self, a, b):
        return a + b

    def backward(self, dout):
        return (dout,)


@register_gate
class RandomBackwardGate(Gate):
    """out = x; backward adds fresh noise at every call (not repeatable)."""

    def forward(self, x):
        return x.copy()

    def backward(self, dout):
        return (dout + 1e-3 * np.random.default_rng().standard_normal(dout.shape),)


@register_gate
class ModifiesInputGate(Gate):
    """out = exp(x), computed in place in the caller's array."""

    def forward(self, x):
        self.out = np.exp(x, out=x)
        return self.out

    def backward(self, dout):
        return (dout * self.out,)


@register_gate
class BroadcastBiasGate(Gate):
    """Right: out = a + b, b's gradient summed back to its shape (a control for WrongShape)."""

    check_shapes = ((3, 4), (4,))

    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return a + b

    def backward(self, dout):
        return unbroadcast(dout, self.shapes[0]), unbroadcast(dout, self.shapes[1])
