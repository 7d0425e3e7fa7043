"""The LeNet section of the benchmark: one training step of Caffe's 28x28 LeNet (the net of
`configs/lenet_mnist.yaml`, built here as `LENET`, since configs are not installed with the
package; batch 64, float32: forward, backward, momentum SGD in place) through Gatework and
through PyTorch on the CPU.

Each side runs in its own `Worker` process with the same thread settings (numpy's BLAS and
PyTorch's thread pool would otherwise fight over the cores). The Gatework side is `serve` below
(`python -m net.tools.bench.lenet`); besides the workers' "info" and "time" requests it answers
    {"cmd": "memory"}                   -> {"rss_bytes": resident memory of the worker now}
    {"cmd": "profile", "iterations": k} -> {"table": per-gate ms of the step}
The PyTorch side is `torch_side.py` (`torch_worker`). The workers are asked in turn (`alternate`),
one timed block at a time, so a noisy neighbour slows both alike; the figures are medians over
the blocks.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from ...core.hooks import GateClock
from ...core.text import table
from .common import SOLVER, TARGETS, Worker, alternate, calibrate, median, torch_worker, verdict

BATCH = 64
WARMUP = 50
MODEL = {"kind": "lenet", "batch": BATCH, "solver": SOLVER}
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


def lenet_batch(seed: int = 0) -> dict[str, np.ndarray]:
    """A fixed random batch of 28x28 images and labels (the same one on both sides)."""
    rng = np.random.default_rng(seed)
    return {"data": rng.random((BATCH, 1, 28, 28), dtype=np.float32),
            "label": rng.integers(0, 10, BATCH)}


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


def serve() -> None:
    """The Gatework worker: Solver.step on LENET."""
    from ...core.net import Net
    from ...train.solver import Solver

    net = Net.from_config(LENET, seed=0)
    solver = Solver.from_config(net, SOLVER)
    feed = lenet_batch()
    for _ in range(WARMUP):       # the allocator settles in the first few dozen steps
        solver.step(feed)
    for line in sys.stdin:
        request = json.loads(line)
        if request["cmd"] == "info":
            answer = {"version": "gatework", "threads": os.environ.get("OPENBLAS_NUM_THREADS")}
        elif request["cmd"] == "time":      # request["model"] is always MODEL
            k = request["iterations"]
            start = time.perf_counter()
            for _ in range(k):
                solver.step(feed)
            answer = {"seconds": (time.perf_counter() - start) / k}
        elif request["cmd"] == "memory":
            answer = {"rss_bytes": resident_bytes()}
        else:
            answer = {"table": profile_step(solver, feed, request["iterations"])}
        print(json.dumps(answer), flush=True)


def gatework_worker(threads: int) -> Worker:
    return Worker([sys.executable, "-m", "net.tools.bench.lenet"], threads)


def run(threads: int = 1, repeats: int = 11, block: float = 0.3, torch_python: str | None = None,
        profile_iterations: int = 0) -> dict:
    """Time the LeNet step on each side (PyTorch's when `torch_python` can import torch);
    returns the medians (ms), their ratio, the Gatework worker's resident memory after warm-up
    and at the end, and optionally (`profile_iterations` > 0) its per-gate table."""
    workers = {"gatework": gatework_worker(threads)}
    torch = torch_worker(torch_python, threads)
    if torch is not None:
        workers["pytorch"] = torch
    try:
        counts = {name: calibrate(w.seconds_per_step(MODEL, 3), block)
                  for name, w in workers.items()}
        rss_start = workers["gatework"].ask({"cmd": "memory"})["rss_bytes"]
        blocks = {name: (lambda w=w, k=counts[name]: w.seconds_per_step(MODEL, k))
                  for name, w in workers.items()}
        times = alternate(blocks, repeats)
        rss_end = workers["gatework"].ask({"cmd": "memory"})["rss_bytes"]
        table = (workers["gatework"].ask({"cmd": "profile", "iterations": profile_iterations})
                 ["table"] if profile_iterations else None)
        infos = {name: w.info for name, w in workers.items()}
    finally:
        for w in workers.values():
            w.close()
    ms = {name: median(values) * 1e3 for name, values in times.items()}
    steps = sum(counts["gatework"] for _ in times["gatework"])
    return {"threads": threads, "batch": BATCH, "repeats": repeats,
            "steps_per_block": counts, "ms": ms, "all_ms": {n: [v * 1e3 for v in t]
                                                         for n, t in times.items()},
            "ratio": ms["gatework"] / ms["pytorch"] if "pytorch" in ms else None,
            "torch": infos.get("pytorch"), "rss_start_bytes": rss_start,
            "rss_end_bytes": rss_end, "steps_timed": steps, "profile": table}


def report(result: dict, target: float = TARGETS["lenet"]) -> str:
    """The result as a few readable lines (the machine is in the main table's heading)."""
    lines = [f"LeNet 28x28 training step (configs/lenet_mnist.yaml), batch {result['batch']}, "
             f"float32, {result['threads']} thread(s) each side; median of {result['repeats']} "
             "alternating blocks"]
    torch = result["torch"]
    lines.append(f"pytorch: {torch['version']} ({torch['threads']} threads)" if torch else
                 "pytorch: not importable from --torch-python: its row is skipped")
    for name, ms in result["ms"].items():
        lines.append(f"  {name:<9} {ms:8.2f} ms per step  ({result['steps_per_block'][name]} "
                     "steps per block)")
    if result["ratio"] is not None:
        lines.append(f"  ratio     {result['ratio']:8.2f}x Gatework / PyTorch (target <= "
                     f"{target}x {verdict(result['ratio'] <= target)})")
    mb = 1 / 2**20
    start, end = result["rss_start_bytes"] * mb, result["rss_end_bytes"] * mb
    lines.append(f"memory: Gatework worker resident {start:.1f} MB after warm-up, {end:.1f} MB "
                 f"after {result['steps_timed']} more steps ({end - start:+.1f} MB)")
    if result["profile"]:
        lines += ["", "Gatework's step, gate by gate (runner hooks):", result["profile"]]
    return "\n".join(lines)


if __name__ == "__main__":
    serve()
