"""The Net: the lecture's worked example (in any gate order, and from YAML), live parameters and
inspectable blobs, dtypes, a user's gate from YAML, shared parameters, outputs, missing inputs,
shapes of a gate without a shape rule, and the summary."""
from __future__ import annotations

import itertools
import textwrap

import numpy as np
import pytest

from gates import Gate, gate_class, register_gate
from net import ConfigError, Net
from tests.helpers import CONFIGS


# -- the worked example ----------------------------------------------------------------------------
SEED_GATES = [
    {"name": "add", "type": "Add", "bottom": ["x", "y"], "top": "a"},
    {"name": "max", "type": "Max", "bottom": ["y", "z"], "top": "b"},
    {"name": "mul", "type": "Multiply", "bottom": ["a", "b"], "top": "f"},
]


def seed_config(gates, dtype="float32"):
    return {"dtype": dtype, "inputs": {n: {"shape": []} for n in "xyz"}, "gates": list(gates)}


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_worked_example_any_gate_order(order):
    """f = (x + y) max(y, z) at (1, 2, 0): f = 6; df/dx = 2, df/dy = 2 + 3 = 5, df/dz = 0."""
    net = Net.from_config(seed_config([SEED_GATES[i] for i in order]))
    assert net.forward({"x": 1, "y": 2, "z": 0})["f"] == 6
    assert net.blobs["a"] == 3 and net.blobs["b"] == 2
    grads = net.backward()
    assert (grads["x"], grads["y"], grads["z"]) == (2, 5, 0)
    assert [s.spec.name for s in net.runner.steps][-1] == "mul"


def test_worked_example_from_yaml_file():
    net = Net.from_yaml(CONFIGS / "seed_example.yaml")
    assert net.forward() == {"f": 6.0}
    assert net.backward() == {"x": 2.0, "y": 5.0, "z": 0.0}


def test_a_value_fills_an_open_dimension_with_its_own_size():
    """`value:` is checked against the declared shape when the config is read; an open
    dimension (null) takes the value's size, as it takes a fed array's."""
    net = Net.from_config({"dtype": "float64", "inputs": {
        "x": {"shape": [None, 2], "value": [[1, -2], [-3, 4], [5, 6]]}}, "gates": [
        {"name": "rectify", "type": "ReLU", "bottom": "x", "top": "y"}]})
    np.testing.assert_array_equal(net.forward()["y"], [[1, 0], [0, 4], [5, 6]])


def test_missing_input_value_names_the_input():
    net = Net.from_config(seed_config(SEED_GATES))
    with pytest.raises(KeyError, match="no value for input 'z'"):
        net.forward({"x": 1, "y": 2})


# -- parameters, blobs, dtypes ---------------------------------------------------------------------
def test_params_are_live_and_blobs_are_inspectable():
    net = Net.from_yaml(CONFIGS / "affine.yaml")
    net.params["W"][...] = 0.0
    net.params["b"][...] = 1.0
    np.testing.assert_array_equal(net.forward()["z"], np.ones((2, 2)))
    assert set(net.blobs) >= {"x", "W", "b", "Wx", "z"}
    net.params["b"] = np.full((2, 1), 3.0)
    np.testing.assert_array_equal(net.forward()["z"], np.full((2, 2), 3.0))


def test_dtype_float32_by_default_and_integer_inputs_stay_integer():
    net = Net.from_config({"inputs": {"x": {"shape": [None, 3]}, "k": {"shape": [None]}},
                           "gates": [{"name": "fc", "type": "InnerProduct", "bottom": "x",
                                      "top": "y", "num_output": 2},
                                     {"name": "s", "type": "Power", "bottom": "k", "top": "k2"}]})
    assert net.params["fc.W"].dtype == np.float32 and net.params["fc.W"].shape == (2, 3)
    out = net.forward({"x": np.ones((4, 3)), "k": np.arange(4)})
    assert out["y"].dtype == np.float32 and net.blobs["k"].dtype.kind == "i"
    grads = net.backward()
    assert grads["k"] is None and grads["x"].shape == (4, 3)


def test_an_inputs_gradient_follows_the_kind_of_its_last_feed():
    """backward keeps, per `wrt`, which sources take a gradient, and checks the inputs' kinds
    again on every call: an input fed integers gets None, fed floats a gradient."""
    net = Net.from_config({"dtype": "float64", "inputs": {"k": {"shape": [None]}},
                           "gates": [{"name": "s", "type": "Power", "bottom": "k", "top": "y",
                                      "scale": 2.0}]})
    for feed, expected in ((np.arange(3), None), (np.arange(3.0), [2.0, 2.0, 2.0]),
                           (np.arange(3), None)):
        net.forward({"k": feed})
        for wrt in (None, ["k"]):
            grad = net.backward(wrt=wrt)["k"]
            assert grad is None if expected is None else list(grad) == expected


def test_the_default_seed_follows_its_blob_and_cannot_be_written():
    """backward's default seed (ones of each output's shape, or a loss's weight) is made once
    and reused, read-only, while its blob keeps its dtype and shape: a new batch size gets a new
    seed, and the seed seen through `wrt` cannot be changed behind the next call's back."""
    net = Net.from_config({"dtype": "float64", "inputs": {"k": {"shape": [None]}},
                           "gates": [{"name": "s", "type": "Power", "bottom": "k", "top": "y",
                                      "scale": 3.0}]})
    for size in (2, 4, 2):
        net.forward({"k": np.arange(float(size))})
        grads = net.backward(wrt=["k", "y"])
        assert grads["k"].tolist() == [3.0] * size and grads["y"].shape == (size,)
        with pytest.raises(ValueError, match="read-only"):
            grads["y"][0] = 5.0
    weighted = Net.from_config({"dtype": "float32", "inputs": {"k": {"shape": [3]}}, "gates": [
        {"name": "s", "type": "Sum", "bottom": "k", "top": "total", "loss_weight": 2.0}]})
    weighted.forward({"k": [1.0, 2.0, 3.0]})
    for _ in range(2):
        grad = weighted.backward(wrt=["k"])["k"]
        assert grad.dtype == np.float32 and grad.tolist() == [2.0, 2.0, 2.0]


def test_float64_nets_keep_float64():
    net = Net.from_yaml(CONFIGS / "affine.yaml")
    assert net.forward()["z"].dtype == np.float64


def test_parameters_shared_by_name():
    net = Net.from_config({"dtype": "float64", "inputs": {"x": {"shape": [None, 3]}}, "gates": [
        {"name": "a", "type": "InnerProduct", "bottom": "x", "top": "ya", "num_output": 3,
         "param": [{"name": "shared_W"}, {"name": "shared_b"}]},
        {"name": "b", "type": "InnerProduct", "bottom": "ya", "top": "yb", "num_output": 3,
         "param": [{"name": "shared_W"}, {"name": "shared_b"}]}]})
    assert set(net.params) == {"shared_W", "shared_b"}
    x = np.random.default_rng(0).standard_normal((2, 3))
    W, b = net.params["shared_W"], net.params["shared_b"]
    np.testing.assert_allclose(net.forward({"x": x})["yb"], (x @ W.T + b) @ W.T + b)
    ya = x @ W.T + b
    dW = np.ones((2, 3)).T @ ya + (np.ones((2, 3)) @ W).T @ x
    np.testing.assert_allclose(net.backward()["shared_W"], dW)


def test_a_shared_parameter_has_one_learning_rate():
    gate = {"type": "InnerProduct", "bottom": "x", "num_output": 3}
    with pytest.raises(ConfigError, match="shared parameter 'w' has lr_mult 2.0"):
        Net.from_config({"inputs": {"x": {"shape": [None, 3]}}, "gates": [
            {**gate, "name": "a", "top": "ya", "param": [{"name": "w"}]},
            {**gate, "name": "b", "top": "yb", "param": [{"name": "w", "lr_mult": 2}]}]})


def test_a_blob_nothing_consumes_is_an_output():
    net = Net.from_yaml(CONFIGS / "two_layer.yaml")
    assert net.outputs == ["scores"]
    assert net.forward()["scores"].shape == (2, 3)


def test_summary_counts_every_parameter_once():
    text = Net.from_yaml(CONFIGS / "affine.yaml").summary()
    assert text.splitlines()[-1].startswith("total parameters: 8 in 2 arrays")


# -- a user's gate ---------------------------------------------------------------------------------
class CubeGate(Gate):
    """out = x^3: a user's gate, forward and backward only (tests register it)."""

    def forward(self, x):
        self.x = x
        return x ** 3

    def backward(self, dout):
        return (3 * self.x ** 2 * dout,)


def test_a_gate_added_in_a_test_is_usable_from_yaml(tmp_path, clean_registry):
    register_gate(CubeGate)
    config = tmp_path / "cube.yaml"
    config.write_text(textwrap.dedent("""\
        dtype: float64
        inputs: {x: {shape: [2]}}
        gates:
          - {name: cube, type: Cube, bottom: x, top: y}
    """))
    net = Net.from_yaml(config)
    np.testing.assert_allclose(net.forward({"x": [2.0, -1.0]})["y"], [8.0, -1.0])
    np.testing.assert_allclose(net.backward()["x"], [12.0, 3.0])
    assert gate_class("CubeGate") is CubeGate and CubeGate.bottom_range() == (1, 1)


def test_shapes_of_a_gate_without_a_shape_rule_keep_every_open_dimension_open(clean_registry):
    """A user's gate declares no output shape: the Net runs it on zeros and keeps an open
    dimension open wherever it sits, so x (3, N) @ ... builds and infers (4, N)."""
    register_gate(CubeGate)

    @register_gate
    class BatchTotalGate(Gate):
        def forward(self, x):
            self.rows = x.shape[0]
            return x.sum(axis=0, keepdims=True)

        def backward(self, dout):
            return (np.repeat(dout, self.rows, axis=0),)

    net = Net.from_config({"inputs": {"x": {"shape": [3, None]}, "M": {"shape": [4, 3]}},
                           "gates": [{"name": "cube", "type": "Cube", "bottom": "x", "top": "c"},
                                     {"name": "mm", "type": "MatMul", "bottom": ["M", "c"],
                                      "top": "y"},
                                     {"name": "total", "type": "BatchTotal", "bottom": "y",
                                      "top": "t"}]})
    assert net.shapes["c"] == (3, None) and net.shapes["y"] == (4, None)
    assert net.shapes["t"] == (1, None)   # a real leading 1 stays 1
    assert net.forward({"x": np.ones((3, 5)), "M": np.ones((4, 3))})["t"].shape == (1, 5)


def test_a_parameter_whose_filling_needs_more_memory_than_is_free_is_refused(tmp_path,
                                                                             monkeypatch):
    import net.core.net as net_module
    path = tmp_path / "wide.yaml"
    path.write_text(textwrap.dedent("""\
        inputs: {data: {shape: [null, 1000]}}
        gates:
          - {name: fc, type: InnerProduct, bottom: data, top: out, num_output: 1000}
        """))
    # 1000 x 1000 float32 weights are 4 MB, drawn as 8 MB of float64 values: 12 MB to fill
    monkeypatch.setattr(net_module, "available_bytes", lambda: 10 * 2 ** 20)
    with pytest.raises(ConfigError, match=r"wide\.yaml:3: .*'fc'.* needs 11\.4 MiB of memory to "
                                          r"fill, more than the 10\.0 MiB available"):
        Net.from_yaml(path)
    monkeypatch.setattr(net_module, "available_bytes", lambda: 12 * 2 ** 20)
    assert Net.from_yaml(path).params["fc.W"].shape == (1000, 1000)
