"""The centred difference, the authority on every backward (the lecture's section 9).

The outputs are projected onto a random upstream gradient `dout`, so the objective is the scalar
`L = sum(out * dout)` whose gradient is exactly what one backward pass returns. Each element of
each input and parameter is moved by +h and by -h (and put back, even on error), and
`(L(x + h) - L(x - h)) / 2h` is compared with the analytic value:

    pass  when  |analytic - numeric| <= atol + rtol * max(|analytic|, |numeric|)

`CheckOptions` holds how a check runs (h, tolerances, sampling, directions, the kink margin);
`check_elements` and `check_direction` are the two loops every check uses.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from .report import ElementCheck, GradcheckReport, GradcheckWarning, InputCheck

DEFAULT_H = 1e-4
DEFAULT_RTOL = 1e-5
DEFAULT_ATOL = 1e-6
KINK_MARGIN = 2.0        # skip an element when it lies within KINK_MARGIN * h of a kink


@dataclass(frozen=True)
class CheckOptions:
    """How a check runs. h, rtol, atol: None takes the gate class's `check_tol`, then the
    defaults (1e-4, 1e-5, 1e-6). sample: check at most this many random elements per input.
    directional: one random direction per input instead of each element. kink_margin: skip
    elements within kink_margin * h of a declared kink."""
    h: float | None = None
    rtol: float | None = None
    atol: float | None = None
    sample: int | None = None
    directional: bool = False
    seed: int = 0
    kink_margin: float = KINK_MARGIN

    def tolerance(self, declared: Mapping[str, float]) -> "Tolerance":
        """The call's values, else the `declared` ones (a gate's check_tol), else defaults."""
        return Tolerance(self.h if self.h is not None else declared.get("h", DEFAULT_H),
                         self.rtol if self.rtol is not None else declared.get("rtol", DEFAULT_RTOL),
                         self.atol if self.atol is not None else declared.get("atol", DEFAULT_ATOL))

    @property
    def mode(self) -> str:
        if self.directional:
            return "one random direction per input"
        return f"at most {self.sample} random elements per input" if self.sample \
            else "every element"


Objective = Callable[[], "tuple[float, str | None]"]   # L, and why to skip (a kink crossed)


class Tolerance:
    """The step h and the pass rule |analytic - numeric| <= atol + rtol * max(|a|, |n|)."""

    def __init__(self, h: float, rtol: float, atol: float):
        self.h, self.rtol, self.atol = h, rtol, atol

    def compare(self, name: str, index, value, numeric: float, analytic: float) -> ElementCheck:
        numeric, analytic = float(numeric), float(analytic)
        err = abs(numeric - analytic)
        if not np.isfinite(err):                 # a NaN or Inf on either side never passes
            return ElementCheck(name, index, value, numeric, analytic, float("inf"),
                                float("inf"), self.atol)
        scale = max(abs(numeric), abs(analytic))
        return ElementCheck(name, index, value, numeric, analytic, err,
                            err / scale if scale > 0 else 0.0, self.atol + self.rtol * scale)


def chosen_indices(entry: InputCheck, array: np.ndarray, sample: int | None,
                    rng: np.random.Generator) -> Iterable[tuple]:
    """Every index of `array`, or `sample` of them drawn at random (noted on the entry)."""
    if sample is None or sample >= array.size:
        return np.ndindex(array.shape)
    entry.note = entry.note or f"{sample} random of {array.size} elements"
    flat = np.sort(rng.choice(array.size, sample, replace=False))
    return (tuple(int(k) for k in np.unravel_index(int(i), array.shape)) for i in flat)


def check_elements(entry: InputCheck, array: np.ndarray, analytic: np.ndarray,
                    objective: Objective, tol: Tolerance, indices: Iterable[tuple],
                    kink_reason: Callable[[tuple], str | None] | None) -> None:
    """Centred differences element by element; each element is restored even on error."""
    for index in indices:
        reason = kink_reason(index) if kink_reason else None
        if reason is None:
            original = array[index]
            try:
                array[index] = up = original + tol.h
                plus, crossed_up = objective()
                array[index] = down = original - tol.h
                minus, crossed_down = objective()
            finally:
                array[index] = original
            reason = crossed_up or crossed_down
        if reason is not None:
            entry.skip(reason)
            continue
        numeric = (plus - minus) / (float(up) - float(down))
        entry.add(tol.compare(entry.name, index, float(original), numeric, analytic[index]))


def check_direction(entry: InputCheck, array: np.ndarray, analytic: np.ndarray,
                     objective: Objective, tol: Tolerance, rng: np.random.Generator,
                     frozen: np.ndarray | None, tries: int = 3) -> None:
    """One scalar per input: the derivative along a random unit direction (kinked elements are
    held still), compared with analytic . direction."""
    base = array.copy()
    reason = "every element is at a kink"
    for _ in range(tries):
        direction = rng.standard_normal(array.shape)
        if frozen is not None:
            direction[frozen] = 0.0
        norm = np.sqrt(np.sum(direction * direction))
        if norm == 0:
            break
        direction /= norm
        try:
            array[...] = base + tol.h * direction
            plus, crossed_up = objective()
            array[...] = base - tol.h * direction
            minus, crossed_down = objective()
        finally:
            array[...] = base
        reason = crossed_up or crossed_down
        if reason is None:
            numeric = (plus - minus) / (2 * tol.h)
            entry.add(tol.compare(entry.name, None, None, numeric, np.sum(analytic * direction)))
            if frozen is not None and frozen.any():
                entry.note = f"{int(frozen.sum())} element(s) at kinks held still"
            return
    entry.skip(reason)


def objective_value(outs: Sequence[np.ndarray], douts: Sequence[np.ndarray | None]) -> float:
    """L = sum over outputs of sum(out * dout)."""
    return float(sum(np.sum(o * d) for o, d in zip(outs, douts) if d is not None))


def is_float(array: np.ndarray) -> bool:
    return array.dtype.kind == "f"


def as_float64(value: Any, name: str, report: GradcheckReport) -> np.ndarray:
    """A float64 copy of a float value (a float32 one noted as a warning: a centred difference
    in float32 is dominated by rounding); other values are copied as they are."""
    array = np.asarray(value)
    if array.dtype.kind == "f":
        if array.dtype.itemsize < 8:
            message = (f"{name} is {array.dtype.name}: checked as float64 (a centred difference "
                       f"in {array.dtype.name} is dominated by rounding)")
            report.warnings.append(message)
            warnings.warn(message, GradcheckWarning, stacklevel=4)
        return np.array(array, dtype=np.float64)
    return np.array(array, copy=True)
