"""A net's state besides the graph: parameters and gate buffers (what a weights file holds), and
the gates' random generators and buffers as a position that can be captured and put back.

Used by snapshots (net.train.snapshot), by the solver's NaN debugging (the state just before a
failing step) and by the gradient checker (a random gate must draw the same mask at every
evaluation, and a check leaves every gate as it found it).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import numpy as np

from gates import Gate


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
