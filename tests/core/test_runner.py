"""The runner: backward twice gives the same gradients, gradients add up where a blob fans out,
only the wanted gradients outlive the pass, what a gate's backward returns is checked (count and
shapes) and so is the shape of what its forward returns where the net knows it, naming the
gate."""
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
    (lambda self, dout: (dout, np.ones(7)), r"gradient for input 'b' has shape \(7,\), but the "
                                            r"input has shape \(2, 3\)"),
    (lambda self, dout: (dout, 1.0), r"gradient for input 'b' has shape \(\)"),
])
@pytest.mark.parametrize("declared", [[2, 3], [None, 3]])
def test_runner_checks_what_backward_returns(backward, message, declared, clean_registry):
    """Against the shape the net knows when it is built ([2, 3]) and against the blob's own
    where a dimension is open ([None, 3]), the same check and the same message."""
    register_gate("Broken")(type("BrokenGate", (_Broken,), {"backward": backward}))
    net = Net.from_config({"inputs": {"a": {"shape": declared}, "b": {"shape": declared}},
                           "gates": [{"name": "oops", "type": "Broken", "bottom": ["a", "b"],
                                      "top": "c"}]})
    net.forward({"a": np.ones((2, 3)), "b": np.ones((2, 3))})
    with pytest.raises(ContractError, match=message) as err:
        net.backward()
    assert "gate 'oops' (Broken)" in str(err.value)


def test_a_gradient_for_an_intermediate_blob_is_checked_against_its_built_shape(clean_registry):
    """h's shape, (3,), is known at build and checked in forward; the gate reading it is held
    to it in backward."""
    register_gate("Broken")(type("BrokenGate", (_Broken,), {
        "backward": lambda self, dout: (np.ones(4), dout)}))
    net = Net.from_config({"dtype": "float64", "inputs": {"x": {"shape": [3]}}, "gates": [
        {"name": "half", "type": "Power", "bottom": "x", "top": "h", "scale": 0.5},
        {"name": "oops", "type": "Broken", "bottom": ["h", "x"], "top": "y"}]})
    net.forward({"x": [1.0, 2.0, 3.0]})
    with pytest.raises(ContractError, match=r"gate 'oops' \(Broken\): the gradient for input "
                                            r"'h' has shape \(4,\), but the input has shape "
                                            r"\(3,\)"):
        net.backward()


class _Grows(Gate):
    """Declares its output the shape of its input, then returns one element more."""
    def forward(self, x):
        return np.append(x, 0.0)

    def backward(self, dout):
        return (dout[:-1],)


class _Positives(Gate):
    """Its output's length depends on the data, and it says so: an open dimension."""
    def forward(self, x):
        self.mask = x > 0
        return x[self.mask]

    def backward(self, dout):
        grad = np.zeros(self.mask.shape)
        grad[self.mask] = dout
        return (grad,)

    def infer_shapes(self, shape):
        return ((None,),)


def test_forward_is_held_to_the_shape_the_net_was_built_with(clean_registry):
    """An output whose shape the net knows at build time (here from the gate's own
    infer_shapes) is checked as forward writes it: a gate that returns another shape is named
    there, not at some later gate, and the message says how to declare a data-dependent size."""
    register_gate("Grows")(type("GrowsGate", (_Grows,), {
        "infer_shapes": lambda self, shape: (shape,)}))
    net = Net.from_config({"inputs": {"x": {"shape": [3]}}, "gates": [
        {"name": "grow", "type": "Grows", "bottom": "x", "top": "y"}]})
    with pytest.raises(ContractError, match=r"gate 'grow' \(Grows\): forward returned shape "
                                            r"\(4,\) for 'y', but its shape inference gave "
                                            r"\(3,\) when the net was built"):
        net.forward({"x": [1.0, 2.0, 3.0]})


def test_an_open_output_dimension_may_follow_the_data(clean_registry):
    """A gate that declares a data-dependent dimension open is not held to one size, and its
    gradient is checked against the blob it read."""
    register_gate("Positives")(_Positives)
    net = Net.from_config({"dtype": "float64", "inputs": {"x": {"shape": [4]}}, "gates": [
        {"name": "keep", "type": "Positives", "bottom": "x", "top": "y"},
        {"name": "double", "type": "Power", "bottom": "y", "top": "z", "scale": 2.0}]})
    for x, kept in (([1.0, -2.0, 3.0, 4.0], 3), ([-1.0, 2.0, -3.0, -4.0], 1)):
        assert net.forward({"x": x})["z"].shape == (kept,)
        np.testing.assert_array_equal(net.backward()["x"], 2.0 * (np.array(x) > 0))
