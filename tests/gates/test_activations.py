"""gates/activations.py: Softmax normalises along its axis, passes a centred-difference check
(float64), stays finite on large inputs and gives tall score rows the general path's bits.
(ReLU, Sigmoid and Tanh are checked by the registry-wide test in tests/gradcheck/test_gate.py.)"""
from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import centred_difference_check, make


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_softmax_gradient_and_normalisation(axis):
    rng = np.random.default_rng(0)
    gate = make("Softmax", axis=axis)
    x = rng.standard_normal((3, 4))
    np.testing.assert_allclose(gate.forward(x).sum(axis=axis), 1.0)
    centred_difference_check(gate, [x])


def test_softmax_large_inputs():
    out = make("Softmax").forward(np.array([[1000.0, 1000.0, -1000.0]]))
    np.testing.assert_allclose(out, [[0.5, 0.5, 0.0]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("axis", [1, -1])
def test_softmax_of_tall_score_rows_is_the_general_paths(dtype, axis):
    """(130, 10) scores find their row maxima from a transposed copy (max_along); the same
    scores as (130, 10, 1) along axis 1 do not. Output and gradient agree bit for bit, with
    scores large enough that a row without its maximum taken off would overflow."""
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((130, 10)) * 200).astype(dtype)
    dout = rng.standard_normal(x.shape).astype(dtype)
    rows, general = make("Softmax", axis=axis), make("Softmax", axis=1)
    out, reference = rows.forward(x), general.forward(x[:, :, None])
    assert np.isfinite(out).all() and out.dtype == dtype
    assert out.tobytes() == reference.tobytes()
    assert rows.backward(dout)[0].tobytes() == general.backward(dout[:, :, None])[0].tobytes()
