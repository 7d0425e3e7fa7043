"""The record of a training run: `metrics.jsonl` (one JSON object per event) and `curves.png`.

Each line of metrics.jsonl is one event: {"iter", "phase": "train" or "test", "loss", "lr", ...}
plus, for test events, every scalar output of the test phase by its top name (e.g. "accuracy").
"""
from __future__ import annotations

import json
import math
from contextlib import suppress
from pathlib import Path
from typing import Any

from ..errors import DataError
from .files import atomic_write, open_new


class MetricsLog:
    """Appends events to a JSON-lines file, one flushed line each (safe to tail while training).

    A new log starts empty; `resume_at=N` keeps the events of the run being resumed from before
    iteration N (rewritten atomically) and appends after them, so resuming twice from the same
    snapshot never duplicates records. Nothing is touched until the first event, so a run that
    fails before it leaves no file behind. A symlink at `path` is refused, never written
    through."""

    def __init__(self, path: str | Path, resume_at: int | None = None):
        self.path = Path(path)
        self.resume_at = resume_at
        self._file = None

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.resume_at is not None and self.path.is_file() and not self.path.is_symlink():
            kept = [json.dumps(e) + "\n" for e in read_metrics(self.path)
                    if isinstance(e.get("iter"), int) and e["iter"] < self.resume_at]
            atomic_write(self.path, lambda handle: handle.write("".join(kept).encode("utf-8")))
        self._file = open_new(self.path, append=self.resume_at is not None)

    def write(self, event: dict[str, Any]) -> None:
        if self._file is None:
            self._open()
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                 for k, v in event.items()}
        try:
            self._file.write(json.dumps(clean) + "\n")
            self._file.flush()
        except OSError as err:          # a full disk: a cut-off last line is skipped when read
            raise DataError(f"{self.path}: cannot write ({err.strerror or err})") from None

    def close(self) -> None:
        if self._file is not None:
            file, self._file = self._file, None
            try:
                file.close()
            except OSError as err:
                raise DataError(f"{self.path}: cannot write ({err.strerror or err})") from None

    def __enter__(self) -> "MetricsLog":
        return self

    def __exit__(self, kind: Any, *exc: Any) -> None:
        if kind is None:
            self.close()
            return
        with suppress(DataError):       # the error on its way out says what went wrong first
            self.close()


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The events of a metrics.jsonl file (blank or cut-off lines are skipped)."""
    events = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            event = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            continue
        if isinstance(event, dict):
            events.append(event)
    return events


def plot_curves(events: list[dict[str, Any]], path: str | Path, title: str = "") -> Path | None:
    """Loss against iteration (train and test) and, beside it, every other test figure (accuracy).
    Returns the path written, or None when matplotlib is missing or there is nothing to plot."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    train = [e for e in events if e.get("phase") == "train" and e.get("loss") is not None]
    test = [e for e in events if e.get("phase") == "test"]
    if not train and not test:
        return None
    others = sorted({k for e in test for k, v in e.items() if isinstance(v, (int, float))}
                    - {"iter", "phase", "loss", "lr"})      # lists (per-class figures) left out
    fig, axes = plt.subplots(1, 2 if others else 1, figsize=(11 if others else 6, 4),
                             squeeze=False)
    loss_axis = axes[0][0]
    if train:
        loss_axis.plot([e["iter"] for e in train], [e["loss"] for e in train], label="train loss")
    if any("loss" in e for e in test):
        points = [e for e in test if e.get("loss") is not None]
        loss_axis.plot([e["iter"] for e in points], [e["loss"] for e in points], "o-",
                       label="test loss")
    loss_axis.set_xlabel("iteration")
    loss_axis.set_ylabel("loss")
    loss_axis.set_yscale("log" if all(e["loss"] > 0 for e in train) and train else "linear")
    loss_axis.legend()
    loss_axis.grid(alpha=0.3)
    if others:
        axis = axes[0][1]
        for name in others:
            points = [e for e in test if isinstance(e.get(name), (int, float))]
            axis.plot([e["iter"] for e in points], [e[name] for e in points], "o-",
                      label=f"test {name}")
        axis.set_xlabel("iteration")
        axis.legend()
        axis.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    atomic_write(path, lambda handle: fig.savefig(handle, dpi=100, format="png"))
    plt.close(fig)
    return path
