"""Drawing a Net as the lecture draws a computation graph, with graphviz.

Inputs and parameters are source nodes, gates are operation nodes (name and type), and each blob
rides on the edges from its producer to every gate that reads it, labelled with its shape. With
traced values (`trace(net, feed)`: one forward and one backward pass) each connection becomes the
lecture's pair of arrows: a black one carrying the forward value, and a blue one, pointing back,
carrying the gradient that the consuming gate sent back along that edge. Where a blob fans out,
its node shows how those gradients add up (`2 + 3 = 5` for the lecture's `y`).

The per-edge gradients are what each gate's `backward` returned, captured with the runner's hook;
nothing here recomputes a gradient. Writing `.dot` needs only the `graphviz` Python package;
`.png`, `.svg` and `.pdf` also need Graphviz's `dot` program.
"""
from __future__ import annotations

import html
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from gates import format_shape

from ..errors import GateworkError
from ..core.net import Net
from .timing import random_feed

FORMATS = ("png", "svg", "pdf", "dot")
GRADIENT_COLOUR = "blue"
INSTALL_DOT = ("Graphviz's `dot` program is not installed, so only .dot output works: install it "
               "with `sudo apt-get install graphviz` (Debian/Ubuntu), `brew install graphviz` "
               "(macOS) or `conda install graphviz`, or write OUTPUT.dot and render it elsewhere")


@dataclass
class Trace:
    """What one forward and one backward pass left on each edge of the graph.

    values      blob name -> forward value
    edge_grads  (gate name, input index) -> the gradient that gate's backward returned for that
                input: what flows back along that one edge (None: no gradient taken there)
    seeds       output blob -> the gradient the backward pass started from
    totals      source name -> its gradient as `Net.backward` returned it (summed at fan-out)
    """
    values: dict[str, np.ndarray]
    edge_grads: dict[tuple[str, int], np.ndarray | None]
    seeds: dict[str, np.ndarray]
    totals: dict[str, np.ndarray | None] = field(default_factory=dict)


def trace(net: Net, feed: Mapping[str, Any] | None = None) -> Trace:
    """Run one forward and one backward pass of `net` on `feed`, keeping each edge's gradient.

    The backward pass starts from what `net.backward()` uses by default: each loss top seeded with
    its loss weight, or, in a net without a loss, every output seeded with 1.
    """
    net.forward(feed)
    seeds = {name: np.asarray(weight, dtype=net.dtype)
             for name, weight in (net.loss_weights or {o: 1.0 for o in net.outputs}).items()}
    edge_grads: dict[tuple[str, int], np.ndarray | None] = {}

    def keep(step, direction: str, result: tuple) -> None:
        if direction == "backward":
            for index, grad in enumerate(result):
                edge_grads[(step.spec.name, index)] = None if grad is None else np.array(grad)

    totals = net.backward(seeds, hook=keep)
    seeded = {name: np.broadcast_to(seed, net.blobs[name].shape) for name, seed in seeds.items()}
    return Trace(dict(net.blobs), edge_grads, seeded, totals)


def values_feed(net: Net, assignments: Mapping[str, Any], batch_size: int | None = None
                ) -> tuple[dict[str, Any], list[str]]:
    """The feed for a traced drawing: `assignments` (from --set), the config's `value:` for the
    inputs that have one, and random values of the declared shapes (as time_net makes them) for
    the rest. Returns the feed and the names given random values."""
    feed = dict(assignments)
    missing = [name for name in net.sources() if name in net.inputs and name not in feed
               and net.inputs[name].value is None]
    if missing:
        random = random_feed(net, batch_size)
        feed.update((name, random[name]) for name in missing)
    return feed, missing


def digraph(net: Net, traced: Trace | None = None, rankdir: str = "LR"):
    """The graph of `net`'s current phase as a `graphviz.Digraph`, with values and gradients
    from `traced` when given. (Longer than a screen, but flat: one block per kind of node, then
    the edges, sharing the lookups made at the top.)"""
    graphviz = _graphviz()
    graph = graphviz.Digraph(net.name, graph_attr={"rankdir": rankdir},
                             node_attr={"fontname": "Helvetica", "fontsize": "11"},
                             edge_attr={"fontname": "Helvetica", "fontsize": "10"})
    steps = net.runner.steps
    shapes = {**net.shapes, **{name: array.shape for name, array in net.params.items()}}

    def node_id(key: str) -> str:  # "gate:add" -> "gate/add"; graphviz reads ':' as a port
        return key.replace(":", "/", 1).replace(":", "_")

    producer = {top: node_id(f"gate:{step.spec.name}") for step in steps for top in step.tops}
    consumers: dict[str, list[tuple[str, int]]] = {}
    for step in steps:
        for index, name in enumerate(step.inputs):
            consumers.setdefault(name, []).append((step.spec.name, index))

    def edge_grad(name: str, edge: tuple[str, int]) -> np.ndarray | None:
        return traced.edge_grads.get(edge) if traced else None

    # source nodes: the inputs and parameters some gate of this phase reads
    for name in consumers:
        if name in producer:
            continue
        kind = "parameter" if name in net.params else "input"
        lines = [_text(name)]
        if traced is not None:
            lines.append(_text(_value_text(traced.values[name])))
            grads = [edge_grad(name, e) for e in consumers[name]]
            lines.append(_blue(_total_text(grads, traced.totals.get(name))))
        else:
            lines.append(_text(format_shape(shapes[name])))
        graph.node(node_id(f"blob:{name}"), _html(lines),
                   shape="ellipse" if kind == "input" else "box",
                   style="filled" + (",rounded" if kind == "parameter" else ""),
                   fillcolor="lightblue" if kind == "input" else "lightyellow")

    # operation nodes, with a fan-out total under the gate that produced a shared blob
    for step in steps:
        lines = [f"<b>{_text(step.spec.name)}</b>", _text(step.spec.type)]
        if traced is not None:
            for top in step.tops:
                if len(consumers.get(top, ())) > 1:
                    grads = [edge_grad(top, e) for e in consumers[top]]
                    lines.append(_blue(f"{_text(top)}: {_total_text(grads, None)}"))
        graph.node(node_id(f"gate:{step.spec.name}"), _html(lines), shape="box",
                   style="filled", fillcolor="lightgrey")

    # the blobs on the edges: producer -> each consumer, and each output to a sink node
    def connect(tail: str, head: str, name: str, grad: np.ndarray | None, *,
                show_value: bool) -> None:
        if traced is None:
            graph.edge(tail, head, label=f"{name} {format_shape(shapes[name])}")
            return
        value = traced.values[name]
        graph.edge(tail, head, label=f"{name} = {_value_text(value)}" if show_value
                   else _value_text(value))
        if grad is not None:
            graph.edge(tail, head, label=_value_text(grad), color=GRADIENT_COLOUR,
                       fontcolor=GRADIENT_COLOUR, dir="back")

    for name, edges in consumers.items():
        tail = producer.get(name) or node_id(f"blob:{name}")
        for gate_name, index in edges:
            connect(tail, node_id(f"gate:{gate_name}"), name, edge_grad(name, (gate_name, index)),
                    show_value=name in producer)
    for name in net.outputs:
        graph.node(node_id(f"out:{name}"), _text(name), shape="plaintext")
        connect(producer[name], node_id(f"out:{name}"), name,
                traced.seeds.get(name) if traced else None, show_value=True)

    if traced is not None:
        graph.attr(label=f"<black: forward values &nbsp; <font color=\"{GRADIENT_COLOUR}\">"
                         f"blue: gradients, flowing back</font>>", labelloc="b", fontsize="10",
                   fontname="Helvetica")
    return graph


def write(graph, output: str | Path) -> Path:
    """Write `graph` to `output` in the format its extension names (.png, .svg, .pdf or .dot)."""
    output = Path(output)
    fmt = output.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise GateworkError(f"{output}: unknown output format {output.suffix or '(none)'!r}; "
                            f"use one of {', '.join('.' + f for f in FORMATS)}")
    if fmt == "dot":
        output.write_text(graph.source, encoding="utf-8")
        return output
    graphviz = _graphviz()
    try:
        data = graph.pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise GateworkError(INSTALL_DOT) from None
    output.write_bytes(data)
    return output


def dot_available() -> bool:
    """Whether Graphviz's `dot` program can be run."""
    graphviz = _graphviz()
    try:
        graphviz.version()
    except (RuntimeError, OSError, subprocess.CalledProcessError):   # ExecutableNotFound too
        return False
    return True


# -- labels ----------------------------------------------------------------------------------------
def _value_text(value: np.ndarray | None) -> str:
    """A scalar in full; a small array in full; a larger one as its shape and a summary."""
    if value is None:
        return "no gradient"
    value = np.asarray(value)
    if value.ndim == 0:
        return _number(value)
    if value.size <= 4:
        return "[" + ", ".join(_number(v) for v in value.ravel()) + "]" + \
            (f" {value.shape}" if value.ndim > 1 else "")
    if value.dtype.kind in "iub":
        return f"{format_shape(value.shape)} min {value.min()} max {value.max()}"
    return (f"{format_shape(value.shape)} mean {_number(value.mean(), 4)} "
            f"norm {_number(np.linalg.norm(value.ravel()), 4)}")


def _total_text(grads: list, total: np.ndarray | None) -> str:
    """`2 + 3 = 5` for a blob whose gradients add up at a fan-out; just `5` otherwise."""
    present = [g for g in grads if g is not None]
    if total is None and present:
        total = present[0] if len(present) == 1 else sum(present[1:], present[0])
    if total is None:
        return "no gradient"
    if len(present) > 1 and all(np.ndim(g) == 0 for g in present):
        return " + ".join(_number(g) for g in present) + " = " + _number(total)
    if len(present) > 1:
        return f"sum of {len(present)}: {_value_text(total)}"
    return _value_text(total)


def _number(x: Any, digits: int = 6) -> str:
    x = x.item() if hasattr(x, "item") else x
    return str(x) if isinstance(x, (int, bool)) else f"{float(x):.{digits}g}"


def _text(s: str) -> str:
    return html.escape(str(s), quote=True)


def _blue(s: str) -> str:
    return f'<font color="{GRADIENT_COLOUR}">{s}</font>'


def _html(lines: list[str]) -> str:
    return "<" + "<br/>".join(lines) + ">"


def _graphviz():
    try:
        import graphviz
    except ImportError:
        raise GateworkError("drawing needs the graphviz Python package: "
                            "pip install graphviz (and Graphviz's `dot` for images)") from None
    return graphviz
