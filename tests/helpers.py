"""What tests in several files share: the repository's paths, a gate by type name, the gate
tests' two gradient checks (`centred_difference_check`, written out here independently of
net.gradcheck, and `numeric_check`, through net.gradcheck), scripts/train.py in a subprocess, and
the marks that skip a test where scikit-learn, matplotlib or MPI is missing, and `fifo`, a named
pipe that cannot hang a test.

    from tests.helpers import CONFIGS, ROOT

tests/ and each folder in it are packages (an __init__.py each), so test files in different
folders may share a name (tests/core/test_net.py, tests/gradcheck/test_net.py); the fixtures are
in the conftest.py files.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gates import gate_class
from net.train import distributed
from net.tools import launch
from net.gradcheck import check_gate

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"
#: CI runs the fuzzers with more examples (.ci/run sets GATEWORK_FUZZ_SCALE); locally, as written
FUZZ_SCALE = max(1, int(os.environ.get("GATEWORK_FUZZ_SCALE", "1") or 1))


def examples(count: int) -> int:
    """A fuzzer's example count: `count`, times FUZZ_SCALE."""
    return count * FUZZ_SCALE

needs_sklearn = pytest.mark.skipif(importlib.util.find_spec("sklearn") is None,
                                   reason="the built-in datasets need scikit-learn "
                                          "(pip install -e '.[train]')")
needs_matplotlib = pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None,
                                      reason="curves.png needs matplotlib "
                                             "(pip install -e '.[train]')")
MPI_PROBLEM = launch.mpi_problem()
needs_mpi = pytest.mark.skipif(MPI_PROBLEM is not None, reason=str(MPI_PROBLEM))


def make(type_name, **options):
    return gate_class(type_name)(**options)


def centred_difference_check(gate, inputs, wrt=(0,), h=1e-6, reset=None):
    """Compare gate.backward with centred differences of L = sum(out * dout)."""
    rng = np.random.default_rng(1)
    inputs = [np.array(x, dtype=np.float64) if np.asarray(x).dtype.kind == "f" else x
              for x in inputs]
    out = gate.forward(*inputs)
    dout = rng.standard_normal(np.shape(out))
    analytic = gate.backward(dout if np.ndim(out) else np.asarray(dout))

    def objective():
        if reset:
            reset()
        return float(np.sum(gate.forward(*inputs) * dout))

    for index in wrt:
        x = inputs[index]
        numeric = np.zeros_like(x)
        for i in np.ndindex(x.shape):
            keep = x[i]
            x[i] = keep + h
            plus = objective()
            x[i] = keep - h
            minus = objective()
            x[i] = keep
            numeric[i] = (plus - minus) / (2 * h)
        np.testing.assert_allclose(analytic[index], numeric, rtol=1e-5, atol=1e-7)


def numeric_check(gate, bottoms, **tolerance):
    """Every bottom and parameter against centred differences (net.gradcheck, float64);
    parameters drawn from the gate's fillers."""
    report = check_gate(gate, bottoms, **tolerance)
    assert report.ok and report.checked, str(report)


def train(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "scripts/train.py", *args, "--no-progress"], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def fifo(path: Path, release_after: float = 3.0, give_up_after: float = 30.0) -> Path:
    """A FIFO at `path`. A reader that (wrongly) opens it and still waits `release_after`
    seconds later is released by opening and closing the other end, again for each later open
    until `give_up_after` seconds, so the test fails instead of hanging."""
    import errno
    import threading
    import time

    os.mkfifo(path)

    def release():
        time.sleep(release_after)
        deadline = time.monotonic() + give_up_after
        while time.monotonic() < deadline:
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
            except OSError as err:
                if err.errno != errno.ENXIO:           # the FIFO is gone: the test is over
                    return
            time.sleep(0.2)                            # ENXIO: nobody is reading (yet)
    threading.Thread(target=release, daemon=True).start()
    return path
