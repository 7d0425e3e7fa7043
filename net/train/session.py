"""A training run from start to finish, as `scripts/train.py` (Caffe's `caffe train`) does it,
callable from Python:

    from net.train import train
    result = train("configs/digits_mlp.yaml", output_dir="runs/short", max_iter=200)
    result["test"]["accuracy"]

The run builds the net, loads and describes its data, applies `weights` or `resume`, trains with
the config's solver (data-parallel when started under mpirun with several processes), writes
metrics.jsonl, snapshots and curves.png into the output directory and returns what happened.
"""
from __future__ import annotations

import signal
import sys
import threading
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Callable, Iterator

from ..core.config import load_config
from ..core.net import Net
from ..core.text import listing
from .data import load_data
from .distributed import DataParallelSolver, communicator
from .metrics import MetricsLog, plot_curves, read_metrics
from .rundir import RunDirectory
from .snapshot import load_weights, restore
from .solver import Solver, figure_text


def train(config: str | Path, *, output_dir: str | Path | None = None,
          max_iter: int | None = None, weights: str | Path | None = None,
          resume: str | Path | None = None, seed: int | None = None, progress: bool = False,
          log: Callable[[str], None] | None = None, debug_nan: bool = False,
          check_sync: bool = False, overwrite: bool = False) -> dict[str, Any]:
    """Train the net of `config` (a YAML file with `data:` and `solver:` sections).

    output_dir: where metrics, curves and snapshots go (default: the resumed snapshot's folder,
        else runs/<config name>, or runs/<config name>-2, -3, ... when that holds another run).
        The directory is locked while the run writes there (net.train.rundir).
    overwrite: reuse an output directory that holds another run, removing its files first.
    max_iter, seed: override the solver's `max_iter` and `random_seed`.
    weights: initialise parameters by name from a weights file; resume: continue from a
        .solverstate.npz file (its weights file beside it). Not both.
    log: receives every line train.py prints (default: nothing is printed).
    debug_nan: stop at the first NaN/Inf, naming the gate, with a snapshot of the state before.
    check_sync: in a data-parallel run, compare the processes' parameters every `display`
        iterations.
    Returns Solver.solve's result ("iter", "loss", "test", "test_iter", "snapshot",
    "interrupted", "signal", "diverged") plus "net" (its name), "output" (the directory),
    "metrics" and "curves" (the files written; curves is None without matplotlib) and
    "processes".
    """
    if weights is not None and resume is not None:
        raise ValueError("weights and resume exclude each other (a snapshot has its weights)")
    comm = communicator()
    say = (log or (lambda line: None)) if comm.is_root else (lambda line: None)
    net = Net(load_config(config), seed=seed)
    net.debug = net.debug or debug_nan
    kind = Solver if comm.size == 1 else DataParallelSolver
    solver = kind.from_config(net, max_iter=max_iter, random_seed=seed)
    if comm.size > 1 and check_sync:
        solver.check_every = solver.config.display
    data = load_data(net, solver.config.random_seed, comm.rank, comm.size)
    if data.train is None:      # before the output directory is made: nothing is left behind
        data.close()            # a test source's open files
        raise net.spec.error("training needs a `data: train:` source", net.spec.line_of("data"))
    solver.data = data
    default = Path("runs") / Path(config).stem
    if comm.is_root:
        rundir = RunDirectory.choose(output_dir, default, resume, overwrite,
                                     _snapshot_prefix(solver))
    else:
        rundir = None
    output = rundir.path if rundir is not None else Path(output_dir or default)
    for line in _setup_lines(net, solver, data, comm.size):
        say(line)
    if weights is not None:
        say(_weights_line(weights, load_weights(net, weights)))
    if resume is not None:
        used = restore(solver, resume, data)
        say(f"resumed at iteration {solver.iter} from {Path(resume).resolve()} "
            f"(weights {used.resolve()})")
    solver.output_dir = output
    try:
        result, curves = _solve_into(solver, rundir, resume is not None, overwrite,
                                     progress and comm.is_root, say)
    finally:
        data.close()            # stops prefetching threads
    comm.barrier()              # the other ranks return only once rank 0 has written everything
    return {**result, "net": net.name, "output": output, "metrics": output / "metrics.jsonl",
            "curves": curves, "processes": comm.size}


def _solve_into(solver: Solver, rundir: RunDirectory | None, resuming: bool, overwrite: bool,
                progress: bool, say: Callable[[str], None]) -> tuple[dict[str, Any], Path | None]:
    """Train with the directory locked, logging metrics (rank 0 only: `rundir` is None on the
    other ranks, which write nothing); returns the result and the curves written."""
    output = solver.output_dir
    with rundir if rundir is not None else nullcontext():
        if overwrite and rundir is not None:
            for path in rundir.clear_earlier_run(_snapshot_prefix(solver)):
                say(f"removed {path} (--overwrite)")
        if rundir is not None:
            rundir.prepare_snapshot_folder(_snapshot_prefix(solver))
        say(f"output: {output.resolve()} (snapshots "
            f"{solver.snapshot_prefix().resolve()}_iter_N.*)")
        metrics = MetricsLog(output / "metrics.jsonl", resume_at=solver.iter if resuming
                             else None) if rundir is not None else nullcontext()
        with metrics:
            result = solver.solve(solver.data, progress=progress, log=say,
                                  on_event=metrics.write if rundir is not None else None)
        if rundir is None or not (output / "metrics.jsonl").is_file():
            return result, None
        return result, plot_curves(read_metrics(output / "metrics.jsonl"), output / "curves.png",
                                   solver.net.name)


def _snapshot_prefix(solver: Solver) -> str:
    """The prefix snapshots are written with: the solver's, by default the net's name."""
    return solver.config.snapshot_prefix or solver.net.name


#: the exit status of train.py for each way a run can end (2 is a usage or config error)
EXIT_CODES = {"done": 0, "diverged": 3, "SIGINT": 130, "SIGTERM": 143, "interrupted": 130}


@contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """Within: a SIGTERM that comes outside the training loop (while the net is built and the
    data loaded, or while the curves are drawn after the last snapshot), which would end the
    process at once, instead raises SystemExit with its exit status, so the lock and temporary
    files are removed on the way out. In the loop, the solver's own handler stops it cleanly
    (Solver.solve). Only in the main thread; the old handler is put back at the end."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def unwind(signum, frame):
        sys.stderr.write("stopped by SIGTERM outside the training loop\n")
        raise SystemExit(EXIT_CODES["SIGTERM"])

    previous = signal.signal(signal.SIGTERM, unwind)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def exit_code(result: dict[str, Any]) -> int:
    """train.py's exit status for a run's result (EXIT_CODES)."""
    if result.get("diverged"):
        return EXIT_CODES["diverged"]
    if result["interrupted"]:
        return EXIT_CODES[result.get("signal") or "interrupted"]
    return EXIT_CODES["done"]


def _setup_lines(net: Net, solver: Solver, data: Any, processes: int) -> list[str]:
    lines = [f"net {net.name!r}: {sum(p.size for p in net.params.values())} parameters; "
             f"solver {solver.config.type}, base_lr {solver.config.base_lr}, "
             f"max_iter {solver.config.max_iter}", *data.describe()]
    if processes > 1:
        lines.append(f"data-parallel over {processes} processes (MPI): batch sizes are per "
                     f"process, the global train batch is {processes} x "
                     f"{data.train.batch_size}" + (f"; parameters compared every "
                                                   f"{solver.check_every} iterations"
                                                   if solver.check_every else ""))
    return lines


def _weights_line(path: str | Path, report: dict[str, list[str]]) -> str:
    line = f"weights from {Path(path).resolve()}: {len(report['loaded'])} arrays"
    if report["missing"]:
        line += f"; kept the initial values of {listing(report['missing'])}"
    if report["ignored"]:
        line += f"; ignored {listing(report['ignored'])} (not in the net)"
    return line


def outcome(result: dict[str, Any]) -> list[str]:
    """How a run ended, as the lines train.py prints last."""
    if result.get("diverged"):
        status = "diverged"
    else:
        status = "stopped by SIGTERM" if result.get("signal") == "SIGTERM" else \
            "interrupted" if result["interrupted"] else "done"
    at = result["diverged"]["iter"] if result.get("diverged") else result["iter"]
    lines = [f"{status} at iteration {at}: train loss {result['loss']:.6g}"
             if result["loss"] is not None else f"{status} at iteration {at}"]
    if result["test"]:
        when = "final test" if result["test_iter"] == result["iter"] else \
            f"last test (iteration {result['test_iter']})"
        lines.append(f"{when}: " + ", ".join(f"{k} = {figure_text(v)}"
                                             for k, v in result["test"].items()))
    if result["snapshot"]:
        lines.append(f"snapshot: {result['snapshot'][0]} and {result['snapshot'][1].name}")
    lines.append(f"metrics: {result['metrics']}"
                 + (f", curves: {result['curves']}" if result["curves"] else ""))
    return lines
