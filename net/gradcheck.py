"""Numeric gradient checking: the centred difference as the authority on every backward.

    from net.gradcheck import check_gate, check_net
    print(check_gate("Multiply"))                 # a registered type, built from its check_options
    report = check_net(Net.from_yaml("configs/two_layer.yaml"))
    report.ok, report.worst_rel_err

Method (the lecture's section 9). The outputs are projected onto a random upstream gradient
`dout`, so the objective is the scalar `L = sum(out * dout)` whose gradient is exactly what one
backward pass returns. Each element of each input and parameter is moved by +h and by -h (and put
back, even on error), and `(L(x + h) - L(x - h)) / 2h` is compared with the analytic value:

    pass  when  |analytic - numeric| <= atol + rtol * max(|analytic|, |numeric|)

Elements within `kink_margin * h` of a point where a gate declares it is not differentiable
(`Gate.kinks`) are skipped, with the gate's `kink_note` as the reason. In a net, a perturbation is
skipped when it moves some gate's input at least half way to one of that gate's kinks.

Besides the numbers, the checker verifies the contract: one gradient per input, each of its
input's shape; backward run twice gives the same result; inputs and `dout` are left unchanged.

What lives elsewhere: the runner (`net.runner`) checks gradient counts and shapes on every
training step; this module only reports. `scripts/gradcheck.py` and `scripts/cost.py` print what
the functions here return.
"""
from __future__ import annotations

import dataclasses
import inspect
import time
import traceback
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from gates import Gate, build_gate, gate_class

from .fillers import fill
from .net import Net
from .runner import ContractError
from .timing import integer_inputs

DEFAULT_H = 1e-4
DEFAULT_RTOL = 1e-5
DEFAULT_ATOL = 1e-6
KINK_MARGIN = 2.0        # skip an element when it lies within KINK_MARGIN * h of a kink
SMALL_BATCH = 2          # the size given to an open (batch) dimension when inputs are drawn
WORST_KEPT = 3           # elements listed per input in a report
CONSTANT_FILLER_JITTER = 0.5


class GradcheckWarning(UserWarning):
    """The check runs, but its result is less trustworthy (float32 data, for instance)."""


class GradientCheckError(AssertionError):
    """Raised by ``check_gate``/``check_net`` with ``raise_on_failure=True``; carries the report."""

    def __init__(self, report: "GradcheckReport"):
        super().__init__(str(report))
        self.report = report


# -- the report ----------------------------------------------------------------------------------
@dataclass
class ElementCheck:
    """One comparison: an element (or, in directional mode, a random direction) of one input."""
    input: str
    index: tuple | None         # None: a random direction through the whole input
    value: float | None         # the input's value there (None for a direction)
    numeric: float
    analytic: float
    abs_err: float
    rel_err: float
    allowed: float              # atol + rtol * max(|analytic|, |numeric|)

    @property
    def ok(self) -> bool:
        return bool(self.abs_err <= self.allowed)

    @property
    def where(self) -> str:
        if self.index is None:
            return f"{self.input} along a random direction"
        if self.index == ():
            return self.input
        return f"{self.input}[{', '.join(map(str, self.index))}]"

    def line(self) -> str:
        value = "" if self.value is None else f" = {self.value:.6g}"
        return (f"{self.where}{value}:  numeric {self.numeric: .6e}  analytic {self.analytic: .6e}"
                f"  abs err {self.abs_err:.1e}  rel err {self.rel_err:.1e}")


@dataclass
class InputCheck:
    """What was checked of one input or parameter."""
    name: str
    shape: tuple
    kind: str = "input"                         # "input" or "parameter"
    checked: int = 0
    failed: int = 0
    skipped: int = 0
    skip_reasons: dict[str, int] = field(default_factory=dict)
    worst: list[ElementCheck] = field(default_factory=list)   # worst first, WORST_KEPT at most
    worst_rel_err: float = 0.0
    note: str = ""                              # why it was not checked, or how
    used_by: str = ""                           # in a net: the gates that read it

    def add(self, check: ElementCheck) -> None:
        self.checked += 1
        self.failed += not check.ok
        self.worst_rel_err = max(self.worst_rel_err, check.rel_err)
        self.worst.append(check)
        self.worst.sort(key=lambda c: (c.ok, -c.abs_err / max(c.allowed, 1e-300)))
        del self.worst[WORST_KEPT:]

    def skip(self, reason: str) -> None:
        self.skipped += 1
        self.skip_reasons[reason] = self.skip_reasons.get(reason, 0) + 1


@dataclass
class GradcheckReport:
    """The result of one check: ``ok``, the counts, the worst elements, and a readable ``str()``.

    status: "pass", "FAIL" (a wrong gradient, a broken contract or an error) or
    "not differentiable" (backward returned None for every input, as Accuracy does).
    """
    subject: str                                # "gate 'mul' (Multiply)" or "net 'affine'"
    type_name: str = ""
    name: str = ""
    h: float = DEFAULT_H
    rtol: float = DEFAULT_RTOL
    atol: float = DEFAULT_ATOL
    mode: str = "every element"
    inputs: list[InputCheck] = field(default_factory=list)
    contract: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    traceback: str | None = None
    differentiable: bool = True

    @property
    def checked(self) -> int:
        return sum(i.checked for i in self.inputs)

    @property
    def failed(self) -> int:
        return sum(i.failed for i in self.inputs)

    @property
    def skipped(self) -> int:
        return sum(i.skipped for i in self.inputs)

    @property
    def worst_rel_err(self) -> float:
        return max((i.worst_rel_err for i in self.inputs), default=0.0)

    @property
    def worst(self) -> list[ElementCheck]:
        """The worst elements of every input, worst first."""
        checks = [c for i in self.inputs for c in i.worst]
        return sorted(checks, key=lambda c: (c.ok, -c.abs_err / max(c.allowed, 1e-300)))

    @property
    def ok(self) -> bool:
        return not (self.failed or self.contract or self.error)

    @property
    def status(self) -> str:
        if not self.ok:
            return "FAIL"
        return "pass" if self.differentiable else "not differentiable"

    def raise_if_failed(self) -> "GradcheckReport":
        if not self.ok:
            raise GradientCheckError(self)
        return self

    def headline(self) -> str:
        if self.error:
            return f"{self.subject}: FAIL: {self.error}"
        if not self.differentiable and self.ok:
            return f"{self.subject}: not differentiable (backward returns no gradient); not checked"
        problems = []
        if self.failed:
            problems.append(f"{self.failed} of {self.checked} checked elements wrong")
        if self.contract:
            problems.append(f"{len(self.contract)} contract violation(s)")
        counts = (f"{self.checked} checked, {self.skipped} skipped, "
                  f"worst rel err {self.worst_rel_err:.1e}")
        return f"{self.subject}: {self.status}" + (f": {'; '.join(problems)}" if problems else "") \
            + f" ({counts})"

    def __str__(self) -> str:
        lines = [self.headline()]
        lines += [f"  warning: {w}" for w in self.warnings]
        if self.error and not self.inputs:
            return "\n".join(lines)
        lines.append(f"  h = {self.h:g}, {self.mode}; pass when |analytic - numeric| <= "
                     f"{self.atol:g} + {self.rtol:g} * max(|analytic|, |numeric|)")
        lines += [f"  contract: {c}" for c in self.contract]
        if self.inputs:
            lines += ["  " + row for row in _table(
                ["input", "kind", "shape", "checked", "skipped", "failed", "worst rel err", "note"],
                [[i.name, i.kind, _shape(i.shape), i.checked, i.skipped, i.failed,
                  f"{i.worst_rel_err:.1e}" if i.checked else "-",
                  "; ".join(filter(None, [i.note, i.used_by]))]
                 for i in self.inputs])]
        for entry in self.inputs:
            for reason, count in entry.skip_reasons.items():
                lines.append(f"  skipped {count} element(s) of {entry.name}: {reason}")
            if entry.failed:
                lines.append(f"  {entry.name}: {entry.failed} of {entry.checked} checked elements "
                             f"failed; worst first:")
                lines += [f"    {c.line()}" for c in entry.worst if not c.ok]
        return "\n".join(lines)


def _shape(shape: tuple) -> str:
    return "(" + ", ".join("N" if d is None else str(d) for d in shape) + \
        ("," if len(shape) == 1 else "") + ")"


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    cells = [header] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    out = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    out.insert(1, "  ".join("-" * w for w in widths))
    return out


def format_table(reports: Sequence[GradcheckReport]) -> str:
    """One row per report: gate, type, checked, skipped (kinks), worst relative error, result."""
    rows = [[r.name, r.type_name, r.checked, r.skipped,
             f"{r.worst_rel_err:.1e}" if r.checked else "-",
             r.status if not r.error else "FAIL (error)"] for r in reports]
    header = ["gate", "type", "checked", "skipped (kinks)", "worst rel err", "result"]
    return "\n".join(_table(header, rows))


# -- state a check must hold still and put back ------------------------------------------------
class _GateState:
    """A gate's random generator and buffers, reset before every forward pass so that a random
    gate (Dropout) draws the same mask at each evaluation, and put back after the check."""

    def __init__(self, gate: Gate):
        self.gate = gate
        rng = getattr(gate, "rng", None)
        self.rng_state = rng.bit_generator.state if isinstance(rng, np.random.Generator) else None
        self.buffers = {k: np.array(v, copy=True) for k, v in getattr(gate, "buffers", {}).items()}

    def reset(self) -> None:
        if self.rng_state is not None:
            self.gate.rng.bit_generator.state = self.rng_state
        for key, saved in self.buffers.items():
            live = self.gate.buffers.get(key)
            if isinstance(live, np.ndarray) and live.shape == saved.shape and live.flags.writeable:
                live[...] = saved
            else:
                self.gate.buffers[key] = saved.copy()


# -- the element loops -----------------------------------------------------------------------------
Objective = Callable[[], "tuple[float, str | None]"]   # L, and why to skip (a kink crossed)


class _Tolerance:
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


def _chosen_indices(entry: InputCheck, array: np.ndarray, sample: int | None,
                    rng: np.random.Generator) -> Iterable[tuple]:
    """Every index of `array`, or `sample` of them drawn at random (noted on the entry)."""
    if sample is None or sample >= array.size:
        return np.ndindex(array.shape)
    entry.note = entry.note or f"{sample} random of {array.size} elements"
    flat = np.sort(rng.choice(array.size, sample, replace=False))
    return (tuple(int(k) for k in np.unravel_index(int(i), array.shape)) for i in flat)


def _check_elements(entry: InputCheck, array: np.ndarray, analytic: np.ndarray,
                    objective: Objective, tol: _Tolerance, indices: Iterable[tuple],
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


def _check_direction(entry: InputCheck, array: np.ndarray, analytic: np.ndarray,
                     objective: Objective, tol: _Tolerance, rng: np.random.Generator,
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


# -- checking one gate -------------------------------------------------------------------------
def _make_gate(gate: Gate | type[Gate] | str, options: Mapping[str, Any] | None) -> Gate:
    if isinstance(gate, Gate):
        if options:
            raise ValueError("options apply when the gate is given by type, not as an instance")
        return gate
    cls = gate_class(gate) if isinstance(gate, str) else gate
    if not (isinstance(cls, type) and issubclass(cls, Gate)):
        raise TypeError(f"expected a Gate, a Gate subclass or a registered type name, got {gate!r}")
    gate = build_gate(cls, {**cls.check_options, **(options or {})})
    gate.name = cls.type_name or cls.__name__
    return gate


def _as_float64(value: Any, name: str, report: GradcheckReport) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind == "f":
        if array.dtype.itemsize < 8:
            message = (f"{name} is {array.dtype.name}: checked as float64 (a centred difference "
                       f"in {array.dtype.name} is dominated by rounding)")
            report.warnings.append(message)
            warnings.warn(message, GradcheckWarning, stacklevel=3)
        return np.array(array, dtype=np.float64)
    return np.array(array, copy=True)


def _input_names(gate: Gate, n_bottoms: int, param_names: Sequence[str]) -> list[str]:
    try:
        params = [p.name for p in inspect.signature(gate.forward).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    names = params[:n_bottoms] + [f"input {i}" for i in range(len(params), n_bottoms)]
    return names + list(param_names)


def _gate_params(gate: Gate, bottoms: list[np.ndarray], rng: np.random.Generator
                 ) -> dict[str, np.ndarray]:
    """The gate's parameters drawn from their fillers. A constant filler becomes a gaussian around
    its value, so a backward that forgets a factor of, say, a scale of 1 cannot hide."""
    params = {}
    for name, (shape, filler) in gate.param_specs(*[b.shape for b in bottoms]).items():
        shape = tuple(shape)
        if filler.get("type", "constant") == "constant":
            params[name] = filler.get("value", 0.0) + \
                CONSTANT_FILLER_JITTER * rng.standard_normal(shape)
        else:
            params[name] = fill(shape, filler, rng, np.dtype(np.float64))
    return params


def _is_float(array: np.ndarray) -> bool:
    return array.dtype.kind == "f"


def _tops(out: Any, num_tops: int, where: str) -> list[np.ndarray]:
    if num_tops == 1:
        return [np.asarray(out)]
    if not isinstance(out, (tuple, list)) or len(out) != num_tops:
        got = len(out) if isinstance(out, (tuple, list)) else type(out).__name__
        raise ContractError(f"{where}: forward must return {num_tops} outputs (num_tops), "
                            f"got {got}")
    return [np.asarray(o) for o in out]


def _objective_value(outs: Sequence[np.ndarray], douts: Sequence[np.ndarray | None]) -> float:
    return float(sum(np.sum(o * d) for o, d in zip(outs, douts) if d is not None))


def _resolve_tol(h, rtol, atol, declared: Mapping[str, float]) -> _Tolerance:
    return _Tolerance(h if h is not None else declared.get("h", DEFAULT_H),
                      rtol if rtol is not None else declared.get("rtol", DEFAULT_RTOL),
                      atol if atol is not None else declared.get("atol", DEFAULT_ATOL))


def _mode(sample: int | None, directional: bool) -> str:
    if directional:
        return "one random direction per input"
    return f"at most {sample} random elements per input" if sample else "every element"


def check_gate(gate: Gate | type[Gate] | str, inputs: Sequence[Any] | None = None,
               params: Mapping[str, Any] | Sequence[Any] | None = None, *,
               options: Mapping[str, Any] | None = None, dout: Any = None,
               names: Sequence[str] | None = None, h: float | None = None,
               rtol: float | None = None, atol: float | None = None, sample: int | None = None,
               directional: bool = False, seed: int = 0, phase: str = "train",
               kink_margin: float = KINK_MARGIN, raise_on_failure: bool = False
               ) -> GradcheckReport:
    """Check one gate's backward against centred differences.

    gate: a registered type name ("Multiply"), a Gate subclass (built with its `check_options`,
        updated by `options`) or an instance.
    inputs: the bottoms; default `gate.sample_inputs(rng)`. Float inputs are checked as float64
        copies (float32 gives a warning); integer inputs (labels) are never perturbed.
    params: the gate's parameters (a dict by name or a list in `param_specs` order); default:
        drawn from `param_specs` of the bottom shapes. They are checked like inputs.
    dout: the upstream gradient (a tuple of them for a multi-top gate); default standard normal.
    names: labels of the inputs then parameters in the report; default forward's argument names
        and the parameter names.
    h, rtol, atol: default the gate class's `check_tol`, then 1e-4, 1e-5, 1e-6.
    sample: check at most this many random elements per input. directional: one random
        direction per input instead of each element.
    phase: the gate's phase; the gate's `rng` and `buffers` are reset before every forward, so a
        random gate sees the same mask at every evaluation.
    raise_on_failure: raise GradientCheckError (with the report) instead of returning a failure.
    """
    report = GradcheckReport(subject="gate", mode=_mode(sample, directional))
    rng = np.random.default_rng(seed)
    try:
        gate = _make_gate(gate, options)
        type_name = type(gate).type_name or type(gate).__name__
        report.subject, report.type_name, report.name = \
            f"gate {gate.name!r} ({type_name})", type_name, gate.name
        tol = _resolve_tol(h, rtol, atol, type(gate).check_tol)
        report.h, report.rtol, report.atol = tol.h, tol.rtol, tol.atol
        _run_gate_check(gate, report, tol, rng, inputs, params, dout, names, sample,
                        directional, phase, kink_margin)
    except Exception as err:
        report.error = f"{type(err).__name__}: {err}"
        report.traceback = None if isinstance(err, ContractError) else traceback.format_exc()
        if isinstance(err, ContractError):
            report.error, report.contract = None, report.contract + [str(err)]
    if raise_on_failure:
        report.raise_if_failed()
    return report


def _run_gate_check(gate: Gate, report: GradcheckReport, tol: _Tolerance,
                    rng: np.random.Generator, inputs, params, dout, names, sample: int | None,
                    directional: bool, phase: str, kink_margin: float) -> None:
    where = f"gate {gate.name!r}"
    bottoms = [_as_float64(x, f"input {i}", report)
               for i, x in enumerate(gate.sample_inputs(rng) if inputs is None else inputs)]
    if params is None:
        params = _gate_params(gate, bottoms, rng)
    param_names = list(params) if isinstance(params, Mapping) else \
        list(gate.param_specs(*[b.shape for b in bottoms]))[:len(params)]
    param_values = list(params.values()) if isinstance(params, Mapping) else list(params)
    values = bottoms + [_as_float64(p, f"parameter {n}", report)
                        for n, p in zip(param_names, param_values)]
    names = list(names) if names is not None else _input_names(gate, len(bottoms), param_names)
    kinds = ["input"] * len(bottoms) + ["parameter"] * len(param_values)
    gate.phase = phase
    gate.needs_input_grad = (True,) * len(values)
    state = _GateState(gate)

    def forward() -> list[np.ndarray]:
        state.reset()
        return _tops(gate.forward(*values), gate.num_tops, where)

    try:
        _gate_check_body(gate, report, tol, rng, forward, values, names, kinds, dout, sample,
                         directional, kink_margin)
    finally:
        state.reset()


def _gate_check_body(gate, report, tol, rng, forward, values, names, kinds, dout, sample,
                     directional, kink_margin) -> None:
    originals = [v.copy() for v in values]
    outs = forward()
    if dout is None:
        douts = [rng.standard_normal(o.shape) if _is_float(o) else None for o in outs]
    else:
        douts = list(dout) if gate.num_tops > 1 else [dout]
        douts = [None if d is None else np.array(d, dtype=np.float64) for d in douts]
    saved_douts = [None if d is None else d.copy() for d in douts]

    def call_backward(upstream: list) -> Any:
        given = [np.zeros(o.shape) if d is None else d for o, d in zip(outs, upstream)]
        return gate.backward(tuple(given) if gate.num_tops > 1 else given[0])

    grads = call_backward(douts)
    for k, (d, saved) in enumerate(zip(douts, saved_douts)):
        if d is not None and not np.array_equal(d, saved):
            top = "dout" if gate.num_tops == 1 else f"dout[{k}]"
            report.contract.append(f"backward modified {top} (the upstream gradient) in place; "
                                   "it must treat dout as read-only")
    if not isinstance(grads, (tuple, list)) or len(grads) != len(values):
        got = f"{len(grads)} gradient(s)" if isinstance(grads, (tuple, list)) else \
            f"a {type(grads).__name__}"
        report.contract.append(f"backward must return a tuple of {len(values)} gradients, one per "
                               f"input ({', '.join(names)}), got {got}")
        return
    entries = [InputCheck(n, v.shape, k) for n, v, k in zip(names, values, kinds)]
    report.inputs = entries
    if all(g is None for g in grads):
        report.differentiable = False
        for entry in entries:
            entry.note = "backward returns None"
        return
    analytic: list[np.ndarray | None] = []
    for entry, value, grad in zip(entries, values, grads):
        if not _is_float(value):
            entry.note = "integer: not perturbed"
            analytic.append(None)
        elif grad is None:
            entry.note = "backward returns None: checked against 0"
            analytic.append(np.zeros(value.shape))
        elif np.shape(grad) != value.shape:
            report.contract.append(f"the gradient for {entry.name!r} has shape "
                                   f"{tuple(np.shape(grad))}, but {entry.name} has shape "
                                   f"{value.shape}")
            entry.note = "wrong gradient shape: not checked"
            analytic.append(None)
        else:
            analytic.append(np.array(grad, dtype=np.float64))
    again = call_backward([None if d is None else d.copy() for d in saved_douts])
    for entry, first, second in zip(entries, analytic, again if isinstance(again, (tuple, list))
                                    else ()):
        if first is not None and second is not None and np.shape(second) == first.shape \
                and not np.allclose(first, second, rtol=1e-12, atol=1e-300, equal_nan=True):
            report.contract.append(f"backward run twice gave different gradients for "
                                   f"{entry.name!r} (largest difference "
                                   f"{np.max(np.abs(first - np.asarray(second))):.1e})")
    modified = [entry.name for entry, value, original in zip(entries, values, originals)
                if not np.array_equal(value, original, equal_nan=True)]
    if modified:
        report.contract += [f"forward or backward modified input {name!r} in place"
                            for name in modified]
        for entry in entries:
            entry.note = "not checked: the gate modifies its inputs"
        return
    kinks = _gate_kinks(gate, values)

    def objective() -> tuple[float, None]:
        return _objective_value(forward(), saved_douts), None

    for i, (entry, value, grad) in enumerate(zip(entries, values, analytic)):
        if grad is None:
            continue
        distance = kinks[i]
        note = gate.kink_note or "a declared kink"
        if directional:
            frozen = None if distance is None else distance <= kink_margin * tol.h
            _check_direction(entry, value, grad, objective, tol, rng, frozen)
            continue

        def kink_reason(index, distance=distance) -> str | None:
            if distance is not None and distance[index] <= kink_margin * tol.h:
                return f"within {kink_margin:g}h of a kink ({note})"
            return None

        _check_elements(entry, value, grad, objective, tol,
                        _chosen_indices(entry, value, sample, rng), kink_reason)


def _gate_kinks(gate: Gate, values: list[np.ndarray]) -> list[np.ndarray | None]:
    declared = gate.kinks(*values)
    result: list[np.ndarray | None] = [None] * len(values)
    for i, distance in enumerate(declared or ()):
        if distance is not None and i < len(values):
            result[i] = np.broadcast_to(np.asarray(distance, dtype=np.float64), values[i].shape)
    return result


# -- checking a whole net --------------------------------------------------------------------------
def sample_feed(net: Net, rng: np.random.Generator | None = None, batch: int = SMALL_BATCH
                ) -> dict[str, Any]:
    """Values for every input of the net's phase: the config's `value:` where it has one, else
    standard normal at the declared shape (an open dimension gets `batch`); integer inputs and
    labels get integers in range (`net.timing.integer_inputs`)."""
    rng = rng or np.random.default_rng(0)
    integers = integer_inputs(net)
    feed: dict[str, Any] = {}
    for name in [n for n in net.sources() if n in net.inputs]:
        spec = net.inputs[name]
        shape = tuple(batch if d is None else d for d in spec.shape)
        if spec.value is not None:
            feed[name] = spec.value
        elif name in integers:
            feed[name] = rng.integers(0, integers[name], size=shape)
        else:
            feed[name] = rng.standard_normal(shape)
    return feed


def _float64_net(net: Net, report: GradcheckReport) -> Net:
    if net.dtype == np.float64:
        return net
    message = (f"net {net.name!r} is {net.dtype.name}: checked a float64 copy of it (same "
               "parameters, buffers and random state)")
    report.warnings.append(message)
    warnings.warn(message, GradcheckWarning, stacklevel=3)
    twin = Net(dataclasses.replace(net.spec, dtype="float64"), phase=net.phase)
    for name, value in net.params.items():
        twin.params[name][...] = value
    for name, gate in net.gates.items():
        copy = twin.gates[name]
        if isinstance(getattr(gate, "rng", None), np.random.Generator):
            copy.rng.bit_generator.state = gate.rng.bit_generator.state
        copy.buffers = {k: np.array(v, dtype=np.float64 if _is_float(np.asarray(v)) else None)
                        for k, v in gate.buffers.items()}
    return twin


def _net_tolerance(net: Net, h, rtol, atol) -> _Tolerance:
    """The defaults, loosened to the loosest `check_tol` declared by a gate of the net."""
    declared: dict[str, float] = {}
    for step in net.runner.steps:
        for key, value in type(step.gate).check_tol.items():
            declared[key] = max(declared.get(key, value), value)
    if "rtol" in declared:
        declared["rtol"] = max(declared["rtol"], DEFAULT_RTOL)
    if "atol" in declared:
        declared["atol"] = max(declared["atol"], DEFAULT_ATOL)
    return _resolve_tol(h, rtol, atol, declared)


def _prepare_feed(net: Net, feed: Mapping[str, Any] | None, rng: np.random.Generator,
                  report: GradcheckReport) -> dict[str, np.ndarray]:
    given = sample_feed(net, rng)
    given.update(feed or {})
    prepared = {}
    for name, value in given.items():
        array = np.asarray(value)
        declared = net.inputs[name].dtype if name in net.inputs else None
        if declared == "int" or (declared is None and isinstance(value, np.ndarray)
                                 and array.dtype.kind in "iu"):
            prepared[name] = np.array(array, copy=True)      # as the net keeps it: not perturbed
        else:
            prepared[name] = _as_float64(array.astype(np.float64) if array.dtype.kind in "iub"
                                         else array, f"input {name!r}", report)
    return prepared


class _KinkWatch:
    """Gates of a net with declared kinks, their inputs at the unperturbed point and each input
    element's distance to a kink. After a perturbed forward it says whether some input moved at
    least 1/kink_margin of the way to a kink (the perturbation may have crossed it)."""

    def __init__(self, net: Net, kink_margin: float):
        self.margin = kink_margin
        self.watched = []
        for step in net.runner.steps:
            values = [net.blobs[n] for n in step.inputs]
            for i, distance in enumerate(_gate_kinks(step.gate, values)):
                if distance is not None and _is_float(values[i]):
                    reason = (f"near a kink of gate {step.spec.name!r} ({step.spec.type}) at its "
                              f"input {step.inputs[i]!r}: {step.gate.kink_note or 'declared kink'}")
                    self.watched.append((step.inputs[i], values[i].copy(), distance, reason))

    def crossed(self, blobs: Mapping[str, np.ndarray]) -> str | None:
        for name, base, distance, reason in self.watched:
            moved = np.abs(blobs[name] - base)
            if np.any((moved > 0) & (distance <= self.margin * moved)):
                return reason
        return None


def check_net(net: Net, feed: Mapping[str, Any] | None = None, *,
              top_grads: Mapping[str, Any] | None = None, wrt: Sequence[str] | None = None,
              h: float | None = None, rtol: float | None = None, atol: float | None = None,
              sample: int | None = None, directional: bool = False, seed: int = 0,
              kink_margin: float = KINK_MARGIN, raise_on_failure: bool = False
              ) -> GradcheckReport:
    """Check a whole net's backward (every float input and parameter) against centred differences.

    feed: input values; inputs not fed take the config's `value:` or are drawn (`sample_feed`).
    top_grads: output name -> upstream gradient; default standard normal on every float output,
        so L = sum over outputs of sum(out * dout).
    wrt: the inputs and parameters to check; default all of them.
    Parameters are perturbed in place in `net.params` and restored, even on error; gates' random
    state and buffers are reset before every forward and put back afterwards. A float32 net is
    checked through a float64 copy (with a warning). Tolerances: as `check_gate`, defaulting to
    the loosest `check_tol` among the net's gates.
    """
    report = GradcheckReport(subject=f"net {net.name!r}", type_name="net", name=net.name,
                             mode=_mode(sample, directional))
    rng = np.random.default_rng(seed)
    try:
        tol = _net_tolerance(net, h, rtol, atol)
        report.h, report.rtol, report.atol = tol.h, tol.rtol, tol.atol
        work = _float64_net(net, report)
        values = _prepare_feed(work, feed, rng, report)
        states = [_GateState(step.gate) for step in work.runner.steps]

        def forward() -> None:
            for state in states:
                state.reset()
            work.forward(values)

        try:
            _net_check_body(work, report, tol, rng, values, forward, top_grads, wrt, sample,
                            directional, kink_margin)
            forward()          # leave the net's blobs those of the unperturbed point
        finally:
            for state in states:
                state.reset()
    except Exception as err:
        report.error = f"{type(err).__name__}: {err}"
        report.traceback = traceback.format_exc()
    if raise_on_failure:
        report.raise_if_failed()
    return report


def _net_check_body(net: Net, report: GradcheckReport, tol: _Tolerance, rng, values,
                    forward: Callable[[], None], top_grads, wrt, sample, directional,
                    kink_margin) -> None:
    forward()
    if top_grads is None:
        douts = {n: rng.standard_normal(net.blobs[n].shape) for n in net.outputs
                 if _is_float(net.blobs[n])}
    else:
        missing = [n for n in top_grads if n not in net.blobs]
        if missing:
            raise KeyError(f"cannot seed a gradient for {missing[0]!r}: it is not a blob of net "
                           f"{net.name!r}")
        douts = {n: np.array(np.broadcast_to(d, np.shape(net.blobs[n])), dtype=np.float64)
                 for n, d in top_grads.items()}
    saved_douts = {n: d.copy() for n, d in douts.items()}
    sources = list(wrt) if wrt is not None else net.sources()
    unknown = [s for s in sources if s not in values and s not in net.params]
    if unknown:
        raise KeyError(f"{unknown[0]!r} is neither an input nor a parameter of net {net.name!r}")
    arrays = {s: values[s] if s in values else net.params[s] for s in sources}
    originals = {s: a.copy() for s, a in arrays.items()}
    try:
        grads = net.backward(top_grads=douts, wrt=sources)
    except ContractError as err:
        report.contract.append(str(err))
        return
    for name, d in douts.items():
        if not np.array_equal(d, saved_douts[name]):
            report.contract.append(f"the backward pass modified the upstream gradient of "
                                   f"output {name!r} in place")
    analytic = {s: None if g is None else np.array(g, dtype=np.float64) for s, g in grads.items()}
    again = net.backward(top_grads={n: d.copy() for n, d in saved_douts.items()}, wrt=sources)
    for name, first in analytic.items():
        if first is not None and not np.allclose(first, again[name], rtol=1e-12, atol=1e-300):
            report.contract.append(f"backward run twice gave different gradients for {name!r}")
    for name, array in arrays.items():
        if not np.array_equal(array, originals[name], equal_nan=True):
            report.contract.append(f"the net's gates modified {name!r} in place")
            array[...] = originals[name]
    forward()
    watch = _KinkWatch(net, kink_margin)
    readers = {s: [f"{st.spec.name} ({st.spec.type})" for st in net.runner.steps
                   if s in st.inputs] for s in sources}

    def objective() -> tuple[float, str | None]:
        forward()
        return _objective_value([net.blobs[n] for n in saved_douts],
                                list(saved_douts.values())), watch.crossed(net.blobs)

    for name in sources:
        array = arrays[name]
        entry = InputCheck(name, array.shape, "parameter" if name in net.params else "input",
                           used_by="read by " + ", ".join(readers[name]) if readers[name]
                           else "read by no gate")
        report.inputs.append(entry)
        grad = analytic.get(name)
        if not _is_float(array) or grad is None:
            entry.note = "integer: not perturbed"
            continue
        if directional:
            _check_direction(entry, array, grad, objective, tol, rng, None)
        else:
            _check_elements(entry, array, grad, objective, tol,
                            _chosen_indices(entry, array, sample, rng), None)


def check_net_gates(net: Net, feed: Mapping[str, Any] | None = None, *, seed: int = 0,
                    **options: Any) -> list[GradcheckReport]:
    """Check each gate of a net on its own: a fresh gate built from the config's options, fed the
    values (and parameters) it sees in one forward pass of the net, so at the config's shapes
    (an open batch dimension gets a small batch) and inside each gate's valid domain.
    `options` are those of `check_gate` (h, rtol, atol, sample, directional, kink_margin...)."""
    scratch = GradcheckReport(subject=f"net {net.name!r}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GradcheckWarning)
        work = _float64_net(net, scratch)
    values = _prepare_feed(work, feed, np.random.default_rng(seed), scratch)
    states = [_GateState(step.gate) for step in work.runner.steps]
    try:
        work.forward(values)
    finally:
        for state in states:
            state.reset()
    blobs = dict(work.blobs)
    reports = []
    for step in work.runner.steps:
        spec = step.spec
        try:
            gate = spec.cls(**spec.options)
        except (TypeError, ValueError) as err:
            reports.append(GradcheckReport(subject=f"gate {spec.name!r} ({spec.type})",
                                           type_name=spec.type, name=spec.name,
                                           error=f"cannot build it: {err}"))
            continue
        gate.name = spec.name
        gate.buffers = {k: np.array(v, copy=True) for k, v in step.gate.buffers.items()}
        if isinstance(getattr(step.gate, "rng", None), np.random.Generator):
            gate.rng = np.random.default_rng()
            gate.rng.bit_generator.state = step.gate.rng.bit_generator.state
        n = len(spec.bottom)
        report = check_gate(gate, [blobs[b] for b in step.inputs[:n]],
                            [blobs[p] for p in step.inputs[n:]], names=step.inputs,
                            phase=work.phase, seed=seed, **options)
        reports.append(report)
    return reports


# -- the cost the lecture describes ------------------------------------------------------------
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
            plus = _objective_value(list(net.forward(feed).values()), list(douts.values()))
            array[index] = original - h
            minus = _objective_value(list(net.forward(feed).values()), list(douts.values()))
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
    table = _table(
        ["net", "params", "forward", "fwd+bwd", "fwd+bwd / fwd", "numeric gradient",
         "numeric / (fwd+bwd)"],
        [[r.name, r.params, f"{r.forward_s * 1e3:.3f} ms", f"{r.forward_backward_s * 1e3:.3f} ms",
          f"{r.backward_ratio:.1f}x",
          f"{r.numeric_s:.3g} s" + (" (est.)" if r.timed < r.params else ""),
          f"{r.numeric_ratio:,.0f}x"] for r in rows])
    return "\n".join(table)
