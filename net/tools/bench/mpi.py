"""The data-parallel benchmark behind `scripts/bench.py --mpi`: training throughput (samples/s) of
an MLP (784-1024-1024-10, float32, batch 256 per process, momentum SGD) with one process and
with N processes under mpirun, and the scaling efficiency throughput(N) / (N x throughput(1)).

Each measurement is a fresh job: one process is a plain `python` (the single-process path, no
MPI at all), N processes are `mpirun -np N python`; every process has one BLAS thread (the
script sets the thread variables before numpy loads, and the jobs inherit them). The two are run
in alternation, `rounds` times, rotating which goes first, so a busy spell of a shared machine
hurts both alike; the figures are medians, and the efficiency is the median of the per-round
ratios (its spread is reported too). Inside a job, the processes time blocks of the same number
of steps, back to back after a barrier; the job reports the median block.

On a shared machine other processes take cores from the N-process job (and its ranks wait for
the slowest in every Allreduce), so each job also records how many cores everything else kept
busy meanwhile (from /proc/stat, less the job's own CPU time): the noise, in numbers.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ..launch import mpirun_command
from .common import (SOLVER, TARGETS, calibrate, machine, median, per_call, threads_variables,
                     verdict)
from .mlp import MLP, MLPS, mlp_batch, mlp_by_name, mlp_config

MLP_BIG = MLPS[2]        # 784-1024-1024-10, batch 256


def worker(mlp: MLP, seconds: float, block: float) -> dict[str, Any] | None:
    """Time training steps in this process (one of a job, `python -m net.tools.bench.mpi`);
    rank 0 returns the figures."""
    from ...core.net import Net
    from ...train.distributed import DataParallelSolver, communicator
    from ...train.solver import Solver

    comm = communicator()
    net = Net.from_config(mlp_config(mlp), seed=0)
    solver = Solver.from_config(net, SOLVER) if comm.size == 1 else \
        DataParallelSolver.from_config(net, SOLVER)
    feed = mlp_batch(mlp, seed=comm.rank)
    for _ in range(3):
        solver.step(feed)
    per_step = per_call(lambda: solver.step(feed), 3)
    steps = max(comm.allgather(calibrate(per_step, block)))        # the same on every rank
    rates = []
    for _ in range(max(1, round(seconds / block))):
        comm.barrier()
        start = time.perf_counter()
        for _ in range(steps):
            solver.step(feed)
        rates.append(comm.size * mlp.batch * steps / (time.perf_counter() - start))
    allreduce = []
    if comm.size > 1:
        flat = solver.gradient_buffer.flat
        for _ in range(10):
            comm.barrier()
            start = time.perf_counter()
            comm.allreduce_mean_(flat)
            allreduce.append(time.perf_counter() - start)
    if not comm.is_root:
        return None
    rate = median(rates)
    return {"processes": comm.size, "samples_per_s": rate,
            "step_ms": comm.size * mlp.batch / rate * 1e3, "steps_per_block": steps,
            "blocks": len(rates), "allreduce_ms": median(allreduce) * 1e3 if allreduce else None,
            "allreduce_mb": solver.gradient_buffer.flat.nbytes / 2**20 if comm.size > 1 else None}


def run_job(processes: int, mlp: MLP, seconds: float, block: float) -> dict[str, Any]:
    """One measuring job of `processes` processes (1: a plain python, no mpirun)."""
    command = [sys.executable, "-m", "net.tools.bench.mpi", mlp.name, str(seconds), str(block)]
    if processes > 1:
        command = mpirun_command(processes, *command)
    env = {**os.environ, **threads_variables(1)}
    before, start = _cpu_seconds(), time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env,
                          timeout=120 + 10 * seconds)
    wall = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(f"the {processes}-process job failed (exit {done.returncode}):\n"
                           f"{done.stderr.strip()[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    after = _cpu_seconds()
    result["other_cores"] = None if before is None or after is None else \
        max(0.0, (after[0] - before[0]) - (after[1] - before[1])) / wall
    return result


def _cpu_seconds() -> tuple[float, float] | None:
    """(CPU seconds the whole machine has been busy, those of this process and its children);
    None where /proc/stat is missing."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    ours = sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                  resource.getrusage(resource.RUSAGE_CHILDREN)))
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK"), ours


def run(processes: int = 2, rounds: int = 5, seconds: float = 2.0, block: float = 0.25,
        mlp: MLP = MLP_BIG) -> dict[str, Any]:
    """Alternate 1-process and `processes`-process jobs for `rounds` rounds; the figures."""
    jobs: dict[int, list[dict]] = {1: [], processes: []}
    for r in range(rounds):
        for n in ((1, processes) if r % 2 == 0 else (processes, 1)):
            jobs[n].append(run_job(n, mlp, seconds, block))
    ratios = [many["samples_per_s"] / (processes * one["samples_per_s"])
              for one, many in zip(jobs[1], jobs[processes])]
    rows = []
    for n, results in jobs.items():
        rows.append({"processes": n, "samples_per_s": median([j["samples_per_s"] for j in results]),
                     "step_ms": median([j["step_ms"] for j in results]),
                     "allreduce_ms": median([j["allreduce_ms"] for j in results])
                     if n > 1 else None,
                     "allreduce_mb": results[0]["allreduce_mb"]})
    others = [[j["other_cores"] for j in jobs[n]] for n in (1, processes)]
    return {"machine": machine(), "mlp": mlp.name, "batch_per_process": mlp.batch,
            "threads_per_process": 1, "rounds": rounds, "seconds_per_job": seconds, "rows": rows,
            "efficiency": median(ratios), "efficiency_per_round": ratios,
            "other_cores_per_round": [max((a or 0.0), (b or 0.0)) for a, b in zip(*others)]}


def report(result: dict[str, Any], target: float = TARGETS["mpi_efficiency"]) -> str:
    """The result as a short table."""
    m = result["machine"]
    lines = [f"Data-parallel training throughput, MLP {result['mlp']}, float32, momentum SGD, "
             f"batch {result['batch_per_process']} per process, 1 BLAS thread per process",
             f"{m['date']}, {m['cpu']} ({m['cores']} cores), numpy {m['numpy']} ({m['blas']}); "
             f"medians of {result['rounds']} alternating rounds of {result['seconds_per_job']:g} s",
             "", "  processes  samples/s  ms per step  Allreduce (ms, MiB)",
             "  ---------  ---------  -----------  -------------------"]
    for row in result["rows"]:
        reduce = "-" if row["allreduce_ms"] is None else \
            f"{row['allreduce_ms']:.2f} ms of {row['allreduce_mb']:.1f} MiB"
        lines.append(f"  {row['processes']:>9}  {row['samples_per_s']:>9.0f}  "
                     f"{row['step_ms']:>11.2f}  {reduce}")
    n = result["rows"][-1]["processes"]
    per_round, others = result["efficiency_per_round"], result["other_cores_per_round"]
    lines += ["", f"Scaling efficiency, {n} processes: {result['efficiency']:.2f} (target >= "
                  f"{target:g} {verdict(result['efficiency'] >= target)}); per round "
                  f"{min(per_round):.2f} to {max(per_round):.2f}:",
              "  " + "  ".join(f"{r:.2f} (others {o:.1f} cores)"
                               for r, o in zip(per_round, others))]
    if max(others) > 0.25:
        lines.append(f"  other processes kept up to {max(others):.1f} of the "
                     f"{result['machine']['cores']} cores busy: the {n}-process figures suffer "
                     "most; rerun on a quiet machine")
    return "\n".join(lines)


if __name__ == "__main__":
    figures = worker(mlp_by_name(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]))
    if figures is not None:
        print(json.dumps(figures), flush=True)
