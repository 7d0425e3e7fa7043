"""Training runs end to end: through scripts/train.py (the README's main command leaves metrics,
curves and snapshots; Ctrl-C snapshots and exits cleanly) and from Python without scripts
(`net.train.train(...)` returns what train.py prints, `Solver.solve` takes in-memory arrays,
`Solver.from_config` overrides key by key)."""
from __future__ import annotations

import json
import signal
import subprocess
import sys

import numpy as np
import pytest

import net.train
from net import ConfigError, Net, Solver, load_config
from net.train import snapshot as snap
from net.train.data import load_data
from net.train.session import outcome
from tests.helpers import CONFIGS, ROOT, needs_matplotlib, needs_sklearn, train


@pytest.mark.slow
@needs_sklearn
@needs_matplotlib
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


@pytest.mark.slow
@needs_sklearn
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


@needs_sklearn
def test_train_returns_the_result_train_py_prints(tmp_path):
    lines = []
    result = net.train.train(CONFIGS / "digits_mlp.yaml", output_dir=tmp_path, max_iter=60,
                             log=lines.append)
    assert result["iter"] == 60 and not result["interrupted"]
    assert result["test"]["accuracy"] > 0.5 and result["test_iter"] == 60
    assert result["output"] == tmp_path and result["metrics"].is_file()
    weights, state = result["snapshot"]
    assert weights.name == "digits_mlp_iter_60.weights.npz" and state.is_file()
    assert any(line.startswith("train data: digits") for line in lines)
    printed = outcome(result)
    assert printed[0].startswith("done at iteration 60: train loss ")
    assert printed[1].startswith("final test: loss = ")


def test_train_refuses_weights_and_resume_together(tmp_path):
    with pytest.raises(ValueError, match="exclude each other"):
        net.train.train(CONFIGS / "digits_mlp.yaml", weights="a.npz", resume="b.npz")


def test_a_config_without_training_data_is_refused_before_any_directory_is_made(tmp_path,
                                                                                   monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="training needs a `data: train:` source") as caught:
        net.train.train(CONFIGS / "cifar10_quick.yaml")
    assert caught.value.file == str(CONFIGS / "cifar10_quick.yaml")
    assert list(tmp_path.iterdir()) == []           # no runs/cifar10_quick left behind


def test_from_config_overrides_key_by_key():
    model = Net.from_yaml(CONFIGS / "digits_mlp.yaml")
    solver = Solver.from_config(model, {"base_lr": 0.05})
    c = solver.config
    assert c.base_lr == 0.05
    # everything else is the config's section, not Caffe's defaults
    assert (c.momentum, c.lr_policy, c.max_iter, c.weight_decay) == (0.9, "step", 1500, 0.0005)
    assert Solver.from_config(model, max_iter=10).config.max_iter == 10
    assert Solver.from_config(model, {"base_lr": 0.05}, base_lr=0.2).config.base_lr == 0.2


def test_overrides_are_validated_and_file_keys_keep_their_lines():
    model = Net.from_yaml(CONFIGS / "digits_mlp.yaml")
    with pytest.raises(ValueError, match="solver.momentum must be a number in \\[0, 1\\)"):
        Solver.from_config(model, {"momentum": 1.5})
    with pytest.raises(ConfigError, match="lr_policy multistep needs solver.stepvalue") as err:
        Solver.from_config(model, {"lr_policy": "multistep"})
    assert err.value.line is not None                   # the base config's solver section


def test_solve_takes_arrays_in_memory():
    config = {"inputs": {"data": {"shape": [None, 4]}, "label": {"shape": [None], "dtype": "int"}},
              "gates": [{"name": "fc", "type": "InnerProduct", "bottom": "data", "top": "s",
                         "num_output": 3},
                        {"name": "loss", "type": "SoftmaxWithLoss", "bottom": ["s", "label"],
                         "top": "loss"},
                        {"name": "acc", "type": "Accuracy", "bottom": ["s", "label"],
                         "top": "accuracy", "phase": "test"}],
              "solver": {"base_lr": 0.5, "max_iter": 150, "display": 0}}
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((3, 4)) * 3
    y = rng.integers(0, 3, 300)
    x = centres[y] + rng.standard_normal((300, 4)) * 0.3
    model = Net.from_config(config)
    result = Solver.from_config(model).solve(data={"train": (x, y), "test": {"data": x,
                                                                           "label": y}})
    assert result["iter"] == 150 and result["test"]["accuracy"] > 0.95
    with pytest.raises(ValueError, match="out of range"):
        Solver.from_config(Net.from_config(config)).solve(data=(x, y + 5))
