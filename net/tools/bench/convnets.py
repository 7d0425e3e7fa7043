"""The convnet section of the benchmark: Caffe's 28x28 LeNet (the net of
`configs/lenet_mnist.yaml`, batch 64) and CIFAR-10 "quick" net (`configs/cifar10_quick.yaml`,
batch 100), built here as `LENET` and `CIFAR10_QUICK` since configs are not installed with the
package, through Gatework and through PyTorch on the CPU, float32: a training step (forward,
backward, momentum SGD in place) and an inference pass (forward to the class scores), at 1 and
at 2 threads.

Each side runs in its own `Worker` process with the same thread settings (numpy's BLAS and
PyTorch's thread pool would otherwise fight over the cores). The Gatework side is `serve` below
(`python -m net.tools.bench.convnets`); besides the workers' "info" and "time" requests it
answers
    {"cmd": "memory"}                                -> {"rss_bytes": its resident memory now}
    {"cmd": "profile", "model": M, "iterations": k}  -> {"table": per-gate ms of M's step}
The PyTorch side is `torch_side.py` (`torch_worker`). A model M is {"kind": "lenet" or
"cifar10_quick", "batch": B, "solver": {...}, "mode": "train" or "infer"}; each worker builds it
once, on the same random images (`batch_of`). The workers are asked in turn (`alternate`), one
timed block at a time, so a noisy neighbour slows both alike; the figures are medians over the
blocks and the ratio is the median of the per-block ratios.
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...core.hooks import GateClock
from ...core.text import table
from .common import (SOLVER, Worker, alternate, calibrate, median, paired_ratio, rows_text,
                     torch_worker, verdict)

XAVIER = {"type": "xavier"}
LENET = {   # configs/lenet_mnist.yaml's net (a test keeps the two the same)
    "name": "lenet_mnist",
    "inputs": {"data": {"shape": [None, 1, 28, 28]}, "label": {"shape": [None], "dtype": "int"}},
    "gates": [
        {"name": "conv1", "type": "Convolution", "bottom": "data", "top": "conv1",
         "num_output": 20, "kernel_size": 5, "stride": 1, "weight_filler": XAVIER},
        {"name": "pool1", "type": "Pooling", "bottom": "conv1", "top": "pool1", "pool": "MAX",
         "kernel_size": 2, "stride": 2},
        {"name": "conv2", "type": "Convolution", "bottom": "pool1", "top": "conv2",
         "num_output": 50, "kernel_size": 5, "stride": 1, "weight_filler": XAVIER},
        {"name": "pool2", "type": "Pooling", "bottom": "conv2", "top": "pool2", "pool": "MAX",
         "kernel_size": 2, "stride": 2},
        {"name": "ip1", "type": "InnerProduct", "bottom": "pool2", "top": "ip1",
         "num_output": 500, "weight_filler": XAVIER},
        {"name": "relu1", "type": "ReLU", "bottom": "ip1", "top": "relu1"},
        {"name": "ip2", "type": "InnerProduct", "bottom": "relu1", "top": "scores",
         "num_output": 10, "weight_filler": XAVIER},
        {"name": "loss", "type": "SoftmaxWithLoss", "bottom": ["scores", "label"], "top": "loss"},
        {"name": "accuracy", "type": "Accuracy", "bottom": ["scores", "label"],
         "top": "accuracy", "phase": "test"},
    ],
}


def _caffe_layer(name: str, kind: str, bottom: str, top: str, std: float, **options) -> dict:
    """A cifar10_quick layer with parameters: Caffe's gaussian weights, zero biases, lr_mult 1
    for W and 2 for b."""
    return {"name": name, "type": kind, "bottom": bottom, "top": top, **options,
            "weight_filler": {"type": "gaussian", "std": std}, "bias_filler": {"type": "constant"},
            "param": [{"lr_mult": 1}, {"lr_mult": 2}]}


def _pool(name: str, bottom: str, pool: str) -> dict:
    return {"name": name, "type": "Pooling", "bottom": bottom, "top": name, "pool": pool,
            "kernel_size": 3, "stride": 2}


def _relu(name: str, blob: str) -> dict:
    return {"name": name, "type": "ReLU", "bottom": blob, "top": blob}     # in place, as Caffe


CONV = {"kernel_size": 5, "pad": 2, "stride": 1}
CIFAR10_QUICK = {   # configs/cifar10_quick.yaml's net (a test keeps the two the same)
    "name": "cifar10_quick",
    "inputs": {"data": {"shape": [None, 3, 32, 32]}, "label": {"shape": [None], "dtype": "int"}},
    "gates": [
        _caffe_layer("conv1", "Convolution", "data", "conv1", 0.0001, num_output=32, **CONV),
        _pool("pool1", "conv1", "MAX"), _relu("relu1", "pool1"),
        _caffe_layer("conv2", "Convolution", "pool1", "conv2", 0.01, num_output=32, **CONV),
        _relu("relu2", "conv2"), _pool("pool2", "conv2", "AVE"),
        _caffe_layer("conv3", "Convolution", "pool2", "conv3", 0.01, num_output=64, **CONV),
        _relu("relu3", "conv3"), _pool("pool3", "conv3", "AVE"),
        _caffe_layer("ip1", "InnerProduct", "pool3", "ip1", 0.1, num_output=64),
        _caffe_layer("ip2", "InnerProduct", "ip1", "ip2", 0.1, num_output=10),
        {"name": "accuracy", "type": "Accuracy", "bottom": ["ip2", "label"], "top": "accuracy",
         "phase": "test"},
        {"name": "loss", "type": "SoftmaxWithLoss", "bottom": ["ip2", "label"], "top": "loss"},
    ],
}


@dataclass(frozen=True)
class ConvNet:
    """One benchmarked net: its config, batch, image shape, scores blob, solver, warm-up."""
    kind: str
    title: str
    config: dict
    batch: int
    image: tuple[int, int, int]
    scores: str
    solver: dict
    warmup: int

    def model(self, mode: str) -> dict:
        """The description both workers build from (`torch_side.py` too)."""
        return {"kind": self.kind, "batch": self.batch, "solver": self.solver, "mode": mode}


CIFAR_SOLVER = {"type": "SGD", "base_lr": 0.001, "momentum": 0.9, "weight_decay": 0.004}
NETS = {net.kind: net for net in (
    ConvNet("lenet", "LeNet 28x28", LENET, 64, (1, 28, 28), "scores", SOLVER, 50),
    ConvNet("cifar10_quick", "cifar10_quick 32x32", CIFAR10_QUICK, 100, (3, 32, 32), "ip2",
            CIFAR_SOLVER, 10))}
MODES = ("train", "infer")
THREADS = (1, 2)
#: Gatework / PyTorch at most (issue 18); rows without one are measured, not judged
TARGETS = {("lenet", "train", 1): 1.0, ("lenet", "train", 2): 1.1,
           ("cifar10_quick", "train", 1): 1.0, ("cifar10_quick", "train", 2): 1.2,
           ("cifar10_quick", "infer", 1): 1.0}


def batch_of(net: ConvNet, seed: int = 0) -> dict[str, np.ndarray]:
    """A fixed random batch of images in [0, 1) and labels (the same one on both sides)."""
    rng = np.random.default_rng(seed)
    return {"data": rng.random((net.batch,) + net.image, dtype=np.float32),
            "label": rng.integers(0, 10, net.batch)}


def resident_bytes() -> int:
    """This process's resident memory now (Linux), else its peak."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def profile_step(solver, feed: dict, iterations: int) -> str:
    """Per-gate forward and backward ms of `solver.step` (through the runner's hooks: the time
    between two hook calls is one gate's), the rest of the step (the update) and the total."""
    steps = solver.net.runner.steps
    clock = GateClock(steps)
    total = 0.0
    for _ in range(iterations):
        start = clock.start()
        solver.step(feed, clock)
        total += time.perf_counter() - start
    scale = 1e3 / iterations
    rows = [(step.spec.name, step.spec.type, clock.spent["forward"][i] * scale,
             clock.spent["backward"][i] * scale) for i, step in enumerate(steps)]
    gates = sum(f + b for _, _, f, b in rows)
    lines = table(("gate", "type", "forward ms", "backward ms"),
                  [(name, kind, f"{f:.3f}", f"{b:.3f}") for name, kind, f, b in rows],
                  right=(2, 3))
    lines.append(f"gates {gates:.2f} ms + SGD update {total * scale - gates:.2f} ms = step "
                 f"{total * scale:.2f} ms (mean of {iterations} steps)")
    return "\n".join(lines)


class _Runs:
    """The Gatework worker's nets, built on first use: per model, the solver, the feed and a
    callable doing one timed unit (a training step, or a forward pass to the scores)."""

    def __init__(self):
        self.built: dict[str, tuple] = {}

    def get(self, model: dict) -> tuple:
        key = json.dumps(model, sort_keys=True)
        if key not in self.built:
            from ...core.net import Net
            from ...train.solver import Solver

            net = NETS[model["kind"]]
            solver = Solver.from_config(Net.from_config(net.config, seed=0), model["solver"])
            feed = batch_of(net)
            images = {"data": feed["data"]}
            unit = ((lambda: solver.step(feed)) if model["mode"] == "train" else
                    (lambda: solver.net.forward(images, outputs=[net.scores])))
            for _ in range(net.warmup):     # the allocator settles in the first few steps
                unit()
            self.built[key] = (solver, feed, unit)
        return self.built[key]


def serve() -> None:
    """The Gatework worker: answers requests on stdin (see the module docstring)."""
    runs = _Runs()
    for line in sys.stdin:
        request = json.loads(line)
        if request["cmd"] == "info":
            answer = {"version": "gatework", "threads": os.environ.get("OPENBLAS_NUM_THREADS")}
        elif request["cmd"] == "time":
            unit, k = runs.get(request["model"])[2], request["iterations"]
            start = time.perf_counter()
            for _ in range(k):
                unit()
            answer = {"seconds": (time.perf_counter() - start) / k}
        elif request["cmd"] == "memory":
            answer = {"rss_bytes": resident_bytes()}
        else:
            solver, feed, _ = runs.get(request["model"])
            answer = {"table": profile_step(solver, feed, request["iterations"])}
        print(json.dumps(answer), flush=True)


def gatework_worker(threads: int) -> Worker:
    return Worker([sys.executable, "-m", "net.tools.bench.convnets"], threads)


def time_row(workers: dict[str, Worker], model: dict, repeats: int, block: float) -> dict:
    """One model timed on each side in alternating blocks, with the load average around it."""
    load = os.getloadavg()[0]
    counts = {name: calibrate(w.seconds_per_step(model, 2), block) for name, w in workers.items()}
    blocks = {name: (lambda w=w, k=counts[name]: w.seconds_per_step(model, k))
              for name, w in workers.items()}
    times = alternate(blocks, repeats)
    row = {"net": model["kind"], "mode": model["mode"], "steps_per_block": counts,
           "ms": {name: median(values) * 1e3 for name, values in times.items()},
           "all_ms": {name: [v * 1e3 for v in values] for name, values in times.items()},
           "load": [round(load, 2), round(os.getloadavg()[0], 2)]}
    row["ratio"] = (paired_ratio(times["gatework"], times["pytorch"]) if "pytorch" in times
                    else None)
    return row


def run(threads: tuple[int, ...] = THREADS, repeats: int = 11, block: float = 0.3,
        torch_python: str | None = None, profile_iterations: int = 0,
        nets: tuple[str, ...] = tuple(NETS)) -> dict:
    """Time every net in both modes at each thread count (PyTorch's side when `torch_python`
    can import torch); returns the rows (medians in ms, ratio, load average before and after),
    the Gatework worker's resident memory after warm-up and after the timed training steps,
    and optionally (`profile_iterations` > 0) its per-gate table of each training step."""
    result = {"repeats": repeats, "rows": [], "memory": {}, "profiles": {}, "torch": None}
    for count in threads:
        workers = {"gatework": gatework_worker(count)}
        torch = torch_worker(torch_python, count)
        if torch is not None:
            workers["pytorch"] = torch
        try:
            for kind in nets:
                net = NETS[kind]
                workers["gatework"].ask({"cmd": "time", "model": net.model("train"),
                                         "iterations": 1})
                rss_start = workers["gatework"].ask({"cmd": "memory"})["rss_bytes"]
                for mode in MODES:
                    row = time_row(workers, net.model(mode), repeats, block)
                    result["rows"].append({"threads": count, **row})
                    if mode == "train":
                        rss_end = workers["gatework"].ask({"cmd": "memory"})["rss_bytes"]
                result["memory"][f"{kind}/{count}"] = [rss_start, rss_end]
                if profile_iterations:
                    result["profiles"][f"{kind}/{count}"] = workers["gatework"].ask(
                        {"cmd": "profile", "model": net.model("train"),
                         "iterations": profile_iterations})["table"]
            result["torch"] = workers["pytorch"].info if "pytorch" in workers else None
        finally:
            for w in workers.values():
                w.close()
    return result


def report(result: dict) -> str:
    """The result as a table and a few lines (the machine is in the main table's heading)."""
    torch = result["torch"]
    lines = ["Convnets, float32, ms per training step (forward, backward, momentum SGD) or per "
             "inference pass (forward to the class scores); median of "
             f"{result['repeats']} alternating blocks, each side in its own process with the "
             "same thread count; ratio = median of the per-block ratios",
             f"pytorch: {torch['version']}" if torch else
             "pytorch: not importable from --torch-python: its column is skipped"]
    header = ["net", "batch", "mode", "threads", "Gatework", "PyTorch", "ratio", "target",
              "load"]
    rows = []
    for r in result["rows"]:
        target = TARGETS.get((r["net"], r["mode"], r["threads"]))
        judged = "-" if target is None or r["ratio"] is None else (
            f"<= {target} {verdict(r['ratio'] <= target)}")
        rows.append([NETS[r["net"]].title, str(NETS[r["net"]].batch), r["mode"],
                     str(r["threads"]), f"{r['ms']['gatework']:.2f}",
                     f"{r['ms']['pytorch']:.2f}" if "pytorch" in r["ms"] else "-",
                     f"{r['ratio']:.2f}" if r["ratio"] is not None else "-", judged,
                     "{:.1f}-{:.1f}".format(*r["load"])])
    lines += rows_text(header, rows)
    mb = 1 / 2**20
    for key, (start, end) in result["memory"].items():
        kind, count = key.split("/")
        lines.append(f"memory: Gatework worker ({NETS[kind].title}, {count} thread(s)) resident "
                     f"{start * mb:.1f} MB after warm-up, {end * mb:.1f} MB after the timed "
                     f"training steps ({(end - start) * mb:+.1f} MB)")
    for key, text in result["profiles"].items():
        kind, count = key.split("/")
        lines += ["", f"Gatework's {NETS[kind].title} training step, gate by gate (runner hooks, "
                  f"{count} thread(s)):", text]
    return "\n".join(lines)


if __name__ == "__main__":
    serve()
