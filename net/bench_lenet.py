"""The convnet section of `scripts/bench.py`: Caffe's 28x28 LeNet (`configs/lenet_mnist.yaml`,
batch 64) and CIFAR-10 "quick" net (`configs/cifar10_quick.yaml`, batch 100) through Gatework and
through PyTorch on the CPU, float32: one training step (forward, backward, momentum SGD in place)
and one forward pass with the loss ("inference"), at 1 and at 2 threads.

Each side runs in its own `net.bench.Worker` process with the same thread settings (numpy's BLAS
and PyTorch's thread pool would otherwise fight over the cores). The Gatework side is `serve`
below; besides the workers' "info" and "time" requests it answers
    {"cmd": "memory"}                                 -> {"rss_bytes": its resident memory now}
    {"cmd": "profile", "model": M, "iterations": k}   -> {"table": per-gate ms of M's step}
The PyTorch side is `scripts/_bench_torch.py` (`net.bench.torch_worker`). A model M is
{"kind": "lenet" or "cifar10_quick", "batch": B, "solver": {...}, "mode": "train" or "infer"};
each worker builds it once, on the same random images. The workers are asked in turn
(`net.bench.alternate`), one timed block at a time, so a noisy neighbour slows both alike; the
figures are medians over the blocks and the ratio is the median of the per-block ratios.
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .bench import (ROOT, SOLVER, Worker, alternate, calibrate, grid, median, paired_ratio,
                    torch_worker, verdict)


@dataclass(frozen=True)
class ConvNet:
    """One benchmarked net: its config, batch, image shape, solver and warm-up steps."""
    kind: str
    title: str
    config: Path
    batch: int
    image: tuple[int, int, int]
    solver: dict
    warmup: int

    def model(self, mode: str) -> dict:
        """The description both workers build from (`scripts/_bench_torch.py` too)."""
        return {"kind": self.kind, "batch": self.batch, "solver": self.solver, "mode": mode}


CIFAR_SOLVER = {"type": "SGD", "base_lr": 0.001, "momentum": 0.9, "weight_decay": 0.004}
NETS = {net.kind: net for net in (
    ConvNet("lenet", "LeNet 28x28", ROOT / "configs" / "lenet_mnist.yaml", 64, (1, 28, 28),
            SOLVER, 50),
    ConvNet("cifar10_quick", "cifar10_quick 32x32", ROOT / "configs" / "cifar10_quick.yaml", 100,
            (3, 32, 32), CIFAR_SOLVER, 10))}
MODES = ("train", "infer")
THREADS = (1, 2)
#: Gatework / PyTorch at most (issue 18); rows without one are measured and not judged
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
    spent = {(id(step), d): 0.0 for step in steps for d in ("forward", "backward")}
    last = [0.0]

    def hook(step, direction: str, outputs: tuple) -> None:
        now = time.perf_counter()
        spent[id(step), direction] += now - last[0]
        last[0] = now

    total = 0.0
    for _ in range(iterations):
        start = last[0] = time.perf_counter()
        solver.step(feed, hooks=(hook, hook))
        total += time.perf_counter() - start
    scale = 1e3 / iterations
    rows = [(step.spec.name, step.spec.type, spent[id(step), "forward"] * scale,
             spent[id(step), "backward"] * scale) for step in steps]
    gates = sum(f + b for _, _, f, b in rows)
    lines = [f"{'gate':<8} {'type':<16} {'forward ms':>10} {'backward ms':>11}"]
    lines += [f"{name:<8} {kind:<16} {f:10.3f} {b:11.3f}" for name, kind, f, b in rows]
    lines.append(f"gates {gates:.2f} ms + SGD update {total * scale - gates:.2f} ms = step "
                 f"{total * scale:.2f} ms (mean of {iterations} steps)")
    return "\n".join(lines)


class _Runs:
    """The Gatework worker's nets, built on first use: per model, the solver and a callable
    doing one timed unit (a training step, or a forward pass)."""

    def __init__(self):
        self.built: dict[str, tuple] = {}

    def get(self, model: dict) -> tuple:
        key = json.dumps(model, sort_keys=True)
        if key not in self.built:
            from . import Net, Solver
            net = NETS[model["kind"]]
            solver = Solver.from_config(Net.from_yaml(net.config, seed=0), model["solver"])
            feed = batch_of(net)
            unit = ((lambda: solver.step(feed)) if model["mode"] == "train" else
                    (lambda: solver.net.forward(feed)))
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
    return Worker([sys.executable, "-c", "from net.bench_lenet import serve; serve()"], threads)


def time_row(workers: dict[str, Worker], model: dict, repeats: int, block: float) -> dict:
    """One model timed on each side in alternating blocks; the load average around it."""
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
    lines = [f"Convnets, float32, ms per training step (forward, backward, momentum SGD) or per "
             f"forward pass with the loss (infer); median of {result['repeats']} alternating "
             "blocks, each side in its own process with the same thread count",
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
    lines += grid(header, rows)
    mb = 1 / 2**20
    for key, (start, end) in result["memory"].items():
        kind, count = key.split("/")
        lines.append(f"memory: Gatework worker ({NETS[kind].title}, {count} thread(s)) resident "
                     f"{start * mb:.1f} MB after warm-up, {end * mb:.1f} MB after the timed "
                     f"training steps ({(end - start) * mb:+.1f} MB)")
    for key, table in result["profiles"].items():
        kind, count = key.split("/")
        lines += ["", f"Gatework's {NETS[kind].title} training step, gate by gate (runner hooks, "
                  f"{count} thread(s)):", table]
    return "\n".join(lines)
