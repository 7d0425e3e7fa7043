"""Starting MPI jobs for the tests and benchmarks: the mpirun command line Open MPI needs here,
and why a job cannot run (no mpirun, no mpi4py)."""
from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys


@functools.lru_cache(maxsize=None)
def _open_mpi(mpirun: str) -> bool:
    try:
        done = subprocess.run([mpirun, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "Open MPI" in done.stdout + done.stderr


def mpirun_command(processes: int, *command: str) -> list[str]:
    """`mpirun -np N command...`, with the options Open MPI needs to run as root and to start
    more processes than the machine has cores (--allow-run-as-root, --oversubscribe)."""
    mpirun = shutil.which("mpirun") or "mpirun"
    options = []
    if _open_mpi(mpirun):
        options = ["--oversubscribe"] + (["--allow-run-as-root"] if os.geteuid() == 0 else [])
    return [mpirun, *options, "-np", str(processes), *command]


def mpi_problem(python: str = sys.executable) -> str | None:
    """Why `mpirun -np 2 python ...` cannot run here (None when it can): no mpirun on the PATH,
    or mpi4py not importable (or its MPI library not found) by `python`."""
    if shutil.which("mpirun") is None:
        return "mpirun not found (Debian: apt-get install openmpi-bin libopenmpi-dev)"
    try:
        done = subprocess.run([python, "-c", "from mpi4py import MPI"], capture_output=True,
                              text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"cannot run {python}: {err}"
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        return f"mpi4py cannot be imported ({last}): pip install -e '.[mpi]'"
    return None
