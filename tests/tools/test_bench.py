"""The benchmark compares like with like, and its quick runs (the MLPs, the convnets, one and
two MPI processes) give every section; no timing is asserted."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from net.errors import GateworkError
from net.tools.bench import mlp as bench
from net.tools.bench.common import importable, micrograd_worker
from tests.helpers import ROOT, needs_mpi


def test_hand_written_loop_does_the_same_arithmetic_as_gatework():
    mlp = bench.MLPS[0]
    gatework = bench.GateworkMLP(mlp)
    by_hand = bench.NumpyMLP(list(gatework.net.params.values()), mlp)
    feed = bench.mlp_batch(mlp)
    for _ in range(3):
        assert gatework.step(feed) == by_hand.step(feed)
    for ours, theirs in zip(gatework.net.params.values(), by_hand.params):
        assert ours.dtype == theirs.dtype == np.float32
        assert np.array_equal(ours, theirs)   # bit for bit: same operations, same order


def test_a_training_step_peaks_within_a_fifth_of_the_hand_written_loops_memory():
    """Peak traced memory of one steady-state step (the benchmark's memory row, measured here
    in this process): the Net's blobs, the gates' caches, the gradients and the solver's arrays
    stay within 1.2x of the numpy loop's (1.31x when every slot had a second scratch array and
    the runner kept every blob's gradient to the end of the pass: 1.35x in this process)."""
    bench.peak_memory("gatework", bench.MLPS[0], warmup=1)   # what a first Net imports and caches
    mlp = bench.MLPS[1]
    peaks = {variant: bench.peak_memory(variant, mlp, warmup=1)["peak_bytes"]
             for variant in ("gatework", "numpy")}
    assert peaks["gatework"] <= 1.2 * peaks["numpy"]


def test_alternate_takes_every_order_in_turn():
    """Every k repeats each of k blocks goes first once; over k! repeats every order comes once,
    so each block follows each other equally often (three blocks: each ordered pair twice
    within the six orders)."""
    calls = []
    bench.alternate({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 3)
    assert calls == ["a", "b", "b", "a", "a", "b"]
    calls.clear()
    bench.alternate({name: (lambda name=name: calls.append(name)) for name in "abc"}, 7)
    orders = ["".join(calls[i:i + 3]) for i in range(0, 21, 3)]
    assert sorted(orders[:3][j][0] for j in range(3)) == ["a", "b", "c"]
    assert sorted(orders[3:6][j][0] for j in range(3)) == ["a", "b", "c"]
    assert sorted(orders[:6]) == ["abc", "acb", "bac", "bca", "cab", "cba"]
    assert orders[6] == orders[0]
    follows = [order[i:i + 2] for order in orders[:6] for i in range(2)]
    assert all(follows.count(a + b) == 2 for a in "abc" for b in "abc" if a != b)


# A stand-in for micrograd's engine (the real one is not a dependency): a scalar with a
# gradient, reverse mode over the graph its operations build, in topological order.
STAND_IN = """
class Value:
    def __init__(self, data, parents=(), local=()):
        self.data, self.grad, self.parents, self.local = data, 0.0, parents, local

    def __add__(self, other):
        return Value(self.data + other.data, (self, other), (1.0, 1.0))

    def __sub__(self, other):
        return Value(self.data - other.data, (self, other), (1.0, -1.0))

    def __mul__(self, other):
        return Value(self.data * other.data, (self, other), (other.data, self.data))

    def relu(self):
        return Value(max(self.data, 0.0), (self,), (RELU_SLOPE if self.data > 0 else 0.0,))

    def backward(self):
        order, seen = [], set()
        def visit(v):
            if id(v) not in seen:
                seen.add(id(v))
                for p in v.parents:
                    visit(p)
                order.append(v)
        visit(self)
        self.grad = 1.0
        for v in reversed(order):
            for p, d in zip(v.parents, v.local):
                p.grad += d * v.grad
"""


# Every section `report` reads, with made-up figures, for checking one line of it.
QUICK_RESULTS = {
    "machine": {"date": "today", "cpu": "cpu", "cores": 2, "python": "3.11", "numpy": "2",
                "blas": "blas"},
    "repeats": 1, "threads": 1, "torch": None, "mlp": [],
    "chain": [{"n": 10, "forward_us_per_gate": 1.0, "backward_us_per_gate": 2.0}],
    "backward_over_forward": {"mlp": "4-4", "batch": 1, "backward_ms": 1.0, "forward_ms": 1.0,
                              "ratio": 1.0},
    "memory": []}


def stand_in_micrograd(root, monkeypatch, relu_slope: float, engine: str = STAND_IN):
    """A `micrograd` package under `root` (its engine.py: `engine`), on the PYTHONPATH the
    workers inherit."""
    package = root / "micrograd"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "engine.py").write_text(f"RELU_SLOPE = {relu_slope}\n" + engine)
    monkeypatch.setenv("PYTHONPATH", str(root))
    importable.cache_clear()          # an answer kept from before the stand-in is stale


def test_the_scalar_example_is_timed_beside_micrograd_after_checking_its_gradients(
        tmp_path, monkeypatch):
    stand_in_micrograd(tmp_path, monkeypatch, relu_slope=1.0)
    assert micrograd_worker(str(tmp_path / "no-python")) is None
    worker = micrograd_worker(sys.executable)
    try:
        assert worker.info["gradients"] == [2.0, 5.0, 0.0]    # the lecture's df/dx, dy, dz
        bench.check_micrograd(worker)
        result = bench.scalar_example(2, 0.002, worker)
    finally:
        worker.close()
    assert isinstance(result["micrograd_version"], str)    # "unknown": not the one pip installed
    assert result["micrograd_us"] > 0 and result["gatework_over_micrograd"] > 0
    assert result["gatework_us"] > 0 and result["python_us"] > 0
    line = bench.report({**QUICK_RESULTS, "scalar": result}).splitlines()
    shown = line[line.index(next(x for x in line if x.startswith("Scalar example"))) + 1]
    assert shown == (f"  micrograd {result['micrograd_version']} (its own process): "
                     f"{result['micrograd_us']:.1f} us per call; Gatework / micrograd = "
                     f"{result['gatework_over_micrograd']:.2f}")


def test_a_micrograd_side_with_other_gradients_is_refused_before_the_long_rows(
        tmp_path, monkeypatch):
    stand_in_micrograd(tmp_path, monkeypatch, relu_slope=0.5)  # wrong: df/dy 3.5, df/dz 1.5
    monkeypatch.setattr(bench, "mlp_rows", lambda *args: pytest.fail("timed the MLPs first"))
    with pytest.raises(GateworkError, match=r"^micrograd's gradients of the scalar example are "
                                            r"\[2.0, 3.5, 1.5\], Gatework's \[2.0, 5.0, 0.0\]: "
                                            r"not the same maths, so not timed$"):
        bench.run(quick=True, micrograd_python=sys.executable)


def test_a_micrograd_that_cannot_compute_the_example_is_refused_in_one_line(
        tmp_path, monkeypatch):
    stand_in_micrograd(tmp_path, monkeypatch, 1.0, engine="class Value:\n    pass\n")  # no ops
    with pytest.raises(GateworkError, match=r"its micrograd could not compute the scalar "
                                            r"example .*is it micrograd's scalar engine\?$"):
        micrograd_worker(sys.executable)


@pytest.mark.slow
def test_quick_run_prints_every_section():
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench.py"), "--quick", "--json",
                           "--profile", "--torch-python", "/nonexistent/python"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert results["torch"] is None
    assert [row["mlp"] for row in results["mlp"]] == ["64-32-10", "784-256-256-10"]
    assert {"gatework_ms", "numpy_ms", "gatework_over_numpy"} <= set(results["mlp"][0])
    assert [row["n"] for row in results["chain"]] == [10, 100, 1000]
    assert results["memory"][0]["gatework_mb"] > 0 and results["memory"][0]["numpy_mb"] > 0
    assert results["scalar"]["gatework_us"] > 0 and results["backward_over_forward"]["ratio"] > 0
    assert results["machine"]["cores"] >= 1
    convnets = results["convnets"]
    assert [(r["net"], r["mode"], r["threads"]) for r in convnets["rows"]] == [
        ("lenet", "train", 1), ("lenet", "infer", 1), ("cifar10_quick", "train", 1),
        ("cifar10_quick", "infer", 1)]
    assert all(r["ms"]["gatework"] > 0 and r["ratio"] is None for r in convnets["rows"])
    assert "conv3" in convnets["profiles"]["cifar10_quick/1"]


@pytest.mark.slow
def test_the_text_report_has_the_table_and_the_convnet_section():
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench.py"), "--quick",
                           "--repeats", "1", "--threads", "1", "--torch-python", "/nonexistent"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for words in ("Training iteration", "784-256-256-10", "Scalar example", "Chain of N",
                  "Backward / forward", "Peak memory", "LeNet 28x28", "cifar10_quick 32x32",
                  "PyTorch not run", "micrograd not run", "its column is skipped",
                  "resident"):
        assert words in done.stdout


@pytest.mark.slow
def test_convnet_benchmark_runs_without_torch():
    from net.tools.bench import convnets

    result = convnets.run(threads=(1,), repeats=1, block=0.01, torch_python="/nonexistent/python",
                          profile_iterations=2, nets=("lenet",))
    assert [r["mode"] for r in result["rows"]] == ["train", "infer"]
    assert all(r["ms"]["gatework"] > 0 and r["ratio"] is None for r in result["rows"])
    text = convnets.report(result)
    assert "skipped" in text and "resident" in text and "conv2" in text and "SGD update" in text


@pytest.mark.slow
@needs_mpi
def test_the_benchmark_runs_one_and_two_processes():
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench.py"), "--mpi", "--quick",
                           "--json"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert [row["processes"] for row in result["rows"]] == [1, 2]
    assert all(row["samples_per_s"] > 0 for row in result["rows"])
    assert result["rows"][1]["allreduce_ms"] > 0 and result["efficiency"] > 0
