#!/usr/bin/env python3
"""Measure data-parallel scaling: training throughput with 1 and with N processes (mpirun).

    python scripts/bench_mpi.py                  # 784-1024-1024-10, 1 vs 2 processes, ~1 minute
    python scripts/bench_mpi.py --rounds 9 --json
    python scripts/bench_mpi.py --quick          # a smoke test on a tiny MLP, a few seconds

Each process has one BLAS thread (set here, before numpy loads). One-process jobs are plain
python, N-process jobs `mpirun -np N`, alternated; see net/bench_mpi.py for the method.
"""
from __future__ import annotations

import argparse
import os
import sys

if __name__ == "__main__":
    os.environ.update({name: "1" for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                                "MKL_NUM_THREADS")})

from net import bench_mpi  # noqa: E402
from net.bench import MLPS, mlp_by_name  # noqa: E402
from net.cli import add_common_arguments, dump_json  # noqa: E402
from net.distributed import guarded_job, mpi_problem  # noqa: E402
from net.errors import GateworkError  # noqa: E402

TARGET = 0.8     # scaling efficiency with 2 processes


def main(args: argparse.Namespace) -> int:
    if args.worker:
        result = bench_mpi.worker(mlp_by_name(args.mlp), args.seconds, args.block)
        if result is not None:
            print(dump_json(result), flush=True)
        return 0
    if args.processes < 2 or args.rounds < 1:
        raise ValueError("--processes must be at least 2 and --rounds at least 1")
    problem = mpi_problem()
    if problem:
        raise GateworkError(f"cannot run the benchmark: {problem}")
    if args.quick:
        args.mlp, args.rounds, args.seconds, args.block = MLPS[0].name, 1, 0.2, 0.1
    result = bench_mpi.run(args.processes, args.rounds, args.seconds, args.block,
                           mlp_by_name(args.mlp))
    print(dump_json(result) if args.json else bench_mpi.report(result, TARGET))
    return 0


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=2, help="N (default 2)")
    parser.add_argument("--rounds", type=int, default=5,
                        help="alternating rounds of a 1-process and an N-process job (default 5)")
    parser.add_argument("--seconds", type=float, default=2.0,
                        help="seconds of timed steps per job (default 2)")
    parser.add_argument("--block", type=float, default=0.25,
                        help="seconds per timed block inside a job (default 0.25)")
    parser.add_argument("--mlp", default=bench_mpi.MLP_BIG.name,
                        choices=[m.name for m in MLPS], help="which MLP (default the largest)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke test: the tiny MLP, one short round")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    add_common_arguments(parser)
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(guarded_job(main, parse_args()))
