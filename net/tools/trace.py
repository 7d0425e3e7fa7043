"""Backpropagation step by step: one forward and one backward pass of a Net, recorded gate by gate
as the lecture tells it, and printed as text (`scripts/run.py CONFIG --trace`).

    walk = trace_walk(net, feed)        # a Walk: every step, value and gradient
    print(format_walk(walk))

Forward, in topological order, each gate with its inputs' values and its outputs. Backward, in
reverse: each gate's upstream gradient (the gradient of its top), and for each input the local
gradient, the product the gate sent back along that edge, and, where a blob fans out to several
gates, the sum of the products reaching it. For the lecture's example (configs/seed_example.yaml):

    mul (Multiply): upstream df/df = 1
      df/da = 1 x 2 = 2
      df/db = 1 x 3 = 3
    ...
    y fans out to add, max: df/dy = 2 + 3 = 5

Where the numbers come from (nothing here computes a gradient of its own):
- the product on an edge is what the gate's `backward` returned for that input during the
  pass, taken with the runner's hook;
- the total of a blob is what the runner summed (`Net.backward(wrt=...)` with every blob of the
  pass asked for: `wrt` accepts intermediate blobs as well as inputs and parameters, so
  `net.backward(wrt=["a", "b"])` returns df/da and df/db of the example);
- the local gradient is shown only where it is a number: when the gate's tops and that input are
  scalars. It is the gate's own `backward` run once more, after the pass, with a unit upstream
  gradient (1 for the top, 0 for any other top), on what its forward cached. Dividing the product
  by the upstream gradient would give the same number only where the upstream is not zero (the
  lecture's z: upstream 3, local 0, but a gate behind a zero upstream would show nothing), and it
  would be arithmetic of ours; the unit upstream is the gate's own answer to "how does my output
  move with this input", whatever the upstream. It runs after the pass, once every product has
  been copied, so the pass's numbers stay exactly what they were. For arrays the local gradient
  is a Jacobian, which no gate forms: the trace prints the upstream gradient and the product.

Arrays print as their shape, min / mean / max and a few values (`describe`); `summary` gives the
same as JSON (the explorer's `data-value`). `example_feed` chooses the values to trace a config
with when it gives none (its test data, else random values, saying which).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from gates import format_shape

from ..core.net import Net
from ..errors import GateworkError
from ..train.data import Batches, load_source
from .timing import random_feed

EXAMPLE_BATCH = 8      # samples of test (or random) data in an example feed
FEW = 4                # values an array's description shows


@dataclass
class ForwardStep:
    """One gate's forward: the blobs it read and wrote (values are in `Walk.values`)."""
    gate: str
    type: str
    inputs: tuple[str, ...]
    tops: tuple[str, ...]


@dataclass
class Edge:
    """One input of a backward step.

    product  what the gate's backward returned for this input (None: no gradient taken)
    local    scalar steps only, one per top: the gate's backward for this input with a unit
             upstream gradient on that top (None where not a number: see the module docstring)
    """
    input: str
    product: np.ndarray | None
    local: tuple[np.ndarray, ...] | None = None


@dataclass
class BackwardStep:
    """One gate's backward: the upstream gradient of each top (None: none reached it) and what
    went back along each input edge."""
    gate: str
    type: str
    tops: tuple[str, ...]
    upstream: tuple[np.ndarray | None, ...]
    edges: list[Edge]


@dataclass
class Walk:
    """A forward and a backward pass of one net, step by step.

    values   every blob of the forward pass
    grads    every blob the backward pass reached -> its gradient, as the runner summed it
    seeds    the blobs the backward pass started from, with their seeds (a loss: its weight)
    wanted   the blobs whose gradients were asked for (default: the inputs and parameters)
    sums     blob -> [(gate, product), ...] in the order the gates read the blob, for a blob that
             more than one edge sent a gradient to (a fan-out), and the backward step after which
             its sum was complete: `sum_after[blob]`
    """
    net: str
    forward: list[ForwardStep]
    backward: list[BackwardStep]
    values: dict[str, np.ndarray]
    grads: dict[str, np.ndarray | None]
    seeds: dict[str, np.ndarray]
    wanted: list[str]
    sums: dict[str, list[tuple[str, np.ndarray]]] = field(default_factory=dict)
    sum_after: dict[str, int] = field(default_factory=dict)

    @property
    def of(self) -> str:
        """What the gradients are of: the seeded blob's name (`f` in df/dx), or L for several."""
        return next(iter(self.seeds)) if len(self.seeds) == 1 else "L"


def trace_walk(net: Net, feed: Mapping[str, Any] | None = None,
               top_grads: Mapping[str, Any] | None = None,
               wrt: list[str] | None = None) -> Walk:
    """Run `net` forward on `feed` and backward from `top_grads` (default: as `Net.backward`,
    each loss seeded with its weight or, without a loss, each output with 1), recording every
    step. `wrt`: the blobs whose gradients are wanted (default: every floating-point blob of the
    pass, intermediate ones included); only the gates on the way to them run backward."""
    net.forward(feed)
    values = dict(net.blobs)
    if top_grads is None:
        top_grads = net.loss_weights or {name: 1.0 for name in net.outputs}
    wanted = net.sources() if wrt is None else list(wrt)
    if wrt is None:
        wrt = [name for name, value in values.items() if np.asarray(value).dtype.kind == "f"]
    order = {id(step): index for index, step in enumerate(net.runner.steps)}
    ran: list[tuple[Any, list[np.ndarray | None]]] = []

    def keep(step, direction: str, result: tuple) -> None:
        ran.append((step, [None if g is None else np.array(g) for g in result]))

    totals = net.backward(top_grads, wrt=wrt, hook=keep)
    grads = {name: None if g is None else np.array(g) for name, g in totals.items()}
    for name in top_grads:
        grads.setdefault(name, np.array(np.broadcast_to(top_grads[name], values[name].shape),
                                        dtype=values[name].dtype))
    seeds = {name: grads[name] for name in top_grads}
    backward = [_backward_step(step, products, grads, net.blobs) for step, products in ran]
    walk = Walk(net.name, [ForwardStep(s.spec.name, s.spec.type, s.inputs, s.tops)
                           for s in net.runner.steps], backward, values, grads, seeds, wanted)
    _fan_outs(walk, [order[id(step)] for step, _ in ran])
    return walk


def _backward_step(step, products: list, grads: dict, blobs: dict) -> BackwardStep:
    upstream = tuple(grads.get(top) for top in step.tops)
    edges = [Edge(name, product) for name, product in zip(step.inputs, products)]
    scalar_tops = all(np.size(blobs[top]) == 1 and np.asarray(blobs[top]).dtype.kind == "f"
                      for top in step.tops)
    if scalar_tops and any(e.product is not None and np.size(e.product) == 1 for e in edges):
        units = []
        for index, top in enumerate(step.tops):
            unit = [np.ones_like(blobs[t]) if i == index else np.zeros_like(blobs[t])
                    for i, t in enumerate(step.tops)]
            result = step.gate.backward(unit[0] if len(unit) == 1 else tuple(unit))
            units.append([None if g is None else np.array(g) for g in result])
        for position, edge in enumerate(edges):
            if edge.product is not None and np.size(edge.product) == 1:
                locals_ = tuple(u[position] for u in units)
                if all(local is not None for local in locals_):
                    edge.local = locals_
    return BackwardStep(step.spec.name, step.spec.type, step.tops, upstream, edges)


def _fan_outs(walk: Walk, positions: list[int]) -> None:
    """Fill `walk.sums`: each blob's products in the order its readers run forward."""
    arrivals: dict[str, list[tuple[int, int, str, np.ndarray]]] = {}
    for index, (step, position) in enumerate(zip(walk.backward, positions)):
        for edge in step.edges:
            if edge.product is not None:
                arrivals.setdefault(edge.input, []).append((position, index, step.gate,
                                                            edge.product))
    for name, found in arrivals.items():
        if len(found) > 1 or (len(found) == 1 and name in walk.seeds):
            found.sort(key=lambda item: item[0])
            walk.sums[name] = [(gate, product) for _, _, gate, product in found]
            walk.sum_after[name] = max(index for _, index, _, _ in found)


# -- text -------------------------------------------------------------------------------------
def format_walk(walk: Walk, notes: list[str] | None = None) -> str:
    """The walk as the lecture tells it: forward lines, then backward lines (see the module
    docstring); `notes` (where the input values came from) go first."""
    lines = [f"# {note}" for note in notes or ()]
    lines.append(f"forward ({_gates(walk.forward)}, in topological order):")
    for step in walk.forward:
        reads = [_named(name, walk.values[name]) for name in step.inputs]
        writes = [_named(name, walk.values[name]) for name in step.tops]
        if _all_scalars(walk.values[name] for name in step.inputs + step.tops):
            lines.append(f"  {step.gate} ({step.type}): {', '.join(reads)} -> {', '.join(writes)}")
        else:
            lines.append(f"  {step.gate} ({step.type}):")
            lines += [f"    {text}" for text in reads] + [f"    -> {text}" for text in writes]
    of = walk.of
    seeds = ", ".join(f"d{of}/d{name} = {describe(seed)}" for name, seed in walk.seeds.items())
    lines.append(f"backward ({_gates(walk.backward)}, in reverse), seeded with {seeds}:")
    for index, step in enumerate(walk.backward):
        ups = ", ".join(f"d{of}/d{top} = {describe(up)}"
                        for top, up in zip(step.tops, step.upstream)
                        if up is not None)
        lines.append(f"  {step.gate} ({step.type}): upstream {ups}")
        for edge in step.edges:
            lines.append(f"    {edge_text(of, step, edge)}")
        for name, index_done in walk.sum_after.items():
            if index_done == index:
                lines.append(f"  {sum_text(walk, name)}")
    totals = [f"d{of}/d{name} = {describe(walk.grads.get(name))}" for name in walk.wanted]
    if _all_scalars(walk.grads.get(name) for name in walk.wanted):
        lines.append("gradients: " + ", ".join(totals))
    else:
        lines += ["gradients:"] + [f"  {text}" for text in totals]
    return "\n".join(lines)


def _all_scalars(values) -> bool:
    return all(value is None or np.ndim(value) == 0 for value in values)


def _gates(steps: list) -> str:
    return f"{len(steps)} gate" + ("" if len(steps) == 1 else "s")


def edge_text(of: str, step: BackwardStep, edge: Edge) -> str:
    """`df/da = 1 x 2 = 2` (upstream x local gradient = product), or the product alone."""
    head = f"d{of}/d{edge.input}"
    if edge.product is None:
        return f"{head}: no gradient taken"
    if edge.local is not None:
        terms = [f"{describe(up if up is not None else 0.0)} x {describe(local)}"
                 for up, local in zip(step.upstream, edge.local)
                 if up is not None or len(step.tops) == 1]
        return f"{head} = {' + '.join(terms)} = {describe(edge.product)}"
    return f"{head} = {describe(edge.product)}"


def sum_text(walk: Walk, name: str) -> str:
    """`y fans out to add, max: df/dy = 2 + 3 = 5`."""
    readers = ", ".join(gate for gate, _ in walk.sums[name])
    if name in walk.seeds:
        readers = "the seed, " + readers
    return f"{name} fans out to {readers}: d{walk.of}/d{name} = {sum_terms(walk, name)}"


def sum_terms(walk: Walk, name: str) -> str:
    """`2 + 3 = 5`: the products reaching a fanned-out blob and the runner's total (for arrays,
    how many were added and the total)."""
    terms = [describe(product) for _, product in walk.sums[name]]
    if name in walk.seeds:
        terms.insert(0, describe(walk.seeds[name]))
    total = describe(walk.grads.get(name))
    if all(np.size(product) == 1 for _, product in walk.sums[name]):
        return f"{' + '.join(terms)} = {total}"
    return f"the sum of {len(terms)}: {total}"


def _named(name: str, value: Any) -> str:
    return f"{name} = {describe(value)}"


# -- values -----------------------------------------------------------------------------------
def number(x: Any, digits: int = 6) -> str:
    """A number in at most `digits` significant figures: 6.0 as 6, 0.1234567 as 0.123457."""
    x = x.item() if hasattr(x, "item") else x
    if isinstance(x, (bool, np.bool_)):
        return str(int(x))
    return str(x) if isinstance(x, int) else f"{float(x):.{digits}g}"


def describe(value: Any, few: bool = True) -> str:
    """A scalar as a number; an array of up to FEW values in full with its shape; a larger one
    as its shape, min / mean / max and (`few`) its first few values."""
    if value is None:
        return "no gradient"
    array = np.asarray(value)
    if array.size == 1 and array.ndim == 0:
        return number(array)
    flat = array.ravel()
    shown = ", ".join(number(v, 4) for v in flat[:FEW])
    if array.size <= FEW:
        return f"[{shown}] {format_shape(array.shape)}" if array.ndim > 1 else f"[{shown}]"
    if array.size == 0:
        return f"{format_shape(array.shape)} empty"
    stats = summary(array)
    text = (f"{format_shape(array.shape)} min {number(stats['min'], 4)} mean "
            f"{number(stats['mean'], 4)} max {number(stats['max'], 4)}")
    return f"{text} [{shown}, ...]" if few else text


def summary(value: Any) -> float | int | dict | None:
    """JSON for a value: a number for a scalar (rank 0); for an array {"shape", "min", "mean",
    "max"} (None where empty). A NaN or an infinity is None (JSON has no such numbers)."""
    array = np.asarray(value)
    if array.ndim == 0:
        item = array.item()
        if isinstance(item, (bool, int)):
            return int(item)
        return float(item) if np.isfinite(item) else None
    numeric = array.astype(np.float64) if array.dtype.kind in "biuf" else array
    empty = numeric.size == 0
    return {"shape": list(array.shape),
            "min": None if empty else _json_number(numeric.min()),
            "mean": None if empty else _json_number(numeric.mean()),
            "max": None if empty else _json_number(numeric.max())}


def _json_number(x: Any) -> float | int | None:
    x = float(x)
    if not np.isfinite(x):
        return None
    return int(x) if x.is_integer() and abs(x) < 2**53 else x


# -- what to trace a config with ----------------------------------------------------------------
def example_feed(net: Net, assignments: Mapping[str, Any] | None = None,
                 batch_size: int | None = None) -> tuple[dict[str, Any], list[str]]:
    """Values for every input the current phase reads: `assignments` first (from --set), then
    the config's `value:`, then the first `batch_size` (default EXAMPLE_BATCH) samples of the
    config's test data (its train data when it has no test part), and random values of the
    declared shapes only for what is left. Returns the feed and notes saying where the values
    came from (empty when every value is the user's or the config's)."""
    feed = dict(assignments or {})
    missing = [name for name in net.sources() if name in net.inputs and name not in feed
               and net.inputs[name].value is None]
    if not missing:
        return feed, []
    size = batch_size or EXAMPLE_BATCH
    loaded, why = _data_batch(net, size)
    notes = []
    taken = [name for name in missing if name in loaded]
    if taken:
        feed.update((name, loaded[name]) for name in taken)
        notes.append(f"{', '.join(taken)}: {why}")
    rest = [name for name in missing if name not in loaded]
    if rest:
        random = random_feed(net, len(next(iter(loaded.values()))) if loaded else size)
        feed.update((name, random[name]) for name in rest)
        reason = why if not loaded else "the data gives no values for them"
        notes.append(f"{', '.join(rest)}: random values ({reason})")
    return feed, notes


def _data_batch(net: Net, size: int) -> tuple[dict[str, np.ndarray], str]:
    """The first `size` samples of the config's test data (else train data) by input name, and
    where they came from; ({}, why not) when there is no data section or it cannot be read."""
    data = net.spec.data
    if data is None or (data.test is None and data.train is None):
        return {}, "the config has no data section"
    failures = []
    for source in (data.test, data.train):
        if source is None:
            continue
        try:
            dataset, prepare = load_source(net, source)
        except (GateworkError, ImportError, OSError) as err:
            failures.append(f"{source.phase} data: {err}")
            continue
        batch = Batches(dataset, min(size, len(dataset)), prepare=prepare).next()
        inputs = {name: value for name, value in batch.items() if name in net.inputs}
        return inputs, (f"the first {len(next(iter(inputs.values())))} samples of the "
                        f"{source.phase} data ({dataset.name})")
    return {}, "the data could not be read: " + "; ".join(failures)
