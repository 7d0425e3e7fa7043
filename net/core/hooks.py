"""Runner hooks: what watches the gates run without changing them.

A hook is called right after every step of a pass, `hook(step, direction, values)`, with the
step's outputs (forward) or the gradients it returned (backward).
- `finite_check`: with ``debug: true`` in the config (or ``net.debug = True``) the Net runs it
  after every gate and raises NumericalError naming the gate, the blob and the direction at the
  first NaN or Inf.
- `BlobStats`: mean |x| and L2 norm of every output and gradient (Caffe's debug_info).
- `GateClock`: the time each step took (the time between two hook calls), as `caffe time`.
"""
from __future__ import annotations

import time
from typing import Iterable

import numpy as np

from ..errors import NumericalError
from .runner import Hook, Step


def _bad(value) -> int:
    array = np.asarray(value)
    if array.dtype.kind not in "fc":
        return 0
    return int(array.size - np.count_nonzero(np.isfinite(array)))


def check_feed(feed: dict) -> None:
    """Raise NumericalError if a fed input already holds NaN or Inf."""
    for name, value in feed.items():
        bad = _bad(value)
        if bad:
            raise NumericalError(f"input {name!r} holds {bad} NaN/Inf value(s) of "
                                 f"{np.size(value)} before any gate ran", blob=name,
                                 direction="forward")


def finite_check(file: str | None = None) -> Hook:
    """A runner hook raising NumericalError at the first non-finite output or gradient."""
    def hook(step: Step, direction: str, values: tuple) -> None:
        names: Iterable[str] = step.tops if direction == "forward" else step.inputs
        for name, value in zip(names, values):
            if value is None:
                continue
            bad = _bad(value)
            if bad:
                kind = "output" if direction == "forward" else "gradient for"
                raise NumericalError(
                    f"{direction} pass: {step.where(file)} wrote NaN/Inf to its {kind} "
                    f"{name!r} ({bad} of {np.size(value)} values)",
                    gate=step.spec.name, blob=name, direction=direction)
    return hook


def chain(*hooks: Hook | None) -> Hook | None:
    """One hook calling each given hook in turn (None when there is none)."""
    active = [h for h in hooks if h is not None]
    if len(active) <= 1:
        return active[0] if active else None

    def hook(step: Step, direction: str, values: tuple) -> None:
        for h in active:
            h(step, direction, values)
    return hook


def blob_stats(values: dict[str, np.ndarray | None]) -> dict[str, dict[str, float]]:
    """Per blob: the mean absolute value and the L2 norm (Caffe's debug_info, named plainly)."""
    stats = {}
    for name, value in values.items():
        if value is None or np.asarray(value).dtype.kind != "f":
            continue
        array = np.asarray(value, dtype=np.float64)
        stats[name] = {"mean_abs": float(np.mean(np.abs(array))) if array.size else 0.0,
                       "l2_norm": float(np.sqrt(np.sum(array * array)))}
    return stats


class BlobStats:
    """A hook recording each output's and gradient's mean |x| and L2 norm as display lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, step: Step, direction: str, values: tuple) -> None:
        names = step.tops if direction == "forward" else step.inputs
        what = "output" if direction == "forward" else "gradient of"
        for name, s in blob_stats(dict(zip(names, values))).items():
            self.lines.append(f"[{direction}] {step.spec.name}: {what} {name}: "
                              f"mean |x| = {s['mean_abs']:.4g}, L2 norm = {s['l2_norm']:.4g}")


class GateClock:
    """A hook adding up, per step and direction, the seconds since the previous hook call (or
    since `start()`): the cost of each gate, the runner's bookkeeping for it included."""

    def __init__(self, steps: list[Step]) -> None:
        self.steps = steps
        self._index = {id(step): i for i, step in enumerate(steps)}
        self.spent = {"forward": [0.0] * len(steps), "backward": [0.0] * len(steps)}
        self._last = 0.0

    def start(self) -> float:
        """Mark the start of a pass; returns the time."""
        self._last = time.perf_counter()
        return self._last

    def reset(self) -> None:
        for totals in self.spent.values():
            totals[:] = [0.0] * len(totals)

    def __call__(self, step: Step, direction: str, values: tuple) -> None:
        now = time.perf_counter()
        self.spent[direction][self._index[id(step)]] += now - self._last
        self._last = now
