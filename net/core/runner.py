"""The runner: the one place that calls gates' forward and backward in a loop.

Forward visits the steps in topological order and checks that an output whose shape the net
knows when it is built (no open dimension) has that shape. Backward visits them in reverse, hands
each gate the gradient of its tops, checks what comes back (one gradient per input, each of its
input's shape) and sums gradients where a blob fans out to several gates.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from operator import itemgetter
from typing import Callable

import numpy as np

from gates import Gate, format_shape

from .spec import GateSpec
from ..errors import GateworkError

Hook = Callable[["Step", str, tuple], None]


@dataclass(eq=False, slots=True)
class Step:
    """One gate in the execution order, with the blob names it reads and writes. `fetch(blobs)`
    picks its inputs out of the blobs: the lone value when `unary`, else a tuple; `top` is the
    lone top's name (None when the gate writes several). `shape`: the lone top's shape when the
    net knows it whole at build time (None: a dimension is open, or several tops); forward checks
    it, so that backward can check its gradient against it without reading the blob."""
    gate: Gate
    spec: GateSpec
    inputs: tuple[str, ...]        # bottoms, then the gate's parameters
    tops: tuple[str, ...]
    shape: tuple[int, ...] | None = None
    fetch: Callable[[dict], object] = field(init=False, repr=False)
    unary: bool = field(init=False, repr=False)
    top: str | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.fetch = itemgetter(*self.inputs) if self.inputs else lambda blobs: ()
        self.unary = len(self.inputs) == 1
        self.top = self.tops[0] if len(self.tops) == 1 else None

    def where(self, file: str | None = None) -> str:
        place = f" ({file}:{self.spec.line})" if file and self.spec.line else ""
        return f"gate {self.spec.name!r} ({self.spec.type}){place}"


class ContractError(RuntimeError):
    """A gate returned something that breaks the Gate contract (a bug in that gate)."""


class Runner:
    """Runs a fixed list of steps forward and backward over a dict of blobs. `known`: the net
    inputs whose shape every pass is held to (the Net checks each fed array against them)."""

    def __init__(self, steps: list[Step], file: str | None = None,
                 known: dict[str, tuple[int, ...]] | None = None):
        self.steps = steps
        self.file = file
        # blob -> the shape every pass gives it: those inputs, and the tops forward checks
        self.known = dict(known or {})
        self.known.update((step.top, step.shape) for step in steps if step.shape is not None)
        self._plans: dict[frozenset, list[tuple]] = {}
        self._needed: dict[frozenset, tuple[list[Step], frozenset[str]]] = {}

    def needed(self, wanted: frozenset[str]) -> tuple[list[Step], frozenset[str]]:
        """The steps whose outputs `wanted` blobs depend on (in order), and every blob they
        read. Computed once per set of wanted blobs."""
        found = self._needed.get(wanted)
        if found is None:
            required, kept = set(wanted), []
            for step in reversed(self.steps):
                if required.intersection(step.tops):
                    kept.append(step)
                    required.update(step.inputs)
            found = self._needed[wanted] = (kept[::-1], frozenset(required))
        return found

    def forward(self, blobs: dict[str, np.ndarray], hook: Hook | None = None,
                steps: list[Step] | None = None) -> None:
        """Compute every top from its bottoms, in order, writing into `blobs` (only `steps`, a
        part of the order from `needed`, when given)."""
        step = None
        try:
            for step in self.steps if steps is None else steps:
                fetched, top = step.fetch(blobs), step.top
                out = step.gate.forward(fetched) if step.unary else step.gate.forward(*fetched)
                if top is not None:
                    blobs[top] = out
                    shape = step.shape
                    if shape is not None:
                        try:
                            wrong = out.shape != shape
                        except AttributeError:      # a Python number: np.shape tells
                            wrong = np.shape(out) != shape
                        if wrong:
                            raise ContractError(
                                f"{step.where(self.file)}: forward returned shape "
                                f"{format_shape(np.shape(out))} for {top!r}, but its shape "
                                f"inference gave {format_shape(shape)} when the net was built "
                                "(a size that follows the data is None in infer_shapes)")
                else:
                    if not isinstance(out, (tuple, list)) or len(out) != len(step.tops):
                        raise ContractError(f"{step.where(self.file)}: forward must return "
                                            f"{len(step.tops)} outputs, one per top")
                    blobs.update(zip(step.tops, out))
                if hook is not None:
                    hook(step, "forward", tuple(blobs[t] for t in step.tops))
        except Exception as err:
            if step is not None and not isinstance(err, (ContractError, GateworkError)):
                err.add_note(f"in the forward pass of {step.where(self.file)}")
            raise

    def plan(self, wanted: frozenset[str]) -> list[tuple]:
        """The steps whose backward is needed to reach `wanted` blobs, reversed, each as (step,
        its lone top or None, the `needs_input_grad` flags of its inputs, the (position, name,
        shape if known) of each input flagged, its tops that are not wanted (their gradients
        are let go once the step has used them), its number of inputs). Computed once per set
        of wanted blobs; the step's gate is looked up on every pass, so a gate swapped in later
        still runs."""
        plan = self._plans.get(wanted)
        if plan is None:
            requires = set(wanted)
            flags = []
            for step in self.steps:
                needs = tuple(name in requires for name in step.inputs)
                if any(needs):
                    requires.update(step.tops)
                    flagged = tuple((i, name, self.known.get(name))
                                    for i, name in enumerate(step.inputs) if needs[i])
                    spent = tuple(top for top in step.tops if top not in wanted)
                    flags.append((step, step.top, needs, flagged, spent, len(step.inputs)))
            plan = self._plans[wanted] = flags[::-1]
        return plan

    def backward(self, blobs: dict[str, np.ndarray], grads: dict[str, np.ndarray],
                 wanted: frozenset[str], hook: Hook | None = None) -> dict[str, np.ndarray]:
        """Propagate the seeded `grads` back to the `wanted` blobs; returns `grads`, which then
        holds the gradient of every wanted blob reached. The gradient of any other blob is
        dropped once the gate that wrote the blob has used it (its producer is the last to read
        it), as a hand-written backward pass lets each layer's upstream gradient go."""
        owned: set[str] = set()    # arrays this pass allocated, safe to add into in place
        step = None
        try:
            for step, top, needs, flagged, spent, count in (self._plans.get(wanted)
                                                             or self.plan(wanted)):
                if top is not None:
                    dout = grads.get(top)
                    if dout is None:
                        continue
                else:
                    douts = [grads.get(top) for top in step.tops]
                    if all(d is None for d in douts):
                        continue
                    dout = tuple(np.zeros_like(blobs[t]) if d is None else d
                                 for t, d in zip(step.tops, douts))
                gate = step.gate
                gate.needs_input_grad = needs
                result = gate.backward(dout)
                for spent_top in spent:
                    grads.pop(spent_top, None)
                if type(result) is not tuple or len(result) != count:
                    self._check_result(step, result)
                for index, name, shape in flagged:
                    grad = result[index]
                    if grad is None:
                        continue
                    if shape is None:       # an open dimension, or a parameter: read the blob
                        shape = blobs[name].shape
                    try:
                        wrong = grad.shape != shape
                    except AttributeError:      # a Python number: np.shape tells
                        wrong = np.shape(grad) != shape
                    if wrong:
                        raise ContractError(
                            f"{step.where(self.file)}: the gradient for input {name!r} has shape "
                            f"{np.shape(grad)}, but the input has shape {shape}")
                    if name not in grads:
                        grads[name] = grad
                    elif name in owned:
                        grads[name] += grad
                    else:
                        grads[name] = grads[name] + grad
                        owned.add(name)
                if hook is not None:
                    hook(step, "backward", tuple(result))
        except Exception as err:
            if step is not None and not isinstance(err, (ContractError, GateworkError)):
                err.add_note(f"in the backward pass of {step.where(self.file)}")
            raise
        return grads

    def _check_result(self, step: Step, result) -> None:
        """Backward's answer when it is not a tuple of one gradient per input: a list of that
        length is taken; anything else is a ContractError."""
        if not isinstance(result, (tuple, list)) or len(result) != len(step.inputs):
            got = len(result) if isinstance(result, (tuple, list)) else type(result).__name__
            raise ContractError(
                f"{step.where(self.file)}: backward must return a tuple of {len(step.inputs)} "
                f"gradients (one per input: {', '.join(step.inputs)}), got {got}")
