"""Drawing a Net as the lecture draws a computation graph, with graphviz.

Inputs and parameters are source nodes, gates are operation nodes (name and type), and each blob
rides on the edge from its producer to the gate that reads it, labelled with its shape; a blob that
several gates read gets a node of its own, so that every value is drawn once. With traced values
(`trace(net, feed)`: one forward and one backward pass) each connection becomes the lecture's pair
of arrows: a black one carrying the forward value, and a blue one, pointing back, carrying the
gradient that the consuming gate sent back along that edge. A blob that fans out shows how those
gradients add up (`2 + 3 = 5` for the lecture's `y`). Arrays are drawn as their shape and
min / mean / max. A net more than three gates deep is drawn top to bottom, a shallower one left to
right (the lecture's picture).

The per-edge gradients are what each gate's `backward` returned, captured with the runner's hook
(`net.tools.trace`); nothing here recomputes a gradient. Writing `.dot` needs only the `graphviz`
Python package; `.png`, `.svg` and `.pdf` also need Graphviz's `dot` program.
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
from .explore.layout import layout
from .trace import describe, number, trace_walk

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
    totals      blob name -> its gradient as the runner summed it (at fan-out)
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
    walk = trace_walk(net, feed)
    edge_grads = {(step.gate, index): edge.product for step in walk.backward
                  for index, edge in enumerate(step.edges)}
    return Trace(walk.values, edge_grads, walk.seeds, walk.grads)


def digraph(net: Net, traced: Trace | None = None, rankdir: str = "auto",
            notes: list[str] | None = None):
    """The graph of `net`'s current phase as a `graphviz.Digraph`, with values and gradients
    from `traced` when given. `rankdir`: LR, TB, or auto (top to bottom for a net more than
    three gates deep). `notes` (where traced values came from) go under the picture."""
    graphviz = _graphviz()
    if rankdir == "auto":
        rankdir = layout(net)["direction"]
    graph = graphviz.Digraph(_dot(net.name), graph_attr={"rankdir": rankdir},
                             node_attr={"fontname": "Helvetica", "fontsize": "11"},
                             edge_attr={"fontname": "Helvetica", "fontsize": "10"})
    _Drawing(net, traced, graph).draw()
    captions = [_text(note) for note in notes or ()]
    if traced is not None:
        captions.append(f"black: forward values &nbsp; <font color=\"{GRADIENT_COLOUR}\">"
                        "blue: gradients, flowing back</font>")
    if captions:
        graph.attr(label=_html(captions), labelloc="b", fontsize="10", fontname="Helvetica")
    return graph


class _Drawing:
    """One drawing: the lookups every kind of node and edge shares."""

    def __init__(self, net: Net, traced: Trace | None, graph) -> None:
        self.net, self.traced, self.graph = net, traced, graph
        self.steps = net.runner.steps
        self.shapes = {**net.shapes, **{name: array.shape for name, array in net.params.items()}}
        self.producer = {top: step.spec.name for step in self.steps for top in step.tops}
        self.consumers: dict[str, list[tuple[str, int]]] = {}
        for step in self.steps:
            for index, name in enumerate(step.inputs):
                self.consumers.setdefault(name, []).append((step.spec.name, index))

    def draw(self) -> None:
        for name, edges in self.consumers.items():
            if name not in self.producer or len(edges) > 1:
                self.blob_node(name)
        for step in self.steps:
            self.graph.node(_id("gate", step.spec.name),
                            _html([f"<b>{_text(step.spec.name)}</b>", _text(step.spec.type)]),
                            shape="box", style="filled", fillcolor="lightgrey")
        for name, edges in self.consumers.items():
            has_node = name not in self.producer or len(edges) > 1
            tail = _id("blob", name) if has_node else _id("gate", self.producer[name])
            if has_node and name in self.producer:     # producer -> the fanned-out blob's node
                self.connect(_id("gate", self.producer[name]), tail, name, self.total(name),
                             label=False)
            for gate, index in edges:
                self.connect(tail, _id("gate", gate), name, self.edge_grad(gate, index),
                             label=not has_node)
        for name in self.net.outputs:
            self.graph.node(_id("out", name), _dot(name), shape="plaintext")
            seed = self.traced.seeds.get(name) if self.traced else None
            self.connect(_id("gate", self.producer[name]), _id("out", name), name, seed,
                         label=True)

    def edge_grad(self, gate: str, index: int) -> np.ndarray | None:
        return self.traced.edge_grads.get((gate, index)) if self.traced else None

    def total(self, name: str) -> np.ndarray | None:
        return self.traced.totals.get(name) if self.traced else None

    def blob_node(self, name: str) -> None:
        """A source (input or parameter) or a fanned-out blob: its name, then its value and
        gradient (traced) or its shape."""
        lines = [f"<b>{_text(name)}</b>" if name in self.producer else _text(name)]
        if self.traced is None:
            lines.append(_text(format_shape(self.shapes[name])))
        else:
            lines.append(_text(_value_text(self.traced.values[name])))
            grads = [self.edge_grad(gate, index) for gate, index in self.consumers[name]]
            lines.append(_blue(_text(_total_text(grads, self.total(name)))))
        if name in self.producer:
            style = {"shape": "box", "style": "rounded"}
        elif name in self.net.params:
            style = {"shape": "box", "style": "filled,rounded", "fillcolor": "lightyellow"}
        else:
            style = {"shape": "ellipse", "style": "filled", "fillcolor": "lightblue"}
        self.graph.node(_id("blob", name), _html(lines), **style)

    def connect(self, tail: str, head: str, name: str, grad: np.ndarray | None, *,
                label: bool) -> None:
        """The forward edge (labelled with the blob when `label`) and, traced, the blue edge
        carrying `grad` back."""
        if self.traced is None:
            text = f"{name} {format_shape(self.shapes[name])}"
        else:
            text = f"{name} = {_value_text(self.traced.values[name])}"
        self.graph.edge(tail, head, **({"label": _dot(text)} if label else {}))
        if self.traced is not None and grad is not None:
            self.graph.edge(tail, head, label=_dot(_value_text(grad)), color=GRADIENT_COLOUR,
                            fontcolor=GRADIENT_COLOUR, dir="back")


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
    """A scalar in full; up to four values in full; a larger array as its shape and
    min / mean / max."""
    return describe(value, few=False)


def _total_text(grads: list, total: np.ndarray | None) -> str:
    """`2 + 3 = 5` for a blob whose gradients add up at a fan-out; just `5` otherwise. The total
    is the runner's (`Trace.totals`)."""
    present = [g for g in grads if g is not None]
    if total is None:
        return "no gradient"
    if len(present) > 1 and all(np.ndim(g) == 0 for g in present):
        return " + ".join(number(g) for g in present) + " = " + number(total)
    if len(present) > 1:
        return f"sum of {len(present)}: {_value_text(total)}"
    return _value_text(total)


def _id(kind: str, name: str) -> str:
    """A node's id: "blob/x", "gate/add", "out/f" (graphviz reads ':' as a port)."""
    return _dot(f"{kind}/{name}".replace(":", "_"))


def _dot(s: str) -> str:
    """A plain DOT string: a backslash doubled, so a name ending in one cannot escape the closing
    quote and `\\N` or `\\l` in a name stays text."""
    return str(s).replace("\\", "\\\\")


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
