"""A net's state besides the graph: parameters and gate buffers (what a weights file holds), and
the gates' random generators and buffers as a position that can be captured and put back.

Used by snapshots (net.train.snapshot), by the solver's NaN debugging (the state just before a
failing step) and by the gradient checker (a random gate must draw the same mask at every
evaluation, and a check leaves every gate as it found it).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from gates import Gate

from ..errors import DataError
from .text import listing

#: a weights file reader: (path, net) -> arrays by the net's names (`fc1.W`, `bn1.mean`)
WeightsReader = Callable[[Path, Any], dict[str, np.ndarray]]
_WEIGHTS_READERS: dict[str, WeightsReader] = {}


def register_weights_reader(suffix: str, reader: WeightsReader) -> None:
    """Let `Net.load_weights` read files ending in `suffix` (".npz", ".caffemodel") with
    `reader`. The readers live on the floors that know the formats and register themselves."""
    _WEIGHTS_READERS[suffix.lower()] = reader


def read_weights(net: Any, path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of a weights file, by the net's names, read by the reader of its suffix."""
    path = Path(path)
    if path.exists() and not path.is_file():
        raise DataError(f"{path}: not a regular file (a weights file is a file)")
    reader = _WEIGHTS_READERS.get(path.suffix.lower())
    if reader is None:
        raise DataError(f"{path}: unknown weights file type {path.suffix or '(none)'!r} "
                        f"(known: {', '.join(sorted(_WEIGHTS_READERS)) or 'none'})")
    return reader(path, net)


def copy_weights(net: Any, arrays: Mapping[str, np.ndarray | None], source: str | Path,
                 strict: bool = False) -> dict[str, list[str]]:
    """Copy `arrays` into the net's parameters and buffers, by name (see Net.load_weights); a
    name mapped to None is in the file but was not read (the net has no such array).
    Everything is checked first; nothing is copied unless all of it is valid."""
    targets = weight_arrays(net)
    loaded = [n for n in arrays if n in targets and arrays[n] is not None]
    ignored = [n for n in arrays if n not in targets]
    missing = [n for n in targets if n not in arrays]
    if strict and (ignored or missing):
        parts = []
        if missing:
            parts.append(f"lacks {listing(missing)}")
        if ignored:
            parts.append(f"has arrays the net {net.name!r} does not: {listing(ignored)}")
        raise DataError(f"{source}: does not match the net: it {'; it '.join(parts)} "
                        "(is it from another net?)")
    if not loaded:
        raise DataError(f"{source}: shares no parameter name with the net {net.name!r} (file: "
                        f"{listing(list(arrays)) or 'empty'}; net: {listing(list(targets))})")
    for name in loaded:
        array, target = arrays[name], targets[name]
        if array.shape != target.shape:
            raise DataError(f"{source}: parameter {name!r} has shape {array.shape} in the file "
                            f"but {target.shape} in the net")
        if array.dtype.kind != "f":
            raise DataError(f"{source}: parameter {name!r} holds {array.dtype} values; "
                            "expected floating point")
        if not np.all(np.isfinite(array)):
            raise DataError(f"{source}: parameter {name!r} holds NaN or Inf")
        if array.dtype.itemsize > target.dtype.itemsize and array.size and \
                np.max(np.abs(array)) > np.finfo(target.dtype).max:
            raise DataError(f"{source}: parameter {name!r} holds values up to "
                            f"{np.max(np.abs(array)):.3g}, beyond {target.dtype.name}'s range "
                            "(they would become inf)")
    for name in loaded:
        np.copyto(targets[name], arrays[name], casting="same_kind")
    return {"loaded": loaded, "missing": missing, "ignored": ignored}


def weight_arrays(net: Any) -> dict[str, np.ndarray]:
    """The live arrays a weights file holds: parameters, then gate buffers, by name (`fc1.W`,
    `bn1.mean`)."""
    arrays = dict(net.params)
    for name, value in net.buffers.items():
        if name in arrays:
            raise ValueError(f"buffer {name!r} has the name of a parameter")
        arrays[name] = value
    return arrays


def rng_states(gates: Mapping[str, Gate]) -> dict[str, dict]:
    """Each gate's random generator state (a JSON-able dict), by gate name."""
    return {name: gate.rng.bit_generator.state for name, gate in gates.items()}


def check_rng_states(gates: Mapping[str, Gate], states: Any) -> dict[str, dict]:
    """States as `rng_states` gives them (read back from a file), checked without touching any
    gate: a ValueError for a state that no generator accepts or that names an unknown gate."""
    if not isinstance(states, dict):
        raise ValueError(f"expected a mapping of gate name to state, got {type(states).__name__}")
    unknown = sorted(set(states) - set(gates))
    if unknown:
        raise ValueError(f"random state for unknown gates: {', '.join(map(str, unknown))}")
    checked = {}
    for name, state in states.items():
        generator = np.random.default_rng()
        try:
            generator.bit_generator.state = state
        except (TypeError, KeyError, ValueError) as err:
            raise ValueError(f"gate {name!r}: not a random generator state ({err})") from None
        checked[name] = generator.bit_generator.state
    return checked


def set_rng_states(gates: Mapping[str, Gate], states: Mapping[str, dict]) -> None:
    """Put back states checked by `check_rng_states`."""
    for name, state in states.items():
        gates[name].rng.bit_generator.state = state


@dataclass
class GatePosition:
    """The random states and buffer values of some gates at one moment (`capture`), to put back
    with `restore` (as often as needed). Buffers are copied back into the live arrays, so views
    the net holds stay valid; a buffer a gate replaced by an array of another shape is replaced
    back."""
    gates: dict[str, Gate]
    rngs: dict[str, dict]
    buffers: dict[str, dict[str, np.ndarray]]

    @classmethod
    def capture(cls, gates: Mapping[str, Gate] | Iterable[Gate]) -> "GatePosition":
        named = dict(gates) if isinstance(gates, Mapping) else {g.name: g for g in gates}
        return cls(named, rng_states(named),
                   {name: {k: np.array(v, copy=True) for k, v in gate.buffers.items()}
                    for name, gate in named.items()})

    def restore(self) -> None:
        for name, gate in self.gates.items():
            gate.rng.bit_generator.state = self.rngs[name]
            for key, saved in self.buffers[name].items():
                live = gate.buffers.get(key)
                if isinstance(live, np.ndarray) and live.shape == saved.shape \
                        and live.flags.writeable:
                    np.copyto(live, saved, casting="unsafe")
                else:
                    gate.buffers[key] = saved.copy()
