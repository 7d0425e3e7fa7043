"""Weights and solver-state files: written atomically, read safely, validated against the net.

    <prefix>_iter_<N>.weights.npz      one array per parameter, keyed by name (`fc1.W`), and one
                                       per gate buffer (`bn1.mean`): plain `np.load`-able arrays
    <prefix>_iter_<N>.solverstate.npz  the iteration, solver type and hyperparameters, the solver
                                       history, the data position, every gate's RNG state, the
                                       recent losses, and the name of its weights file

Writes go to a temporary file in the same folder, flushed and fsync'ed, then renamed over the
real name, so a crash never leaves a half-written file there. Reads go through
`net.train.files.read_npz`: member by member, without pickle, only the entries the net and solver
have, each member's declared shape and size checked before anything is allocated; names, shapes
and dtypes are checked before the net changes, and any problem is a DataError naming the file.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..core.state import (check_rng_states, register_weights_reader, rng_states,
                          set_rng_states, weight_arrays)
from ..errors import DataError
from .files import atomic_savez, read_npz

STATE_FORMAT = "gatework-solverstate/1"
TEXT_BYTES = 1 << 20             # a text entry of a solverstate (names, hyperparameters)
RNG_BYTES = 1 << 24              # the random states of every gate, as JSON


# -- weights ---------------------------------------------------------------------------------------
def save_weights(net: Any, path: str | Path) -> Path:
    """Write the net's parameters and buffers to `path` (atomically)."""
    return atomic_savez(path, weight_arrays(net))


def load_weights(net: Any, path: str | Path, strict: bool = False) -> dict[str, list[str]]:
    """`net.load_weights(path, strict)`: kept here for code written against it."""
    return net.load_weights(path, strict)


def read_weights_npz(path: Path, net: Any = None) -> dict[str, np.ndarray]:
    """The arrays of a Gatework weights file (the reader `Net.load_weights` uses for .npz)."""
    # only the net's names are read, each within a bound its array justifies (float64 of twice
    # the net's float32 size, and 1 MiB more, so a wrong shape is reported, not refused)
    expect = {name: 2 * array.size * 8 + (1 << 20)
              for name, array in weight_arrays(net).items()}
    arrays = read_npz(path, "weights file", {**expect, "format": TEXT_BYTES, "iter": ()})
    if arrays.get("format") is not None and arrays.get("iter") is not None:
        raise DataError(f"{path}: is a solver state, not a weights file: pass the .weights.npz "
                        "beside it (or resume from this file)")
    return arrays


register_weights_reader(".npz", read_weights_npz)


# -- solver state ----------------------------------------------------------------------------------
def save_solverstate(solver: Any, path: str | Path, weights: str | Path) -> Path:
    """Write everything `restore` needs to continue `solver` bit for bit (atomically)."""
    arrays: dict[str, Any] = {
        "format": np.array(STATE_FORMAT),
        "net": np.array(solver.net.name),
        "iter": np.array(solver.iter, dtype=np.int64),
        "type": np.array(solver.config.type),
        "hyperparameters": np.array(json.dumps(solver.config.hyperparameters(), sort_keys=True)),
        "weights": np.array(Path(weights).name),
        "rng": np.array(json.dumps(rng_states(solver.net.gates))),
        "losses": np.array(list(solver.losses), dtype=np.float64),
    }
    for slot, per_param in solver.history.items():
        for name, value in per_param.items():
            arrays[f"history:{slot}:{name}"] = value
    train = getattr(solver.data, "train", None)
    if train is not None:
        arrays["data_position"] = np.array([train.epoch, train.cursor, train.seed],
                                           dtype=np.int64)
    return atomic_savez(path, arrays)


def snapshot(solver: Any, prefix: str | Path) -> tuple[Path, Path]:
    """Write `<prefix>_iter_<N>.weights.npz`, then `<prefix>_iter_<N>.solverstate.npz`."""
    base = f"{prefix}_iter_{solver.iter}"
    weights = save_weights(solver.net, f"{base}.weights.npz")
    return weights, save_solverstate(solver, f"{base}.solverstate.npz", weights)


def restore(solver: Any, path: str | Path, data: Any = None) -> Path:
    """Continue from a solverstate file: its weights file (from the same folder), the iteration,
    history, loss window, gate RNG states and the train data position (of `data`, default
    `solver.data`). Everything is checked before anything changes. Returns the weights path."""
    path = Path(path)
    state = _read_state(solver, path)
    iteration = _integer(state, "iter", path)
    histories = _histories(solver, state, path)
    try:
        generators = check_rng_states(solver.net.gates, json.loads(_text(state, "rng", path)))
    except (ValueError, RecursionError) as err:
        raise DataError(f"{path}: unreadable RNG state ({type(err).__name__}: "
                        f"{str(err)[:200]})") from None
    data = data if data is not None else solver.data
    position = state.get("data_position")
    train = getattr(data, "train", None)
    if train is not None and position is not None:
        if position.shape != (3,) or position.dtype.kind not in "iu" or not (
                0 <= position[1] < len(train)):
            raise DataError(f"{path}: its data position {position.tolist()} does not fit the "
                            f"train set of {len(train)} samples (was the data changed?)")
    losses = state.get("losses", np.zeros(0))
    weights = path.parent / _text(state, "weights", path)
    if Path(_text(state, "weights", path)).name != _text(state, "weights", path):
        raise DataError(f"{path}: the weights file name must be a plain name in its folder")
    load_weights(solver.net, weights, strict=True)
    for target, value in histories.values():
        np.copyto(target, value, casting="same_kind")
    set_rng_states(solver.net.gates, generators)
    if train is not None and position is not None:
        train.seed = int(position[2])
        train.set_state(int(position[0]), int(position[1]))
    solver.iter = iteration
    solver.losses.clear()
    solver.losses.extend(float(v) for v in np.ravel(losses)[-solver.losses.maxlen:])
    return weights


def _read_state(solver: Any, path: Path) -> dict[str, np.ndarray | None]:
    """The entries of a solverstate file this solver can use, each within its bound."""
    expect: dict = {key: TEXT_BYTES for key in ("format", "net", "type", "hyperparameters",
                                                "weights")}
    expect.update({"iter": (), "data_position": (3,), "rng": RNG_BYTES, "losses": 1 << 23})
    # a history of another shape is read (within a bound its array justifies, as weights are)
    # so that _histories can name the parameter and both shapes
    expect.update({f"history:{slot}:{name}": 2 * target.size * 8 + (1 << 20)
                   for slot, per_param in solver.history.items()
                   for name, target in per_param.items()})
    state = read_npz(path, "solver state file", expect)
    if state.get("format") is None:
        raise DataError(f"{path}: not a Gatework solver state (no 'format' entry); resuming takes "
                        "the .solverstate.npz file of a snapshot")
    if _text(state, "format", path) != STATE_FORMAT:
        raise DataError(f"{path}: not a Gatework solver state (format "
                        f"{_text(state, 'format', path)!r}); pass the .solverstate.npz file")
    kind = _text(state, "type", path)
    if kind != solver.config.type:
        raise DataError(f"{path}: holds the state of solver type {kind}, but the config asks for "
                        f"{solver.config.type}")
    return state


def _histories(solver: Any, state: dict, path: Path) -> dict[str, tuple]:
    """Per history entry, (the solver's array, the file's values), all checked."""
    histories = {}
    for slot, per_param in solver.history.items():
        for name, target in per_param.items():
            key = f"history:{slot}:{name}"
            if state.get(key) is None:
                raise DataError(f"{path}: no solver history for parameter {name!r} (is it from "
                                "another net, or were lr_mult settings changed?)")
            if state[key].shape != target.shape or state[key].dtype.kind != "f":
                raise DataError(f"{path}: the solver history of {name!r} is "
                                f"{state[key].dtype} {state[key].shape}, the net needs "
                                f"{target.shape} (is the snapshot from another net?)")
            if not np.all(np.isfinite(state[key])):
                raise DataError(f"{path}: the solver history of {name!r} holds NaN or Inf "
                                "(the run had diverged when it was saved)")
            histories[key] = (target, state[key])
    extra = [k[8:] for k in state if k.startswith("history:") and k not in histories]
    if extra:
        raise DataError(f"{path}: holds history for parameters the solver does not train: "
                        f"{', '.join(extra)}")
    return histories


def _text(state: dict, key: str, path: Path) -> str:
    value = state.get(key)
    if value is None or value.shape != () or value.dtype.kind != "U":
        raise DataError(f"{path}: missing or malformed entry {key!r}")
    return str(value)


def _integer(state: dict, key: str, path: Path) -> int:
    value = state.get(key)
    if value is None or value.shape != () or value.dtype.kind not in "iu" or value < 0:
        raise DataError(f"{path}: missing or malformed entry {key!r}")
    return int(value)
