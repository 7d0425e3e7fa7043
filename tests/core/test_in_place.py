"""In-place tops (Caffe's `top` equal to `bottom`): versions of a blob, exact gradients, the last
value under the plain name, Caffe's order of reading, phases, and the errors that remain."""
from __future__ import annotations

import time

import numpy as np
import pytest

from net import ConfigError, Net
from net.core.graph import build_graph
from net.core.spec import GateSpec, InputSpec, NetSpec
from net.gradcheck import check_net

RNG = np.random.default_rng(0)


def config(*gates):
    return {"dtype": "float64", "inputs": {"x": {"shape": [None, 3]}},
            "gates": [dict(g) for g in gates]}


FC = {"name": "fc", "type": "InnerProduct", "bottom": "x", "top": "h", "num_output": 4}
RELU = {"name": "relu", "type": "ReLU", "bottom": "h", "top": "h"}
SCALE = {"name": "twice", "type": "Power", "bottom": "h", "top": "h", "scale": 2.0}
OUT = {"name": "fc2", "type": "InnerProduct", "bottom": "h", "top": "y", "num_output": 2}


def test_in_place_gates_give_versions_and_the_last_value_keeps_the_name():
    net = Net.from_config(config(FC, RELU, SCALE, OUT))
    steps = [(s.spec.name, s.inputs[:1], s.tops) for s in net.runner.steps]
    assert steps == [("fc", ("x",), ("h@0",)), ("relu", ("h@0",), ("h@1",)),
                     ("twice", ("h@1",), ("h",)), ("fc2", ("h",), ("y",))]
    x = RNG.standard_normal((5, 3))
    net.forward({"x": x})
    pre = x @ net.params["fc.W"].T + net.params["fc.b"]
    np.testing.assert_allclose(net.blobs["h@0"], pre)
    np.testing.assert_allclose(net.blobs["h"], 2 * np.maximum(pre, 0))   # the last write
    assert net.outputs == ["y"]
    assert check_net(net).ok


def test_reading_follows_the_config_order_as_in_caffe():
    tap = {"name": "tap", "type": "Power", "bottom": "h", "top": "before_relu"}
    net = Net.from_config(config(FC, tap, RELU, OUT))
    net.forward({"x": RNG.standard_normal((5, 3))})
    np.testing.assert_allclose(net.blobs["before_relu"], net.blobs["h@0"])   # read before relu
    assert net.blobs["h"].min() >= 0 and sorted(net.outputs) == ["before_relu", "y"]
    assert check_net(net).ok


def test_a_name_written_once_may_still_be_read_before_its_producer_in_the_config():
    net = Net.from_config(config(OUT, FC))
    assert [s.spec.name for s in net.runner.steps] == ["fc", "fc2"]


def test_in_place_gates_of_one_phase_chain_only_in_that_phase():
    drop = {"name": "drop", "type": "Dropout", "bottom": "h", "top": "h", "phase": "train"}
    net = Net.from_config(config(FC, RELU, drop, OUT))
    assert [s.tops for s in net.runner.steps][:3] == [("h@0",), ("h@1",), ("h",)]
    net.phase = "test"
    assert [s.tops for s in net.runner.steps][:2] == [("h@0",), ("h",)]
    net.forward({"x": RNG.standard_normal((2, 3))})
    assert net.blobs["h"].min() >= 0


def test_two_writers_that_are_not_in_place_are_still_an_error():
    again = {"name": "fc_again", "type": "InnerProduct", "bottom": "x", "top": "h",
             "num_output": 4}
    with pytest.raises(ConfigError, match="top 'h' is also produced by gate 'fc'.*in place"):
        Net.from_config(config(FC, again))


def test_a_gate_cannot_write_an_input_in_place():
    with pytest.raises(ConfigError, match="top 'x' is an input"):
        Net.from_config(config({"name": "r", "type": "ReLU", "bottom": "x", "top": "x"}))


def test_versioning_a_long_in_place_chain_is_linear():
    # 20,000 gates writing `h` in place (a 1 MB config): each used to search every earlier
    # writer, about 2e8 steps (over 10 s); counted as the gates go by, it is a few milliseconds
    n = 20_000
    gates = [GateSpec("first", "ReLU", ["x"], ["h"])] + \
        [GateSpec(f"r{i}", "ReLU", ["h"], ["h"]) for i in range(n)]
    spec = NetSpec("chain", "float32", {"x": InputSpec("x", (1, 3))}, {}, gates)
    start = time.perf_counter()
    graph = build_graph(spec, "train")
    assert time.perf_counter() - start < 2
    assert [(g.bottom, g.top) for g in graph.order[:2]] == [(["x"], ["h@0"]), (["h@0"], ["h@1"])]
    assert (graph.order[-1].bottom, graph.order[-1].top) == ([f"h@{n - 1}"], ["h"])
