"""Per-gate timing of a Net, the way `caffe time` reports it.

`time_net(net, feed, iterations)` runs forward and backward `iterations` times (after one untimed
warm-up pass) and measures each gate through the runner's hook, which is called right after every
step: the time between two hook calls is the cost of that step, the runner's own bookkeeping for
it included (the first gate of each pass also carries the Net's few microseconds of set-up:
casting the feed, seeding the gradients). The totals are the wall time of whole `net.forward` /
`net.backward` calls.

`random_feed(net, batch_size)` makes inputs of the declared shapes: floats from a standard normal,
integer inputs (declared `dtype: int`, or labels: a lower-rank companion input of a loss gate)
drawn from 0 .. C-1, C read from the shape the net inferred for the loss's first input.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from .net import Net

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
        header = ("gate", "type", "forward ms", "backward ms")
        widths = [max(len(r[i]) for r in rows + [header]) for i in range(4)]
        line = lambda r: "  ".join(c.rjust(w) if i >= 2 else c.ljust(w)  # noqa: E731
                                   for i, (c, w) in enumerate(zip(r, widths))).rstrip()
        out = [line(header), "  ".join("-" * w for w in widths)] + [line(r) for r in rows]
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
    train = data.get("train") if isinstance(data, dict) else None
    size = train.get("batch_size") if isinstance(train, dict) else None
    return size if isinstance(size, int) and not isinstance(size, bool) and size > 0 \
        else DEFAULT_BATCH_SIZE


def has_batch_dimension(net: Net) -> bool:
    """Whether some input of the current phase leaves a dimension open (to the batch size)."""
    return any(None in net.inputs[n].shape for n in net.sources() if n in net.inputs)


def integer_inputs(net: Net) -> dict[str, int]:
    """Inputs that take integers, each with the number of values (classes) it ranges over."""
    shapes = net.shapes
    result = {}
    for step in net.runner.steps:
        bottoms = step.spec.bottom
        for index, name in enumerate(bottoms):
            if name not in net.inputs or name in result:
                continue
            declared = net.inputs[name].dtype == "int"
            label_like = (index > 0 and step.spec.cls.loss_gate() and net.inputs[name].dtype is None
                          and len(net.inputs[name].shape) < len(shapes.get(bottoms[0], ())))
            if declared or label_like:
                first = shapes.get(bottoms[0], ()) if index > 0 else ()
                classes = first[1] if len(first) > 1 and isinstance(first[1], int) else 2
                result[name] = max(classes, 1)
    return result


def random_feed(net: Net, batch_size: int | None = None,
                rng: np.random.Generator | None = None) -> dict[str, np.ndarray]:
    """Random values for every input of the current phase, open dimensions set to `batch_size`
    (default: `default_batch_size(net)`)."""
    rng = rng or np.random.default_rng(0)
    batch = batch_size or default_batch_size(net)
    integers = integer_inputs(net)
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
    index = {id(step): i for i, step in enumerate(steps)}
    spent = {"forward": [0.0] * len(steps), "backward": [0.0] * len(steps)}
    clock = time.perf_counter
    last = [0.0]

    def hook(step, direction: str, outputs: tuple) -> None:
        now = clock()
        spent[direction][index[id(step)]] += now - last[0]
        last[0] = now

    net.forward(feed)
    net.backward()
    for key in spent:
        spent[key] = [0.0] * len(steps)
    forward_total = backward_total = 0.0
    for _ in range(iterations):
        start = last[0] = clock()
        net.forward(feed, hook=hook)
        middle = last[0] = clock()
        net.backward(hook=hook)
        end = clock()
        forward_total += middle - start
        backward_total += end - middle
    scale = 1000.0 / iterations
    gates = [GateTime(step.spec.name, step.spec.type, spent["forward"][i] * scale,
                      spent["backward"][i] * scale) for i, step in enumerate(steps)]
    return Timing(gates, forward_total * scale, backward_total * scale, iterations, batch_size,
                  net.phase)
