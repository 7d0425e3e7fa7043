"""A pass-through gate that fails on one process of an MPI job, for tests/train/test_distributed.py:
the other processes are then waiting in a collective, and the job must still end at once."""
from __future__ import annotations

from gates import Gate, Option, register_gate
from net.train.distributed import launched_rank
from net.errors import DataError


@register_gate
class FailOnRankGate(Gate):
    """out = x, except that the `at`-th forward call on rank `rank` raises (`error`: runtime, a
    RuntimeError as from a bug; data, a DataError as from a bad file).

    Inputs: x (any shape). Returns: out, the shape of x."""

    num_bottoms = 1
    options = {"rank": Option(int, 1, "the rank that fails"),
               "at": Option(int, 1, "which forward call fails (1: the first)"),
               "error": Option(str, "runtime", "runtime: a RuntimeError; data: a DataError",
                               choices=("runtime", "data"))}

    def __init__(self, **options):
        super().__init__(**options)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        if launched_rank() == self.rank and self.calls == self.at:
            message = f"injected failure at forward call {self.calls}"
            raise DataError(message) if self.error == "data" else RuntimeError(message)
        return x

    def backward(self, dout):
        return (dout,)
