"""gates/shape.py: Concat joins along its axis and splits the gradient back, with its shape
rules."""
from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import make, numeric_check

RNG = np.random.default_rng(7)


@pytest.mark.parametrize("axis, shapes", [
    (1, [(2, 3, 2), (2, 1, 2), (2, 2, 2)]),
    (0, [(1, 3), (2, 3)]),
    (-1, [(2, 2, 1), (2, 2, 3)]),
])
def test_concat_forward_and_split_gradient(axis, shapes):
    gate = make("Concat", axis=axis)
    xs = [RNG.standard_normal(s) for s in shapes]
    out = gate.forward(*xs)
    np.testing.assert_array_equal(out, np.concatenate(xs, axis=axis))
    grads = gate.backward(out * 2)
    for x, g in zip(xs, grads):
        np.testing.assert_array_equal(g, x * 2)
    assert gate.infer_shapes(*shapes) == (out.shape,)
    numeric_check(gate, xs)


def test_concat_shape_rules():
    gate = make("Concat")
    assert gate.infer_shapes((None, 2, 4), (None, 3, 4)) == ((None, 5, 4),)
    with pytest.raises(ValueError, match="only axis 1 may differ"):
        gate.infer_shapes((2, 2, 4), (2, 3, 5))
    with pytest.raises(ValueError, match="out of range"):
        make("Concat", axis=3).infer_shapes((2, 2), (2, 2))
