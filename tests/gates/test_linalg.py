"""gates/linalg.py: z = Wx + b against the hand-derived gradients (MatMul), and InnerProduct on
NCHW input, which it flattens as Flatten does."""
from __future__ import annotations

import numpy as np

from net import Net
from tests.helpers import CONFIGS, make, numeric_check

RNG = np.random.default_rng(7)


def test_affine_gradients_match_the_hand_derived_formulas():
    """z = W x + b with x a batch of columns: dW = dz x^T, dx = W^T dz, db = dz summed over x's
    columns (b broadcasts along them)."""
    net = Net.from_yaml(CONFIGS / "affine.yaml")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 5))
    z = net.forward({"x": x})["z"]
    W, b = net.params["W"], net.params["b"]
    np.testing.assert_allclose(z, W @ x + b)
    dz = rng.standard_normal(z.shape)
    grads = net.backward({"z": dz})
    np.testing.assert_allclose(grads["W"], dz @ x.T)
    np.testing.assert_allclose(grads["x"], W.T @ dz)
    np.testing.assert_allclose(grads["b"], dz.sum(axis=1, keepdims=True))


def test_flatten_and_inner_product_on_nchw():
    x = RNG.standard_normal((2, 3, 2, 2))
    flat = make("Flatten")
    np.testing.assert_array_equal(flat.forward(x), x.reshape(2, 12))
    assert flat.infer_shapes((None, 3, 2, 2)) == ((None, 12),)
    fc = make("InnerProduct", num_output=4)
    assert fc.param_specs((None, 3, 2, 2))["W"][0] == (4, 12)
    assert fc.infer_shapes((None, 3, 2, 2), (4, 12), (4,)) == ((None, 4),)
    W, b = RNG.standard_normal((4, 12)), RNG.standard_normal(4)
    np.testing.assert_allclose(fc.forward(x, W, b), x.reshape(2, 12) @ W.T + b)
    dx, dW, db = fc.backward(np.ones((2, 4)))
    assert dx.shape == x.shape
    numeric_check(fc, [x])
