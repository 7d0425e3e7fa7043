"""Weights and solver-state files: written atomically, read safely, validated against the net.

    <prefix>_iter_<N>.weights.npz      one array per parameter, keyed by name (`fc1.W`), and one
                                       per gate buffer (`bn1.mean`): plain `np.load`-able arrays
    <prefix>_iter_<N>.solverstate.npz  the iteration, solver type and hyperparameters, the solver
                                       history, the data position, every gate's RNG state, the
                                       recent losses, and the name of its weights file

Writes go to a temporary file in the same folder, flushed and fsync'ed, then renamed over the
real name, so a crash never leaves a half-written file there. Reads use
`np.load(allow_pickle=False)` and check names, shapes and dtypes before touching the net; any
problem is a DataError naming the file.
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
from contextlib import suppress
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError

STATE_FORMAT = "gatework-solverstate/1"


# -- files -----------------------------------------------------------------------------------------
def atomic_savez(path: str | Path, arrays: dict[str, Any]) -> Path:
    """np.savez to `path` through a temporary file and a rename: all or nothing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **arrays)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o666 & ~_umask())     # mkstemp makes it private; use the umask
        os.replace(temporary, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(temporary)
        raise
    with suppress(OSError):              # make the rename itself durable where the OS allows
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    return path


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def read_npz(path: str | Path, what: str = "file") -> dict[str, np.ndarray]:
    """Every array of an .npz file, read without pickle; DataError naming the file if it is
    missing, truncated, corrupt or holds Python objects."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such {what}")
    try:
        with open(path, "rb") as handle:
            magic = handle.read(6)
    except OSError as err:
        raise DataError(f"{path}: cannot read {what} ({err.strerror})") from None
    if not magic.startswith(b"PK"):
        kind = "a single .npy array" if magic.startswith(b"\x93NUMPY") else "not a zip archive"
        raise DataError(f"{path}: not an .npz {what}: {kind} (corrupt, truncated, or another "
                        "kind of file)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            if not hasattr(archive, "files"):
                raise DataError(f"{path}: not an .npz archive (a single array?)")
            return {name: archive[name] for name in archive.files}
    except DataError:
        raise
    except ValueError as err:
        if "pickle" in str(err):
            raise DataError(f"{path}: holds pickled Python objects, which Gatework never loads "
                            "(is this a Gatework snapshot?)") from None
        raise DataError(f"{path}: corrupt or truncated {what} ({err})") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError, RuntimeError) as err:
        raise DataError(f"{path}: corrupt or truncated {what} "
                        f"({err or type(err).__name__})") from None


# -- weights ---------------------------------------------------------------------------------------
def weight_arrays(net: Any) -> dict[str, np.ndarray]:
    """The arrays a weights file holds: parameters, then gate buffers, by name."""
    arrays = dict(net.params)
    for name, value in net.buffers.items():
        if name in arrays:
            raise ValueError(f"buffer {name!r} has the name of a parameter")
        arrays[name] = value
    return arrays


def save_weights(net: Any, path: str | Path) -> Path:
    """Write the net's parameters and buffers to `path` (atomically)."""
    return atomic_savez(path, weight_arrays(net))


def load_weights(net: Any, path: str | Path, strict: bool = False) -> dict[str, list[str]]:
    """Copy arrays from a weights file into the net's parameters and buffers, by name.

    Shapes must match exactly and values must be finite floating point. With `strict`, the file
    must hold exactly the net's arrays (resuming); otherwise names the net lacks are ignored and
    arrays the file lacks keep their initial values (fine-tuning), but at least one must match.
    Nothing is copied unless the whole file is valid. Returns {"loaded", "missing", "ignored"}.
    """
    path = Path(path)
    arrays = read_npz(path, "weights file")
    if "format" in arrays and "iter" in arrays:
        raise DataError(f"{path}: is a solver state, not a weights file: pass the .weights.npz "
                        "beside it (or resume from this file)")
    targets = weight_arrays(net)
    loaded = [n for n in arrays if n in targets]
    ignored = [n for n in arrays if n not in targets]
    missing = [n for n in targets if n not in arrays]
    if strict and (ignored or missing):
        parts = []
        if missing:
            parts.append(f"lacks {', '.join(missing)}")
        if ignored:
            parts.append(f"has arrays the net {net.name!r} does not: {', '.join(ignored)}")
        raise DataError(f"{path}: does not match the net: it {'; it '.join(parts)} "
                        "(is it from another net?)")
    if not loaded:
        raise DataError(f"{path}: shares no parameter name with the net {net.name!r} (file: "
                        f"{', '.join(arrays) or 'empty'}; net: {', '.join(targets)})")
    for name in loaded:
        array, target = arrays[name], targets[name]
        if array.shape != target.shape:
            raise DataError(f"{path}: parameter {name!r} has shape {array.shape} in the file "
                            f"but {target.shape} in the net")
        if array.dtype.kind != "f":
            raise DataError(f"{path}: parameter {name!r} holds {array.dtype} values; expected "
                            "floating point")
        if not np.all(np.isfinite(array)):
            raise DataError(f"{path}: parameter {name!r} holds NaN or Inf")
    for name in loaded:
        np.copyto(targets[name], arrays[name], casting="same_kind")
    return {"loaded": loaded, "missing": missing, "ignored": ignored}


# -- solver state ----------------------------------------------------------------------------------
def save_solverstate(solver: Any, path: str | Path, weights: str | Path) -> Path:
    """Write everything `restore` needs to continue `solver` bit for bit (atomically)."""
    arrays: dict[str, Any] = {
        "format": np.array(STATE_FORMAT),
        "net": np.array(solver.net.name),
        "iter": np.array(solver.iter, dtype=np.int64),
        "type": np.array(solver.config.type),
        "hyperparameters": np.array(json.dumps(solver.state_summary(), sort_keys=True)),
        "weights": np.array(Path(weights).name),
        "rng": np.array(json.dumps({name: gate.rng.bit_generator.state
                                    for name, gate in solver.net.gates.items()})),
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
    state = read_npz(path, "solver state file")
    if "format" not in state:
        raise DataError(f"{path}: not a Gatework solver state (no 'format' entry); resuming takes "
                        "the .solverstate.npz file of a snapshot")
    if _text(state, "format", path) != STATE_FORMAT:
        raise DataError(f"{path}: not a Gatework solver state (format "
                        f"{_text(state, 'format', path)!r}); pass the .solverstate.npz file")
    kind = _text(state, "type", path)
    if kind != solver.config.type:
        raise DataError(f"{path}: holds the state of solver type {kind}, but the config asks for "
                        f"{solver.config.type}")
    iteration = _integer(state, "iter", path)
    histories = {}
    for slot, per_param in solver.history.items():
        for name, target in per_param.items():
            key = f"history:{slot}:{name}"
            if key not in state:
                raise DataError(f"{path}: no solver history for parameter {name!r} (is it from "
                                "another net, or were lr_mult settings changed?)")
            if state[key].shape != target.shape or state[key].dtype.kind != "f":
                raise DataError(f"{path}: history of {name!r} is {state[key].dtype} "
                                f"{state[key].shape}, the net needs {target.shape}")
            histories[key] = (target, state[key])
    extra = [k[8:] for k in state if k.startswith("history:") and k not in histories]
    if extra:
        raise DataError(f"{path}: holds history for parameters the solver does not train: "
                        f"{', '.join(extra)}")
    try:
        rngs = json.loads(_text(state, "rng", path))
        unknown = set(rngs) - set(solver.net.gates)
        if unknown:
            raise DataError(f"{path}: RNG state for unknown gates: {', '.join(sorted(unknown))}")
        generators = {}
        for name, value in rngs.items():
            generator = np.random.default_rng()
            generator.bit_generator.state = value
            generators[name] = generator.bit_generator.state
    except (ValueError, TypeError, KeyError) as err:
        if isinstance(err, DataError):
            raise
        raise DataError(f"{path}: unreadable RNG state ({err})") from None
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
    for name, value in generators.items():
        solver.net.gates[name].rng.bit_generator.state = value
    if train is not None and position is not None:
        train.seed = int(position[2])
        train.set_state(int(position[0]), int(position[1]))
    solver.iter = iteration
    solver.losses.clear()
    solver.losses.extend(float(v) for v in np.ravel(losses)[-solver.losses.maxlen:])
    return weights


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
