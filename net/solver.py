"""The solver: the `solver:` section of a config (Caffe's names and meanings), learning-rate
policies, the update rules, one training step, the test pass and the training loop.

    from net import Net, Solver
    solver = Solver.from_config(net, {"type": "SGD", "base_lr": 0.1, "momentum": 0.9})
    loss = solver.step({"data": x, "label": y})

One step, as in Caffe: `iter_size` forward/backward passes whose parameter gradients are summed,
then (in this order) the gradients made complete (`reduce_gradients`: the one place a data-parallel
run averages them across processes), divided by `iter_size`, clipped to the global L2 norm
`clip_gradients`, regularised (`weight_decay` x `decay_mult`, L2 or L1) and turned into an update
by the solver type, scaled by the learning rate x `lr_mult`. Updates happen in place: the arrays in
`net.params` stay the same objects for the whole run.

Update rules (g: the regularised gradient, lr: the local rate, t = iter + 1):
    SGD       v = momentum v + lr g;  w -= v
    Nesterov  v' = momentum v + lr g;  w -= (1 + momentum) v' - momentum v
    AdaGrad   h += g^2;  w -= lr g / (sqrt(h) + delta)
    RMSProp   h = rms_decay h + (1 - rms_decay) g^2;  w -= lr g / (sqrt(h) + delta)
    Adam      m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2  (b1 = momentum, b2 = momentum2)
              w -= lr sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + delta)
"""
from __future__ import annotations

import math
import signal
import threading
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from .config import LineDict, suggest
from .debug import blob_stats
from .errors import NumericalError

SOLVER_TYPES = ("SGD", "Nesterov", "AdaGrad", "RMSProp", "Adam")
LR_POLICIES = ("fixed", "step", "multistep", "exp", "inv", "poly", "sigmoid", "cosine")
HISTORY_SLOTS = {"SGD": ("history",), "Nesterov": ("history",), "AdaGrad": ("history",),
                 "RMSProp": ("history",), "Adam": ("m", "v")}


@dataclass
class SolverConfig:
    """The validated `solver:` section. Defaults follow Caffe (momentum 0 for SGD and Nesterov),
    except Adam's `momentum` (beta1: 0.9, as in Caffe's examples and PyTorch) and `display`
    (100)."""
    base_lr: float
    type: str = "SGD"
    momentum: float = 0.0
    momentum2: float = 0.999
    delta: float = 1e-8
    rms_decay: float = 0.99
    weight_decay: float = 0.0
    regularization_type: str = "L2"
    lr_policy: str = "fixed"
    gamma: float = 0.1
    power: float = 1.0
    stepsize: int = 0
    stepvalue: list[int] = field(default_factory=list)
    clip_gradients: float = -1.0
    iter_size: int = 1
    max_iter: int = 1000
    display: int = 100
    average_loss: int = 1
    test_interval: int = 0
    test_iter: int = 0
    test_initialization: bool = True
    snapshot: int = 0
    snapshot_prefix: str = ""
    snapshot_after_train: bool = True
    random_seed: int = 0
    debug_info: bool = False

    @classmethod
    def parse(cls, raw: Mapping | None, error: Callable[[str, int], Exception]) -> "SolverConfig":
        """Validate a `solver:` mapping; `error(message, line)` builds the exception raised."""
        if raw is None:
            raise error("no `solver:` section: it needs at least `base_lr`", 0)
        if not isinstance(raw, Mapping):
            raise error(f"`solver` must be a mapping, got {raw!r}", getattr(raw, "line", 0))
        known = [f for f in cls.__dataclass_fields__]
        checks = _CHECKS
        values: dict[str, Any] = {}
        for key, value in raw.items():
            line = raw.line_of(key) if isinstance(raw, LineDict) else 0
            if key not in checks:
                close = suggest(str(key), known)
                raise error(f"unknown key {key!r} in `solver`{close} (known: {', '.join(known)})",
                            line)
            problem = checks[key](value)
            if problem:
                raise error(f"solver.{key} must be {problem}, got {value!r}", line)
            values[key] = float(value) if isinstance(cls.__dataclass_fields__[key].default,
                                                     float) or key == "base_lr" else value
        if "base_lr" not in values:
            raise error("`solver` needs `base_lr`, the base learning rate",
                        getattr(raw, "line", 0))
        kind = values.get("type", "SGD")
        if kind in ("AdaGrad", "RMSProp"):
            if values.get("momentum", 0.0) != 0.0:
                raise error(f"solver.momentum cannot be used with {kind} (leave it out)",
                            _line(raw, "momentum"))
            values["momentum"] = 0.0
        if kind == "Adam":
            values.setdefault("momentum", 0.9)
        config = cls(**values)
        config._check_policy(raw, error)
        return config

    def _check_policy(self, raw: Mapping, error: Callable[[str, int], Exception]) -> None:
        needs = {"step": ("stepsize",), "multistep": ("stepvalue",), "sigmoid": ("stepsize",)}
        for key in needs.get(self.lr_policy, ()):
            if key not in raw:
                raise error(f"lr_policy {self.lr_policy} needs solver.{key}",
                            _line(raw, "lr_policy"))
        if self.lr_policy == "step" and self.stepsize < 1:
            raise error("solver.stepsize must be a positive integer for lr_policy step",
                        _line(raw, "stepsize"))
        if list(self.stepvalue) != sorted(self.stepvalue):
            raise error(f"solver.stepvalue must increase, got {self.stepvalue}",
                        _line(raw, "stepvalue"))


def parse_solver_section(spec: Any, raw: Mapping | None = None) -> SolverConfig:
    """A config's `solver:` section (or `raw` in its place), validated; errors name the line."""
    return SolverConfig.parse(spec.solver if raw is None else raw,
                              lambda msg, line: spec.error(msg, line or spec.line_of("solver")))


def _line(raw: Any, key: str) -> int:
    return raw.line_of(key) if isinstance(raw, LineDict) else 0


def _number(low: float | None = None, high: float | None = None, strict_low: bool = False,
            strict_high: bool = False, what: str = "a number") -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return what
        if not math.isfinite(value):
            return what
        if low is not None and (value < low or (strict_low and value == low)):
            return what
        if high is not None and (value > high or (strict_high and value == high)):
            return what
        return None
    return check


def _integer(low: int, what: str) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= low
        return None if ok else what
    return check


def _choice(choices: tuple) -> Callable[[Any], str | None]:
    return lambda value: None if value in choices else f"one of {', '.join(choices)}"


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "true or false"


def _int_list(value: Any) -> str | None:
    ok = isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                                         for v in value)
    return None if ok else "a list of positive integers"


def _text(value: Any) -> str | None:
    return None if isinstance(value, str) and value else "a non-empty file name prefix"


_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "type": _choice(SOLVER_TYPES),
    "base_lr": _number(0, what="a non-negative number"),
    "momentum": _number(0, 1, strict_high=True, what="a number in [0, 1)"),
    "momentum2": _number(0, 1, strict_high=True, what="a number in [0, 1)"),
    "delta": _number(0, strict_low=True, what="a positive number"),
    "rms_decay": _number(0, 1, strict_high=True, what="a number in [0, 1)"),
    "weight_decay": _number(0, what="a non-negative number"),
    "regularization_type": _choice(("L2", "L1")),
    "lr_policy": _choice(LR_POLICIES),
    "gamma": _number(what="a number"),
    "power": _number(what="a number"),
    "stepsize": _integer(1, "a positive integer"),
    "stepvalue": _int_list,
    "clip_gradients": _number(what="a number (a positive one clips; -1: off)"),
    "iter_size": _integer(1, "a positive integer"),
    "max_iter": _integer(0, "a non-negative integer"),
    "display": _integer(0, "a non-negative integer (0: off)"),
    "average_loss": _integer(1, "a positive integer"),
    "test_interval": _integer(0, "a non-negative integer (0: test at the end only)"),
    "test_iter": _integer(0, "a non-negative integer (0: the whole test set)"),
    "test_initialization": _boolean,
    "snapshot": _integer(0, "a non-negative integer (0: only at the end)"),
    "snapshot_prefix": _text,
    "snapshot_after_train": _boolean,
    "random_seed": _integer(0, "a non-negative integer"),
    "debug_info": _boolean,
}


@dataclass(eq=False)
class _Slot:
    """One trainable parameter and the solver's arrays for it (all of the parameter's shape)."""
    name: str
    weight: np.ndarray
    lr_mult: float
    decay: float                     # weight_decay x decay_mult
    history: list[np.ndarray]
    scratch: np.ndarray
    scratch2: np.ndarray | None


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
        self.trainable = [n for n, p in net.params.items() if net.param_rules[n].lr_mult > 0]
        two = config.type in ("AdaGrad", "RMSProp", "Adam")
        self.slots = [_Slot(n, net.params[n], net.param_rules[n].lr_mult,
                            config.weight_decay * net.param_rules[n].decay_mult,
                            [np.zeros_like(net.params[n]) for _ in HISTORY_SLOTS[config.type]],
                            np.empty_like(net.params[n]),
                            np.empty_like(net.params[n]) if two else None)
                      for n in self.trainable]
        self._update = getattr(self, f"_update_{config.type.lower()}")
        self._accumulated: dict[str, np.ndarray] | None = None
        if config.iter_size > 1:
            total = sum(s.weight.size for s in self.slots)
            flat = np.zeros(total, dtype=net.dtype)   # one buffer: one allreduce per step
            self._accumulated, offset = {}, 0
            for s in self.slots:
                view = flat[offset:offset + s.weight.size]
                self._accumulated[s.name] = view.reshape(s.weight.shape)
                offset += s.weight.size

    @classmethod
    def from_config(cls, net: Any, solver: Mapping | None = None, **overrides: Any) -> "Solver":
        """A solver for `net` from a `solver:` mapping (default: the net's own config section).
        Keyword overrides (e.g. max_iter=100) are validated like config keys."""
        config = parse_solver_section(net.spec, solver)
        for key, value in overrides.items():
            if value is None:
                continue
            problem = _CHECKS[key](value) if key in _CHECKS else "a solver setting"
            if problem:
                raise ValueError(f"{key} must be {problem}, got {value!r}")
            setattr(config, key, value)
        return cls(net, config)

    @property
    def history(self) -> dict[str, dict[str, np.ndarray]]:
        """Solver state per slot ("history", or Adam's "m" and "v"), per parameter name."""
        slots = HISTORY_SLOTS[self.config.type]
        return {slot: {s.name: s.history[i] for s in self.slots} for i, slot in enumerate(slots)}

    # -- learning rate ----------------------------------------------------------------------------
    def learning_rate(self, iteration: int | None = None) -> float:
        """The rate of `lr_policy` at `iteration` (default: the current one)."""
        c, it = self.config, self.iter if iteration is None else iteration
        policy = c.lr_policy
        if policy == "fixed":
            return c.base_lr
        if policy == "step":
            return c.base_lr * c.gamma ** (it // c.stepsize)
        if policy == "multistep":
            return c.base_lr * c.gamma ** sum(it >= v for v in c.stepvalue)
        if policy == "exp":
            return c.base_lr * c.gamma ** it
        if policy == "inv":
            return c.base_lr * (1 + c.gamma * it) ** (-c.power)
        if policy == "poly":
            return c.base_lr * max(0.0, 1 - it / max(c.max_iter, 1)) ** c.power
        if policy == "sigmoid":
            return c.base_lr / (1 + math.exp(min(-c.gamma * (it - c.stepsize), 700.0)))
        return c.base_lr * 0.5 * (1 + math.cos(math.pi * min(it, c.max_iter) / max(c.max_iter, 1)))

    # -- one iteration ----------------------------------------------------------------------------
    def step(self, feed: Mapping[str, Any] | Iterable[Mapping[str, Any]],
             hooks: tuple = (None, None)) -> float:
        """One iteration: forward/backward on `feed` (or on `iter_size` feeds), then the update.
        Returns the loss (the loss tops times their weights, averaged over the feeds)."""
        feeds = [feed] if isinstance(feed, (dict, Mapping)) else list(feed)
        size = self.config.iter_size
        if len(feeds) != size:
            raise ValueError(f"iter_size is {size}: step needs {size} feed(s), got {len(feeds)}")
        net = self.net
        if net.phase != "train":
            net.phase = "train"
        loss = 0.0
        try:
            for index, one in enumerate(feeds):
                net.forward(one, hooks[0])
                blobs = net.blobs
                for top, weight in self.loss_weights:
                    loss += weight * float(np.sum(blobs[top]))
                grads = net.backward(wrt=self.trainable, hook=hooks[1])
                if self._accumulated is not None:
                    for name, target in self._accumulated.items():
                        if index == 0:
                            np.copyto(target, grads[name])
                        else:
                            target += grads[name]
        except NumericalError as err:
            err.iteration = self.iter
            raise
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
        some are buffers of the gates; with iter_size > 1 they are views of one contiguous
        buffer, owned by the solver."""
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
                         rate * slot.lr_mult)

    def _regularized(self, slot: _Slot, grad: np.ndarray, scale: float) -> np.ndarray:
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

    def _update_sgd(self, slot: _Slot, grad: np.ndarray, rate: float) -> None:
        velocity, step = slot.history[0], slot.scratch
        velocity *= self.config.momentum
        np.multiply(grad, rate, out=step)
        velocity += step
        slot.weight -= velocity

    def _update_nesterov(self, slot: _Slot, grad: np.ndarray, rate: float) -> None:
        # (1 + mu) v' - mu v  with  v' = mu v + lr g  equals  lr g + mu v'
        mu, velocity, step = self.config.momentum, slot.history[0], slot.scratch
        np.multiply(grad, rate, out=step)
        velocity *= mu
        velocity += step
        slot.weight -= step
        np.multiply(velocity, mu, out=step)
        slot.weight -= step

    def _update_adagrad(self, slot: _Slot, grad: np.ndarray, rate: float) -> None:
        square, step = slot.history[0], slot.scratch2
        np.multiply(grad, grad, out=step)
        square += step
        self._scaled_step(slot, grad, square, rate)

    def _update_rmsprop(self, slot: _Slot, grad: np.ndarray, rate: float) -> None:
        decay, square, step = self.config.rms_decay, slot.history[0], slot.scratch2
        np.multiply(grad, grad, out=step)
        step *= 1 - decay
        square *= decay
        square += step
        self._scaled_step(slot, grad, square, rate)

    def _update_adam(self, slot: _Slot, grad: np.ndarray, rate: float) -> None:
        c = self.config
        mean, square, step = slot.history[0], slot.history[1], slot.scratch2
        t = self.iter + 1
        mean *= c.momentum
        np.multiply(grad, 1 - c.momentum, out=step)
        mean += step
        np.multiply(grad, grad, out=step)
        step *= 1 - c.momentum2
        square *= c.momentum2
        square += step
        correction = math.sqrt(1 - c.momentum2 ** t) / (1 - c.momentum ** t)
        self._scaled_step(slot, mean, square, rate * correction)

    def _scaled_step(self, slot: _Slot, numerator: np.ndarray, square: np.ndarray, rate: float
                     ) -> None:
        """w -= rate x numerator / (sqrt(square) + delta), through scratch2."""
        step = slot.scratch2
        np.sqrt(square, out=step)
        step += self.config.delta
        np.divide(numerator, step, out=step)
        step *= rate
        slot.weight -= step

    # -- testing ------------------------------------------------------------------------------
    def test(self, batches: Any) -> dict[str, float]:
        """Run the test phase over `batches` (a net.data.Batches) and return each scalar output
        averaged over the samples, plus `loss` (the test-phase loss tops times their weights).
        With `test_iter` > 0, that many batches from the start of the set; else the whole set."""
        net = self.net
        net.phase = "test"
        try:
            weights = net.loss_weights
            totals: dict[str, float] = {}
            count = 0
            for feed, n in self._test_batches(batches):
                outputs = net.forward(feed)
                if weights:
                    totals["loss"] = totals.get("loss", 0.0) + n * sum(
                        w * float(np.sum(outputs[t])) for t, w in weights.items())
                for name, value in outputs.items():
                    if np.size(value) == 1 and not (name == "loss" and weights):
                        totals[name] = totals.get(name, 0.0) + n * float(value)
                count += n
            totals, count = self.reduce_totals(totals, count)
            return {name: total / max(count, 1) for name, total in totals.items()}
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

        data: a net.data.Data (default: the net's `data:` section, loaded and validated).
        output_dir: where snapshots go (default `self.output_dir`; when neither is set, or
            `writes_files` is False, no snapshot is written).
        log: receives display lines; on_event: receives each metrics record (a dict).
        Ctrl-C stops after the current iteration, with a snapshot; a second Ctrl-C aborts.
        Returns {"iter", "loss" (smoothed), "test" (the last test figures), "test_iter" (when),
        "snapshot" (the last (weights, solverstate) paths), "interrupted"}.
        """
        from .data import load_data
        from .snapshot import snapshot

        c = self.config
        data = data if data is not None else load_data(self.net, c.random_seed)
        if data.train is None:
            raise self.net.spec.error("training needs a `data: train:` source",
                                      self.net.spec.line_of("data"))
        self.data = data
        if output_dir is not None:
            self.output_dir = Path(output_dir)
        log = log or (lambda line: None)
        emit = on_event or (lambda record: None)
        bar = _progress(progress, c.max_iter, self.iter)
        write = log if bar is None else (lambda line: bar.write(line))
        result: dict[str, Any] = {"iter": self.iter, "loss": None, "test": None,
                                  "test_iter": None, "snapshot": None, "interrupted": False}
        done = {"test": None, "snapshot": None}      # the iteration of the last test / snapshot

        def run_test() -> None:
            if data.test is None or done["test"] == self.iter:
                return
            figures = self.test(data.test)
            done["test"] = result["test_iter"] = self.iter
            result["test"] = figures
            emit({"iter": self.iter, "phase": "test", "lr": self.learning_rate(), **figures})
            write(f"iter {self.iter} test: " + ", ".join(f"{k} = {v:.6g}"
                                                          for k, v in figures.items()))

        def take_snapshot() -> None:
            if self.output_dir is None or not self.writes_files:
                return
            result["snapshot"] = snapshot(self, self.snapshot_prefix())
            done["snapshot"] = self.iter
            write(f"iter {self.iter}: snapshot {result['snapshot'][0]}")

        self._stop = False
        restore = self._catch_interrupt()
        try:
            while self.iter < c.max_iter and not self._stop:
                if c.test_interval and self.iter % c.test_interval == 0 and (
                        self.iter > 0 or c.test_initialization):
                    run_test()
                displaying = bool(c.display) and self.iter % c.display == 0
                hooks = self._stats_hooks() if displaying and c.debug_info else (None, None, None)
                before = self._position() if self.net.debug else None
                feeds = [data.train.next() for _ in range(c.iter_size)]
                rate = self.learning_rate()
                try:
                    loss = self.step(feeds, hooks[:2])
                except NumericalError as err:
                    self._restore_position(before)
                    take_snapshot()
                    if done["snapshot"] == self.iter:
                        err.message += f"; the state before it: {result['snapshot'][1]}"
                    raise
                self.losses.append(loss)
                smoothed = sum(self.losses) / len(self.losses)
                result["loss"] = smoothed
                if displaying:
                    emit({"iter": self.iter - 1, "phase": "train", "loss": smoothed, "lr": rate})
                    write(f"iter {self.iter - 1}: loss = {smoothed:.6g}, lr = {rate:.6g}")
                    for line in hooks[2]() if hooks[2] else ():
                        write("  " + line)
                if bar is not None:
                    bar.update(1)
                    if displaying or self.iter % 10 == 0:
                        bar.set_postfix(loss=f"{smoothed:.4g}", lr=f"{rate:.3g}", refresh=False)
                if c.snapshot and self.iter % c.snapshot == 0:
                    take_snapshot()
            result["interrupted"] = self._stop
            if c.snapshot_after_train and done["snapshot"] != self.iter:
                take_snapshot()
            if not result["interrupted"]:
                run_test()
        finally:
            restore()
            if bar is not None:
                bar.close()
        result["iter"] = self.iter
        return result

    def snapshot_prefix(self) -> Path:
        """Where snapshots go: `snapshot_prefix` (default: the net's name) in `output_dir`."""
        prefix = self.config.snapshot_prefix or self.net.name
        return (self.output_dir or Path(".")) / prefix

    def request_stop(self) -> None:
        """Ask `solve` to stop after the current iteration (what Ctrl-C does)."""
        self._stop = True

    def _catch_interrupt(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = signal.getsignal(signal.SIGINT)

        def handler(signum, frame):
            if self._stop:
                raise KeyboardInterrupt
            self._stop = True

        signal.signal(signal.SIGINT, handler)
        return lambda: signal.signal(signal.SIGINT, previous)

    def _position(self) -> tuple:
        """What a step changes besides the parameters: the data order, the gates' random
        states and their buffers (BatchNorm's moving averages move in forward)."""
        return (self.data.train.state(),
                {name: g.rng.bit_generator.state for name, g in self.net.gates.items()},
                {name: value.copy() for name, value in self.net.buffers.items()})

    def _restore_position(self, position: tuple | None) -> None:
        if position is not None:
            data_state, rngs, buffers = position
            self.data.train.set_state(**data_state)
            for name, state in rngs.items():
                self.net.gates[name].rng.bit_generator.state = state
            live = self.net.buffers
            for name, value in buffers.items():
                np.copyto(live[name], value)

    def _stats_hooks(self) -> tuple:
        """Runner hooks collecting mean |x| and L2 norm of every output and gradient (debug_info),
        and a function returning them as display lines."""
        lines: list[str] = []

        def record(step, direction, values):
            names = step.tops if direction == "forward" else step.inputs
            what = "output" if direction == "forward" else "gradient of"
            stats = blob_stats(dict(zip(names, values)))
            for name, s in stats.items():
                lines.append(f"[{direction}] {step.spec.name}: {what} {name}: "
                             f"mean |x| = {s['mean_abs']:.4g}, L2 norm = {s['l2_norm']:.4g}")

        return record, record, lambda: lines

    def state_summary(self) -> dict[str, Any]:
        """The hyperparameters, as saved in a solverstate file."""
        return asdict(self.config)


def _progress(enabled: bool, total: int, initial: int):
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, initial=initial, unit="it", dynamic_ncols=True, leave=True)
