"""The cost the lecture describes (section 6): one backward pass against the numeric gradient,
for InnerProduct/ReLU stacks of growing width. Backprop stays within a small factor of the
forward pass; the numeric gradient grows with the number of parameters. `scripts/cost.py`
prints the table.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..core.net import Net
from ..core.text import table
from ..gradcheck.numeric import DEFAULT_H, objective_value


def mlp_config(width: int, depth: int, dtype: str = "float64") -> dict:
    """A stack of `depth` InnerProduct+ReLU layers of `width` units, then a last InnerProduct."""
    gates, bottom = [], "x"
    for layer in range(depth):
        gates += [{"name": f"fc{layer}", "type": "InnerProduct", "bottom": bottom,
                   "top": f"h{layer}", "num_output": width},
                  {"name": f"relu{layer}", "type": "ReLU", "bottom": f"h{layer}",
                   "top": f"a{layer}"}]
        bottom = f"a{layer}"
    gates.append({"name": "out", "type": "InnerProduct", "bottom": bottom, "top": "y",
                  "num_output": width})
    return {"name": f"mlp{width}x{depth}", "dtype": dtype,
            "inputs": {"x": {"shape": [None, width]}}, "gates": gates}


@dataclass
class CostRow:
    """Timings of one net: forward, forward+backward, and the numeric gradient over all
    parameters (measured on `timed` of the `params` elements and scaled up when sampled)."""
    name: str
    params: int
    forward_s: float
    forward_backward_s: float
    numeric_s: float
    timed: int

    @property
    def backward_ratio(self) -> float:
        return self.forward_backward_s / self.forward_s

    @property
    def numeric_ratio(self) -> float:
        return self.numeric_s / self.forward_backward_s


def _best_time(fn: Callable[[], Any], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def measure_cost(net: Net, feed: Mapping[str, Any], repeats: int = 5,
                 max_timed: int | None = 2000, seed: int = 0) -> CostRow:
    """Time one forward, one forward+backward, and the numeric gradient of every parameter
    element (two forward passes each). Beyond `max_timed` elements the numeric time is measured
    on a random sample of that many and scaled to all of them."""
    rng = np.random.default_rng(seed)
    outs = net.forward(feed)
    douts = {n: rng.standard_normal(o.shape) for n, o in outs.items()}
    forward_s = _best_time(lambda: net.forward(feed), repeats)
    forward_backward_s = _best_time(lambda: (net.forward(feed), net.backward(douts)), repeats)
    elements = [(name, index) for name, array in net.params.items()
                for index in np.ndindex(array.shape)]
    total = len(elements)
    if max_timed is not None and total > max_timed:
        elements = [elements[i] for i in rng.choice(total, max_timed, replace=False)]
    h = DEFAULT_H
    numeric = np.empty(len(elements))
    start = time.perf_counter()
    for k, (name, index) in enumerate(elements):
        array = net.params[name]
        original = array[index]
        try:
            array[index] = original + h
            plus = objective_value(list(net.forward(feed).values()), list(douts.values()))
            array[index] = original - h
            minus = objective_value(list(net.forward(feed).values()), list(douts.values()))
        finally:
            array[index] = original
        numeric[k] = (plus - minus) / (2 * h)
    numeric_s = (time.perf_counter() - start) * total / max(len(elements), 1)
    return CostRow(net.name, total, forward_s, forward_backward_s, numeric_s, len(elements))


def cost_rows(widths: Sequence[int] = (4, 8, 16, 32, 64, 128), depth: int = 2, batch: int = 16,
              repeats: int = 5, max_timed: int | None = 2000, seed: int = 0) -> list[CostRow]:
    """`measure_cost` on InnerProduct/ReLU stacks of growing width."""
    rows = []
    for width in widths:
        net = Net.from_config(mlp_config(width, depth), seed=seed)
        feed = {"x": np.random.default_rng(seed).standard_normal((batch, width))}
        rows.append(measure_cost(net, feed, repeats, max_timed, seed))
    return rows


def format_cost(rows: Sequence[CostRow]) -> str:
    lines = table(
        ["net", "params", "forward", "fwd+bwd", "fwd+bwd / fwd", "numeric gradient",
         "numeric / (fwd+bwd)"],
        [[r.name, r.params, f"{r.forward_s * 1e3:.3f} ms", f"{r.forward_backward_s * 1e3:.3f} ms",
          f"{r.backward_ratio:.1f}x",
          f"{r.numeric_s:.3g} s" + (" (est.)" if r.timed < r.params else ""),
          f"{r.numeric_ratio:,.0f}x"] for r in rows])
    return "\n".join(lines)
