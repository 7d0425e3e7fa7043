"""What the benchmarks share: timing in alternation, medians and paired ratios, a description of
the machine, and `Worker`, one side of a comparison in its own process answering JSON lines.

Each figure is a median over repeats; variants compared in one run are timed in alternation,
in every order in turn, so a noisy neighbour hurts them alike, and each ratio is the
median of the per-repeat ratios. PyTorch always runs in its own process (`torch_worker` starts
`torch_side.py`, a file of this package run by path with the interpreter given, which need not
have Gatework installed): its thread pool and numpy's would slow each other down in one.
"""
from __future__ import annotations

import functools
import itertools
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

from ...core.text import table
from ...errors import GateworkError

TORCH_SIDE = Path(__file__).with_name("torch_side.py")
MICROGRAD_SIDE = Path(__file__).with_name("micrograd_side.py")

THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")

TARGETS = {"mlp_tiny": 2.0, "mlp": 1.05, "scalar_us": 10.0, "chain_flat": 1.5,   # issue 18
           "backward_over_forward": 2.5, "memory": 1.2, "mpi_efficiency": 0.8}

SOLVER = {"type": "SGD", "base_lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4}

SETTLE = 0.15            # seconds of rest before each block of a Worker (seconds_per_step)



class Worker:
    """One side of a comparison in its own process (PyTorch's thread pool and numpy's would slow
    each other down in one), answering one JSON line per request on stdin:
        {"cmd": "info"}                                -> {"version": ..., "threads": n}
        {"cmd": "time", "model": {...}, "iterations": k} -> {"seconds": per training step}
    and whatever else its script serves. `threads` sets its math threads (None: inherited)."""

    def __init__(self, command: list[str], threads: int | None = None):
        env = {"OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "0", **os.environ,
               # idle OpenMP threads sleep at once instead of spinning on the other's cores
               **({name: str(threads) for name in THREAD_VARIABLES} if threads else {})}
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True, env=env)
        self.info = self.ask({"cmd": "info"})

    def ask(self, request: dict) -> dict:
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the benchmark worker {self.process.args[-1]!r} stopped")
        return json.loads(line)

    def seconds_per_step(self, model: dict, iterations: int) -> float:
        """Seconds per training step of `model` over `iterations` timed ones. Waits SETTLE
        seconds first: OpenBLAS's threads in the other process spin for about 0.1 s after their
        last call, and would take this worker's cores meanwhile."""
        time.sleep(SETTLE)
        return self.ask({"cmd": "time", "model": model, "iterations": iterations})["seconds"]

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)



@functools.lru_cache(maxsize=None)
def importable(python: str, modules: str) -> bool:
    """Whether `python` can import `modules` (a comma-separated list, as `import` takes it)."""
    try:
        done = subprocess.run([python, "-c", f"import {modules}"], capture_output=True,
                              timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0



def torch_worker(python: str | None, threads: int | None = None) -> Worker | None:
    """The PyTorch side, run by `python`; None when that is None or cannot import torch."""
    if python is None or not importable(python, "torch, numpy"):
        return None
    return Worker([python, str(TORCH_SIDE)], threads)



def micrograd_worker(python: str | None) -> Worker | None:
    """micrograd's side of the scalar example, run by `python`; None when that is None or cannot
    import micrograd. A GateworkError when the side stops at once (a `micrograd` that is not the
    scalar engine: no Value with relu and backward)."""
    if python is None or not importable(python, "micrograd.engine"):
        return None
    try:
        return Worker([python, str(MICROGRAD_SIDE)])
    except RuntimeError:
        raise GateworkError(f"{python}: its micrograd could not compute the scalar example (see "
                            "the error above); is it micrograd's scalar engine?") from None


# -- timing ----------------------------------------------------------------------------------------

def per_call(fn: Callable[[], object], iterations: int) -> float:
    """Seconds per call of `fn` over `iterations` calls."""
    start = time.perf_counter()
    for _ in range(iterations):
        fn()
    return (time.perf_counter() - start) / iterations



def calibrate(seconds_per_call: float, block: float) -> int:
    """How many calls make one timed block of about `block` seconds."""
    return max(1, math.ceil(block / max(seconds_per_call, 1e-9)))



def alternate(blocks: dict[str, Callable[[], float]], repeats: int) -> dict[str, list[float]]:
    """Call each block `repeats` times, interleaved; returns the measurements (each block returns
    its own, e.g. seconds per iteration). The repeats go through every order of the blocks:
    each order that starts with the first block, then its rotations, so that every k repeats
    (k blocks) each block goes first once, and every k! repeats each block follows each other
    equally often. Rotations alone put, of three blocks, one after a given other in two repeats
    of three; a block that follows PyTorch's process starts on caches that process filled
    (measured: the MLP's Gatework / numpy ratio read 1-3% higher when Gatework was the one that
    mostly followed it)."""
    first, *rest = blocks
    orders = [order[shift:] + order[:shift]
              for order in ((first, *others) for others in itertools.permutations(rest))
              for shift in range(len(blocks))]
    results: dict[str, list[float]] = {name: [] for name in blocks}
    for r in range(repeats):
        for name in orders[r % len(orders)]:
            results[name].append(blocks[name]())
    return results



def median(values: list[float]) -> float:
    return statistics.median(values)



def paired_ratio(ours: list[float], theirs: list[float]) -> float:
    """The median of the per-repeat ratios: each pair was timed back to back, so a slow spell
    of the machine cancels out of it better than out of a ratio of medians."""
    return median([a / b for a, b in zip(ours, theirs)])


# -- the sections ----------------------------------------------------------------------------------

def machine() -> dict:
    """Date, CPU model, core count and library versions, for the table's heading."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    blas = "unknown BLAS"
    try:
        config = np.show_config(mode="dicts")
        blas = "{name} {version}".format(**config["Build Dependencies"]["blas"])
    except Exception:
        pass
    return {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "cpu": model,
            "cores": os.cpu_count(), "python": platform.python_version(),
            "numpy": np.__version__, "blas": blas}


# -- the run and its table -------------------------------------------------------------------------

def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"




def rows_text(header: list[str], rows: list[list[str]]) -> list[str]:
    """A benchmark table: indented, the first column left-aligned, numbers right-aligned."""
    return table(header, rows, right=range(1, len(header)), indent="  ")


def threads_variables(threads: int | None) -> dict[str, str]:
    """The environment that makes OpenBLAS, OpenMP and MKL use `threads` threads (read when numpy
    or torch loads, so it must be set before: in a fresh process)."""
    return {name: str(threads) for name in THREAD_VARIABLES} if threads else {}
