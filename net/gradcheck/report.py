"""What a gradient check reports: per element, per input and as a whole, readable with `str()`.

A report is only a record: the checking lives in `net.gradcheck.gate` and `net.gradcheck.net`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from gates import format_shape

from ..core.text import table

WORST_KEPT = 3           # elements listed per input in a report


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
    h: float | None = None                      # the tolerances used (set by the check)
    rtol: float | None = None
    atol: float | None = None
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
            lines += table(
                ["input", "kind", "shape", "checked", "skipped", "failed", "worst rel err", "note"],
                [[i.name, i.kind, format_shape(i.shape), i.checked, i.skipped, i.failed,
                  f"{i.worst_rel_err:.1e}" if i.checked else "-",
                  "; ".join(filter(None, [i.note, i.used_by]))]
                 for i in self.inputs], indent="  ")
        for entry in self.inputs:
            for reason, count in entry.skip_reasons.items():
                lines.append(f"  skipped {count} element(s) of {entry.name}: {reason}")
            if entry.failed:
                lines.append(f"  {entry.name}: {entry.failed} of {entry.checked} checked elements "
                             f"failed; worst first:")
                lines += [f"    {c.line()}" for c in entry.worst if not c.ok]
        return "\n".join(lines)


def format_table(reports: Sequence[GradcheckReport]) -> str:
    """One row per report: gate, type, checked, skipped (kinks), worst relative error, result."""
    rows = [[r.name, r.type_name, r.checked, r.skipped,
             f"{r.worst_rel_err:.1e}" if r.checked else "-",
             r.status if not r.error else "FAIL (error)"] for r in reports]
    header = ["gate", "type", "checked", "skipped (kinks)", "worst rel err", "result"]
    return "\n".join(table(header, rows))
