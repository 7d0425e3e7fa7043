"""The benchmark's command line: Gatework against a hand-written numpy loop and PyTorch.

    python -m net.tools.bench --threads 1          # the full run (a few minutes on 2 cores)
    python -m net.tools.bench --quick --profile    # a smoke test, a few seconds
    python -m net.tools.bench --torch-python /path/to/venv/bin/python --json
    python -m net.tools.bench --mpi [--processes 2] [--rounds 5] [--quick]

(`python scripts/bench.py` is the same.) By default: MLP training iterations (Gatework, the numpy
loop, PyTorch), the lecture's scalar example, the N-gate chain, backward / forward, peak memory
(mlp.py), then the convnets, LeNet 28x28 and cifar10_quick, against PyTorch: training step and
inference pass, at 1 and 2 threads (convnets.py; --profile adds Gatework's per-gate times of each
step). Each figure is a median over repeats; each ratio compares variants timed in alternation
in this same run. PyTorch runs in its own process, from the interpreter --torch-python names
(default: this one); its rows are skipped when torch cannot be imported there. micrograd, beside
the scalar example, likewise from --micrograd-python (default: --torch-python's).

--mpi instead measures training throughput of the 784-1024-1024-10 MLP with 1 and N processes
(mpirun), one BLAS thread each, and the scaling efficiency (mpi.py).
"""
from __future__ import annotations

import argparse
import os
import sys

from ...errors import GateworkError
from ..cli import add_common_arguments, dump_json, guarded_job
from ..launch import mpi_problem
from . import convnets, mlp, mpi
from .common import THREAD_VARIABLES, threads_variables

MPI_ONLY = ("processes", "rounds", "seconds")


def main(args: argparse.Namespace) -> int:
    check(args)
    if args.mpi:
        return run_mpi(args)
    quick = args.quick
    torch_python = args.torch_python or sys.executable
    results = mlp.run(quick, args.repeats, args.threads, torch_python,
                      args.micrograd_python or torch_python)
    results["convnets"] = convnets.run(
        (1,) if quick else convnets.THREADS, args.repeats or (1 if quick else 11),
        0.01 if quick else 0.3, torch_python, (2 if quick else 20) if args.profile else 0)
    print(dump_json(results) if args.json else
          mlp.report(results) + "\n\n" + convnets.report(results["convnets"]))
    return 0


def run_mpi(args: argparse.Namespace) -> int:
    problem = mpi_problem()
    if problem:
        raise GateworkError(f"cannot run the benchmark: {problem}")
    model, rounds, seconds, block = mpi.MLP_BIG, args.rounds or 5, args.seconds or 2.0, 0.25
    if args.quick:
        model, rounds, seconds, block = mlp.MLPS[0], 1, 0.2, 0.1
    result = mpi.run(args.processes or 2, rounds, seconds, block, model)
    print(dump_json(result) if args.json else mpi.report(result))
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
        wrong = [o for o in given
                 if o in ("--repeats", "--torch-python", "--micrograd-python", "--profile")]
        wrong += ["--threads"] if args.threads not in (None, 1) else []
        reason = "--mpi runs one BLAS thread per process, without PyTorch or micrograd"
    else:
        wrong = [o for o in given if o[2:] in MPI_ONLY]
        reason = "they are --mpi's"
    if wrong:
        raise ValueError(f"{', '.join(wrong)}: not with this mode ({reason})")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m net.tools.bench",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="a smoke test: two MLPs, short blocks, few repeats (with --mpi: the "
                             "tiny MLP, one short round)")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="threads for numpy's BLAS and for PyTorch in the MLP table "
                             "(default: the libraries' own choice; the convnets run at 1 and at "
                             "2, quick at 1); 1 keeps a busy shared machine from stalling them")
    parser.add_argument("--repeats", type=int,
                        help="repeats per figure (default 21, convnets 11; quick 3, convnets 1)")
    parser.add_argument("--torch-python", metavar="PATH",
                        help="the Python that runs the PyTorch rows (default: this one; rows "
                             "skipped when torch is not importable there)")
    parser.add_argument("--micrograd-python", metavar="PATH",
                        help="the Python that runs micrograd's scalar example (default: "
                             "--torch-python's; skipped when micrograd is not importable there)")
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
    add_common_arguments(parser)
    return parser.parse_args(argv)


def run_cli(argv: list[str] | None = None) -> int:
    """Parse the arguments and run, in a process whose math libraries use the threads asked for:
    OpenBLAS and OpenMP read their thread count when numpy loads, which has happened by now, so
    when it differs the benchmark starts again as a fresh process with the variables set."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    threads = 1 if args.mpi else args.threads
    if threads and any(os.environ.get(name) != str(threads) for name in THREAD_VARIABLES):
        sys.stdout.flush()
        os.execve(sys.executable, [sys.executable, "-m", "net.tools.bench", *argv],
                  {**os.environ, **threads_variables(threads)})
    return guarded_job(main, args)
