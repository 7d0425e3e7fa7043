"""Per-gate timing of a Net, the way `caffe time` reports it.

`time_net(net, feed, iterations)` runs forward and backward `iterations` times (after one untimed
warm-up pass) and measures each gate through the runner's hook, which is called right after every
step: the time between two hook calls is the cost of that step, the runner's own bookkeeping for
it included (the first gate of each pass also carries the Net's few microseconds of set-up:
casting the feed, seeding the gradients). The totals are the wall time of whole `net.forward` /
`net.backward` calls.

`random_feed(net, batch_size)` makes inputs of the declared shapes: floats from a standard normal,
integer inputs (declared `dtype: int`, or labels: a lower-rank companion input of a loss gate)
drawn from 0 .. C-1, C the class count the net gives (`Net.integer_inputs`; 2 where none).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from ..core.hooks import GateClock
from ..core.net import Net
from ..core.text import table

DEFAULT_BATCH_SIZE = 32


@dataclass
class GateTime:
    """Mean milliseconds per call of one gate."""
    name: str
    type: str
    forward_ms: float
    backward_ms: float


@dataclass
class Timing:
    """The result of `time_net`: per gate in execution order, then the totals (mean ms)."""
    gates: list[GateTime]
    forward_ms: float
    backward_ms: float
    iterations: int
    batch_size: int | None = None
    phase: str = "train"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def forward_backward_ms(self) -> float:
        return self.forward_ms + self.backward_ms

    def as_dict(self) -> dict[str, Any]:
        return {"iterations": self.iterations, "batch_size": self.batch_size, "phase": self.phase,
                **self.extra,
                "gates": [vars(g) for g in self.gates],
                "forward_ms": self.forward_ms, "backward_ms": self.backward_ms,
                "forward_backward_ms": self.forward_backward_ms}

    def table(self) -> str:
        """caffe time's report as a table: each gate's mean forward and backward, then totals."""
        rows = [(g.name, g.type, f"{g.forward_ms:.4f}", f"{g.backward_ms:.4f}") for g in self.gates]
        out = table(("gate", "type", "forward ms", "backward ms"), rows, right=(2, 3))
        out += ["",
                f"Average Forward pass:          {self.forward_ms:10.4f} ms",
                f"Average Backward pass:         {self.backward_ms:10.4f} ms",
                f"Average Forward-Backward:      {self.forward_backward_ms:10.4f} ms",
                f"({self.iterations} iterations, phase {self.phase}"
                + (f", batch size {self.batch_size}" if self.batch_size is not None else "") + ")"]
        return "\n".join(out)


def default_batch_size(net: Net) -> int:
    """The data section's train batch size when the config has one, else DEFAULT_BATCH_SIZE."""
    data = net.spec.data
    return data.train.batch_size if data is not None and data.train is not None \
        else DEFAULT_BATCH_SIZE


def has_batch_dimension(net: Net) -> bool:
    """Whether some input of the current phase leaves a dimension open (to the batch size)."""
    return any(None in net.inputs[n].shape for n in net.sources() if n in net.inputs)


def random_feed(net: Net, batch_size: int | None = None,
                rng: np.random.Generator | None = None) -> dict[str, np.ndarray]:
    """Random values for every input of the current phase, open dimensions set to `batch_size`
    (default: `default_batch_size(net)`)."""
    rng = rng or np.random.default_rng(0)
    batch = batch_size or default_batch_size(net)
    integers = {name: count or 2 for name, count in net.integer_inputs().items()}
    feed = {}
    for name in [n for n in net.sources() if n in net.inputs]:
        shape = tuple(batch if d is None else d for d in net.inputs[name].shape)
        if name in integers:
            feed[name] = rng.integers(0, integers[name], size=shape)
        else:
            feed[name] = rng.standard_normal(shape).astype(net.dtype)
    return feed


def time_net(net: Net, feed: Mapping[str, Any], iterations: int = 50,
             batch_size: int | None = None) -> Timing:
    """Time `iterations` forward+backward passes of `net` on `feed`, per gate and in total."""
    if iterations < 1:
        raise ValueError(f"iterations must be at least 1, got {iterations}")
    steps = net.runner.steps
    clock = GateClock(steps)
    net.forward(feed)
    net.backward()
    forward_total = backward_total = 0.0
    for _ in range(iterations):
        start = clock.start()
        net.forward(feed, hook=clock)
        middle = clock.start()
        net.backward(hook=clock)
        end = time.perf_counter()
        forward_total += middle - start
        backward_total += end - middle
    scale = 1000.0 / iterations
    gates = [GateTime(step.spec.name, step.spec.type, clock.spent["forward"][i] * scale,
                      clock.spent["backward"][i] * scale) for i, step in enumerate(steps)]
    return Timing(gates, forward_total * scale, backward_total * scale, iterations, batch_size,
                  net.phase)
