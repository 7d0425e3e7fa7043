"""Training runs end to end through scripts/train.py: the README's main command leaves metrics,
curves and snapshots, and Ctrl-C snapshots and exits cleanly."""
from __future__ import annotations

import json
import signal
import subprocess
import sys

import numpy as np
import pytest

from net import Net, Solver, load_config
from net import snapshot as snap
from net.data import load_data
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
