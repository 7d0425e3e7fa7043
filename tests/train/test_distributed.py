"""Data-parallel training over MPI (net/distributed.py): two processes with batch 50 train the
model one process trains with batch 100, test figures cover the whole test set, rank 0 alone
writes, a failing rank ends the job naming itself, and the per-step logic (one Allreduce, the
global loss, the agreed stop, drift detection) in-process with stand-in communicators.

The multi-process tests run `mpirun -np 2` and skip where mpirun or mpi4py is missing."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from net import GateworkError, Net, Solver, SolverConfig, load_config
from net.train import distributed
from net.tools import launch
from net.train.data import load_data
from net.distributed import Communicator, DataParallelSolver, FlatBuffer, checksum
from tests.helpers import CONFIGS, ROOT, needs_matplotlib, needs_mpi, needs_sklearn

FAIL_PLUGIN = ROOT / "tests" / "plugins" / "fail_on_rank.py"


def digits_config(path, train_batch: int, test_batch: int, max_iter: int = 20,
                  first_gate: str = "") -> str:
    """configs/digits_mlp.yaml with other batch sizes, `max_iter`, a display line every 5
    iterations, a test and a snapshot at the end only, and maybe a gate before fc1."""
    text = (CONFIGS / "digits_mlp.yaml").read_text()
    for old, new in (("batch_size: 64", f"batch_size: {train_batch}"),
                     ("batch_size: 500", f"batch_size: {test_batch}"),
                     ("max_iter: 1500", f"max_iter: {max_iter}"), ("display: 100", "display: 5"),
                     ("test_interval: 250", "test_interval: 0"), ("snapshot: 500", "snapshot: 0")):
        assert old in text
        text = text.replace(old, new)
    if first_gate:
        text = text.replace("gates:\n", f"plugins: [{FAIL_PLUGIN}]\ngates:\n  - {first_gate}\n")
        text = text.replace("bottom: data, top: fc1", "bottom: checked, top: fc1")
    path.write_text(text)
    return str(path)


def mpirun_train(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    command = launch.mpirun_command(2, sys.executable, "scripts/train.py", *args,
                                         "--no-progress")
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
@needs_sklearn
@needs_matplotlib
@needs_mpi
def test_two_processes_with_batch_50_train_what_one_trains_with_batch_100(tmp_path):
    config = digits_config(tmp_path / "two.yaml", 50, 100)
    out = tmp_path / "two"
    done = mpirun_train(config, "--output-dir", str(out), "--debug")   # --debug: checksums too
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("done at iteration 20") == 1          # rank 0 alone prints
    assert "parameters compared every 5 iterations" in done.stdout
    events = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(e["iter"], e["phase"]) for e in events] == [
        (0, "train"), (5, "train"), (10, "train"), (15, "train"), (20, "test")]  # written once
    assert sorted(p.name for p in out.iterdir()) == [
        "curves.png", "digits_mlp_iter_20.solverstate.npz", "digits_mlp_iter_20.weights.npz",
        "metrics.jsonl"]

    net = Net(load_config(digits_config(tmp_path / "one.yaml", 100, 200)))
    alone: list[dict] = []
    Solver.from_config(net).solve(on_event=alone.append)
    trained = np.load(out / "digits_mlp_iter_20.weights.npz", allow_pickle=False)
    for name, expected in net.params.items():
        assert trained[name].dtype == expected.dtype == np.float32
        error = np.linalg.norm(trained[name] - expected) / np.linalg.norm(expected)
        assert error < 1e-5, (name, error)
    for ours, theirs in zip(events, alone):           # the loss shown is the global mean
        assert ours["loss"] == pytest.approx(theirs["loss"], rel=1e-5)
    # the test set (360 samples) is split over the ranks and summed: whole-set figures
    correct = events[-1]["accuracy"] * 360
    assert correct == pytest.approx(round(correct), abs=1e-4)
    assert round(correct) == round(alone[-1]["accuracy"] * 360)
    assert events[-1]["loss"] == pytest.approx(alone[-1]["loss"], rel=1e-5)


@pytest.mark.slow
@needs_sklearn
@needs_mpi
@pytest.mark.parametrize("error, message", [
    ("runtime", "RuntimeError: injected failure at forward call 6"),
    ("data", "rank 1 of 2: error: injected failure at forward call 6"),
])
def test_a_failure_on_one_rank_ends_the_whole_job_naming_the_rank(tmp_path, error, message):
    gate = ("{name: trap, type: FailOnRank, bottom: data, top: checked, rank: 1, at: 6, "
            f"error: {error}}}")
    config = digits_config(tmp_path / "fail.yaml", 50, 100, max_iter=1000, first_gate=gate)
    done = mpirun_train(config, "--output-dir", str(tmp_path / "out"), timeout=60)
    assert done.returncode != 0
    assert message in done.stderr and "rank 1 of 2: error:" in done.stderr
    assert "rank 0 of 2" not in done.stderr          # rank 0 was only waiting, and was stopped
    assert "done at iteration" not in done.stdout


# -- in one process, with stand-in communicators ------------------------------------------------
class Recording(Communicator):
    """Rank 0 of `size` processes that all hold the same values: records each Allreduce; the
    other ranks' stop flag, checksums and (float64) gate buffers can be set."""

    def __init__(self, size: int = 2):
        self.size, self.calls, self.others_stop, self.others_checksum = size, [], False, None
        self.others_buffers_zero = False

    def allreduce_mean_(self, flat: np.ndarray) -> None:
        self.calls.append((flat.size, flat.dtype, flat.flags.c_contiguous))
        if flat.dtype == np.float64 and self.others_buffers_zero:
            flat /= self.size
        elif self.others_stop:
            flat[-1] = 1.0 / self.size           # the mean of the flags: one rank asked

    def allgather(self, value):
        if isinstance(value, int) and self.others_checksum is not None:
            return [value] + [self.others_checksum] * (self.size - 1)
        return [value] * self.size


def digits_solver(comm: Communicator, **overrides) -> tuple[DataParallelSolver, object]:
    net = Net(load_config(CONFIGS / "digits_mlp.yaml"))
    solver = DataParallelSolver.from_config(net, **overrides)
    solver.comm = comm
    return solver, load_data(net, 1)


@needs_sklearn
def test_one_allreduce_per_step_on_one_contiguous_buffer_and_nothing_else_changes():
    comm = Recording(size=1)
    solver, data = digits_solver(comm)
    reference = Solver.from_config(Net(load_config(CONFIGS / "digits_mlp.yaml")))
    feeds = [data.train.next() for _ in range(3)]
    for feed in feeds:
        assert solver.step(feed) == reference.step(feed)
    # each parameter's gradient from a cache line's start: sizes rounded up to 16 float32s
    size = sum(-(-p.size // 16) * 16 for p in solver.net.params.values())
    assert comm.calls == [(size + 2, np.float32, True)] * 3       # gradients, loss, stop flag
    assert checksum(solver.net.params) == checksum(reference.net.params)   # bit for bit


def test_gate_buffers_are_averaged_in_a_second_buffer():
    config = {"name": "bn", "inputs": {"data": {"shape": [None, 3]},
                                       "label": {"shape": [None], "dtype": "int"}},
              "gates": [{"name": "bn", "type": "BatchNorm", "bottom": "data", "top": "norm"},
                        {"name": "fc", "type": "InnerProduct", "bottom": "norm", "top": "scores",
                         "num_output": 2},
                        {"name": "loss", "type": "SoftmaxWithLoss",
                         "bottom": ["scores", "label"], "top": "loss"}]}
    comm = Recording()
    comm.others_buffers_zero = True                   # the other rank's moving averages: zeros
    solver = DataParallelSolver(Net.from_config(config), SolverConfig(base_lr=0.1), comm)
    alone = Solver(Net.from_config(config), SolverConfig(base_lr=0.1))
    feed = {"data": np.arange(12.0).reshape(4, 3), "label": np.array([0, 1, 0, 1])}
    solver.step(feed)
    alone.step(feed)
    # fc's 3x2 weights and 2 biases each from a cache line's start (16 float32s), loss and stop
    # flag; BatchNorm's 3 means, 3 variances and its count each padded to 8 float64s
    assert [c[:2] for c in comm.calls] == [(16 + 16 + 2, np.float32), (8 + 8 + 8, np.float64)]
    for name, value in alone.net.buffers.items():
        assert np.allclose(solver.net.buffers[name], value / 2), name


@needs_sklearn
def test_a_stop_asked_on_any_rank_stops_every_rank_after_the_same_step():
    comm = Recording()
    solver, data = digits_solver(comm)
    solver.request_stop()                # asked here: not seen until the step agrees on it
    assert not solver._stop
    solver.step(data.train.next())
    assert solver._stop
    solver._stop = False
    comm.others_stop = True              # asked on another rank only
    solver.step(data.train.next())
    assert solver._stop


@needs_sklearn
def test_drifted_parameters_stop_training_loudly():
    comm = Recording()
    solver, data = digits_solver(comm, display=5, debug_info=True)
    assert solver.check_every == 5                    # debug: compare every `display` steps
    for _ in range(5):
        solver.step(data.train.next())                # checked at iteration 5: in sync
    comm.others_checksum = 1234
    for _ in range(4):
        solver.step(data.train.next())                # not checked at 6 to 9
    with pytest.raises(GateworkError, match=r"iteration 10: the processes' parameters have "
                                            r"drifted apart \(CRC32 rank 0: \w+, rank 1: 000004d2"):
        solver.step(data.train.next())


@needs_sklearn
def test_test_figures_are_summed_over_the_ranks():
    solver, _ = digits_solver(Recording())
    totals, count = solver.reduce_totals({"loss": 3.0, "accuracy": 40.0}, 50)
    assert (totals, count) == ({"loss": 6.0, "accuracy": 80.0}, 100)


def test_flat_buffer_packs_and_unpacks_by_name():
    arrays = {"a": np.arange(6.0).reshape(2, 3), "b": np.array([7.0])}
    flat = FlatBuffer(arrays, extra=1)
    flat.pack(arrays)
    # each array on a 64-byte boundary (eight float64), zeros between, the extra after them
    assert flat.flat.tolist() == [0, 1, 2, 3, 4, 5, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0]
    assert all(view.ctypes.data % 64 == 0 for view in flat.views.values())
    flat.flat *= 2
    flat.extra[0] = 3.0
    flat.unpack(arrays)
    assert arrays["b"].tolist() == [14.0] and arrays["a"][1, 2] == 10 and flat.flat[-1] == 3.0


def test_one_process_needs_no_mpi4py_and_several_say_how_to_get_it(monkeypatch):
    for name in distributed._SIZE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    already = "mpi4py" in sys.modules
    comm = distributed.communicator()
    assert (comm.rank, comm.size, type(comm)) == (0, 1, Communicator)
    assert already or "mpi4py" not in sys.modules
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "2")
    monkeypatch.setitem(sys.modules, "mpi4py", None)            # as if not installed
    with pytest.raises(GateworkError, match=r"launched by mpirun with 2 processes, but mpi4py "
                                            r"cannot be used .*pip install -e '\.\[mpi\]'"):
        distributed.communicator()
