"""scripts/train.py end to end, and the snapshot files: the README's main command, bit-exact
resume, Ctrl-C, config errors before the first iteration, NaN debugging, weights files that are
corrupt or from another net, and atomic writes."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from net import DataError, Net, NumericalError, Solver, SolverConfig, load_config
from net.core.spec import settings_of
from net.train import snapshot as snap
from net.train.data import load_data

from conftest import CONFIGS, ROOT


def train(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "scripts/train.py", *args, "--no-progress"], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_main_command_trains_digits_and_leaves_metrics_curves_and_snapshots(tmp_path):
    result = train(str(CONFIGS / "digits_mlp.yaml"), "--output-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    final = [e for e in events if e["phase"] == "test"][-1]
    assert final["iter"] == 1500 and final["accuracy"] >= 0.97
    assert {"iter", "phase", "loss", "lr"} <= set(events[1])
    assert f"accuracy = {final['accuracy']:.6g}" in result.stdout
    assert (tmp_path / "curves.png").stat().st_size > 1000
    weights = np.load(tmp_path / "digits_mlp_iter_1500.weights.npz", allow_pickle=False)
    assert weights["fc1.W"].shape == (128, 64)
    assert (tmp_path / "digits_mlp_iter_1500.solverstate.npz").is_file()


def test_resume_equals_uninterrupted_training_bit_for_bit(tmp_path):
    # iris: shuffled batches, Dropout (gate RNG) and Adam (iteration-dependent correction)
    config = str(CONFIGS / "iris_mlp.yaml")
    whole, half = tmp_path / "whole", tmp_path / "half"
    assert train(config, "--max-iter", "90", "--output-dir", str(whole)).returncode == 0
    assert train(config, "--max-iter", "45", "--output-dir", str(half)).returncode == 0
    resumed = train(config, "--max-iter", "90", "--output-dir", str(half),
                    "--resume", str(half / "iris_mlp_iter_45.solverstate.npz"))
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed at iteration 45" in resumed.stdout
    for suffix in ("weights", "solverstate"):
        a = snap.read_npz(whole / f"iris_mlp_iter_90.{suffix}.npz")
        b = snap.read_npz(half / f"iris_mlp_iter_90.{suffix}.npz")
        assert sorted(a) == sorted(b)
        for key in a:
            assert a[key].tobytes() == b[key].tobytes(), key


def test_a_config_error_stops_before_the_first_iteration(tmp_path):
    text = (CONFIGS / "digits_mlp.yaml").read_text().replace("  momentum: 0.9",
                                                              "  momentum: 0.9\n  lr_polcy: step")
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    result = train(str(path), "--output-dir", str(tmp_path / "out"))
    assert result.returncode == 2
    line = text.splitlines().index("  lr_polcy: step") + 1
    assert result.stderr.strip() == (
        f"error: {path}:{line}: unknown key 'lr_polcy' in `solver`; did you mean 'lr_policy'? "
        f"(known: {', '.join(settings_of(SolverConfig))})")
    assert not (tmp_path / "out").exists()


def test_ctrl_c_snapshots_and_exits_cleanly(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-u", "scripts/train.py", str(CONFIGS / "digits_mlp.yaml"),
         "--max-iter", "100000000", "--output-dir", str(tmp_path), "--no-progress"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in process.stdout:
            if line.startswith("iter 200:"):
                break
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert "Traceback" not in err and "interrupted at iteration" in out
    states = sorted(tmp_path.glob("*.solverstate.npz"))
    assert states
    net = Net(load_config(CONFIGS / "digits_mlp.yaml"))
    solver = Solver.from_config(net)
    snap.restore(solver, states[-1], load_data(net))
    assert solver.iter > 200


def test_killing_a_run_mid_snapshot_leaves_only_whole_files(tmp_path):
    text = (CONFIGS / "digits_mlp.yaml").read_text().replace("  snapshot: 500", "  snapshot: 1")
    path = tmp_path / "every.yaml"
    path.write_text(text)
    out = tmp_path / "out"
    process = subprocess.Popen([sys.executable, "scripts/train.py", str(path), "--output-dir",
                                str(out), "--no-progress", "--max-iter", "100000"], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while len(list(out.glob("*.solverstate.npz"))) < 20 and time.time() < deadline:
        time.sleep(0.05)
    process.kill()                                     # SIGKILL: no chance to clean up
    process.wait()
    finals = sorted(out.glob("*.npz"))
    assert len(finals) >= 20
    for file in finals:                                # every file under a real name is whole
        snap.read_npz(file)
    net = Net(load_config(path))
    solver = Solver.from_config(net)
    latest = max(out.glob("*.solverstate.npz"), key=lambda p: int(p.name.split("_iter_")[1]
                                                                    .split(".")[0]))
    snap.restore(solver, latest, load_data(net))


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


# -- weights files ---------------------------------------------------------------------------------
def tiny_net(width: int = 3, name: str = "fc") -> Net:
    return Net.from_config({"name": "tiny", "inputs": {"x": {"shape": [None, 4]}},
                            "gates": [{"name": name, "type": "InnerProduct", "bottom": "x",
                                       "top": "y", "num_output": width}]})


def test_weights_round_trip_and_fine_tuning_by_name(tmp_path):
    source = tiny_net()
    path = snap.save_weights(source, tmp_path / "w.weights.npz")
    assert sorted(np.load(path, allow_pickle=False).files) == ["fc.W", "fc.b"]
    target = tiny_net()
    arrays = dict(target.params)
    report = snap.load_weights(target, path, strict=True)
    assert report["loaded"] == ["fc.W", "fc.b"]
    for name, value in source.params.items():
        assert target.params[name] is arrays[name] and np.array_equal(target.params[name], value)
    np.savez(tmp_path / "extra.npz", **source.params, **{"other.W": np.zeros(2)})
    assert snap.load_weights(tiny_net(), tmp_path / "extra.npz")["ignored"] == ["other.W"]
    with pytest.raises(DataError, match="has arrays the net 'tiny' does not: other.W"):
        snap.load_weights(tiny_net(), tmp_path / "extra.npz", strict=True)


@pytest.mark.parametrize("make, fragment", [
    (lambda p, net: np.savez(p, **{"fc.W": np.zeros((5, 4)), "fc.b": np.zeros(3)}),
     r"parameter 'fc.W' has shape \(5, 4\) in the file but \(3, 4\) in the net"),
    (lambda p, net: np.savez(p, **{"fc.W": np.zeros((3, 4), int), "fc.b": np.zeros(3)}),
     "holds int64 values"),
    (lambda p, net: np.savez(p, **{"fc.W": np.full((3, 4), np.nan), "fc.b": np.zeros(3)}),
     "holds NaN"),
    (lambda p, net: np.savez(p, **{"conv.W": np.zeros(3)}), "shares no parameter name"),
    (lambda p, net: np.savez(p, **{"fc.W": np.array([None], dtype=object)}), "pickled"),
    (lambda p, net: p.write_bytes(b"PK\x03\x04 not really a zip"), "corrupt or truncated"),
    (lambda p, net: (snap.save_weights(net, p), p.write_bytes(p.read_bytes()[:-40])),
     "corrupt or truncated"),
])
def test_bad_weights_files_are_rejected_naming_the_file(tmp_path, make, fragment):
    net = tiny_net()
    path = tmp_path / "bad.npz"
    make(path, net)
    before = {n: p.copy() for n, p in net.params.items()}
    with pytest.raises(DataError, match=fragment) as info:
        snap.load_weights(net, path)
    assert str(path) in str(info.value)
    for name, value in before.items():
        assert np.array_equal(net.params[name], value)     # nothing half-loaded


def test_a_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    net = tiny_net()
    path = snap.save_weights(net, tmp_path / "w.npz")
    good = path.read_bytes()

    def broken(handle, **arrays):
        handle.write(b"PK partial")
        raise OSError("disk full")

    monkeypatch.setattr(snap.np, "savez", broken)
    with pytest.raises(OSError, match="disk full"):
        snap.save_weights(net, path)
    assert path.read_bytes() == good and os.listdir(tmp_path) == ["w.npz"]


def test_resume_rejects_a_state_of_another_solver_type(tmp_path):
    net = Net(load_config(CONFIGS / "iris_mlp.yaml"))
    solver = Solver.from_config(net)
    solver.data = load_data(net)
    _, state = snap.snapshot(solver, tmp_path / "iris")
    other = Solver.from_config(Net(load_config(CONFIGS / "iris_mlp.yaml")),
                               {"type": "SGD", "base_lr": 0.1})
    with pytest.raises(DataError, match="state of solver type Adam, but the config asks for SGD"):
        snap.restore(other, state)
    with pytest.raises(DataError, match="is a solver state, not a weights file"):
        snap.load_weights(other.net, state)
    with pytest.raises(DataError, match="not a Gatework solver state"):
        snap.restore(other, tmp_path / "iris_iter_0.weights.npz")
