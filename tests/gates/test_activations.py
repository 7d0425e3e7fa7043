"""gates/activations.py: Softmax normalises along its axis, passes a centred-difference check
(float64) and stays finite on large inputs. (ReLU, Sigmoid and Tanh are checked by the
registry-wide test in tests/gradcheck/test_gate.py.)"""
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
