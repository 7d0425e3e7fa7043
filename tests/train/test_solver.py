"""The solver: config validation with lines, learning-rate policies, each update rule against its
formula, lr_mult/decay_mult, clipping, iter_size, the test pass, every type learning digits, the
LeNet learning digits, and a NaN in debug mode stopping the run with a snapshot of the state
before it."""
from __future__ import annotations

import math

import numpy as np
import pytest

from net import ConfigError, Net, NumericalError, Solver, load_config
from net.core.fillers import ALIGNMENT
from net.train import snapshot as snap
from net.train.data import load_data
from tests.helpers import CONFIGS, needs_sklearn


TINY = {
    "name": "tiny", "dtype": "float64",
    "inputs": {"x": {"shape": [None, 3]}, "y": {"shape": [None, 2]}},
    "gates": [
        {"name": "fc", "type": "InnerProduct", "bottom": "x", "top": "out", "num_output": 2,
         "bias_filler": {"type": "gaussian", "std": 0.5},
         "param": [{"lr_mult": 1, "decay_mult": 1}, {"lr_mult": 2, "decay_mult": 0}]},
        {"name": "loss", "type": "EuclideanLoss", "bottom": ["out", "y"], "top": "loss"},
    ],
}


def tiny_feed(seed: int = 0, n: int = 4) -> dict:
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal((n, 3)), "y": rng.standard_normal((n, 2))}


# -- configuration ---------------------------------------------------------------------------------
def config_error(tmp_path, solver_text: str) -> str:
    path = tmp_path / "net.yaml"
    path.write_text("inputs:\n  x: {shape: [null, 2]}\n  y: {shape: [null, 2]}\ngates:\n"
                    "  - {name: loss, type: EuclideanLoss, bottom: [x, y], top: loss}\n"
                    "solver:\n" + solver_text)
    with pytest.raises(ConfigError) as info:
        Solver.from_config(Net(load_config(path)))
    return str(info.value).replace(str(path), "net.yaml")


@pytest.mark.parametrize("solver_text, expected", [
    ("  base_lr: 0.1\n  momentun: 0.9\n",
     "net.yaml:8: unknown key 'momentun' in `solver`; did you mean 'momentum'?"),
    ("  base_lr: fast\n", "net.yaml:7: solver.base_lr must be a non-negative number, got 'fast'"),
    ("  type: SGD\n", "net.yaml:7: `solver` needs `base_lr`"),
    ("  type: Adagrad\n  base_lr: 0.1\n", "net.yaml:7: solver.type must be one of SGD, Nesterov"),
    ("  type: AdaGrad\n  base_lr: 0.1\n  momentum: 0.9\n",
     "net.yaml:9: solver.momentum cannot be used with AdaGrad"),
    ("  base_lr: 0.1\n  lr_policy: step\n", "net.yaml:8: lr_policy step needs solver.stepsize"),
    ("  base_lr: 0.1\n  iter_size: 0\n", "net.yaml:8: solver.iter_size must be a positive integer"),
    ("  base_lr: 0.1\n  max_iter: 1.5\n", "net.yaml:8: solver.max_iter must be a non-negative"),
])
def test_solver_config_errors(tmp_path, solver_text, expected):
    assert config_error(tmp_path, solver_text).startswith(expected)


def test_a_net_without_a_loss_cannot_be_trained():
    net = Net.from_config({"inputs": {"x": {"shape": [2]}},
                           "gates": [{"name": "r", "type": "ReLU", "bottom": "x", "top": "y"}]})
    with pytest.raises(ConfigError, match="no loss in the train phase"):
        Solver.from_config(net, {"base_lr": 0.1})


@pytest.mark.parametrize("policy, extra, iteration, expected", [
    ("fixed", {}, 25, 0.1),
    ("step", {"gamma": 0.5, "stepsize": 10}, 25, 0.1 * 0.5 ** 2),
    ("multistep", {"gamma": 0.5, "stepvalue": [5, 20, 30]}, 25, 0.1 * 0.5 ** 2),
    ("exp", {"gamma": 0.99}, 10, 0.1 * 0.99 ** 10),
    ("inv", {"gamma": 0.01, "power": 0.75}, 25, 0.1 * 1.25 ** -0.75),
    ("poly", {"power": 2, "max_iter": 100}, 25, 0.1 * 0.75 ** 2),
    ("sigmoid", {"gamma": 0.1, "stepsize": 20}, 30, 0.1 / (1 + math.exp(-1))),
    ("cosine", {"max_iter": 100}, 50, 0.05),
])
def test_learning_rate_policies(policy, extra, iteration, expected):
    solver = Solver.from_config(Net.from_config(TINY),
                                {"base_lr": 0.1, "lr_policy": policy, **extra})
    assert solver.learning_rate(iteration) == pytest.approx(expected, rel=1e-12)


# -- update rules against their formulas -----------------------------------------------------------
def reference_updates(kind: str, config: dict, params: dict, grads_of, steps: int):
    """Caffe's update formulas, written out independently of the solver (float64)."""
    mu, mu2 = config.get("momentum", 0.9), config.get("momentum2", 0.999)
    delta, decay, rms = config.get("delta", 1e-8), config.get("weight_decay", 0.0), \
        config.get("rms_decay", 0.99)
    lr_mult, decay_mult = {"fc.W": 1.0, "fc.b": 2.0}, {"fc.W": 1.0, "fc.b": 0.0}
    state = {n: [np.zeros_like(p), np.zeros_like(p)] for n, p in params.items()}
    for t in range(1, steps + 1):
        grads = grads_of(params)
        for name, w in params.items():
            lr = config["base_lr"] * lr_mult[name]
            reg = w if config.get("regularization_type", "L2") == "L2" else np.sign(w)
            g = grads[name] + decay * decay_mult[name] * reg
            a, b = state[name]
            if kind == "SGD":
                a[...] = mu * a + lr * g
                w -= a
            elif kind == "Nesterov":
                previous = a.copy()
                a[...] = mu * a + lr * g
                w -= (1 + mu) * a - mu * previous
            elif kind == "AdaGrad":
                a += g * g
                w -= lr * g / (np.sqrt(a) + delta)
            elif kind == "RMSProp":
                a[...] = rms * a + (1 - rms) * g * g
                w -= lr * g / (np.sqrt(a) + delta)
            else:
                a[...] = mu * a + (1 - mu) * g
                b[...] = mu2 * b + (1 - mu2) * g * g
                w -= lr * math.sqrt(1 - mu2 ** t) / (1 - mu ** t) * a / (np.sqrt(b) + delta)
    return params


@pytest.mark.parametrize("kind, extra", [
    ("SGD", {"momentum": 0.8}),
    ("SGD", {"momentum": 0.0, "regularization_type": "L1"}),
    ("Nesterov", {"momentum": 0.7}),
    ("AdaGrad", {"delta": 1e-6}),
    ("RMSProp", {"rms_decay": 0.9}),
    ("Adam", {"momentum": 0.85, "momentum2": 0.99}),
])
def test_update_rules_follow_their_formulas(kind, extra):
    config = {"type": kind, "base_lr": 0.05, "weight_decay": 0.01, **extra}
    net = Net.from_config(TINY)
    reference = Net.from_config(TINY)
    feed = tiny_feed()

    def grads_of(params):
        reference.forward(feed)
        return reference.backward(wrt=list(params))

    expected = reference_updates(kind, config, reference.params, grads_of, steps=3)
    solver = Solver.from_config(net, config)
    arrays = dict(net.params)
    for _ in range(3):
        solver.step(feed)
    for name, value in expected.items():
        assert net.params[name] is arrays[name]              # updated in place
        np.testing.assert_allclose(net.params[name], value, rtol=1e-10, atol=1e-12)
    assert solver.iter == 3


@pytest.mark.parametrize("kind", ["SGD", "AdaDelta", "Adam"])
def test_parameters_and_solver_arrays_start_on_the_alignment_boundary(kind):
    solver = Solver.from_config(Net.from_config(TINY), {"type": kind, "base_lr": 0.1})
    arrays = [a for slot in solver.slots for a in (slot.weight, *slot.history, slot.scratch,
                                                   slot.scratch2) if a is not None]
    assert len(arrays) >= 3 * len(solver.slots)
    assert all(a.ctypes.data % ALIGNMENT == 0 and a.flags.c_contiguous for a in arrays)
    assert all(not h.any() for slot in solver.slots for h in slot.history)


def test_iter_size_accumulates_into_aligned_views_of_one_buffer():
    solver = Solver.from_config(Net.from_config(TINY), {"base_lr": 0.1, "iter_size": 3})
    views = solver._accumulated
    assert list(views) == [slot.name for slot in solver.slots]
    assert all(views[s.name].shape == s.weight.shape and views[s.name].dtype == s.weight.dtype
               and views[s.name].ctypes.data % ALIGNMENT == 0 for s in solver.slots)
    assert len({id(view.base) for view in views.values()}) == 1


def test_frozen_parameters_get_no_gradient_work():
    frozen = dict(TINY, gates=[dict(TINY["gates"][0], param=[{"lr_mult": 0}, {"lr_mult": 1}]),
                               TINY["gates"][1]])
    net = Net.from_config(frozen)
    W, b = net.params["fc.W"].copy(), net.params["fc.b"].copy()
    solver = Solver.from_config(net, {"base_lr": 0.1})
    assert solver.trainable == ["fc.b"]
    solver.step(tiny_feed())
    np.testing.assert_array_equal(net.params["fc.W"], W)
    assert not np.array_equal(net.params["fc.b"], b)
    assert net.gates["fc"].needs_input_grad == (False, False, True)   # no dx, no dW


def test_clip_gradients_bounds_the_global_norm():
    net = Net.from_config(TINY)
    before = {n: p.copy() for n, p in net.params.items()}
    solver = Solver.from_config(net, {"base_lr": 1.0, "momentum": 0.0, "clip_gradients": 1e-3})
    solver.step(tiny_feed())
    steps = [before[n] - net.params[n] for n in before]
    steps[1] /= 2                                            # fc.b has lr_mult 2
    assert math.sqrt(sum(float(np.sum(s * s)) for s in steps)) == pytest.approx(1e-3)


def test_clip_gradients_with_iter_size_bounds_the_summed_gradient_as_caffe():
    """Caffe clips the gradient summed over iter_size, then divides by iter_size: with the same
    feed twice, the step is clip / iter_size long."""
    net = Net.from_config(TINY)
    before = {n: p.copy() for n, p in net.params.items()}
    solver = Solver.from_config(net, {"base_lr": 1.0, "clip_gradients": 1e-3, "iter_size": 2})
    feed = tiny_feed()
    solver.step([feed, feed])
    steps = [before[n] - net.params[n] for n in before]
    steps[1] /= 2                                            # fc.b has lr_mult 2
    assert math.sqrt(sum(float(np.sum(s * s)) for s in steps)) == pytest.approx(0.5e-3)


def test_iter_size_accumulates_like_one_big_batch():
    feed = tiny_feed(n=8)
    halves = [{k: v[:4] for k, v in feed.items()}, {k: v[4:] for k, v in feed.items()}]
    whole, split = Net.from_config(TINY), Net.from_config(TINY)
    one = Solver.from_config(whole, {"base_lr": 0.1})
    two = Solver.from_config(split, {"base_lr": 0.1, "iter_size": 2})
    for _ in range(3):
        # EuclideanLoss divides by the batch size: the mean of the halves' losses is the whole's
        assert two.step(halves) == pytest.approx(one.step(feed), rel=1e-12)
    for name in whole.params:
        np.testing.assert_allclose(split.params[name], whole.params[name], rtol=1e-12)
    with pytest.raises(ValueError, match="iter_size is 2"):
        two.step(feed)


def test_reduce_gradients_sees_complete_gradients_once_per_step():
    calls = []

    class Recording(Solver):
        def reduce_gradients(self, grads, loss):
            calls.append((sorted(grads), loss))
            return grads, loss

    net = Net.from_config(TINY)
    solver = Recording(net, Solver.from_config(Net.from_config(TINY),
                                               {"base_lr": 0.1, "iter_size": 2}).config)
    feed = tiny_feed()
    loss = solver.step([feed, feed])
    assert calls == [(["fc.W", "fc.b"], loss)]


# -- on real data ----------------------------------------------------------------------------------
DIGITS = """\
inputs:
  data: {shape: [null, 64]}
  label: {shape: [null], dtype: int}
gates:
  - {name: fc1, type: InnerProduct, bottom: data, top: h, num_output: 32,
     weight_filler: {type: msra}}
  - {name: relu, type: ReLU, bottom: h, top: a}
  - {name: fc2, type: InnerProduct, bottom: a, top: scores, num_output: 10}
  - {name: loss, type: SoftmaxWithLoss, bottom: [scores, label], top: loss}
  - {name: accuracy, type: Accuracy, bottom: [scores, label], top: accuracy, phase: test}
data:
  train: {source: digits, batch_size: 32, shuffle: true}
  test: {source: digits, batch_size: 100}
"""


@pytest.fixture(scope="module")
def digits_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("digits") / "digits.yaml"
    path.write_text(DIGITS)
    return path


@needs_sklearn
def test_test_pass_averages_over_the_whole_test_set(digits_config):
    net = Net(load_config(digits_config))
    data = load_data(net)
    solver = Solver.from_config(net, {"base_lr": 0.1})
    for _ in range(20):
        solver.step(data.train.next())
    figures = solver.test(data.test)
    assert net.phase == "train"                      # the test pass switches back
    net.phase = "test"
    arrays = data.test.dataset.arrays
    outputs = net.forward({"data": arrays["data"], "label": arrays["label"]})
    assert figures["accuracy"] == pytest.approx(float(outputs["accuracy"]), abs=1e-6)
    assert figures["loss"] == pytest.approx(float(outputs["loss"]), rel=1e-5)


@needs_sklearn
@pytest.mark.parametrize("kind, settings", [
    ("SGD", {"base_lr": 0.3}), ("SGD", {"base_lr": 0.1, "momentum": 0.9}),
    ("Nesterov", {"base_lr": 0.1, "momentum": 0.9}), ("AdaGrad", {"base_lr": 0.05}),
    ("RMSProp", {"base_lr": 0.003}), ("Adam", {"base_lr": 0.003})])
def test_each_solver_type_reduces_the_loss_on_digits(digits_config, kind, settings):
    net = Net(load_config(digits_config))
    data = load_data(net)
    solver = Solver.from_config(net, {"type": kind, "weight_decay": 1e-4, **settings})
    before = solver.test(data.test)
    for _ in range(60):
        solver.step(data.train.next())
    after = solver.test(data.test)
    assert after["loss"] < 0.5 * before["loss"]
    assert after["accuracy"] > 0.8


@needs_sklearn
def test_solve_runs_the_configured_loop_and_writes_nothing_without_an_output_dir(
        digits_config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    net = Net(load_config(digits_config))
    solver = Solver.from_config(net, {"base_lr": 0.1, "max_iter": 30, "display": 10,
                                      "test_interval": 10, "snapshot": 10})
    events = []
    result = solver.solve(on_event=events.append)
    assert result["iter"] == 30 and result["test_iter"] == 30 and result["snapshot"] is None
    assert [(e["iter"], e["phase"]) for e in events] == [
        (0, "test"), (0, "train"), (10, "test"), (10, "train"), (20, "test"), (20, "train"),
        (30, "test")]
    assert list(tmp_path.iterdir()) == []


@needs_sklearn
def test_debug_info_display_lines_name_each_statistic(digits_config):
    net = Net(load_config(digits_config))
    solver = Solver.from_config(net, {"base_lr": 0.1, "max_iter": 2, "display": 1,
                                      "debug_info": True, "test_initialization": False})
    lines = []
    solver.solve(log=lines.append)
    assert "[forward] fc1: output h: mean |x| = " in "\n".join(lines)
    assert any(line.startswith("  [backward] fc1: gradient of fc1.W: mean |x| = ")
               and ", L2 norm = " in line for line in lines)
    assert not any("gradient of data" in line for line in lines)   # data gets no gradient


@pytest.mark.slow
@needs_sklearn
def test_lenet_digits_learns_in_a_few_hundred_steps():
    """The data source reshapes digits' 64-pixel rows into 1x8x8 images; 200 steps already give
    over 93% test accuracy (the full config reaches 98%+)."""
    from net import Solver
    from net.train.data import load_data

    net = Net.from_yaml(CONFIGS / "lenet_digits.yaml")
    solver = Solver.from_config(net)
    data = load_data(net, solver.config.random_seed)
    feed = data.train.next()
    assert feed["data"].shape == (64, 1, 8, 8)
    for _ in range(200):
        solver.step(data.train.next())
    assert solver.test(data.test)["accuracy"] >= 0.93


# -- a NaN in debug mode ---------------------------------------------------------------------------
@needs_sklearn
def test_debug_nan_stops_naming_gate_and_iteration_with_a_snapshot(tmp_path):
    net = Net(load_config(CONFIGS / "regression.yaml"))
    net.debug = True
    solver = Solver.from_config(net, {"type": "SGD", "base_lr": 5.0, "max_iter": 100})
    with pytest.raises(NumericalError) as info:
        solver.solve(output_dir=tmp_path)
    message = str(info.value)
    assert message.startswith(f"iteration {solver.iter}: forward pass: gate 'loss' (EuclideanLoss)")
    assert "regression.yaml:" in message and "the state before it" in message
    state = tmp_path / f"regression_iter_{solver.iter}.solverstate.npz"
    fresh = Net(load_config(CONFIGS / "regression.yaml"))
    again = Solver.from_config(fresh, {"type": "SGD", "base_lr": 5.0})
    snap.restore(again, state, load_data(fresh))
    for name, value in fresh.params.items():
        assert np.all(np.isfinite(value)) and np.array_equal(value, net.params[name])


@needs_sklearn
def test_debug_nan_snapshot_holds_the_buffers_from_before_the_failing_step(tmp_path,
                                                                           clean_registry):
    """BatchNorm updates its moving averages in forward; when a later gate of the same forward
    writes NaN, the snapshot still holds the buffers as they were before that step: equal to a
    run stopped cleanly one step earlier."""
    from gates import ElementwiseGate, Option, register_gate

    @register_gate
    class NaNOnCallGate(ElementwiseGate):
        options = {"on_call": Option(int, 10**9, "the forward call that returns NaN")}

        def forward(self, x):
            self.calls = getattr(self, "calls", 0) + 1
            return x * np.nan if self.calls == self.on_call else x

        def backward(self, dout):
            return (dout,)

    def run(on_call: int, max_iter: int, out):
        net = Net.from_config({
            "name": "bn", "debug": True,
            "inputs": {"data": {"shape": [None, 4]}, "label": {"shape": [None], "dtype": "int"}},
            "gates": [
                {"name": "bn", "type": "BatchNorm", "bottom": "data", "top": "normed"},
                {"name": "nan", "type": "NaNOnCall", "bottom": "normed", "top": "checked",
                 "on_call": on_call},
                {"name": "fc", "type": "InnerProduct", "bottom": "checked", "top": "scores",
                 "num_output": 3},
                {"name": "loss", "type": "SoftmaxWithLoss", "bottom": ["scores", "label"],
                 "top": "loss"}],
            "data": {"train": {"source": "iris", "batch_size": 16, "shuffle": True}},
            "solver": {"base_lr": 0.1, "max_iter": max_iter, "test_initialization": False}})
        solver = Solver.from_config(net)
        solver.solve(load_data(net), output_dir=out)
        return solver

    with pytest.raises(NumericalError, match="iteration 3: forward pass: gate 'nan'"):
        run(on_call=4, max_iter=10, out=tmp_path / "failed")
    run(on_call=10**9, max_iter=3, out=tmp_path / "clean")
    failed = snap.read_npz(tmp_path / "failed" / "bn_iter_3.weights.npz")
    clean = snap.read_npz(tmp_path / "clean" / "bn_iter_3.weights.npz")
    assert {"bn.mean", "bn.variance", "fc.W"} <= set(failed)
    for name in clean:
        np.testing.assert_array_equal(failed[name], clean[name], err_msg=name)
