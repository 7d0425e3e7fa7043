"""The runner: backward twice gives the same gradients, gradients add up where a blob fans out,
only the wanted gradients outlive the pass, and what a gate's backward returns is checked
(count and shapes), naming the gate."""
from __future__ import annotations

import numpy as np
import pytest

from gates import Gate, register_gate
from net import ContractError, Net
from tests.helpers import CONFIGS


def test_backward_twice_gives_the_same_result():
    net = Net.from_yaml(CONFIGS / "two_layer.yaml")
    net.forward()
    first = {k: v.copy() for k, v in net.backward().items()}
    second = net.backward()
    for name in first:
        np.testing.assert_array_equal(first[name], second[name])


def test_fan_out_into_the_same_gate():
    """b = a + a; c = b + b, so c = 4a and dc/da = 4: both uses of a blob add up."""
    net = Net.from_config({"dtype": "float64", "inputs": {"a": {"shape": [2]}}, "gates": [
        {"name": "double", "type": "Add", "bottom": ["a", "a"], "top": "b"},
        {"name": "again", "type": "Add", "bottom": ["b", "b"], "top": "c"}]})
    np.testing.assert_array_equal(net.forward({"a": [1.5, -2.0]})["c"], [6.0, -8.0])
    np.testing.assert_array_equal(net.backward()["a"], [4.0, 4.0])


def test_backward_keeps_the_wanted_gradients_only():
    """A blob's gradient is let go once the gate that wrote the blob has used it, as a
    hand-written backward pass lets each layer's upstream gradient go; a wanted blob's stays."""
    net = Net.from_config({"dtype": "float64", "inputs": {"x": {"shape": [3]}}, "gates": [
        {"name": "half", "type": "Power", "bottom": "x", "top": "h", "scale": 0.5},
        {"name": "cube", "type": "Power", "bottom": "h", "top": "y", "power": 3.0}]})
    net.forward({"x": [1.0, 2.0, -4.0]})
    seed = {"y": np.ones(3)}
    grads = net.runner.backward(net.blobs, dict(seed), frozenset({"x"}))
    assert set(grads) == {"x"}
    np.testing.assert_allclose(grads["x"], 1.5 * np.square([0.5, 1.0, -2.0]))
    kept = net.runner.backward(net.blobs, dict(seed), frozenset({"x", "h"}))
    assert set(kept) == {"x", "h"}
    np.testing.assert_array_equal(kept["x"], grads["x"])
    np.testing.assert_allclose(kept["h"], 3 * np.square([0.5, 1.0, -2.0]))


class _Broken(Gate):
    def forward(self, a, b):
        return a + b


@pytest.mark.parametrize("backward, message", [
    (lambda self, dout: (dout,), "must return a tuple of 2 gradients"),
    (lambda self, dout: (dout, np.ones(7)), "gradient for input 'b' has shape"),
])
def test_runner_checks_what_backward_returns(backward, message, clean_registry):
    register_gate("Broken")(type("BrokenGate", (_Broken,), {"backward": backward}))
    net = Net.from_config({"inputs": {"a": {"shape": [3]}, "b": {"shape": [3]}},
                           "gates": [{"name": "oops", "type": "Broken", "bottom": ["a", "b"],
                                      "top": "c"}]})
    net.forward({"a": np.ones(3), "b": np.ones(3)})
    with pytest.raises(ContractError, match=message) as err:
        net.backward()
    assert "gate 'oops' (Broken)" in str(err.value)
