"""gates/arithmetic.py: Max and Min route the gradient (ties split evenly), and broadcast
gradients are summed back to each input's shape."""
from __future__ import annotations

import numpy as np
import pytest

from gates import gate_class


@pytest.mark.parametrize("kind, a, b, da, db", [
    ("Max", 3.0, 1.0, 1.0, 0.0),
    ("Max", 1.0, 3.0, 0.0, 1.0),
    ("Max", 2.0, 2.0, 0.5, 0.5),   # a tie: split evenly, what a centred difference sees
    ("Min", 3.0, 1.0, 0.0, 1.0),
    ("Min", 2.0, 2.0, 0.5, 0.5),
])
def test_max_and_min_route_the_gradient(kind, a, b, da, db):
    gate = gate_class(kind)()
    gate.forward(np.array(a), np.array(b))
    assert gate.backward(np.array(1.0)) == (da, db)


def test_broadcast_gradients_are_summed_back_to_each_input_shape():
    gate = gate_class("Multiply")()
    a, b = np.arange(6.0).reshape(2, 3), np.array([1.0, 2.0, 3.0])
    gate.forward(a, b)
    da, db = gate.backward(np.ones((2, 3)))
    np.testing.assert_array_equal(da, np.tile(b, (2, 1)))
    np.testing.assert_array_equal(db, a.sum(axis=0))
