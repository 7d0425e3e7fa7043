"""scripts/bench.py's command line: options of the other mode, and counts below their minimum,
are refused in one line."""
from __future__ import annotations

import subprocess
import sys

from tests.helpers import ROOT


def test_options_of_the_other_mode_are_refused_in_one_line():
    for argv in (["--rounds", "3"], ["--mpi", "--profile"], ["--mpi", "--threads", "2"],
                 ["--mpi", "--micrograd-python", sys.executable], ["--repeats", "0"]):
        done = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench.py"), *argv],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and done.stderr.count("\n") == 1, (argv, done.stderr)
