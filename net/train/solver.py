"""The solver: one training step, the test pass and the training loop (Caffe's Solver).

    from net import Net, Solver
    solver = Solver.from_config(net, {"base_lr": 0.1})   # the config's section, base_lr changed
    loss = solver.step({"data": x, "label": y})
    solver.solve(output_dir="runs/mine")

One step, as in Caffe: `iter_size` forward/backward passes whose parameter gradients are summed,
then (in this order) the gradients made complete (`reduce_gradients`: the one place a data-parallel
run averages them across processes), divided by `iter_size`, clipped to the global L2 norm
`clip_gradients`, regularised (`weight_decay` x `decay_mult`, L2 or L1) and turned into an update
by the solver type (`net.train.updates`), scaled by the learning rate x `lr_mult`. Updates happen
in place: the arrays in `net.params` stay the same objects for the whole run.
"""
from __future__ import annotations

import math
import signal
import sys
import threading
from collections import deque
from collections.abc import Mapping        # typing's isinstance check is Python code, 3x slower
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from ..core.config import parse_solver, snapshot_prefix_problem
from ..core.fillers import aligned_empty, aligned_pack, aligned_zeros
from ..core.hooks import BlobStats
from ..core.runner import Hook
from ..core.spec import SolverConfig, settings_of
from ..core.state import GatePosition
from ..core.yaml import LineDict, suggest
from ..errors import DataError, NumericalError
from .files import inside
from .updates import LR_POLICIES, UPDATE_RULES, Slot

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Solver:
    """Trains a Net: `step(feed)` for one iteration, `test(batches)`, `solve(data)` for the loop.

    Attributes: `net`, `config` (a SolverConfig), `iter` (iterations done), `trainable` (the
    parameters with lr_mult > 0, in the net's order), `history` (per slot name, per parameter).
    """

    def __init__(self, net: Any, config: SolverConfig):
        self.net, self.config = net, config
        self.iter = 0
        self.data: Any = None           # the Data being trained on (for snapshots)
        self.output_dir: Path | None = None   # where snapshots go; None: no snapshots
        self.writes_files = True        # False on the ranks of a data-parallel run but rank 0
        self.losses: deque[float] = deque(maxlen=config.average_loss)
        self._stop = False
        net.phase = "train"
        self.loss_weights = list(net.loss_weights.items())
        if not self.loss_weights:
            raise net.spec.error("the net has no loss in the train phase: give a gate of a "
                                 "*Loss type, or a `loss_weight` on a top",
                                 net.spec.line_of("gates"))
        problem = not config.snapshot_prefix and snapshot_prefix_problem(net.name)
        if problem:
            raise net.spec.error(f"the net's name is the default solver.snapshot_prefix, and "
                                 f"it {problem}; set solver.snapshot_prefix",
                                 net.spec.line_of("name"))
        self.trainable = [n for n, p in net.params.items() if net.param_rules[n].lr_mult > 0]
        self._update, slot_names, scratches = UPDATE_RULES[config.type]
        self.slot_names = slot_names
        self.slots = []
        for n in self.trainable:        # the solver's arrays aligned as the parameters (fillers)
            weight, rule = net.params[n], net.param_rules[n]
            shape, dtype = weight.shape, weight.dtype
            self.slots.append(Slot(n, weight, rule.lr_mult, config.weight_decay * rule.decay_mult,
                                   [aligned_zeros(shape, dtype) for _ in slot_names],
                                   aligned_empty(shape, dtype),
                                   aligned_empty(shape, dtype) if scratches == 2 else None))
        self._accumulated = self._accumulation_buffers() if config.iter_size > 1 else None

    def _accumulation_buffers(self) -> dict[str, np.ndarray]:
        """Per trainable parameter, a view into one zeroed buffer where its gradients add up over
        iter_size passes, each on a cache line's start as the parameters are (`acc += grad` on a
        256x784 float32 array 16 bytes off one measured 15-18% slower)."""
        return aligned_pack({s.name: s.weight.shape for s in self.slots}, self.net.dtype)[1]

    @classmethod
    def from_config(cls, net: Any, solver: Mapping | None = None, **overrides: Any) -> "Solver":
        """A solver for `net`: the config's `solver:` section, changed key by key by the keys of
        `solver` (a mapping) and then by keyword `overrides` (e.g. max_iter=100; None values are
        ignored). Every key is validated as in a config file."""
        base = net.spec.solver
        merged = LineDict(base.given if base is not None else {})
        if base is not None:
            merged.key_lines.update(base.lines)
            merged.line = net.spec.line_of("solver")
        options = settings_of(SolverConfig)
        for key, value in {**dict(solver or {}), **overrides}.items():
            if value is None:
                continue
            if key not in options:     # an override is the caller's mistake, not the file's
                raise ValueError(f"unknown solver setting {key!r}{suggest(str(key), options)}")
            try:
                merged[key] = options[key].convert(value)
            except ValueError as err:
                raise ValueError(f"solver.{key} {err} (given in place of the config's)") \
                    from None
            merged.key_lines.pop(key, None)
        return cls(net, parse_solver(merged, net.spec.file))

    @property
    def history(self) -> dict[str, dict[str, np.ndarray]]:
        """Solver state per slot ("history", or Adam's "m" and "v"), per parameter name."""
        return {slot: {s.name: s.history[i] for s in self.slots}
                for i, slot in enumerate(self.slot_names)}

    def learning_rate(self, iteration: int | None = None) -> float:
        """The rate of `lr_policy` at `iteration` (default: the current one)."""
        return LR_POLICIES[self.config.lr_policy](self.config,
                                                  self.iter if iteration is None else iteration)

    # -- one iteration ----------------------------------------------------------------------------
    def step(self, feed: Mapping[str, Any] | Iterable[Mapping[str, Any]],
             hook: Hook | None = None) -> float:
        """One iteration: forward/backward on `feed` (or on `iter_size` feeds), then the update.
        `hook` is a runner hook called after every gate of both passes (net.core.hooks).
        Returns the loss (the loss tops times their weights, averaged over the feeds)."""
        feeds = (feed,) if isinstance(feed, Mapping) else feed     # an iterable is read lazily
        size = self.config.iter_size
        net = self.net
        if net.phase != "train":
            net.phase = "train"
        loss, index = 0.0, -1
        try:
            for index, one in enumerate(feeds):
                if index == size:
                    raise ValueError(f"iter_size is {size}: step takes {size} feed(s), got more")
                net.forward(one, hook)
                for top, weight in self.loss_weights:
                    value = net.blobs[top]      # np.sum of a scalar loss costs 2 us, float 0.04
                    loss += weight * float(value if value.ndim == 0 else np.sum(value))
                grads = net.backward(wrt=self.trainable, hook=hook)
                if self._accumulated is not None:
                    for name, target in self._accumulated.items():
                        if index == 0:
                            np.copyto(target, grads[name])
                        else:
                            target += grads[name]
        except NumericalError as err:
            err.iteration = self.iter
            raise
        if index + 1 != size:
            raise ValueError(f"iter_size is {size}: step needs {size} feed(s), got {index + 1}")
        if self._accumulated is not None:
            grads = self._accumulated
        grads, loss = self.reduce_gradients(grads, loss / size)
        self.apply_update(grads)
        self.iter += 1
        return loss

    def reduce_gradients(self, grads: dict[str, np.ndarray], loss: float
                         ) -> tuple[dict[str, np.ndarray], float]:
        """Called once per step with the complete gradients (summed over `iter_size`) and the
        loss, before any update. A single process has nothing to do; a data-parallel subclass
        averages both across processes here. Treat `grads` arrays as read-only (return new ones):
        some are buffers of the gates; with iter_size > 1 they are views into one buffer,
        owned by the solver."""
        return grads, loss

    def apply_update(self, grads: Mapping[str, np.ndarray]) -> None:
        """Clip, regularise and apply one update to every trainable parameter, in place."""
        c = self.config
        rate = self.learning_rate()
        scale = 1.0 / c.iter_size
        if c.clip_gradients > 0:
            # as Caffe: the norm of the gradient summed over iter_size, before normalising
            norm = math.sqrt(sum(float(np.vdot(g, g)) for g in (grads[s.name] for s in self.slots)))
            if norm > c.clip_gradients:
                scale *= c.clip_gradients / norm
        for slot in self.slots:
            self._update(slot, self._regularized(slot, grads[slot.name], scale),
                         rate * slot.lr_mult, c, self.iter + 1)

    def _regularized(self, slot: Slot, grad: np.ndarray, scale: float) -> np.ndarray:
        """scale x grad + decay x (w or sign(w)), in `slot.scratch` unless it is plain `grad`."""
        out = slot.scratch
        if slot.decay == 0.0:
            if scale == 1.0:
                return grad
            return np.multiply(grad, scale, out=out)
        if self.config.regularization_type == "L2":
            np.multiply(slot.weight, slot.decay, out=out)
        else:
            np.sign(slot.weight, out=out)
            out *= slot.decay
        if scale == 1.0:
            out += grad
        else:
            out += grad * scale
        return out

    # -- testing ------------------------------------------------------------------------------
    def test(self, batches: Any) -> dict[str, Any]:
        """Run the test phase over `batches` (a net.train.data.Batches) and return each output
        averaged over the samples, plus `loss` (the test-phase loss tops times their weights).
        A scalar output gives a number; an output of the same shape in every batch (Caffe's
        per-class accuracy) gives the list of its elements' averages, as Caffe prints each
        element (so per-class accuracy is a mean over batches, as in Caffe, not test.py's exact
        count); an output whose shape changes between batches is no figure and is left out.
        With `test_iter` > 0, that many batches from the start of the set; else the whole set.
        A stop request (Ctrl-C, SIGTERM) ends the pass early: it raises TestInterrupted."""
        net = self.net
        net.phase = "test"
        try:
            weights = net.loss_weights
            totals: dict[str, Any] = {}
            varying: set[str] = set()
            count = 0
            for feed, n in self._test_batches(batches):
                if self._stop:
                    raise TestInterrupted(f"the test pass at iteration {self.iter} was stopped")
                outputs = net.forward(feed)
                if weights:
                    totals["loss"] = totals.get("loss", 0.0) + n * sum(
                        w * float(np.sum(outputs[t])) for t, w in weights.items())
                for name, value in outputs.items():
                    if name in varying or (name == "loss" and weights):
                        continue
                    value = np.asarray(value, dtype=np.float64)
                    if name in totals and np.shape(totals[name]) != value.shape:
                        varying.add(name)
                        del totals[name]
                        continue
                    totals[name] = totals.get(name, 0.0) + n * value
                count += n
            totals, count = self.reduce_totals(totals, count)
            return {name: _average(total, count) for name, total in totals.items()}
        except NumericalError as err:
            err.iteration = self.iter
            raise
        finally:
            net.phase = "train"

    def _test_batches(self, batches: Any):
        if self.config.test_iter <= 0:
            yield from batches.one_pass()
            return
        saved = batches.state()
        batches.set_state(0, 0)
        try:
            for _ in range(self.config.test_iter):
                feed = batches.next()
                yield feed, len(next(iter(feed.values())))
        finally:
            batches.set_state(**saved)

    def reduce_totals(self, totals: dict[str, float], count: int) -> tuple[dict[str, float], int]:
        """Test sums and sample count of this process; a data-parallel subclass sums them over
        processes, so test figures cover the whole test set."""
        return totals, count

    # -- the loop -----------------------------------------------------------------------------
    def solve(self, data: Any = None, *, output_dir: str | Path | None = None,
              progress: bool = False, log: Callable[[str], None] | None = None,
              on_event: Callable[[dict], None] | None = None) -> dict[str, Any]:
        """Train until `max_iter` as Caffe's Solver::Solve does: a test pass every
        `test_interval` iterations (and at the start unless `test_initialization` is false),
        a display line every `display`, a snapshot every `snapshot` and at the end.

        data: what to train on: a net.train.data.Data, in-memory arrays (`(X, y)`, a mapping of
            input name to array, or {"train": ..., "test": ...} of those), or None for the
            config's `data:` section.
        output_dir: where snapshots go (default `self.output_dir`; when neither is set, or
            `writes_files` is False, no snapshot is written).
        log: receives display lines; on_event: receives each metrics record (a dict).
        Ctrl-C or SIGTERM stops after the current iteration (or test batch), with a snapshot; a
        second Ctrl-C aborts at once (writes are atomic, so no file is left half-written).
        A loss or parameter that becomes NaN or Inf stops training: nothing is snapshotted from
        that state, so the last snapshot written is the last finite one.
        Returns {"iter", "loss" (smoothed), "test" (the last test figures), "test_iter" (when),
        "snapshot" (the last (weights, solverstate) paths), "interrupted" (True when stopped by
        a signal or request_stop), "signal" ("SIGINT", "SIGTERM" or None), "diverged" (None, or
        {"iter", "loss"} of the step that went non-finite)}.
        """
        from .data import as_data

        data = as_data(self.net, data, self.config.random_seed)
        if data.train is None:
            raise self.net.spec.error("training needs a `data: train:` source",
                                      self.net.spec.line_of("data"))
        self.data = data
        if output_dir is not None:
            self.output_dir = Path(output_dir)
        run = _Run(self, data, log, on_event, _progress(progress, self.config.max_iter, self.iter))
        self._stop = False
        self.stop_signal = None
        restore = self._catch_signals()
        try:
            run.loop()
        finally:
            restore()
            run.close()
        run.result["iter"] = self.iter
        return run.result

    def snapshot_prefix(self) -> Path:
        """Where snapshots go: `snapshot_prefix` (default: the net's name) in `output_dir`;
        it may not leave that directory, nor pass through a symlinked folder in it."""
        prefix = self.config.snapshot_prefix or self.net.name
        return inside(self.output_dir or Path("."), prefix, "solver.snapshot_prefix")

    def request_stop(self) -> None:
        """Ask `solve` to stop after the current iteration (what Ctrl-C does)."""
        self._stop = True

    def _catch_signals(self) -> Callable[[], None]:
        """The first Ctrl-C, and SIGTERM (what schedulers send), ask to stop after this
        iteration; a second Ctrl-C aborts. Returns the function putting the old handlers back."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = {number: signal.getsignal(number) for number in STOP_SIGNALS}

        def handler(signum, frame):
            if signum == signal.SIGINT and self._stop:
                raise KeyboardInterrupt
            if not self._stop and signum == signal.SIGINT:
                sys.stderr.write("\nstopping after this iteration; press Ctrl-C again to abort\n")
            self._stop = True
            self.stop_signal = signal.Signals(signum).name

        for number in STOP_SIGNALS:
            signal.signal(number, handler)
        return lambda: [signal.signal(number, old) for number, old in previous.items()]

    def position(self) -> tuple:
        """What a step changes besides the parameters: the data order, the gates' random
        states and their buffers (BatchNorm's moving averages move in forward)."""
        return self.data.train.state(), GatePosition.capture(self.net.gates)

    def restore_position(self, position: tuple) -> None:
        data_state, gates = position
        self.data.train.set_state(**data_state)
        gates.restore()


@dataclass
class _Run:
    """One call of `Solver.solve`: the loop, split into its parts, and what it reports."""
    solver: Solver
    data: Any
    log: Callable[[str], None] | None
    emit: Callable[[dict], None] | None
    bar: Any
    result: dict[str, Any] = field(default_factory=dict)
    tested_at: int | None = None
    snapshot_at: int | None = None

    def __post_init__(self) -> None:
        self.result = {"iter": self.solver.iter, "loss": None, "test": None, "test_iter": None,
                       "snapshot": None, "interrupted": False, "signal": None, "diverged": None}

    def write(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line)
        elif self.log is not None:
            self.log(line)

    def record(self, event: dict) -> None:
        if self.emit is not None:
            self.emit(event)

    def loop(self) -> None:
        solver, c = self.solver, self.solver.config
        while solver.iter < c.max_iter and not solver._stop and not self.result["diverged"]:
            if c.test_interval and solver.iter % c.test_interval == 0 and (
                    solver.iter > 0 or c.test_initialization):
                self.test()
                if solver._stop:
                    break
            self.iteration()
            if c.snapshot and solver.iter % c.snapshot == 0 and not self.result["diverged"]:
                self.snapshot()
        self.result["interrupted"] = bool(solver._stop)
        self.result["signal"] = solver.stop_signal
        if self.result["diverged"]:
            return
        if c.snapshot_after_train and self.snapshot_at != solver.iter:
            self.snapshot()
        if not self.result["interrupted"] and not self.result["diverged"]:
            self.test()
            self.result["interrupted"] = bool(solver._stop)      # a stop during that test
            self.result["signal"] = solver.stop_signal

    def iteration(self) -> None:
        """One step, with the display line (and debug_info statistics) when it is due."""
        solver, c = self.solver, self.solver.config
        displaying = bool(c.display) and solver.iter % c.display == 0
        stats = BlobStats() if displaying and c.debug_info else None
        before = solver.position() if solver.net.debug else None
        feeds = (self.data.train.next() for _ in range(c.iter_size))
        rate = solver.learning_rate()
        try:
            with np.errstate(all="ignore"):   # a NaN is caught below, by name, not as a warning
                loss = solver.step(feeds, stats)
        except NumericalError as err:
            solver.restore_position(before)
            self.snapshot()
            if self.snapshot_at == solver.iter:
                err.message += f"; the state before it: {self.result['snapshot'][1]}"
            raise
        if not math.isfinite(loss):
            self.diverge(solver.iter - 1, loss)
            return
        solver.losses.append(loss)
        smoothed = self.result["loss"] = sum(solver.losses) / len(solver.losses)
        if displaying:
            self.record({"iter": solver.iter - 1, "phase": "train", "loss": smoothed, "lr": rate})
            self.write(f"iter {solver.iter - 1}: loss = {smoothed:.6g}, lr = {rate:.6g}")
            for line in stats.lines if stats else ():
                self.write("  " + line)
        if self.bar is not None:
            self.bar.update(1)
            if displaying or solver.iter % 10 == 0:
                self.bar.set_postfix(loss=f"{smoothed:.4g}", lr=f"{rate:.3g}", refresh=False)

    def diverge(self, iteration: int, loss: float) -> None:
        """Stop: the loss (or a parameter) is no longer finite. Nothing more is written."""
        self.result["diverged"] = {"iter": iteration, "loss": loss}
        last = self.result["snapshot"]
        self.write(f"iter {iteration}: the loss is {loss}: training diverged and stopped; "
                   + (f"the last finite snapshot is {last[1]}" if last else "no snapshot was "
                      "written") + f". Run again with --debug-nan to find the gate that first "
                   f"makes a NaN or Inf, or lower base_lr (now {self.solver.config.base_lr:g})")

    def test(self) -> None:
        solver = self.solver
        if self.data.test is None or self.tested_at == solver.iter:
            return
        try:
            figures = solver.test(self.data.test)
        except TestInterrupted:
            return
        self.tested_at = self.result["test_iter"] = solver.iter
        self.result["test"] = figures
        self.record({"iter": solver.iter, "phase": "test", "lr": solver.learning_rate(),
                     **figures})
        self.write(f"iter {solver.iter} test: " + ", ".join(f"{k} = {figure_text(v)}"
                                                            for k, v in figures.items()))

    def snapshot(self) -> None:
        from .snapshot import snapshot

        solver = self.solver
        if solver.output_dir is None or not solver.writes_files:
            return
        if not all(np.all(np.isfinite(p)) for p in solver.net.params.values()):
            self.diverge(solver.iter - 1, self.result["loss"] if self.result["loss"] is not None
                         else float("nan"))
            return
        try:
            written = snapshot(solver, solver.snapshot_prefix())
        except DataError as err:        # a full disk: say what is still there, and stop
            last = self.result["snapshot"]
            raise DataError(f"iteration {solver.iter}: the snapshot was not written: {err}; "
                            "training stopped" + (f"; the last complete snapshot is {last[1]}"
                                                  if last else "")) from None
        self.result["snapshot"] = written
        self.snapshot_at = solver.iter
        self.write(f"iter {solver.iter}: snapshot {self.result['snapshot'][0]}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class TestInterrupted(Exception):
    """A stop request arrived during a test pass (its figures are incomplete and not kept)."""


def figure_text(value: float | list) -> str:
    """A test figure for a display line: a number, or the first elements of a list."""
    if isinstance(value, list):
        flat = np.ravel(value)
        shown = ", ".join(f"{v:.4g}" for v in flat[:8])
        return f"[{shown}{', ...' if flat.size > 8 else ''}]"
    return f"{value:.6g}"


def _average(total: Any, count: int) -> float | list:
    mean = np.asarray(total, dtype=np.float64) / max(count, 1)
    return float(mean) if mean.ndim == 0 else mean.tolist()


def _progress(enabled: bool, total: int, initial: int):
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, initial=initial, unit="it", dynamic_ncols=True, leave=True)
