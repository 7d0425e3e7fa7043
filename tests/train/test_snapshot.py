"""Snapshots and weights files: bit-exact resume, files that stay whole when a run is killed while
writing, weights by name for fine-tuning, files that are corrupt or from another net, a failed
write that keeps the previous file, and a state of another solver type."""
from __future__ import annotations

import errno
import io
import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest

from net import DataError, Net, Solver, load_config
from net.train import snapshot as snap
from net.train.data import load_data
from net.train.metrics import MetricsLog
from tests.helpers import CONFIGS, ROOT, needs_sklearn, train
from tests.train.test_solver import TINY


# -- resuming and killed runs ----------------------------------------------------------------------
@pytest.mark.slow
@needs_sklearn
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


@pytest.mark.slow
@needs_sklearn
def test_killing_a_run_mid_snapshot_leaves_only_whole_files(tmp_path):
    text = (CONFIGS / "digits_mlp.yaml").read_text().replace("  snapshot: 500", "  snapshot: 1")
    path = tmp_path / "every.yaml"
    path.write_text(text)
    out = tmp_path / "out"
    process = subprocess.Popen([sys.executable, "scripts/train.py", str(path), "--output-dir",
                                str(out), "--no-progress", "--max-iter", "100000"], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60                        # a run that died early ends the wait
    while (len(list(out.glob("*.solverstate.npz"))) < 20 and time.time() < deadline
           and process.poll() is None):
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
    with pytest.raises(DataError, match=re.escape(f"{path}: cannot write (disk full)")):
        snap.save_weights(net, path)
    assert path.read_bytes() == good and os.listdir(tmp_path) == ["w.npz"]


def test_a_full_disk_mid_run_names_the_file_and_the_last_whole_snapshot(tmp_path, monkeypatch):
    solver = Solver.from_config(Net.from_config(TINY), {"base_lr": 0.01, "max_iter": 20,
                                                        "snapshot": 5})
    real, calls = np.savez, []

    def filling(handle, **arrays):                    # the disk fills at the second snapshot
        calls.append(1)
        if len(calls) > 2:
            handle.write(b"PK partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(handle, **arrays)

    monkeypatch.setattr(snap.np, "savez", filling)
    rng = np.random.default_rng(0)
    data = {"x": rng.standard_normal((8, 3)), "y": rng.standard_normal((8, 2))}
    with pytest.raises(DataError) as info:
        solver.solve(data, output_dir=tmp_path)
    assert str(info.value) == (
        f"iteration 10: the snapshot was not written: {tmp_path / 'tiny_iter_10.weights.npz'}: "
        f"cannot write (No space left on device); training stopped; the last complete snapshot "
        f"is {tmp_path / 'tiny_iter_5.solverstate.npz'}")
    assert sorted(os.listdir(tmp_path)) == ["tiny_iter_5.solverstate.npz",
                                            "tiny_iter_5.weights.npz"]
    again = Solver.from_config(Net.from_config(TINY), {"base_lr": 0.01})
    snap.restore(again, tmp_path / "tiny_iter_5.solverstate.npz")
    assert again.iter == 5


def test_a_metrics_log_that_cannot_be_written_names_its_file(tmp_path):
    path = tmp_path / "metrics.jsonl"

    class Full(io.StringIO):
        def flush(self):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        close = flush

    log = MetricsLog(path)
    log._file = Full()
    with pytest.raises(DataError, match=re.escape(f"{path}: cannot write (No space left on "
                                                  "device)")):
        with log:                                     # closing does not hide the first error
            log.write({"iter": 0, "phase": "train", "loss": 1.0})


@needs_sklearn
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
