"""The core engine: the lecture's worked example, fan-out, z = Wx + b, the registry and the Net."""
from __future__ import annotations

import itertools
import re
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conftest import CONFIGS, ROOT
from gates import Gate, Option, gate_class, register_gate
from net import ConfigError, ContractError, Net

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


def test_float64_nets_keep_float64():
    net = Net.from_yaml(CONFIGS / "affine.yaml")
    assert net.forward()["z"].dtype == np.float64


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


def test_registering_a_taken_name_is_an_error(clean_registry):
    with pytest.raises(ValueError, match="already registered"):
        @register_gate("Add")
        class AnotherAdd(Gate):
            def forward(self, a, b):
                return a + b


def test_unknown_type_suggests_the_closest():
    with pytest.raises(KeyError, match="did you mean 'Multiply'"):
        gate_class("Multipy")


def test_plugins_load_user_gates_from_a_path(tmp_path, clean_registry):
    (tmp_path / "my_gates.py").write_text(textwrap.dedent("""\
        from gates import Gate, register_gate

        @register_gate
        class SquareGate(Gate):
            def forward(self, x):
                self.x = x
                return x * x

            def backward(self, dout):
                return (2 * self.x * dout,)
    """))
    config = tmp_path / "net.yaml"
    config.write_text("plugins: [my_gates.py]\ndtype: float64\ninputs: {x: {shape: []}}\n"
                      "gates:\n  - {name: sq, type: Square, bottom: x, top: y}\n")
    net = Net.from_yaml(config)
    assert net.forward({"x": 3.0})["y"] == 9.0
    assert net.backward()["x"] == 6.0


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


def test_a_blob_nothing_consumes_is_an_output():
    net = Net.from_yaml(CONFIGS / "two_layer.yaml")
    assert net.outputs == ["scores"]
    assert net.forward()["scores"].shape == (2, 3)


def test_missing_input_value_names_the_input():
    net = Net.from_config(seed_config(SEED_GATES))
    with pytest.raises(KeyError, match="no value for input 'z'"):
        net.forward({"x": 1, "y": 2})


def test_option_types_are_checked():
    with pytest.raises(ConfigError, match="option 'num_output' must be a positive integer"):
        Net.from_config({"inputs": {"x": {"shape": [None, 3]}}, "gates": [
            {"name": "fc", "type": "InnerProduct", "bottom": "x", "top": "y",
             "num_output": "ten"}]})


def test_options_default_and_convert():
    assert Option(float, 1.0).convert(2) == 2.0
    with pytest.raises(ValueError):
        Option(int, 1).convert(True)


@pytest.mark.parametrize("interval, good, bad, words", [
    ("[0, 1)", (0, 0.5, 0.999), (1, -0.1, 2), "must be a number in [0, 1) or a list"),
    ("(0, inf)", (1e-9, 5, 1e300), (0, -1), "must be a positive number or a list"),
    ("[1, inf)", (1, 7, [2, 3]), (0, [2, 0]), "must be a number in [1, inf) or a list"),
])
def test_option_ranges_are_checked_and_said_in_words(interval, good, bad, words):
    option = Option((float, list), 1.0, range=interval)
    for value in good:
        option.convert(value)
    for value in bad:
        with pytest.raises(ValueError, match=re.escape(f"{words}, got {value!r}")):
            option.convert(value)


def test_float_options_are_finite_and_numpy_scalars_are_numbers():
    with pytest.raises(ValueError, match="finite"):
        Option(float, 1.0).convert(float("nan"))
    assert Option(int, 1).convert(np.int64(3)) == 3 and type(Option(int, 1).convert(np.int64(3))) is int
    assert Option(float, 1.0).convert(np.float32(0.5)) == 0.5


def test_a_gate_class_that_skips_gate_init_is_refused(clean_registry):
    with pytest.raises(TypeError, match="does not call Gate.__init__"):
        @register_gate
        class ForgetfulGate(Gate):
            def __init__(self, **options):
                self.scale = 2.0

            def forward(self, x):
                return x


def test_needs_input_grad_is_always_a_full_tuple():
    fc = gate_class("InnerProduct")(num_output=2)
    assert all(fc.needs_input_grad[:3])                       # by hand: every input wanted
    net = Net.from_config({"inputs": {"x": {"shape": [None, 3]}}, "gates": [
        {"name": "fc", "type": "InnerProduct", "bottom": "x", "top": "y", "num_output": 2}]})
    assert net.gates["fc"].needs_input_grad == (True, True, True)   # set by the Net at build


def test_defining_the_same_gate_class_again_replaces_it(clean_registry):
    def define(factor):
        @register_gate
        class TwiceGate(Gate):
            def forward(self, x):
                return factor * x

            def backward(self, dout):
                return (factor * dout,)
        return TwiceGate

    first, second = define(2.0), define(3.0)
    assert gate_class("Twice") is second and first is not second


def run_script(*args):
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def test_run_script_prints_the_worked_example_as_json():
    result = run_script("scripts/run.py", "configs/seed_example.yaml", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"outputs": {"f": 6.0},
                                         "gradients": {"x": 2.0, "y": 5.0, "z": 0.0}}


def test_run_script_set_overrides_values():
    result = run_script("scripts/run.py", "configs/seed_example.yaml", "--json",
                        "--set", "z=4", "--set", "x=-1")
    payload = json.loads(result.stdout)
    # a = 1, b = max(2, 4) = 4, f = 4; df/dx = 4, df/dy = 4 + 0, df/dz = a = 1
    assert payload == {"outputs": {"f": 4.0}, "gradients": {"x": 4.0, "y": 4.0, "z": 1.0}}


def test_run_script_reports_a_missing_value_without_traceback(tmp_path):
    config = tmp_path / "net.yaml"
    config.write_text("inputs: {x: {shape: []}}\ngates:\n  - {name: e, type: Exp, bottom: x, top: y}\n")
    result = run_script("scripts/run.py", str(config))
    assert result.returncode == 2
    assert "no value for input 'x'" in result.stderr and "Traceback" not in result.stderr


def test_debug_mode_stops_at_the_first_nan_naming_gate_blob_and_direction():
    from net import NumericalError
    net = Net.from_config({"dtype": "float64", "debug": True, "inputs": {"x": {"shape": [3]}},
                           "gates": [{"name": "log", "type": "Log", "bottom": "x", "top": "y"},
                                     {"name": "twice", "type": "Power", "bottom": "y", "top": "z",
                                      "scale": 2.0}]})
    with pytest.raises(NumericalError, match="forward pass: gate 'log' \\(Log\\) wrote NaN/Inf "
                                             "to its output 'y' \\(1 of 3 values\\)") as err, \
            np.errstate(invalid="ignore"):
        net.forward({"x": [1.0, -1.0, 2.0]})
    assert (err.value.gate, err.value.blob, err.value.direction) == ("log", "y", "forward")
    net.forward({"x": [1.0, 0.5, 2.0]})
    with pytest.raises(NumericalError, match="backward pass: gate 'twice'"):
        net.backward({"z": [1.0, np.inf, 0.0]})
    net.debug = False
    with np.errstate(invalid="ignore"):
        net.forward({"x": [1.0, -1.0, 2.0]})  # without debug, NaN flows on silently as in numpy


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


def test_summary_counts_every_parameter_once():
    text = Net.from_yaml(CONFIGS / "affine.yaml").summary()
    assert text.splitlines()[-1].startswith("total parameters: 8 in 2 arrays")


def test_a_shared_parameter_has_one_learning_rate():
    gate = {"type": "InnerProduct", "bottom": "x", "num_output": 3}
    with pytest.raises(ConfigError, match="shared parameter 'w' has lr_mult 2.0"):
        Net.from_config({"inputs": {"x": {"shape": [None, 3]}}, "gates": [
            {**gate, "name": "a", "top": "ya", "param": [{"name": "w"}]},
            {**gate, "name": "b", "top": "yb", "param": [{"name": "w", "lr_mult": 2}]}]})


@pytest.mark.parametrize("import_first", [True, False])
def test_a_plugin_file_also_imported_by_hand_registers_its_gates_once(tmp_path, clean_registry,
                                                                      monkeypatch, import_first):
    """`import my_gates` in a session and `plugins: [my_gates.py]` in a config are one module."""
    import importlib
    stem = f"user_gates_{'import' if import_first else 'plugin'}_first"
    (tmp_path / f"{stem}.py").write_text(textwrap.dedent(f"""\
        from gates import Gate, register_gate

        @register_gate("Twice{stem}")
        class TwiceGate(Gate):
            def forward(self, x):
                return 2 * x

            def backward(self, dout):
                return (2 * dout,)
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    config = {"plugins": [f"{stem}.py"], "inputs": {"x": {"shape": []}},
              "gates": [{"name": "t", "type": f"Twice{stem}", "bottom": "x", "top": "y"}]}
    if import_first:
        importlib.import_module(stem)
    net = Net.from_config(config, base_dir=tmp_path)
    importlib.import_module(stem)
    assert net.forward({"x": 3.0})["y"] == 6.0
    monkeypatch.delitem(sys.modules, stem)
