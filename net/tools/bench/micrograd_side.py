"""micrograd's side of the scalar example, run in its own process by `common.Worker` (by path,
with the interpreter `--micrograd-python` names: it needs micrograd, not numpy nor Gatework).

The lecture's f = (x + y) max(y, z) at x = 1, y = 2, z = 0, forward and backward, as a
micrograd user writes it. micrograd has no max, so max(y, z) = relu(y - z) + z, which has the
same value and, away from the tie y = z, the same gradients. micrograd builds its graph while it
computes, so each call builds it anew; Gatework's net is built once, before the timing.

One JSON request per line on stdin, one JSON line back on stdout:
    {"cmd": "info"}                    -> {"version": micrograd's, "gradients": [df/dx, df/dy,
                                           df/dz]} (the bench checks they are Gatework's)
    {"cmd": "time", "iterations": k}   -> {"seconds": per call, over k calls}
"""
from __future__ import annotations

import json
import sys
import time
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from micrograd import engine
from micrograd.engine import Value


def example() -> tuple[float, float, float]:
    x, y, z = Value(1.0), Value(2.0), Value(0.0)
    f = (x + y) * ((y - z).relu() + z)
    f.backward()
    return x.grad, y.grad, z.grad


def installed_version() -> str:
    """The version of the installed micrograd distribution if it is the one imported (not, say,
    a source tree earlier on the path), else "unknown"."""
    try:
        found = distribution("micrograd")
    except PackageNotFoundError:
        return "unknown"
    installed = Path(found.locate_file("micrograd/engine.py")).resolve()
    return found.version if installed == Path(engine.__file__).resolve() else "unknown"


def main() -> None:
    for line in sys.stdin:
        request = json.loads(line)
        if request["cmd"] == "info":
            answer = {"version": installed_version(), "gradients": list(example())}
        elif request["cmd"] == "time":
            k = request["iterations"]
            start = time.perf_counter()
            for _ in range(k):
                example()
            answer = {"seconds": (time.perf_counter() - start) / k}
        else:
            raise ValueError(f"unknown request {request!r}")
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
