"""The graph of one phase: who produces and who consumes each blob, and the execution order.

The order comes from the bottom/top dependencies by Kahn's algorithm (no recursion), computed
once at build time and stable: among gates that are ready together, the config's order decides.

In-place tops (Caffe's `top: relu1` on `bottom: relu1`): a gate may write one of its own bottoms.
Each write is a new version of the blob, so the graph stays acyclic and every gradient is exact:
the versions are named `x@0`, `x@1`, ..., and the last one keeps the plain name `x`, so
`net.blobs["x"]` holds the last value written under that name, as Caffe's blob would. A bottom
reads the version written by the latest gate before it in the config (Caffe's order); a name
written once keeps the old rule, any order. Two gates writing one name, neither in place, is an
error.
"""
from __future__ import annotations

import dataclasses
from collections import deque
from dataclasses import dataclass

from .spec import GateSpec, NetSpec
from .yaml import suggest


@dataclass
class Graph:
    order: list[GateSpec]          # the gates active in this phase, in execution order
    producer: dict[str, GateSpec]  # blob -> the gate that writes it
    consumers: dict[str, list[GateSpec]]
    outputs: list[str]             # blobs that no gate consumes


def build_graph(spec: NetSpec, phase: str) -> Graph:
    """Check and order the gates active in `phase`; raise ConfigError naming the line."""
    sources = set(spec.inputs) | set(spec.params)
    gates = _versioned([g for g in spec.gates if g.phase in (None, phase)], spec, sources)
    producer: dict[str, GateSpec] = {}
    for gate in gates:
        for top in gate.top:
            if top in sources:
                kind = "an input" if top in spec.inputs else "a parameter"
                raise spec.error(f"{gate.where()}: top {top!r} is {kind}; a gate cannot "
                                 "overwrite a source node", gate.line_of("top"))
            if top in producer:         # a top named like a version of an in-place blob (x@0)
                first = producer[top]
                raise spec.error(f"{gate.where()}: top {top!r} is also produced by gate "
                                 f"{first.name!r} (line {first.line}); each blob has one producer",
                                 gate.line_of("top"))
            producer[top] = gate
    consumers: dict[str, list[GateSpec]] = {}
    for gate in gates:
        for index, bottom in enumerate(gate.bottom):
            if bottom not in producer and bottom not in sources:
                known = [name for name in list(producer) + sorted(sources) if "@" not in name]
                raise spec.error(
                    f"{gate.where()}: unknown bottom {bottom!r} (bottom #{index + 1}): no gate "
                    f"{'in the ' + phase + ' phase ' if any(g.phase for g in spec.gates) else ''}"
                    f"produces it and it is not an input or parameter{suggest(bottom, known)}",
                    gate.line_of("bottom"))
            consumers.setdefault(bottom, []).append(gate)

    waiting = {g.name: sum(b in producer for b in g.bottom) for g in gates}
    ready = deque(g for g in gates if waiting[g.name] == 0)
    order: list[GateSpec] = []
    while ready:
        gate = ready.popleft()
        order.append(gate)
        for top in gate.top:
            for consumer in consumers.get(top, []):
                waiting[consumer.name] -= 1
                if waiting[consumer.name] == 0:
                    ready.append(consumer)
    if len(order) < len(gates):
        done = {g.name for g in order}
        stuck = [g for g in gates if g.name not in done]
        cycle = _find_cycle(stuck, producer)
        shown = cycle if len(cycle) <= 12 else cycle[:10] + [f"... ({len(cycle) - 1} gates)",
                                                            cycle[-1]]
        raise spec.error(f"the gates form a cycle: {' -> '.join(shown)}; a blob cannot depend on "
                         "itself", next(g.line for g in stuck if g.name == cycle[0]))
    consumed = set(consumers)
    outputs = [top for g in order for top in g.top if top not in consumed]
    return Graph(order, producer, consumers, outputs)


def _versioned(gates: list[GateSpec], spec: NetSpec, sources: set[str]) -> list[GateSpec]:
    """The gates with in-place writes turned into versions of their blob (module docstring)."""
    writers: dict[str, list[int]] = {}          # blob -> positions of the gates writing it
    for position, gate in enumerate(gates):
        for top in gate.top:
            if gate.top.count(top) > 1:
                raise spec.error(f"{gate.where()}: top {top!r} is listed twice",
                                 gate.line_of("top"))
            writers.setdefault(top, []).append(position)
    for name, positions in writers.items():
        if len(positions) == 1 or name in sources:
            continue                            # one writer, or the graph check's error
        for later in positions[1:]:
            gate = gates[later]
            if name not in gate.bottom:
                first = gates[positions[0]]
                raise spec.error(f"{gate.where()}: top {name!r} is also produced by gate "
                                 f"{first.name!r} (line {first.line}); each blob has one "
                                 "producer, unless a gate writes its own bottom in place "
                                 f"(bottom: {name}, top: {name})", gate.line_of("top"))
    renamed, written = [], {}                   # blob -> how many gates so far wrote it
    for gate in gates:
        if not any(len(writers.get(b, ())) > 1 for b in gate.bottom + gate.top):
            renamed.append(gate)
            continue
        bottom = [_version(b, len(writers.get(b, ())), max(written.get(b, 0) - 1, 0))
                  for b in gate.bottom]
        top = []
        for name in gate.top:
            top.append(_version(name, len(writers[name]), written.get(name, 0)))
            written[name] = written.get(name, 0) + 1
        renamed.append(dataclasses.replace(gate, bottom=bottom, top=top))
    return renamed


def _version(name: str, writes: int, index: int) -> str:
    """The name of write `index` (0-based, in config order) of a blob that `writes` gates write:
    `name@index`, except that the last write, and a blob written at most once, keep `name`.
    A gate reads the latest write by an earlier gate (or the first, when none came before) and
    writes its own; the caller counts the writes as it walks the gates, so versioning a net is
    linear in its gates, however many of them write one name in place."""
    return name if writes <= 1 or index == writes - 1 else f"{name}@{index}"


def _find_cycle(stuck: list[GateSpec], producer: dict[str, GateSpec]) -> list[str]:
    """Names of the gates on one cycle, in data-flow order. Every stuck gate waits on a stuck
    producer, so walking from producer to producer must come back to a gate already seen."""
    names = {g.name for g in stuck}
    gate, path, seen = stuck[0], [], set()
    while gate.name not in seen:
        path.append(gate.name)
        seen.add(gate.name)
        gate = next(producer[b] for b in gate.bottom if b in producer and producer[b].name in names)
    cycle = path[path.index(gate.name):][::-1]
    rank = {g.name: i for i, g in enumerate(stuck)}
    start = min(range(len(cycle)), key=lambda i: rank[cycle[i]])  # begin at the first listed
    cycle = cycle[start:] + cycle[:start]
    return cycle + [cycle[0]]
