#!/usr/bin/env python3
"""Train a network from its YAML config (its `data:` and `solver:` sections), as `caffe train`.

    python scripts/train.py configs/digits_mlp.yaml
    python scripts/train.py configs/digits_mlp.yaml --max-iter 500 --output-dir runs/short
    python scripts/train.py configs/digits_mlp.yaml \
        --resume runs/digits_mlp/digits_mlp_iter_500.solverstate.npz

Writes into the output directory (default runs/<config name>/): metrics.jsonl, curves.png and
snapshots <prefix>_iter_<N>.weights.npz / .solverstate.npz. Ctrl-C stops after the current
iteration and snapshots.

Under `mpirun -np N` (mpi4py needed) the N processes train one model, data-parallel: batch_size is
per process, rank 0 alone prints and writes files, an error on any rank ends the job (README:
"Training on several machines").
"""
from __future__ import annotations

import argparse
import sys
from contextlib import nullcontext
from pathlib import Path

from net import Net, Solver, load_config
from net.cli import add_common_arguments
from net.data import load_data
from net.distributed import DataParallelSolver, communicator, guarded_job
from net.metrics import MetricsLog, plot_curves, read_metrics
from net.snapshot import load_weights, restore


def main(args: argparse.Namespace) -> int:
    comm = communicator()
    spec = load_config(args.config)
    net = Net(spec, seed=args.seed)
    if args.debug_nan:
        net.debug = True
    kind = Solver if comm.size == 1 else DataParallelSolver
    solver = kind.from_config(net, max_iter=args.max_iter, random_seed=args.seed)
    if comm.size > 1 and (args.debug or args.debug_nan):
        solver.check_every = solver.config.display
    data = load_data(net, solver.config.random_seed, comm.rank, comm.size)
    solver.data = data
    output = Path(args.output_dir) if args.output_dir else Path("runs") / Path(args.config).stem
    say = print if comm.is_root else (lambda *_: None)
    say(f"net {net.name!r}: {sum(p.size for p in net.params.values())} parameters; "
        f"solver {solver.config.type}, base_lr {solver.config.base_lr}, "
        f"max_iter {solver.config.max_iter}")
    for line in data.describe():
        say(line)
    if comm.size > 1:
        say(f"data-parallel over {comm.size} processes (MPI): batch sizes are per process, the "
            f"global train batch is {comm.size} x {data.specs['train'].batch_size}"
            + (f"; parameters compared every {solver.check_every} iterations"
               if solver.check_every else ""))
    if args.weights:
        report = load_weights(net, args.weights)
        line = f"weights from {Path(args.weights).resolve()}: {len(report['loaded'])} arrays"
        if report["missing"]:
            line += f"; kept the initial values of {', '.join(report['missing'])}"
        if report["ignored"]:
            line += f"; ignored {', '.join(report['ignored'])} (not in the net)"
        say(line)
    if args.resume:
        weights = restore(solver, args.resume, data)
        say(f"resumed at iteration {solver.iter} from {Path(args.resume).resolve()} "
            f"(weights {weights.resolve()})")
    solver.output_dir = output
    say(f"output: {output.resolve()} (snapshots {solver.snapshot_prefix().resolve()}_iter_N.*)")
    metrics = MetricsLog(output / "metrics.jsonl", append=bool(args.resume)) \
        if comm.is_root else nullcontext()
    with metrics:
        result = solver.solve(data, progress=comm.is_root and not args.no_progress, log=say,
                              on_event=metrics.write if comm.is_root else None)
    if comm.is_root:
        print_outcome(result, output, net.name)
    comm.barrier()              # the other ranks exit only once rank 0 has written everything
    return 130 if result["interrupted"] else 0


def print_outcome(result: dict, output: Path, name: str) -> None:
    """Plot the curves and print how the run ended."""
    curves = plot_curves(read_metrics(output / "metrics.jsonl"), output / "curves.png", name)
    status = "interrupted" if result["interrupted"] else "done"
    print(f"{status} at iteration {result['iter']}: train loss {result['loss']:.6g}"
          if result["loss"] is not None else f"{status} at iteration {result['iter']}")
    if result["test"]:
        when = "final test" if result["test_iter"] == result["iter"] else \
            f"last test (iteration {result['test_iter']})"
        print(f"{when}: " + ", ".join(f"{k} = {v:.6g}" for k, v in result["test"].items()))
    if result["snapshot"]:
        print(f"snapshot: {result['snapshot'][0]} and {result['snapshot'][1].name}")
    print(f"metrics: {output / 'metrics.jsonl'}" + (f", curves: {curves}" if curves else ""))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="a YAML network with `data:` and `solver:` sections")
    parser.add_argument("--max-iter", type=int, metavar="N",
                        help="train until iteration N (overrides solver.max_iter)")
    parser.add_argument("--weights", metavar="FILE",
                        help="initialise parameters by name from a .weights.npz file")
    parser.add_argument("--resume", metavar="SNAPSHOT",
                        help="continue from a .solverstate.npz file (its weights file beside it)")
    parser.add_argument("--output-dir", metavar="DIR",
                        help="where metrics, curves and snapshots go (default runs/<config name>)")
    parser.add_argument("--seed", type=int, metavar="N",
                        help="random seed of initialisation, shuffling and dropout "
                             "(overrides solver.random_seed)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
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
