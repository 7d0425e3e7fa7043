"""The numeric gradient checker on whole nets: the example configs pass as nets and gate by gate,
parameters, random and stateful gates are put back as they were, a kink or a wrong gate is named,
and a float32 net is checked through a float64 copy."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from net import Net
from net.gradcheck import GradcheckWarning, check_net, check_net_gates, format_table
from tests.helpers import CONFIGS


@pytest.mark.parametrize("config", ["seed_example", "affine", "two_layer"])
def test_the_example_configs_pass_as_nets_and_gate_by_gate(config):
    net = Net.from_yaml(CONFIGS / f"{config}.yaml")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GradcheckWarning)
        report = check_net(net)
        gates = check_net_gates(net)
    assert report.ok and report.checked > 0, str(report)
    assert [g.name for g in gates] == [s.spec.name for s in net.runner.steps]
    assert all(g.ok for g in gates), format_table(gates)


def test_a_net_leaves_its_parameters_as_they_were_even_on_error():
    net = Net.from_yaml(CONFIGS / "affine.yaml")
    before = {name: p.copy() for name, p in net.params.items()}
    gate, calls = net.gates["add"], [0]
    real_forward = gate.forward

    def failing_forward(*inputs):
        calls[0] += 1
        if calls[0] > 5:
            raise RuntimeError("boom")
        return real_forward(*inputs)

    gate.forward = failing_forward
    report = check_net(net, wrt=["W"])
    assert not report.ok and "RuntimeError: boom" in str(report)
    for name, value in before.items():
        np.testing.assert_array_equal(net.params[name], value)


def test_a_net_kink_is_skipped_naming_the_gate():
    net = Net.from_yaml(CONFIGS / "seed_example.yaml")
    report = check_net(net, {"x": 1.0, "y": 2.0, "z": 2.0})     # max(y, z) at a tie
    assert report.ok
    assert [(i.name, i.checked, i.skipped) for i in report.inputs] == [
        ("x", 1, 0), ("y", 0, 1), ("z", 0, 1)]
    assert "near a kink of gate 'max' (Max) at its input 'y'" in str(report)


def test_a_wrong_gate_in_a_net_fails_the_net_and_is_pinpointed_gate_by_gate(buggy):
    net = Net.from_config({"name": "swapped", "dtype": "float64",
                           "inputs": {"x": {"shape": [2, 3]}, "y": {"shape": [2, 3]}},
                           "gates": [{"name": "prod", "type": "SwapsGradients",
                                      "bottom": ["x", "y"], "top": "p"},
                                     {"name": "act", "type": "Tanh", "bottom": "p",
                                      "top": "out"}]})
    report = check_net(net)
    assert not report.ok and report.failed == report.checked == 12
    assert "read by prod (SwapsGradients)" in str(report)
    assert [g.ok for g in check_net_gates(net)] == [False, True]


def test_random_and_stateful_gates_in_a_net_are_held_still_and_put_back():
    net = Net.from_config({"name": "noisy", "dtype": "float64",
                           "inputs": {"x": {"shape": [4, 3]}},
                           "gates": [{"name": "fc", "type": "InnerProduct", "bottom": "x",
                                      "top": "h", "num_output": 3},
                                     {"name": "bn", "type": "BatchNorm", "bottom": "h",
                                      "top": "n"},
                                     {"name": "drop", "type": "Dropout", "bottom": "n",
                                      "top": "out"}]})
    rng_state = net.gates["drop"].rng.bit_generator.state
    buffers = {name: value.copy() for name, value in net.buffers.items()}
    report = check_net(net, top_grads={"out": np.arange(12.0).reshape(4, 3)})
    assert report.ok and report.checked == 12 + 9 + 3, str(report)
    assert net.gates["drop"].rng.bit_generator.state == rng_state
    for name, value in buffers.items():
        np.testing.assert_array_equal(net.buffers[name], value)


def test_a_float32_net_is_checked_through_a_float64_copy():
    net = Net.from_yaml(CONFIGS / "two_layer.yaml")
    before = {name: p.copy() for name, p in net.params.items()}
    with pytest.warns(GradcheckWarning, match="float64 copy"):
        report = check_net(net, sample=3)
    assert report.ok and all(i.checked == 3 for i in report.inputs)
    for name, value in before.items():
        assert net.params[name].dtype == np.float32
        np.testing.assert_array_equal(net.params[name], value)
