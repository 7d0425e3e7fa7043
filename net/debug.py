"""Debugging numerical faults: stop at the first NaN or Inf, and per-blob statistics.

`finite_check` is a runner hook: with ``debug: true`` in the config (or ``net.debug = True``) the
Net runs it after every gate, forward and backward, and raises NumericalError naming the gate, the
blob and the direction at the first non-finite value.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from .errors import NumericalError
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
