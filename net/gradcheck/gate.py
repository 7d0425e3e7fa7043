"""Checking one gate: its backward against centred differences, and its contract.

    from net.gradcheck import check_gate
    print(check_gate("Multiply"))                 # a registered type, built from its check_options

Besides the numbers, the check verifies the contract: one gradient per input, each of its
input's shape; backward run twice gives the same result; inputs and `dout` are left unchanged.
Elements within `kink_margin * h` of a point where the gate declares it is not differentiable
(`Gate.kinks`) are skipped, with the gate's `kink_note` as the reason.
"""
from __future__ import annotations

import inspect
import traceback
from typing import Any, Mapping, Sequence

import numpy as np

from gates import Gate, build_gate, format_shape, gate_class

from ..core.fillers import fill
from ..core.runner import ContractError
from ..core.state import GatePosition
from .numeric import (CheckOptions, Tolerance, as_float64, check_direction, check_elements,
                      chosen_indices, is_float, objective_value)
from .report import GradcheckReport, InputCheck

CONSTANT_FILLER_JITTER = 0.5


def check_gate(gate: Gate | type[Gate] | str, inputs: Sequence[Any] | None = None,
               params: Mapping[str, Any] | Sequence[Any] | None = None, *,
               options: Mapping[str, Any] | None = None, dout: Any = None,
               names: Sequence[str] | None = None, phase: str = "train",
               raise_on_failure: bool = False, check: CheckOptions | None = None,
               **settings: Any) -> GradcheckReport:
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
    phase: the gate's phase; the gate's `rng` and `buffers` are reset before every forward, so a
        random gate sees the same mask at every evaluation.
    check, settings: how to check (`CheckOptions`, or its fields as keywords: h, rtol, atol,
        sample, directional, seed, kink_margin).
    raise_on_failure: raise GradientCheckError (with the report) instead of returning a failure.
    """
    check = CheckOptions(**settings) if check is None else check
    report = GradcheckReport(subject="gate", mode=check.mode)
    rng = np.random.default_rng(check.seed)
    try:
        gate = _make_gate(gate, options)
        type_name = type(gate).type_name or type(gate).__name__
        report.subject, report.type_name, report.name = \
            f"gate {gate.name!r} ({type_name})", type_name, gate.name
        tol = check.tolerance(type(gate).check_tol)
        report.h, report.rtol, report.atol = tol.h, tol.rtol, tol.atol
        _GateCheck(gate, report, tol, check, rng, phase).run(inputs, params, dout, names)
    except ContractError as err:
        report.contract.append(str(err))
    except Exception as err:
        report.error = f"{type(err).__name__}: {err}"
        report.traceback = traceback.format_exc()
    if raise_on_failure:
        report.raise_if_failed()
    return report


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


class _GateCheck:
    """One check of one gate: the values it is fed, its outputs and upstream gradients, and the
    three parts of the check (the first backward, the contract, the numbers)."""

    def __init__(self, gate: Gate, report: GradcheckReport, tol: Tolerance, check: CheckOptions,
                 rng: np.random.Generator, phase: str):
        self.gate, self.report, self.tol, self.check, self.rng = gate, report, tol, check, rng
        self.where = f"gate {gate.name!r}"
        gate.phase = phase

    def run(self, inputs, params, dout, names) -> None:
        gate, report = self.gate, self.report
        given = gate.sample_inputs(self.rng) if inputs is None else inputs
        bottoms = [as_float64(x, f"input {i}", report) for i, x in enumerate(given)]
        if params is None:
            params = _draw_params(gate, bottoms, self.rng)
        param_names = list(params) if isinstance(params, Mapping) else \
            list(gate.param_specs(*[b.shape for b in bottoms]))[:len(params)]
        param_values = list(params.values()) if isinstance(params, Mapping) else list(params)
        self.values = bottoms + [as_float64(p, f"parameter {n}", report)
                                 for n, p in zip(param_names, param_values)]
        self.names = list(names) if names is not None else \
            _input_names(gate, len(bottoms), param_names)
        self.kinds = ["input"] * len(bottoms) + ["parameter"] * len(param_values)
        gate.needs_input_grad = (True,) * len(self.values)
        self.position = GatePosition.capture([gate])
        try:
            analytic = self.first_backward(dout)
            if analytic is not None and self.contract_holds(analytic):
                self.compare(analytic)
        finally:
            self.position.restore()

    def forward(self) -> list[np.ndarray]:
        self.position.restore()
        return _tops(self.gate.forward(*self.values), self.gate.num_tops, self.where)

    def backward(self, upstream: list) -> Any:
        given = [np.zeros(o.shape) if d is None else d for o, d in zip(self.outs, upstream)]
        return self.gate.backward(given[0] if self.gate.num_tops == 1 else tuple(given))

    def first_backward(self, dout) -> list[np.ndarray | None] | None:
        """Forward and backward once; the analytic gradient per input (None: not checked), or
        None when the result breaks the contract so badly that nothing can be compared."""
        gate, report = self.gate, self.report
        self.originals = [v.copy() for v in self.values]
        self.outs = self.forward()
        for k, out in enumerate(self.outs):
            _refuse_non_finite(out, f"forward produced {{what}} in output {k}", self.values,
                               self.names)
        self.check_output_shapes()
        if dout is None:
            douts = [self.rng.standard_normal(o.shape) if is_float(o) else None for o in self.outs]
        else:
            douts = list(dout) if gate.num_tops > 1 else [dout]
            douts = [None if d is None else np.array(d, dtype=np.float64) for d in douts]
        self.douts = [None if d is None else d.copy() for d in douts]
        grads = self.backward(douts)
        for k, (given, saved) in enumerate(zip(douts, self.douts)):
            if given is not None and not np.array_equal(given, saved):
                top = "dout" if gate.num_tops == 1 else f"dout[{k}]"
                report.contract.append(f"backward modified {top} (the upstream gradient) in "
                                       "place; it must treat dout as read-only")
        if not isinstance(grads, (tuple, list)) or len(grads) != len(self.values):
            got = f"{len(grads)} gradient(s)" if isinstance(grads, (tuple, list)) else \
                f"a {type(grads).__name__}"
            report.contract.append(f"backward must return a tuple of {len(self.values)} "
                                   f"gradients, one per input ({', '.join(self.names)}), got {got}")
            return None
        for name, grad in zip(self.names, grads):
            if grad is not None and np.shape(grad) == np.shape(self.values[self.names.index(name)]):
                _refuse_non_finite(np.asarray(grad), f"backward produced {{what}} in the gradient "
                                   f"for {name!r}", self.values, self.names)
        self.entries = [InputCheck(n, v.shape, k)
                        for n, v, k in zip(self.names, self.values, self.kinds)]
        report.inputs = self.entries
        if all(g is None for g in grads):
            report.differentiable = False
            for entry in self.entries:
                entry.note = "backward returns None"
            return None
        return [self._analytic(entry, value, grad)
                for entry, value, grad in zip(self.entries, self.values, grads)]

    def check_output_shapes(self) -> None:
        """Each output has the shape `infer_shapes` gives for these inputs (an open dimension,
        None, takes any size): the Net builds its shapes from it, and the runner holds forward
        to them."""
        declared = self.gate.infer_shapes(*[v.shape for v in self.values])
        for k, (out, shape) in enumerate(zip(self.outs, declared or ())):
            if len(shape) != out.ndim or any(d is not None and d != n
                                             for d, n in zip(shape, out.shape)):
                self.report.contract.append(
                    f"forward returned shape {format_shape(out.shape)} for output {k}, but "
                    f"infer_shapes gives {format_shape(tuple(shape))} for these inputs")

    def _analytic(self, entry: InputCheck, value: np.ndarray, grad: Any) -> np.ndarray | None:
        if not is_float(value):
            entry.note = "integer: not perturbed"
            return None
        if grad is None:
            entry.note = "backward returns None: checked against 0"
            return np.zeros(value.shape)
        if np.shape(grad) != value.shape:
            self.report.contract.append(f"the gradient for {entry.name!r} has shape "
                                        f"{tuple(np.shape(grad))}, but {entry.name} has shape "
                                        f"{value.shape}")
            entry.note = "wrong gradient shape: not checked"
            return None
        return np.array(grad, dtype=np.float64)

    def contract_holds(self, analytic: list[np.ndarray | None]) -> bool:
        """Backward twice gives the same gradients, and no input was changed in place."""
        report = self.report
        again = self.backward([None if d is None else d.copy() for d in self.douts])
        for entry, first, second in zip(self.entries, analytic,
                                        again if isinstance(again, (tuple, list)) else ()):
            if first is not None and second is not None and np.shape(second) == first.shape \
                    and not np.allclose(first, second, rtol=1e-12, atol=1e-300, equal_nan=True):
                report.contract.append(f"backward run twice gave different gradients for "
                                       f"{entry.name!r} (largest difference "
                                       f"{np.max(np.abs(first - np.asarray(second))):.1e})")
        modified = [entry.name for entry, value, original
                    in zip(self.entries, self.values, self.originals)
                    if not np.array_equal(value, original, equal_nan=True)]
        report.contract += [f"forward or backward modified input {name!r} in place"
                            for name in modified]
        if modified:
            for entry in self.entries:
                entry.note = "not checked: the gate modifies its inputs"
        return not modified

    def compare(self, analytic: list[np.ndarray | None]) -> None:
        """The centred difference of every (or every sampled) element, or one direction."""
        kinks = gate_kinks(self.gate, self.values)
        note = self.gate.kink_note or "a declared kink"
        margin = self.check.kink_margin * self.tol.h

        def objective() -> tuple[float, None]:
            return objective_value(self.forward(), self.douts), None

        for entry, value, grad, distance in zip(self.entries, self.values, analytic, kinks):
            if grad is None:
                continue
            if self.check.directional:
                frozen = None if distance is None else distance <= margin
                check_direction(entry, value, grad, objective, self.tol, self.rng, frozen)
                continue

            def kink_reason(index, distance=distance) -> str | None:
                if distance is not None and distance[index] <= margin:
                    return f"within {self.check.kink_margin:g}h of a kink ({note})"
                return None

            check_elements(entry, value, grad, objective, self.tol,
                           chosen_indices(entry, value, self.check.sample, self.rng), kink_reason)


class NonFiniteError(ArithmeticError):
    """A gate's forward or backward produced NaN or Inf during a check."""


def _refuse_non_finite(array: np.ndarray, message: str, values: list[np.ndarray],
                       names: list[str]) -> None:
    """Raise NonFiniteError naming the first NaN/Inf element of `array` and the inputs' range."""
    if array.dtype.kind != "f" or np.all(np.isfinite(array)):
        return
    flat = int(np.flatnonzero(~np.isfinite(array))[0])
    index = tuple(int(i) for i in np.unravel_index(flat, array.shape))
    what = f"{array.flat[flat]} at element {list(index)}"
    ranges = ", ".join(f"{n} in [{np.min(v):.3g}, {np.max(v):.3g}]" for n, v in zip(names, values)
                       if v.dtype.kind == "f" and v.size)
    raise NonFiniteError(message.format(what=what) + (f" (inputs: {ranges})" if ranges else ""))


def gate_kinks(gate: Gate, values: list[np.ndarray]) -> list[np.ndarray | None]:
    """Per input, each element's distance to a declared kink (None: no kinks)."""
    declared = gate.kinks(*values)
    result: list[np.ndarray | None] = [None] * len(values)
    for i, distance in enumerate(declared or ()):
        if distance is not None and i < len(values):
            result[i] = np.broadcast_to(np.asarray(distance, dtype=np.float64), values[i].shape)
    return result


def _input_names(gate: Gate, n_bottoms: int, param_names: Sequence[str]) -> list[str]:
    try:
        params = [p.name for p in inspect.signature(gate.forward).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    names = params[:n_bottoms] + [f"input {i}" for i in range(len(params), n_bottoms)]
    return names + list(param_names)


def _draw_params(gate: Gate, bottoms: list[np.ndarray], rng: np.random.Generator
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


def _tops(out: Any, num_tops: int, where: str) -> list[np.ndarray]:
    if num_tops == 1:
        return [np.asarray(out)]
    if not isinstance(out, (tuple, list)) or len(out) != num_tops:
        got = len(out) if isinstance(out, (tuple, list)) else type(out).__name__
        raise ContractError(f"{where}: forward must return {num_tops} outputs (num_tops), "
                            f"got {got}")
    return [np.asarray(o) for o in out]
