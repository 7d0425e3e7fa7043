"""Runs that must not be lost or corrupted (issue 12, items 3, 8-11, 19): divergence, signals,
one run per output directory, leftovers of killed writes, files written only inside the output
directory and never through a symlink, and test outputs that are not scalars."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from net import ConfigError, DataError, Net, Solver
from net.train import train
from net.train import rundir as rundir_module
from net.train import session
from net.train.metrics import read_metrics
from net.train.rundir import RunDirectory
from tests.helpers import CONFIGS, ROOT, needs_sklearn

DIGITS = (CONFIGS / "digits_mlp.yaml").read_text()


def config(tmp_path, text: str = DIGITS, **solver: object) -> str:
    """The config `text` (digits_mlp's) with these solver keys set, written to net.yaml."""
    for key, value in solver.items():
        line = re.compile(rf"^  {key}: .*$", re.M)
        text = line.sub(f"  {key}: {value}", text) if line.search(text) else \
            text.replace("solver:\n", f"solver:\n  {key}: {value}\n", 1)
    path = tmp_path / "net.yaml"
    path.write_text(text)
    return str(path)


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "scripts/train.py", *args, "--no-progress"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


# -- item 8: divergence -------------------------------------------------------------------------------
@needs_sklearn
def test_a_diverging_run_stops_keeps_the_last_finite_snapshot_and_exits_3(tmp_path):
    text = DIGITS.replace("base_lr: 0.1", "base_lr: 1000").replace("snapshot: 500",
                                                                  "snapshot: 1")
    result = subprocess.run([sys.executable, "scripts/train.py", config(tmp_path, text),
                             "--output-dir", str(tmp_path / "out"), "--no-progress"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 3, result.stderr
    assert "training diverged and stopped" in result.stdout and "--debug-nan" in result.stdout
    assert "diverged at iteration" in result.stdout
    for path in (tmp_path / "out").glob("*.weights.npz"):
        with np.load(path) as weights:
            assert all(np.isfinite(weights[name]).all() for name in weights.files), path


# -- item 9: signals ------------------------------------------------------------------------------------
@pytest.mark.slow
@needs_sklearn
def test_sigterm_stops_like_the_first_ctrl_c_with_a_snapshot_and_exits_143(tmp_path):
    process = start(config(tmp_path, max_iter=10 ** 6, display=1), "--output-dir",
                    str(tmp_path / "out"))
    _wait_for_iterations(tmp_path / "out" / "metrics.jsonl", process)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 143, err
    assert "stopped by SIGTERM at iteration" in out
    assert list((tmp_path / "out").glob("*.solverstate.npz"))


@pytest.mark.slow
@needs_sklearn
def test_the_first_ctrl_c_says_how_to_abort_and_stops_a_test_pass_too(tmp_path):
    text = DIGITS.replace("test_interval: 250", "test_interval: 1").replace(
        "batch_size: 500", "batch_size: 1")                   # long test passes
    process = start(config(tmp_path, text, max_iter=10 ** 6), "--output-dir",
                    str(tmp_path / "out"))
    _wait_for_iterations(tmp_path / "out" / "metrics.jsonl", process)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "stopping after this iteration; press Ctrl-C again to abort" in err
    assert "interrupted at iteration" in out


def _wait_for_iterations(metrics, process, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if metrics.exists() and len(read_metrics(metrics)) >= 2:
            return
        time.sleep(0.05)
    raise AssertionError(f"the run did not get going: {process.poll()}")


# -- item 10: one run per output directory -----------------------------------------------------------
@needs_sklearn
def test_a_second_run_into_a_locked_directory_stops_before_writing(tmp_path):
    out = tmp_path / "out"
    process = start(config(tmp_path, max_iter=10 ** 6, display=1), "--output-dir", str(out))
    try:
        _wait_for_iterations(out / "metrics.jsonl", process)
        before = (out / "metrics.jsonl").read_text()
        second = subprocess.run([sys.executable, "scripts/train.py", config(tmp_path),
                                 "--output-dir", str(out), "--overwrite", "--no-progress"],
                                cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert second.returncode == 2
        assert f"{out} is in use by another run (process {process.pid})" in second.stderr
        assert (out / "metrics.jsonl").read_text().startswith(before)
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)


@needs_sklearn
def test_an_occupied_directory_is_not_reused_without_overwrite(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = config(tmp_path, max_iter=20, test_interval=0)
    first = train(path)
    assert first["output"] == tmp_path / "runs" / "net" or str(first["output"]) == "runs/net"
    second = train(path)                              # the default: a numbered sibling
    assert str(second["output"]).endswith("net-2")
    with pytest.raises(DataError, match="holds another run's files"):
        train(path, output_dir=first["output"])
    earlier = first["output"] / "digits_mlp_iter_20.weights.npz"
    assert earlier.exists()
    third = train(path, output_dir=first["output"], overwrite=True, max_iter=10)
    assert not earlier.exists()
    assert [e["iter"] for e in read_metrics(third["metrics"]) if e["phase"] == "test"] == [10]


@needs_sklearn
def test_resume_writes_into_the_snapshots_folder_and_keeps_one_record_per_event(tmp_path):
    path = config(tmp_path, max_iter=40, snapshot=20, test_interval=10, display=10)
    first = train(path, output_dir=tmp_path / "run")
    state = tmp_path / "run" / "digits_mlp_iter_20.solverstate.npz"
    for _ in range(2):                                # resuming twice duplicates nothing
        again = train(path, resume=state)
        assert again["output"] == tmp_path / "run"
    events = [(e["iter"], e["phase"]) for e in read_metrics(tmp_path / "run" / "metrics.jsonl")]
    assert len(events) == len(set(events))
    assert events == [(e["iter"], e["phase"]) for e in read_metrics(first["metrics"])]


# -- item 11: leftovers of killed writes -----------------------------------------------------------
@needs_sklearn
def test_temporary_files_of_killed_writes_are_removed_at_the_next_start(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    leftover = out / ".net_iter_500.weights.npz.abcd1234.tmp"
    leftover.write_bytes(b"half a snapshot")
    train(config(tmp_path, max_iter=5, test_interval=0), output_dir=out)
    assert not leftover.exists()


# -- hostile audit, item 4: a user's own files in and around the output directory ------------------
USERS = {".notes.tmp": "x", ".lock": "y", ".draft.abcd1234.tmp": "a draft",
         ".weights.npz.tmp": "not ours either", "notes.txt": "keep"}


def users_files(folder) -> dict[str, str]:
    """Write the files a user might keep in `folder` (USERS); returns what each holds."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in USERS.items():
        (folder / name).write_text(text)
    return dict(USERS)


@needs_sklearn
def test_training_leaves_a_users_files_in_and_beside_the_output_directory(tmp_path,
                                                                          monkeypatch):
    """The audit's case: `.notes.tmp` and `.lock` in --output-dir were deleted; and (found
    while fixing it) with the default snapshot_prefix, `.*.tmp` and, under --overwrite, the
    snapshots in the folder ABOVE the output directory were deleted too."""
    monkeypatch.setattr(session, "plot_curves", lambda *args: None)     # (slow, and no matter)
    out = tmp_path / "out"
    inside_files, beside_files = users_files(out), users_files(tmp_path)
    (tmp_path / "mine.weights.npz").write_text("the user's")
    train(config(tmp_path, max_iter=1, test_interval=0), output_dir=out, overwrite=True)
    for folder, files in ((out, inside_files), (tmp_path, beside_files)):
        assert {name: (folder / name).read_text() for name in files} == files
    assert (tmp_path / "mine.weights.npz").read_text() == "the user's"


def test_only_the_temporaries_of_a_runs_own_files_are_removed(tmp_path):
    out = tmp_path / "out"
    kept = users_files(out)
    ours = [out / ".net_iter_5.weights.npz.k3j_x9zq.tmp", out / ".metrics.jsonl.0abcdefg.tmp",
            out / "snaps" / ".net_iter_5.solverstate.npz.abcd1234.tmp"]
    kept_in_snaps = users_files(out / "snaps")
    for path in ours:
        path.write_bytes(b"half a file")
    with RunDirectory(out) as rundir:
        rundir.prepare_snapshot_folder("snaps/net")
    assert not any(path.exists() for path in ours)
    for folder, files in ((out, kept), (out / "snaps", kept_in_snaps)):
        assert {name: (folder / name).read_text() for name in files} == files


@pytest.mark.parametrize("text", ["my notes\n", "123 and more", "9" * 30])
def test_a_lock_file_that_is_not_a_runs_is_refused_and_left_as_it_is(tmp_path, text):
    lock = tmp_path / ".gatework.lock"
    lock.write_text(text)
    with pytest.raises(DataError, match=re.escape(f"{tmp_path}: holds a file .gatework.lock "
                                                  "that is not a Gatework run's lock")):
        RunDirectory(tmp_path).__enter__()
    assert lock.read_text() == text


def test_a_lock_that_is_a_folder_is_refused(tmp_path):
    (tmp_path / ".gatework.lock").mkdir()
    with pytest.raises(DataError, match="is not a Gatework run's lock"):
        RunDirectory(tmp_path).__enter__()


@pytest.mark.parametrize("text", ["", "12345\n"])
def test_the_lock_of_a_killed_run_is_taken_over_and_removed_at_the_end(tmp_path, text):
    lock = tmp_path / ".gatework.lock"
    lock.write_text(text)
    with RunDirectory(tmp_path):
        assert lock.read_text() == f"{os.getpid()}\n"
    assert not lock.exists()


def test_resuming_is_offered_only_from_a_complete_snapshot(tmp_path):
    # a run killed during its first snapshot leaves its metrics and no solver state
    (tmp_path / "metrics.jsonl").write_text('{"iter": 0}\n')
    with pytest.raises(DataError) as caught:
        RunDirectory.choose(tmp_path, tmp_path, prefix="net")
    assert str(caught.value).endswith("choose another --output-dir, or pass --overwrite to "
                                      "replace that run")
    for iteration in (50, 100, 75):
        (tmp_path / f"net_iter_{iteration}.solverstate.npz").write_text("a snapshot")
    with pytest.raises(DataError, match=r"choose another --output-dir, resume from "
                                        r"net_iter_100\.solverstate\.npz, or pass --overwrite"):
        RunDirectory.choose(tmp_path, tmp_path, prefix="net")


def test_a_prefix_folder_holding_another_runs_snapshots_is_not_reused(tmp_path):
    (tmp_path / "snaps").mkdir()
    (tmp_path / "snaps" / "net_iter_5.weights.npz").write_text("an earlier run's")
    with pytest.raises(DataError, match=re.escape(f"{tmp_path} holds another run's files "
                                                  "(snaps/net_iter_5.weights.npz)")):
        RunDirectory.choose(tmp_path, tmp_path, prefix="snaps/net")
    assert RunDirectory.choose(tmp_path, tmp_path, prefix="net").path == tmp_path


def test_a_snapshot_folder_that_cannot_be_made_is_refused_before_training(tmp_path):
    (tmp_path / "snaps").write_text("a file where the folder would go")
    with RunDirectory(tmp_path) as rundir:
        with pytest.raises(DataError, match=re.escape(
                f"{tmp_path / 'snaps'}: cannot hold the snapshots of solver.snapshot_prefix")):
            rundir.prepare_snapshot_folder("snaps/net")


def test_snapshot_paths_longer_than_the_system_takes_are_refused_before_training(tmp_path,
                                                                                  monkeypatch):
    monkeypatch.setattr(rundir_module.os, "pathconf", lambda path, name: 64)
    with RunDirectory(tmp_path) as rundir:
        with pytest.raises(DataError, match="more than the 64 this system allows"):
            rundir.prepare_snapshot_folder("net")


# -- item 3: files written anywhere -----------------------------------------------------------------
@pytest.mark.parametrize("prefix", ["/etc/gatework_x", "../../escape", ".", "a/../../b"])
def test_a_snapshot_prefix_cannot_leave_the_output_directory(tmp_path, prefix):
    with pytest.raises(ConfigError, match="snapshot_prefix must name files inside the run's "
                                          "output directory"):
        Net.from_yaml(config(tmp_path, snapshot_prefix=json.dumps(prefix)))


@pytest.mark.parametrize("prefix, words", [
    ("d/" * 2000 + "x", "is 4001 bytes naming 2000 folders; it may take at most 1024 bytes "
                        "naming 32"),
    ("a" * 300, "ends in a name of 300 bytes; file names here take at most 255"),
    ("snaps/" + "b" * 256 + "/x", "names a folder of 256 bytes"),
    ("x\0y", "holds the control character U+0000"),
    ("x\ny", "holds the control character U+000A"),
    ("x\ty", "holds the control character U+0009"),
])
def test_a_snapshot_prefix_that_cannot_name_files_is_refused_at_its_line(tmp_path, prefix,
                                                                          words):
    """Refused when the config is read, before any training (it used to fail at the first
    snapshot: a RecursionError, 'File name too long' or 'embedded null byte')."""
    path = config(tmp_path, snapshot_prefix=json.dumps(prefix))
    line = next(number for number, text in enumerate(open(path), 1) if "snapshot_prefix" in text)
    with pytest.raises(ConfigError, match=re.escape(f"net.yaml:{line}: solver.snapshot_prefix "
                                                   f"{words}")):
        Net.from_yaml(path)


def test_snapshot_prefix_names_fit_this_systems_limit(tmp_path, monkeypatch):
    from net.core import config as config_module

    monkeypatch.setattr(config_module.os, "pathconf", lambda path, name: 100)
    for name, ok in (("a" * 44, True), ("a" * 45, False)):     # snapshot names add 56 bytes
        path = config(tmp_path, snapshot_prefix=f"snaps/{name}")
        if ok:
            assert Net.from_yaml(path).spec.solver.snapshot_prefix == f"snaps/{name}"
        else:
            with pytest.raises(ConfigError, match="at most 100, .* so it may take 44"):
                Net.from_yaml(path)


def test_a_net_name_that_cannot_name_snapshot_files_is_refused_before_training(tmp_path):
    path = config(tmp_path, DIGITS.replace("name: digits_mlp", "name: " + "n" * 300))
    with pytest.raises(ConfigError, match=r"net\.yaml:\d+: the net's name is the default "
                                          r"solver\.snapshot_prefix, and it ends in a name of "
                                          r"300 bytes.*; set solver\.snapshot_prefix"):
        Solver.from_config(Net.from_yaml(path))


@needs_sklearn
@pytest.mark.parametrize("name", ["metrics.jsonl", "curves.png"])
def test_a_symlink_in_the_output_directory_is_never_written_through(tmp_path, name):
    out, target = tmp_path / "out", tmp_path / "precious.txt"
    out.mkdir()
    target.write_text("keep me")
    (out / name).symlink_to(target)
    try:
        train(config(tmp_path, max_iter=5, test_interval=0), output_dir=out, overwrite=True)
    except DataError as err:
        assert "symlink" in str(err)
    assert target.read_text() == "keep me"


@needs_sklearn
def test_a_symlinked_folder_inside_the_output_directory_is_refused(tmp_path):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "snaps").symlink_to(elsewhere)
    with pytest.raises(DataError, match="is a symlink"):
        train(config(tmp_path, max_iter=5, test_interval=0, snapshot_prefix="snaps/net"),
              output_dir=out)
    assert not list(elsewhere.iterdir())


# -- item 19: test outputs that are not scalars ------------------------------------------------------
@needs_sklearn
def test_a_non_scalar_test_output_is_averaged_per_element_not_a_crash(tmp_path):
    text = DIGITS.replace("batch_size: 500", "batch_size: 1").replace(
        "  - {name: accuracy", "  - {name: probe, type: InnerProduct, bottom: scores, "
        "top: probe, num_output: 1, phase: test}\n  - {name: accuracy")
    result = train(config(tmp_path, text, max_iter=3, test_interval=0, test_iter=5),
                   output_dir=tmp_path / "out")
    probe = result["test"]["probe"]
    assert np.shape(probe) == (1, 1) and np.isfinite(probe).all()
    assert "accuracy" in result["test"]


# -- found by review ---------------------------------------------------------------------------------
@needs_sklearn
def test_overwrite_removes_this_runs_files_only_not_runs_in_folders_below(tmp_path):
    runs = tmp_path / "runs"
    other = train(config(tmp_path, max_iter=5, test_interval=0), output_dir=runs / "other")
    (runs / "metrics.jsonl").write_text("")                   # runs/ itself holds a run too
    train(config(tmp_path, max_iter=5, test_interval=0), output_dir=runs, overwrite=True)
    assert other["snapshot"][0].exists() and other["metrics"].exists()


@needs_sklearn
def test_train_py_prints_per_class_accuracy_lists(tmp_path):
    text = DIGITS.replace("top: accuracy, phase: test}", "top: [accuracy, per_class], "
                          "phase: test}")
    result = subprocess.run([sys.executable, "scripts/train.py", config(
        tmp_path, text, max_iter=5, test_interval=0), "--output-dir", str(tmp_path / "o"),
        "--no-progress"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert re.search(r"final test: .*per_class = \[[0-9., ]+\]", result.stdout), result.stdout


@needs_sklearn
def test_resume_finds_the_run_directory_above_a_prefix_folder(tmp_path):
    path = config(tmp_path, max_iter=10, snapshot=5, test_interval=0,
                  snapshot_prefix="snaps/digits")
    train(path, output_dir=tmp_path / "run")
    again = train(path, resume=tmp_path / "run" / "snaps" / "digits_iter_5.solverstate.npz")
    assert again["output"] == tmp_path / "run"
    assert (tmp_path / "run" / "snaps" / "digits_iter_10.weights.npz").exists()


def test_a_run_that_fails_before_its_first_iteration_leaves_no_metrics(tmp_path):
    with pytest.raises(Exception):
        train(str(CONFIGS / "cifar10_quick.yaml"), output_dir=tmp_path / "out")   # no data
    assert not (tmp_path / "out" / "metrics.jsonl").exists()


@needs_sklearn
def test_a_stop_during_the_final_test_is_reported_as_one(tmp_path, monkeypatch):
    from net.train import solver as solver_module

    original = solver_module.Solver.test

    def test_then_stop(self, batches):
        if self.iter == self.config.max_iter:
            self.request_stop()
        return original(self, batches)

    monkeypatch.setattr(solver_module.Solver, "test", test_then_stop)
    result = train(config(tmp_path, max_iter=4, test_interval=0), output_dir=tmp_path / "o")
    assert result["interrupted"] and result["test"] is None


@needs_sklearn
def test_debug_nan_stops_with_the_divergence_exit_status(tmp_path):
    text = DIGITS.replace("base_lr: 0.1", "base_lr: 1000")
    result = subprocess.run([sys.executable, "scripts/train.py", config(tmp_path, text),
                             "--output-dir", str(tmp_path / "o"), "--no-progress",
                             "--debug-nan"], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 3 and "NaN/Inf" in result.stderr


# -- crash audit: resuming into a directory that holds another run ---------------------------------
def test_resuming_into_another_runs_directory_is_refused_without_overwrite(tmp_path):
    resumed, other = tmp_path / "resumed", tmp_path / "other"
    for folder in (resumed, other):
        folder.mkdir()
        (folder / "net_iter_50.solverstate.npz").write_text("a run's snapshot")
        (folder / "metrics.jsonl").write_text("")
    state = resumed / "net_iter_50.solverstate.npz"
    with pytest.raises(DataError, match=re.escape(f"{other} holds another run's files")):
        RunDirectory.choose(other, tmp_path, resume=state, prefix="net")
    assert RunDirectory.choose(other, tmp_path, state, overwrite=True, prefix="net").path == other
    for given in (None, resumed, tmp_path / "." / "resumed", tmp_path / "new"):
        chosen = RunDirectory.choose(given, tmp_path, resume=state, prefix="net").path
        assert chosen == (given if given is not None else resumed)


def test_a_lock_file_removed_by_a_run_ending_as_it_is_locked_is_locked_again(tmp_path,
                                                                                monkeypatch):
    first = RunDirectory(tmp_path).__enter__()
    real = rundir_module.fcntl.flock

    def ending_first(handle, operation):       # the first run ends between open and flock
        monkeypatch.setattr(rundir_module.fcntl, "flock", real)
        first.__exit__(None, None, None)
        return real(handle, operation)

    monkeypatch.setattr(rundir_module.fcntl, "flock", ending_first)
    with RunDirectory(tmp_path):
        assert (tmp_path / ".gatework.lock").read_text() == f"{os.getpid()}\n"
        with pytest.raises(DataError, match="is in use by another run"):
            RunDirectory(tmp_path).__enter__()


# a SIGTERM while the curves are drawn, after the last snapshot: train.py's main with
# plot_curves sending it (the default action would end the process leaving its lock file)
SIGTERM_WHILE_PLOTTING = """
import os, signal, sys
from net.train import session
sys.argv[0] = "scripts/train.py"
sys.path.insert(0, "scripts")
import train
def plot(*args):
    os.kill(os.getpid(), signal.SIGTERM)
session.plot_curves = plot
sys.exit(train.guarded_job(train.main, train.parse_args()))
"""


@pytest.mark.slow
@needs_sklearn
def test_a_sigterm_outside_the_training_loop_still_removes_the_lock_and_exits_143(tmp_path):
    out = tmp_path / "out"
    process = subprocess.run([sys.executable, "-c", SIGTERM_WHILE_PLOTTING,
                              config(tmp_path, max_iter=3, test_interval=0), "--output-dir",
                              str(out), "--no-progress"], cwd=ROOT, capture_output=True,
                             text=True, timeout=120)
    assert process.returncode == 143, process.stderr
    assert process.stderr == "stopped by SIGTERM outside the training loop\n"
    assert sorted(path.name for path in out.iterdir()) == [
        "digits_mlp_iter_3.solverstate.npz", "digits_mlp_iter_3.weights.npz", "metrics.jsonl"]
