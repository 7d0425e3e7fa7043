"""Checking a whole net: its backward against centred differences over every float input and
parameter, and each of its gates on its own, at the shapes and values the net feeds it.

    from net.gradcheck import check_net
    report = check_net(Net.from_yaml("configs/two_layer.yaml"))
    report.ok, report.worst_rel_err

In a net, a perturbation is skipped when it moves some gate's input at least half way to one of
that gate's kinks.
"""
from __future__ import annotations

import dataclasses
import traceback
import warnings
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from gates import build_gate

from ..core.net import Net
from ..core.runner import ContractError
from ..core.state import GatePosition
from .gate import check_gate, gate_kinks
from .numeric import (DEFAULT_ATOL, DEFAULT_RTOL, CheckOptions, Tolerance, as_float64,
                      check_direction, check_elements, chosen_indices, is_float, objective_value)
from .report import GradcheckReport, GradcheckWarning, InputCheck

SMALL_BATCH = 2          # the size given to an open (batch) dimension when inputs are drawn


def sample_feed(net: Net, rng: np.random.Generator | None = None, batch: int = SMALL_BATCH
                ) -> dict[str, Any]:
    """Values for every input of the net's phase: the config's `value:` where it has one, else
    standard normal at the declared shape (an open dimension gets `batch`); integer inputs and
    labels get integers in range (`Net.integer_inputs`; 2 values where no gate says)."""
    rng = rng or np.random.default_rng(0)
    integers = {name: count or 2 for name, count in net.integer_inputs().items()}
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
        copy.buffers = {k: np.array(v, dtype=np.float64 if is_float(np.asarray(v)) else None)
                        for k, v in gate.buffers.items()}
    return twin


def _net_tolerance(net: Net, check: CheckOptions) -> Tolerance:
    """The defaults, loosened to the loosest `check_tol` declared by a gate of the net."""
    declared: dict[str, float] = {}
    for step in net.runner.steps:
        for key, value in type(step.gate).check_tol.items():
            declared[key] = max(declared.get(key, value), value)
    if "rtol" in declared:
        declared["rtol"] = max(declared["rtol"], DEFAULT_RTOL)
    if "atol" in declared:
        declared["atol"] = max(declared["atol"], DEFAULT_ATOL)
    return check.tolerance(declared)


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
            prepared[name] = as_float64(array.astype(np.float64) if array.dtype.kind in "iub"
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
            for i, distance in enumerate(gate_kinks(step.gate, values)):
                if distance is not None and is_float(values[i]):
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
              raise_on_failure: bool = False, check: CheckOptions | None = None,
              **settings: Any) -> GradcheckReport:
    """Check a whole net's backward (every float input and parameter) against centred differences.

    feed: input values; inputs not fed take the config's `value:` or are drawn (`sample_feed`).
    top_grads: output name -> upstream gradient; default standard normal on every float output,
        so L = sum over outputs of sum(out * dout).
    wrt: the inputs and parameters to check; default all of them.
    check, settings: how to check, as `check_gate` (tolerances default to the loosest
        `check_tol` among the net's gates).
    Parameters are perturbed in place in `net.params` and restored, even on error; gates' random
    state and buffers are reset before every forward and put back afterwards. A float32 net is
    checked through a float64 copy (with a warning).
    """
    check = CheckOptions(**settings) if check is None else check
    report = GradcheckReport(subject=f"net {net.name!r}", type_name="net", name=net.name,
                             mode=check.mode)
    rng = np.random.default_rng(check.seed)
    try:
        tol = _net_tolerance(net, check)
        report.h, report.rtol, report.atol = tol.h, tol.rtol, tol.atol
        work = _float64_net(net, report)
        values = _prepare_feed(work, feed, rng, report)
        position = GatePosition.capture(work.gates)

        def forward() -> None:
            position.restore()
            work.forward(values)

        try:
            _net_check_body(work, report, tol, rng, values, forward, top_grads, wrt, check)
            forward()          # leave the net's blobs those of the unperturbed point
        finally:
            position.restore()
    except Exception as err:
        report.error = f"{type(err).__name__}: {err}"
        report.traceback = traceback.format_exc()
    if raise_on_failure:
        report.raise_if_failed()
    return report


def _upstream(net: Net, top_grads: Mapping[str, Any] | None, rng: np.random.Generator
              ) -> dict[str, np.ndarray]:
    """The upstream gradient of each output: `top_grads`, or standard normal on every float
    output."""
    if top_grads is None:
        return {n: rng.standard_normal(net.blobs[n].shape) for n in net.outputs
                if is_float(net.blobs[n])}
    missing = [n for n in top_grads if n not in net.blobs]
    if missing:
        raise KeyError(f"cannot seed a gradient for {missing[0]!r}: it is not a blob of net "
                       f"{net.name!r}")
    return {n: np.array(np.broadcast_to(d, np.shape(net.blobs[n])), dtype=np.float64)
            for n, d in top_grads.items()}


def _net_check_body(net: Net, report: GradcheckReport, tol: Tolerance, rng, values,
                    forward: Callable[[], None], top_grads, wrt, check: CheckOptions) -> None:
    forward()
    douts = _upstream(net, top_grads, rng)
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
    watch = _KinkWatch(net, check.kink_margin)
    readers = {s: [f"{st.spec.name} ({st.spec.type})" for st in net.runner.steps
                   if s in st.inputs] for s in sources}

    def objective() -> tuple[float, str | None]:
        forward()
        return objective_value([net.blobs[n] for n in saved_douts],
                                list(saved_douts.values())), watch.crossed(net.blobs)

    for name in sources:
        array = arrays[name]
        entry = InputCheck(name, array.shape, "parameter" if name in net.params else "input",
                           used_by="read by " + ", ".join(readers[name]) if readers[name]
                           else "read by no gate")
        report.inputs.append(entry)
        grad = analytic.get(name)
        if not is_float(array) or grad is None:
            entry.note = "integer: not perturbed"
            continue
        if check.directional:
            check_direction(entry, array, grad, objective, tol, rng, None)
        else:
            check_elements(entry, array, grad, objective, tol,
                           chosen_indices(entry, array, check.sample, rng), None)


def check_net_gates(net: Net, feed: Mapping[str, Any] | None = None, *, seed: int = 0,
                    **settings: Any) -> list[GradcheckReport]:
    """Check each gate of a net on its own: a fresh gate built from the config's options, fed the
    values (and parameters) it sees in one forward pass of the net, so at the config's shapes
    (an open batch dimension gets a small batch) and inside each gate's valid domain.
    `settings` are those of `check_gate` (h, rtol, atol, sample, directional, kink_margin...)."""
    scratch = GradcheckReport(subject=f"net {net.name!r}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GradcheckWarning)
        work = _float64_net(net, scratch)
    values = _prepare_feed(work, feed, np.random.default_rng(seed), scratch)
    position = GatePosition.capture(work.gates)
    try:
        work.forward(values)
    finally:
        position.restore()
    blobs = dict(work.blobs)
    reports = []
    for step in work.runner.steps:
        spec = step.spec
        try:
            gate = build_gate(spec.cls, spec.options)
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
                            phase=work.phase, seed=seed, **settings)
        reports.append(report)
    return reports
