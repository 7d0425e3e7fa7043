#!/usr/bin/env python3
"""Train a network from its YAML config (its `data:` and `solver:` sections), as `caffe train`.

    python scripts/train.py configs/digits_mlp.yaml
    python scripts/train.py configs/digits_mlp.yaml --max-iter 500 --output-dir runs/short
    python scripts/train.py configs/digits_mlp.yaml \
        --resume runs/digits_mlp/digits_mlp_iter_500.solverstate.npz

Writes into the output directory (default runs/<config file stem>/, or the resumed snapshot's
folder): metrics.jsonl, curves.png and snapshots <prefix>_iter_<N>.weights.npz /
.solverstate.npz; the directory is locked while the run lasts, and one holding another run is not
reused without --overwrite. Ctrl-C or SIGTERM stops after the current iteration and snapshots.

Exit status: 0 done; 2 a usage, config or data error (one line); 3 the loss or a parameter became
NaN or Inf (the last finite snapshot is kept); 130 stopped by Ctrl-C, 143 by SIGTERM.

Under `mpirun -np N` (mpi4py needed) the N processes train one model, data-parallel: batch_size is
per process, rank 0 alone prints and writes files, an error on any rank ends the job (README:
"Training on several machines").
"""
from __future__ import annotations

import argparse
import sys
from contextlib import nullcontext

from net.tools.cli import add_common_arguments, guarded_job
from net.train.session import exit_code, outcome, sigterm_unwinds, train
from net.train.distributed import launched_rank, launched_size


def main(args: argparse.Namespace) -> int:
    with sigterm_unwinds() if launched_size() <= 1 else nullcontext():
        result = train(args.config, output_dir=args.output_dir, max_iter=args.max_iter,
                       weights=args.weights, resume=args.resume, seed=args.seed,
                       progress=not args.no_progress, log=print, debug_nan=args.debug_nan,
                       check_sync=args.debug or args.debug_nan, overwrite=args.overwrite)
    if launched_rank() == 0:
        print("\n".join(outcome(result)))
    return exit_code(result)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="a YAML network with `data:` and `solver:` sections")
    parser.add_argument("--max-iter", type=int, metavar="N",
                        help="train until iteration N (overrides solver.max_iter)")
    parser.add_argument("--weights", metavar="FILE",
                        help="initialise parameters by name from a .weights.npz, .caffemodel or "
                             ".onnx file")
    parser.add_argument("--resume", metavar="SNAPSHOT",
                        help="continue from a .solverstate.npz file (its weights file beside it)")
    parser.add_argument("--output-dir", metavar="DIR",
                        help="where metrics, curves and snapshots go "
                             "(default runs/<config file stem>)")
    parser.add_argument("--seed", type=int, metavar="N",
                        help="random seed of initialisation, shuffling and dropout "
                             "(overrides solver.random_seed)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--overwrite", action="store_true",
                        help="reuse an output directory that holds another run (its metrics, "
                             "curves and snapshots are removed first)")
    parser.add_argument("--debug-nan", action="store_true",
                        help="stop at the first NaN/Inf, naming the gate, blob and direction, "
                             "with a snapshot of the state before it")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    if args.weights and args.resume:
        parser.error("--weights and --resume exclude each other (a snapshot has its weights)")
    return args


if __name__ == "__main__":
    sys.exit(guarded_job(main, parse_args()))
