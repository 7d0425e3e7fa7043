"""Update rules and learning-rate policies, as tables: the solver looks a rule up by the config's
`type` and a policy by its `lr_policy` (the names `net.core.spec` validates).

Update rules (g: the regularised gradient, lr: the local rate, t = iter + 1), as Caffe computes
them; every array operation happens in place, in the slot's own buffers:
    SGD       v = momentum v + lr g;  w -= v
    Nesterov  v' = momentum v + lr g;  w -= (1 + momentum) v' - momentum v
    AdaGrad   h += g^2;  w -= lr g / (sqrt(h) + delta)
    RMSProp   h = rms_decay h + (1 - rms_decay) g^2;  w -= lr g / (sqrt(h) + delta)
    AdaDelta  h = momentum h + (1 - momentum) g^2;  u = g sqrt((d + delta) / (h + delta));
              d = momentum d + (1 - momentum) u^2;  w -= lr u
    Adam      m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2  (b1 = momentum, b2 = momentum2)
              w -= lr sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + delta)
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np

from ..core.spec import SolverConfig


@dataclass(eq=False)
class Slot:
    """One trainable parameter and the solver's arrays for it (all of the parameter's shape)."""
    name: str
    weight: np.ndarray
    lr_mult: float
    decay: float                     # weight_decay x decay_mult
    history: list[np.ndarray]
    scratch: np.ndarray
    scratch2: np.ndarray | None      # only for the rules that need two (UpdateRule.scratches)


Update = Callable[[Slot, np.ndarray, float, SolverConfig, int], None]


def sgd(slot: Slot, grad: np.ndarray, rate: float, c: SolverConfig, t: int) -> None:
    velocity, step = slot.history[0], slot.scratch
    velocity *= c.momentum
    np.multiply(grad, rate, out=step)
    velocity += step
    slot.weight -= velocity


def nesterov(slot: Slot, grad: np.ndarray, rate: float, c: SolverConfig, t: int) -> None:
    # (1 + mu) v' - mu v  with  v' = mu v + lr g  equals  lr g + mu v'
    velocity, step = slot.history[0], slot.scratch
    np.multiply(grad, rate, out=step)
    velocity *= c.momentum
    velocity += step
    slot.weight -= step
    np.multiply(velocity, c.momentum, out=step)
    slot.weight -= step


def adagrad(slot: Slot, grad: np.ndarray, rate: float, c: SolverConfig, t: int) -> None:
    square, step = slot.history[0], slot.scratch2
    np.multiply(grad, grad, out=step)
    square += step
    _scaled_step(slot, grad, square, rate, c.delta)


def rmsprop(slot: Slot, grad: np.ndarray, rate: float, c: SolverConfig, t: int) -> None:
    _decayed_square(slot.history[0], grad, c.rms_decay, slot.scratch2)
    _scaled_step(slot, grad, slot.history[0], rate, c.delta)


def adadelta(slot: Slot, grad: np.ndarray, rate: float, c: SolverConfig, t: int) -> None:
    square, updates, step = slot.history[0], slot.history[1], slot.scratch2
    _decayed_square(square, grad, c.momentum, step)
    np.add(updates, c.delta, out=step)            # u = g sqrt((d + delta) / (h + delta))
    step /= square + c.delta
    np.sqrt(step, out=step)
    step *= grad
    _decayed_square(updates, step, c.momentum, slot.scratch)
    step *= rate
    slot.weight -= step


def adam(slot: Slot, grad: np.ndarray, rate: float, c: SolverConfig, t: int) -> None:
    mean, square, step = slot.history[0], slot.history[1], slot.scratch2
    mean *= c.momentum
    np.multiply(grad, 1 - c.momentum, out=step)
    mean += step
    _decayed_square(square, grad, c.momentum2, step)
    correction = math.sqrt(1 - c.momentum2 ** t) / (1 - c.momentum ** t)
    _scaled_step(slot, mean, square, rate * correction, c.delta)


def _decayed_square(square: np.ndarray, value: np.ndarray, decay: float, scratch: np.ndarray
                    ) -> None:
    """square = decay square + (1 - decay) value^2, through `scratch`."""
    np.multiply(value, value, out=scratch)
    scratch *= 1 - decay
    square *= decay
    square += scratch


def _scaled_step(slot: Slot, numerator: np.ndarray, square: np.ndarray, rate: float,
                 delta: float) -> None:
    """w -= rate x numerator / (sqrt(square) + delta), through scratch2."""
    step = slot.scratch2
    np.sqrt(square, out=step)
    step += delta
    np.divide(numerator, step, out=step)
    step *= rate
    slot.weight -= step


class UpdateRule(NamedTuple):
    """An update function, the names of its history arrays (as saved in a solverstate) and how
    many scratch arrays of the parameter's shape it writes through (2: `scratch2` too)."""
    update: Update
    history: tuple[str, ...]
    scratches: int


#: solver type -> its update rule
UPDATE_RULES: dict[str, UpdateRule] = {
    "SGD": UpdateRule(sgd, ("history",), 1),
    "Nesterov": UpdateRule(nesterov, ("history",), 1),
    "AdaGrad": UpdateRule(adagrad, ("history",), 2),
    "RMSProp": UpdateRule(rmsprop, ("history",), 2),
    "AdaDelta": UpdateRule(adadelta, ("history", "update_history"), 2),
    "Adam": UpdateRule(adam, ("m", "v"), 2),
}

#: lr_policy -> the rate at iteration `it` (Caffe's formulas; cosine anneals to 0 at max_iter)
LR_POLICIES: dict[str, Callable[[SolverConfig, int], float]] = {
    "fixed": lambda c, it: c.base_lr,
    "step": lambda c, it: c.base_lr * c.gamma ** (it // c.stepsize),
    "multistep": lambda c, it: c.base_lr * c.gamma ** sum(it >= v for v in c.stepvalue),
    "exp": lambda c, it: c.base_lr * c.gamma ** it,
    "inv": lambda c, it: c.base_lr * (1 + c.gamma * it) ** (-c.power),
    "poly": lambda c, it: c.base_lr * max(0.0, 1 - it / max(c.max_iter, 1)) ** c.power,
    "sigmoid": lambda c, it: c.base_lr / (1 + math.exp(min(-c.gamma * (it - c.stepsize), 700.0))),
    "cosine": lambda c, it: c.base_lr * 0.5 * (1 + math.cos(math.pi * min(it, c.max_iter)
                                                            / max(c.max_iter, 1))),
}
