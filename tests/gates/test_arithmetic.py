"""gates/arithmetic.py: Max and Min route the gradient (ties split evenly), broadcast
gradients are summed back to each input's shape, and 0-d inputs (computed as numpy scalars)
give exactly what arrays give."""
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
    ("Max", np.nan, 1.0, 0.0, 1.0),   # NaN wins nothing: max(a, b) == a is false
    ("Max", 1.0, np.nan, 0.0, 1.0),
    ("Min", np.nan, 1.0, 0.0, 1.0),
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


def _same(ours, theirs) -> bool:
    """Equal dtype and values, NaN where the other has NaN, and the same sign on zeros."""
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    return (ours.dtype == theirs.dtype and np.array_equal(ours, theirs, equal_nan=True)
            and np.array_equal(np.signbit(ours), np.signbit(theirs)))


@pytest.mark.parametrize("kind", ["Add", "Subtract", "Multiply", "Divide", "Max", "Min"])
@pytest.mark.parametrize("a, b", [(2.0, 0.5), (1.5, 1.5), (-0.0, 0.0), (0.0, -0.0),
                                  (np.nan, 1.0), (3.0, np.inf), (-2.0, 7.0)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scalar_inputs_give_what_one_element_arrays_give(kind, a, b, dtype):
    """0-d inputs are computed as numpy scalars (the lecture's scalar nets: about 0.06 us an
    operation instead of 0.5): the output and both gradients have the values, signs of zero
    and dtypes that the same gate gives on arrays of one element, and shape ()."""
    scalar_gate, array_gate = gate_class(kind)(), gate_class(kind)()
    with np.errstate(all="ignore"):
        out = scalar_gate.forward(np.asarray(a, dtype), np.asarray(b, dtype))
        grads = scalar_gate.backward(np.asarray(-1.25, dtype))
        expected = array_gate.forward(np.array([a], dtype), np.array([b], dtype))
        expected_grads = array_gate.backward(np.array([-1.25], dtype))
    assert np.shape(out) == () and _same(out, expected[0])
    for grad, want in zip(grads, expected_grads):
        assert np.shape(grad) == () and _same(grad, want[0])


def test_a_scalar_and_an_array_broadcast_as_two_arrays_do():
    """One 0-d input and one array: the scalar path keeps numpy's promotion (float32 array with
    a float64 scalar gives float64, as with a 0-d float64 array) and sums the scalar's
    gradient."""
    gate = gate_class("Multiply")()
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    out = gate.forward(a, np.asarray(0.1))
    assert out.dtype == np.float64 and _same(out, a * np.asarray(0.1))
    da, db = gate.backward(np.ones((2, 3)))
    assert _same(da, np.full((2, 3), 0.1)) and db.shape == () and db == a.astype(np.float64).sum()
