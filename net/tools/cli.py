"""What the command-line scripts share: `--set` parsing, JSON output, and error reporting (one
line and exit status 2 for a user's mistake; under mpirun, the whole job ends, naming the rank).

Scripts in `scripts/` stay thin: they parse arguments, call into `net`, and print.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from typing import Any, Callable

import numpy as np

from ..core.runner import ContractError
from ..core.yaml import load_yaml
from ..errors import ConfigError, GateworkError, NumericalError
from ..train.distributed import launched_rank, launched_size

EXIT_USAGE = 2
EXIT_DIVERGED = 3          # a NaN or Inf stopped training (train.py's exit statuses)


def parse_assignments(items: list[str]) -> dict[str, Any]:
    """`["x=1", "W=[[1,2]]"]` -> {"x": 1, "W": [[1, 2]]}; values are read as YAML (safely)."""
    values = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise GateworkError(f"--set expects NAME=VALUE, got {item!r}")
        try:
            values[name] = load_yaml(text, f"--set {name}")
        except ConfigError:
            raise GateworkError(f"--set {name}: cannot read {text!r} as a number or a "
                                "list") from None
    return values


def jsonable(values: dict[str, Any]) -> dict[str, Any]:
    """Arrays become nested lists (None stays None) so `json.dumps` can print them."""
    return {k: None if v is None else np.asarray(v).tolist() for k, v in values.items()}


def format_values(values: dict[str, Any]) -> str:
    lines = []
    for name, value in values.items():
        if value is None:
            lines.append(f"  {name} = (no gradient)")
            continue
        text = np.array2string(np.asarray(value), precision=6, suppress_small=True)
        lines.append(f"  {name} = {text}" if "\n" not in text else
                     f"  {name} =\n" + "\n".join("    " + row for row in text.splitlines()))
    return "\n".join(lines)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error")


def guarded(main: Callable[[argparse.Namespace], int], args: argparse.Namespace,
            prefix: str = "") -> int:
    """Run `main(args)`; a user error prints one line (no traceback unless --debug), exit 2.
    `prefix` starts each such line (one process of an MPI job names its rank there). A reader
    that goes away (`| head`) ends the output quietly."""
    try:
        return main(args)
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)     # so the exit's flush fails silently too
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except NumericalError as err:                  # --debug-nan found a NaN: the run diverged
        if getattr(args, "debug", False):
            raise
        print(f"{prefix}error: {err}", file=sys.stderr)
        return EXIT_DIVERGED
    except (GateworkError, ContractError, KeyError, ValueError, OSError) as err:
        if getattr(args, "debug", False):
            raise
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"{prefix}error: {message}", file=sys.stderr)
        for note in getattr(err, "__notes__", ()):   # the runner's "in the forward pass of ..."
            print(f"{prefix}  {note}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{prefix}interrupted", file=sys.stderr)
        return 130


def dump_json(payload: dict) -> str:
    return json.dumps(payload, indent=None)


def abort_job(code: int) -> None:
    """End every process of the MPI job (MPI_Abort) when MPI is running; else do nothing."""
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is not None and mpi.Is_initialized() and not mpi.Is_finalized():
        sys.stdout.flush()
        sys.stderr.flush()
        mpi.COMM_WORLD.Abort(code)


def guarded_job(main: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """`guarded` for a script that may be one process of an MPI job. With several
    processes, an error here (a user error: one line; else a traceback), or Ctrl-C beyond the
    agreed stop, is printed as "rank R of N: ..." and ends the whole job: the other processes
    would otherwise wait forever in their next collective."""
    size = launched_size()
    if size <= 1:
        return guarded(main, args)
    prefix = f"rank {launched_rank()} of {size}: "
    failed = []

    def noting_failure(arguments: argparse.Namespace) -> int:
        try:
            return main(arguments)
        except BaseException:
            failed.append(True)
            raise

    try:
        code = guarded(noting_failure, args, prefix)
    except BaseException as err:
        frames = err.__traceback__                  # from main down: skip the wrappers above
        while frames is not None and frames.tb_frame.f_code in (
                guarded_job.__code__, guarded.__code__, noting_failure.__code__):
            frames = frames.tb_next
        text = "".join(traceback.format_exception(type(err), err, frames))
        print(f"{prefix}error:\n{text}", file=sys.stderr, end="")
        code = 1
    if failed:
        abort_job(code or 1)
    return code
