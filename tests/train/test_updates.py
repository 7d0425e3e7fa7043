"""The update-rule and lr-policy tables, and AdaDelta's trajectory against Caffe's formula
written out by hand (the other rules are checked in test_solver.py)."""
from __future__ import annotations

import numpy as np
import pytest

from net import Net, Solver
from net.core.spec import LR_POLICIES as POLICY_NAMES, SOLVER_TYPES
from net.train.updates import LR_POLICIES, UPDATE_RULES

NET = {
    "name": "tiny", "dtype": "float64",
    "inputs": {"x": {"shape": [None, 3]}, "y": {"shape": [None, 2]}},
    "gates": [{"name": "fc", "type": "InnerProduct", "bottom": "x", "top": "out", "num_output": 2,
               "bias_filler": {"type": "gaussian", "std": 0.5}},
              {"name": "loss", "type": "EuclideanLoss", "bottom": ["out", "y"], "top": "loss"}],
}


def test_every_configurable_name_has_its_table_entry():
    assert set(UPDATE_RULES) == set(SOLVER_TYPES)
    assert set(LR_POLICIES) == set(POLICY_NAMES)


def test_adadelta_follows_caffes_formula():
    """Caffe's AdaDeltaSolver: h = mu h + (1 - mu) g^2; u = g sqrt((d + eps) / (h + eps));
    d = mu d + (1 - mu) u^2; w -= lr u, with g the gradient plus weight decay."""
    config = {"type": "AdaDelta", "base_lr": 0.5, "momentum": 0.9, "delta": 1e-6,
              "weight_decay": 0.01}
    rng = np.random.default_rng(3)
    feed = {"x": rng.standard_normal((4, 3)), "y": rng.standard_normal((4, 2))}
    net, reference = Net.from_config(NET), Net.from_config(NET)
    solver = Solver.from_config(net, config)
    weights = {n: p.copy() for n, p in reference.params.items()}
    h = {n: np.zeros_like(p) for n, p in weights.items()}
    d = {n: np.zeros_like(p) for n, p in weights.items()}
    for _ in range(4):
        for name, value in weights.items():
            reference.params[name][...] = value
        reference.forward(feed)
        grads = reference.backward(wrt=list(weights))
        for name, w in weights.items():
            g = grads[name] + 0.01 * w
            h[name] = 0.9 * h[name] + 0.1 * g * g
            u = g * np.sqrt((d[name] + 1e-6) / (h[name] + 1e-6))
            d[name] = 0.9 * d[name] + 0.1 * u * u
            w -= 0.5 * u
        solver.step(feed)
    for name, value in weights.items():
        np.testing.assert_allclose(net.params[name], value, rtol=1e-12, atol=1e-14)
    assert set(solver.history) == {"history", "update_history"}


def test_adadelta_takes_its_momentum_default_from_caffes_examples():
    net = Net.from_config(NET)
    assert Solver.from_config(net, {"type": "AdaDelta", "base_lr": 1.0}).config.momentum == 0.95
    assert Solver.from_config(net, {"type": "Adam", "base_lr": 1.0}).config.momentum == 0.9
    assert Solver.from_config(net, {"type": "SGD", "base_lr": 1.0}).config.momentum == 0.0


@pytest.mark.parametrize("kind, two", [("SGD", False), ("Nesterov", False), ("AdaGrad", True),
                                       ("RMSProp", True), ("AdaDelta", True), ("Adam", True)])
def test_a_second_scratch_array_only_for_the_rules_that_write_through_one(kind, two):
    """Each slot holds one scratch array of its parameter's shape, and a second only where the
    rule needs it: SGD with two held a parameter's worth of memory more than Caffe's loop."""
    net = Net.from_config(NET)
    solver = Solver.from_config(net, {"type": kind, "base_lr": 0.1})
    assert UPDATE_RULES[kind].scratches == (2 if two else 1)
    assert all((slot.scratch2 is not None) == two for slot in solver.slots)
    rng = np.random.default_rng(0)
    loss = solver.step({"x": rng.standard_normal((4, 3)), "y": rng.standard_normal((4, 2))})
    assert np.isfinite(loss) and solver.iter == 1
