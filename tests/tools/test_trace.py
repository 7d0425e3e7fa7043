"""The step-by-step trace: the lecture's numbers, where each one comes from (the gates' own
backward, the runner's sums), fan-out sums, arrays, intermediate blobs, and example feeds."""
from __future__ import annotations

import numpy as np
import pytest

from net import Net
from net.tools.trace import describe, example_feed, format_walk, summary, trace_walk
from tests.helpers import CONFIGS, needs_sklearn

SEED = CONFIGS / "seed_example.yaml"


def test_seed_example_reads_as_the_lecture():
    text = format_walk(trace_walk(Net.from_yaml(SEED)))
    assert text.splitlines() == [
        "forward (3 gates, in topological order):",
        "  add (Add): x = 1, y = 2 -> a = 3",
        "  max (Max): y = 2, z = 0 -> b = 2",
        "  mul (Multiply): a = 3, b = 2 -> f = 6",
        "backward (3 gates, in reverse), seeded with df/df = 1:",
        "  mul (Multiply): upstream df/df = 1",
        "    df/da = 1 x 2 = 2",
        "    df/db = 1 x 3 = 3",
        "  max (Max): upstream df/db = 3",
        "    df/dy = 3 x 1 = 3",
        "    df/dz = 3 x 0 = 0",
        "  add (Add): upstream df/da = 2",
        "    df/dx = 2 x 1 = 2",
        "    df/dy = 2 x 1 = 2",
        "  y fans out to add, max: df/dy = 2 + 3 = 5",
        "gradients: df/dx = 2, df/dy = 5, df/dz = 0",
    ]


def test_products_and_totals_are_the_runners():
    net = Net.from_yaml(SEED)
    walk = trace_walk(net, {"x": -1.5, "z": 4})
    expected = Net.from_yaml(SEED)
    expected.forward({"x": -1.5, "z": 4})
    grads = expected.backward(wrt=["x", "y", "z", "a", "b"])
    for name, grad in grads.items():
        assert walk.grads[name] == grad
    mul = walk.backward[0]
    assert [e.input for e in mul.edges] == ["a", "b"]
    assert [float(e.product) for e in mul.edges] == [grads["a"], grads["b"]]
    assert walk.sums == {"y": [("add", grads["a"]), ("max", 0.0)]}    # max picked z


def test_local_gradient_is_shown_where_the_upstream_is_zero():
    """Dividing the product by the upstream would fail here; the gate's own backward with a unit
    upstream still says how its output moves with each input."""
    walk = trace_walk(Net.from_yaml(SEED), top_grads={"f": 0.0})
    lines = format_walk(walk).splitlines()
    assert "    df/da = 0 x 2 = 0" in lines and "    df/db = 0 x 3 = 0" in lines
    assert "    df/dx = 0 x 1 = 0" in lines and "    df/dz = 0 x 0 = 0" in lines


def test_the_unit_backward_leaves_the_pass_untouched():
    net = Net.from_yaml(SEED)
    walk = trace_walk(net)
    assert {name: float(g) for name, g in net.grads.items()} == {
        "x": 2, "y": 5, "z": 0, "a": 2, "b": 3, "f": 1}
    assert float(walk.grads["y"]) == 5


def test_wrt_an_intermediate_blob_runs_only_the_gates_on_the_way():
    walk = trace_walk(Net.from_yaml(SEED), wrt=["a", "b"])
    assert [step.gate for step in walk.backward] == ["mul"]
    assert format_walk(walk).splitlines()[-1] == "gradients: df/da = 2, df/db = 3"


def test_arrays_print_as_shape_summary_and_a_few_values():
    walk = trace_walk(Net.from_yaml(CONFIGS / "affine.yaml"))
    text = format_walk(walk)
    assert "  mul (MatMul):\n    W = (2, 3) min " in text
    assert "    x = (3, 2) min -1 mean 0.75 max 3 [1, 0.5, 2, -1, ...]" in text
    assert "    b = [0.1, 0.1] (2, 1)" in text
    assert "  add (Add): upstream dz/dz = [1, 1, 1, 1] (2, 2)" in text
    # no local gradient for arrays (a Jacobian): the product alone
    assert "\n    dz/db = [2, 2] (2, 1)\n" in text


def test_describe_and_summary():
    assert describe(np.float64(6.0)) == "6" and describe(None) == "no gradient"
    assert describe(np.arange(3)) == "[0, 1, 2]"
    assert describe(np.arange(10.0)) == "(10,) min 0 mean 4.5 max 9 [0, 1, 2, 3, ...]"
    assert describe(np.arange(10.0), few=False) == "(10,) min 0 mean 4.5 max 9"
    assert summary(np.float64(2.5)) == 2.5 and summary(np.float64("nan")) is None
    assert summary(np.array([[1.0, 3.0]])) == {"shape": [1, 2], "min": 1, "mean": 2, "max": 3}
    assert summary(np.zeros((0, 2))) == {"shape": [0, 2], "min": None, "mean": None, "max": None}


@needs_sklearn
def test_example_feed_takes_the_test_data():
    net = Net.from_yaml(CONFIGS / "digits_mlp.yaml")
    feed, notes = example_feed(net, batch_size=5)
    assert feed["data"].shape == (5, 64) and feed["label"].shape == (5,)
    assert notes == ["data, label: the first 5 samples of the test data (digits (built-in, test "
                     "part))"]


def test_example_feed_says_why_data_was_random():
    net = Net.from_yaml(CONFIGS / "lenet_mnist.yaml")     # its MNIST files are not shipped
    feed, notes = example_feed(net, batch_size=2)
    assert feed["data"].shape == (2, 1, 28, 28)
    assert notes[0].startswith("data, label: random values (the data could not be read: test "
                               "data: ") and "data/mnist" in notes[0]
    assert example_feed(Net.from_yaml(SEED), {"x": 4}) == ({"x": 4}, [])


@pytest.mark.parametrize("config", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_config_traces(config):
    net = Net.from_yaml(config)
    feed, _ = example_feed(net, batch_size=2)
    walk = trace_walk(net, feed)
    text = format_walk(walk)
    assert len(walk.forward) == len(net.runner.steps) and walk.backward
    assert text.startswith("forward (") and "\nbackward (" in text and "\ngradients:" in text
    for step in walk.backward:             # every product is what the runner summed or passed
        for edge in step.edges:
            if edge.product is not None and edge.input not in walk.sums:
                np.testing.assert_array_equal(edge.product, walk.grads[edge.input])
