"""Where each node of the explorer's picture goes: a layered drawing by topological depth, made
here so the page needs neither Graphviz nor anything from the network.

The picture is bipartite, as the lecture draws it: blob nodes (inputs, parameters, intermediate
values, outputs) and gate nodes alternate. A gate's depth is one more than the deepest blob it
reads, a blob's one more than its producer's; an input or parameter sits one layer before the
first gate that reads it (so a loss's label and a layer's weights sit beside their gate, not at
the top of a deep net). Within a layer, nodes start in config order and then follow the mean
position of their neighbours (a few barycentre sweeps, down and up), which untangles most
crossings. A shallow net runs left to right (the lecture's picture), a deep one top to bottom.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ...core.net import Net

BLOB = (150, 56)               # width, height of a blob node holding a number
BLOB_ARRAY = (170, 128)        # ... holding an array: room for its heatmap or histogram
GATE = (130, 46)
GAP_ALONG, GAP_ACROSS = 56, 22  # between layers, between nodes of one layer
MARGIN = 16
LEFT_TO_RIGHT_MAX_LAYERS = 7    # up to 3 gates deep: left to right; deeper: top to bottom
SWEEPS = 4


@dataclass
class Node:
    id: str                 # "blob:NAME" or "gate:NAME"
    kind: str               # input, param, blob, output or gate
    name: str
    label: str              # gate: its type; blob: its shape
    layer: int
    x: float = 0.0
    y: float = 0.0
    w: float = 0.0
    h: float = 0.0


@dataclass
class Edge:
    source: str             # node ids: blob -> gate (a read) or gate -> blob (a write)
    target: str
    blob: str
    gate: str
    index: int              # the gate's input (read) or top (write) this edge is


def layout(net: Net) -> dict[str, Any]:
    """The picture of `net`'s current phase as JSON: direction ("LR" or "TB"), width, height,
    nodes (id, kind, name, label, layer, x, y, w, h: the top-left corner and size) and edges
    (source, target, blob, gate, index: the gate's input or top)."""
    nodes, edges = _graph(net)
    layers = _layers(nodes, edges)
    direction = "LR" if len(layers) <= LEFT_TO_RIGHT_MAX_LAYERS else "TB"
    width, height = _place(layers, direction)
    return {"direction": direction, "width": width, "height": height,
            "nodes": [asdict(n) for layer in layers for n in layer],
            "edges": [asdict(e) for e in edges]}


def _graph(net: Net) -> tuple[dict[str, Node], list[Edge]]:
    steps = net.runner.steps
    shapes = net.shapes
    produced = {top: step for step in steps for top in step.tops}
    read = {name for step in steps for name in step.inputs}
    nodes: dict[str, Node] = {}
    edges: list[Edge] = []
    depth: dict[str, int] = {}

    def blob(name: str, kind: str) -> Node:
        if f"blob:{name}" not in nodes:
            shape = shapes.get(name, net.params[name].shape if name in net.params else ())
            size = BLOB if len(shape) == 0 else BLOB_ARRAY
            nodes[f"blob:{name}"] = Node(f"blob:{name}", kind, name, _shape(shape), 0,
                                         w=size[0], h=size[1])
        return nodes[f"blob:{name}"]

    for step in steps:
        gate = step.spec.name
        layer = 1 + max((depth[n] for n in step.inputs if n in produced), default=0)
        nodes[f"gate:{gate}"] = Node(f"gate:{gate}", "gate", gate, step.spec.type, layer,
                                     w=GATE[0], h=GATE[1])
        for index, name in enumerate(step.inputs):
            if name not in produced:
                first = f"blob:{name}" not in nodes
                source = blob(name, "param" if name in net.params else "input")
                source.layer = layer - 1 if first else min(source.layer, layer - 1)
            edges.append(Edge(f"blob:{name}", f"gate:{gate}", name, gate, index))
        for index, top in enumerate(step.tops):
            depth[top] = layer + 1
            blob(top, "blob" if top in read else "output").layer = layer + 1
            edges.append(Edge(f"gate:{gate}", f"blob:{top}", top, gate, index))
    return nodes, edges


def _shape(shape: tuple) -> str:
    if len(shape) == 0:
        return "scalar"
    return "(" + ", ".join("N" if d is None else str(d) for d in shape) + \
        ("," if len(shape) == 1 else "") + ")"


def _layers(nodes: dict[str, Node], edges: list[Edge]) -> list[list[Node]]:
    """Nodes by layer, each layer ordered to cross few edges (barycentre sweeps)."""
    count = 1 + max(n.layer for n in nodes.values())
    layers: list[list[Node]] = [[] for _ in range(count)]
    for node in nodes.values():
        layers[node.layer].append(node)
    before: dict[str, list[str]] = {n: [] for n in nodes}
    after: dict[str, list[str]] = {n: [] for n in nodes}
    for edge in edges:
        before[edge.target].append(edge.source)
        after[edge.source].append(edge.target)
    position = {n.id: i for layer in layers for i, n in enumerate(layer)}
    for sweep in range(SWEEPS):
        downward = sweep % 2 == 0
        for layer in layers[1:] if downward else layers[-2::-1]:
            neighbours = before if downward else after

            def centre(node: Node) -> float:
                linked = [position[n] for n in neighbours[node.id]]
                return sum(linked) / len(linked) if linked else position[node.id]
            layer.sort(key=centre)
            position.update((n.id, i) for i, n in enumerate(layer))
    return layers


def _place(layers: list[list[Node]], direction: str) -> tuple[float, float]:
    """Set x, y of every node; returns the picture's width and height."""
    along_size = (lambda n: n.w) if direction == "LR" else (lambda n: n.h)
    across_size = (lambda n: n.h) if direction == "LR" else (lambda n: n.w)
    spans = [sum(across_size(n) for n in layer) + GAP_ACROSS * (len(layer) - 1)
             for layer in layers]
    widest = max(spans)
    along = MARGIN
    for layer, span in zip(layers, spans):
        thickness = max((along_size(n) for n in layer), default=0)
        across = MARGIN + (widest - span) / 2
        for node in layer:
            offset = (thickness - along_size(node)) / 2
            if direction == "LR":
                node.x, node.y = along + offset, across
            else:
                node.x, node.y = across, along + offset
            across += across_size(node) + GAP_ACROSS
        along += thickness + GAP_ALONG
    total_along = along - GAP_ALONG + MARGIN
    total_across = widest + 2 * MARGIN
    return (total_along, total_across) if direction == "LR" else (total_across, total_along)
