#!/usr/bin/env python3
"""Benchmark Gatework against a hand-written numpy loop and PyTorch; print one table.

    python scripts/bench.py --threads 1          # the full run (a few minutes on 2 cores)
    python scripts/bench.py --quick --profile    # a smoke test, a few seconds
    python scripts/bench.py --torch-python /path/to/venv/bin/python --json
    python scripts/bench.py --mpi [--processes 2] [--rounds 5] [--quick]

By default: MLP training iterations (Gatework, the numpy loop, PyTorch), the lecture's scalar
example, the N-gate chain, backward / forward, peak memory (net/bench.py), then the convnets,
LeNet 28x28 and cifar10_quick, against PyTorch: training step and forward pass, at 1 and 2
threads (net/bench_lenet.py; --profile adds Gatework's per-gate times of each step). Each figure
is a median over repeats; each ratio compares variants timed in alternation in this same run.
PyTorch runs in its own process, from the interpreter --torch-python names (default: this one);
its rows are skipped when torch cannot be imported there.

--mpi instead measures training throughput of the 784-1024-1024-10 MLP with 1 and N processes
(mpirun), one BLAS thread each, and the scaling efficiency (net/bench_mpi.py).
"""
from __future__ import annotations

import argparse
import os
import sys

THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")  # net.bench's


def _set_threads(argv: list[str]) -> None:
    """--threads N (1 with --mpi) becomes the thread variables that OpenBLAS and OpenMP read
    when numpy (and, in its worker process, torch) load: so this runs before numpy's import."""
    value = "1" if "--mpi" in argv else None
    for i, arg in enumerate(argv):
        if value is None and arg.startswith("--threads="):
            value = arg.partition("=")[2]
        elif value is None and arg == "--threads" and i + 1 < len(argv):
            value = argv[i + 1]
    if value and value.isdigit():
        os.environ.update({name: value for name in THREAD_VARIABLES})


if __name__ == "__main__":
    _set_threads(sys.argv[1:])

from net import bench, bench_lenet, bench_mpi  # noqa: E402
from net.cli import add_common_arguments, dump_json  # noqa: E402
from net.distributed import guarded_job, mpi_problem  # noqa: E402
from net.errors import GateworkError  # noqa: E402

MPI_ONLY = ("processes", "rounds", "seconds")


def main(args: argparse.Namespace) -> int:
    if args.memory_worker:
        variant, name = args.memory_worker
        print(dump_json(bench.peak_memory(variant, bench.mlp_by_name(name))))
        return 0
    if args.mpi_worker:
        name, seconds, block = args.mpi_worker
        result = bench_mpi.worker(bench.mlp_by_name(name), float(seconds), float(block))
        if result is not None:
            print(dump_json(result), flush=True)
        return 0
    check(args)
    if args.mpi:
        return mpi(args)
    quick = args.quick
    torch_python = args.torch_python or sys.executable
    results = bench.run(quick, args.repeats, args.threads, torch_python)
    results["convnets"] = bench_lenet.run(
        (1,) if quick else bench_lenet.THREADS, args.repeats or (1 if quick else 11),
        0.01 if quick else 0.3, torch_python, (2 if quick else 20) if args.profile else 0)
    print(dump_json(results) if args.json else
          bench.report(results) + "\n\n" + bench_lenet.report(results["convnets"]))
    return 0


def mpi(args: argparse.Namespace) -> int:
    problem = mpi_problem()
    if problem:
        raise GateworkError(f"cannot run the benchmark: {problem}")
    mlp, rounds, seconds, block = bench_mpi.MLP_BIG, args.rounds or 5, args.seconds or 2.0, 0.25
    if args.quick:
        mlp, rounds, seconds, block = bench.MLPS[0], 1, 0.2, 0.1
    result = bench_mpi.run(args.processes or 2, rounds, seconds, block, mlp)
    print(dump_json(result) if args.json else bench_mpi.report(result))
    return 0


def check(args: argparse.Namespace) -> None:
    """One line for each kind of nonsense: counts below their minimum, options of the other
    mode."""
    for name, least in (("threads", 1), ("repeats", 1), ("processes", 2), ("rounds", 1)):
        value = getattr(args, name)
        if value is not None and value < least:
            raise ValueError(f"--{name} must be at least {least}, got {value}")
    if args.seconds is not None and not args.seconds > 0:
        raise ValueError(f"--seconds must be positive, got {args.seconds}")
    given = [f"--{name.replace('_', '-')}" for name in vars(args) if getattr(args, name)]
    if args.mpi:
        wrong = [o for o in given if o in ("--repeats", "--torch-python", "--profile")]
        wrong += ["--threads"] if args.threads not in (None, 1) else []
        reason = "--mpi runs one BLAS thread per process, without PyTorch"
    else:
        wrong = [o for o in given if o[2:] in MPI_ONLY]
        reason = "they are --mpi's"
    if wrong:
        raise ValueError(f"{', '.join(wrong)}: not with this mode ({reason})")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="a smoke test: two MLPs, short blocks, few repeats (with --mpi: the "
                             "tiny MLP, one short round)")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="threads for numpy's BLAS and for PyTorch in the MLP table "
                             "(default: the libraries' own choice; the convnets run at 1 and 2); "
                             "1 keeps a busy shared machine from stalling them")
    parser.add_argument("--repeats", type=int,
                        help="repeats per figure (default 21, convnets 11; quick 3, convnets 1)")
    parser.add_argument("--torch-python", metavar="PATH",
                        help="the Python that runs the PyTorch rows (default: this one; rows "
                             "skipped when torch is not importable there)")
    parser.add_argument("--profile", action="store_true",
                        help="add Gatework's per-gate times of each convnet's training step")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    mpi = parser.add_argument_group("--mpi: data-parallel throughput")
    mpi.add_argument("--mpi", action="store_true",
                     help="measure 1 vs N processes (mpirun) instead of the table")
    mpi.add_argument("--processes", type=int, help="N (default 2)")
    mpi.add_argument("--rounds", type=int,
                     help="alternating rounds of a 1-process and an N-process job (default 5)")
    mpi.add_argument("--seconds", type=float, help="seconds of timed steps per job (default 2)")
    parser.add_argument("--memory-worker", nargs=2, metavar=("VARIANT", "MLP"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--mpi-worker", nargs=3, metavar=("MLP", "SECONDS", "BLOCK"),
                        help=argparse.SUPPRESS)
    add_common_arguments(parser)
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(guarded_job(main, parse_args()))
