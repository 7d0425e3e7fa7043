"""The exceptions a user can act on. Each message starts with the place: `FILE:LINE:`."""
from __future__ import annotations


class GateworkError(Exception):
    """Base of Gatework's user-facing errors; scripts print these without a traceback."""


class ConfigError(GateworkError, ValueError):
    """A problem in a network config: its message starts with `FILE:LINE:` and names the gate."""

    def __init__(self, message: str, file: str | None = None, line: int | None = None):
        self.message, self.file, self.line = message, file, line
        super().__init__(message)

    def __str__(self) -> str:
        where = f"{self.file or '<config>'}:{self.line}: " if self.line else (
            f"{self.file}: " if self.file else "")
        return where + self.message


class DataError(GateworkError, ValueError):
    """A data, weights or snapshot file that cannot be used; the message names the file."""


class NumericalError(GateworkError, FloatingPointError):
    """A NaN or Inf found by the debug checks; the message names the gate, the blob, the
    direction (forward or backward) and, once the solver knows it, the iteration."""

    def __init__(self, message: str, gate: str = "", blob: str = "", direction: str = ""):
        self.message, self.gate, self.blob, self.direction = message, gate, blob, direction
        self.iteration: int | None = None
        super().__init__(message)

    def __str__(self) -> str:
        where = f"iteration {self.iteration}: " if self.iteration is not None else ""
        return where + self.message
