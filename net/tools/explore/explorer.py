"""The explorer's model: one Net, its default feed, and what the page shows of a walk.

`Explorer.run(feed)` runs a forward and a backward pass (`net.tools.trace.trace_walk`) on the
default feed with the given inputs replaced, and returns the walk as the page's JSON (`walk_json`):
the steps in order with every value and gradient, already described as text and pictures, so the
page only reveals what the server computed. `Explorer.page()` is the whole page as one string with
its script, style and first walk inline (`scripts/explore.py --html` writes it; the server serves
it). A Net is not thread-safe: the explorer runs one walk at a time.
"""
from __future__ import annotations

import json
import threading
from importlib import resources
from numbers import Real
from typing import Any, Mapping

import numpy as np

from ...core.net import Net
from ...errors import GateworkError
from ..trace import Walk, describe, edge_text, example_feed, number, sum_terms, sum_text, \
    summary, trace_walk
from .layout import layout

EDITABLE = 16           # inputs of at most this many values get an <input> on the page
HEATMAP_SIDE = 32       # a 1-D or 2-D array with no side longer than this is drawn cell by cell
BINS = 16               # otherwise: a histogram of its values


class FeedError(ValueError):
    """A feed the page or an API client sent that does not fit the net (an HTTP 400)."""


def picture(value: Any) -> dict | None:
    """How an array is drawn: {"kind": "heatmap", "rows", "cols", "cells", "lo", "hi"} for a
    1-D or 2-D array of at most HEATMAP_SIDE a side, else {"kind": "histogram", "counts", "lo",
    "hi"} of its finite values; None for a scalar. Non-finite cells are null."""
    array = np.asarray(value)
    if array.ndim == 0 or array.size == 0:
        return None
    numeric = array.astype(np.float64)
    finite = numeric[np.isfinite(numeric)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    if array.ndim <= 2 and max(array.shape) <= HEATMAP_SIDE:
        grid = numeric.reshape(1, -1) if array.ndim == 1 else numeric
        cells = [None if not np.isfinite(c) else float(c) for c in grid.ravel()]
        return {"kind": "heatmap", "rows": grid.shape[0], "cols": grid.shape[1], "cells": cells,
                "lo": lo, "hi": hi}
    counts, _ = np.histogram(finite, bins=BINS, range=(lo, hi) if hi > lo else (lo - 0.5, lo + 0.5))
    return {"kind": "histogram", "counts": counts.tolist(), "lo": lo, "hi": hi}


def view(value: Any) -> dict:
    """A value as the page shows it: `json` (the data-value/data-grad attribute), `text` and
    `picture` (None for a scalar)."""
    array = np.asarray(value)
    if array.ndim == 0:
        return {"json": summary(array), "text": number(array), "picture": None}
    stats = summary(array)
    text = (f"min {number(stats['min'], 4)} mean {number(stats['mean'], 4)} max "
            f"{number(stats['max'], 4)}" if array.size else "empty")
    return {"json": stats, "text": text, "picture": picture(array)}


def walk_json(walk: Walk) -> dict[str, Any]:
    """A walk as the page reads it (see the module docstring). `grad_after[blob]`: the backward
    step after which the blob's gradient is final (the last product reaching it; 0 for a seed;
    the last step for a gradient no gate sent, which is zero); `arrivals[blob]`: the products
    reaching a blob, [step, text] in the order they arrive."""
    of = walk.of
    forward = [{"gate": s.gate, "type": s.type, "inputs": list(s.inputs), "tops": list(s.tops),
                "text": ", ".join(f"{n} = {describe(walk.values[n])}" for n in s.inputs) + " -> "
                        + ", ".join(f"{n} = {describe(walk.values[n])}" for n in s.tops)}
               for s in walk.forward]
    backward, grad_after, arrivals = [], {}, {}
    done = {index: [] for index in range(len(walk.backward))}
    for name, index in walk.sum_after.items():
        done[index].append(sum_text(walk, name))
    for index, step in enumerate(walk.backward):
        edges = []
        for position, edge in enumerate(step.edges):
            text = edge_text(of, step, edge)
            scalar = edge.product is not None and np.size(edge.product) == 1
            edges.append({"input": edge.input, "index": position, "text": text,
                          "label": describe(edge.product) if scalar else None})
            if edge.product is not None:
                grad_after[edge.input] = index
                arrivals.setdefault(edge.input, []).append([index, describe(edge.product)])
        backward.append({"gate": step.gate, "type": step.type, "tops": list(step.tops),
                         "upstream": [f"d{of}/d{t} = {describe(u)}" for t, u in
                                      zip(step.tops, step.upstream) if u is not None],
                         "edges": edges, "sums": done[index]})
    last = len(walk.backward) - 1
    grads = {name: view(g) for name, g in walk.grads.items() if g is not None}
    for name in walk.sums:
        if grads[name]["picture"] is None:
            grads[name]["text"] = sum_terms(walk, name)
    for name in grads:
        grad_after.setdefault(name, 0 if name in walk.seeds else max(last, 0))
    for name in walk.seeds:
        grad_after[name] = min(grad_after[name], 0)
    return {"net": walk.net, "of": of, "forward": forward, "backward": backward,
            "values": {name: view(v) for name, v in walk.values.items()}, "grads": grads,
            "grad_after": grad_after,
            "arrivals": {k: v for k, v in arrivals.items() if len(v) > 1 or k in walk.seeds}}


class Explorer:
    """One net to explore, with the feed it starts from (`example_feed`: the config's values,
    else its test data, else random values) and where those values came from."""

    def __init__(self, net: Net, feed: Mapping[str, Any] | None = None,
                 batch_size: int | None = None):
        self.net = net
        self.defaults, self.notes = example_feed(net, feed, batch_size)
        self.layout = layout(net)
        self._lock = threading.Lock()

    def editable(self) -> list[str]:
        """The inputs the page offers to edit: at most EDITABLE values each."""
        return [name for name in self.net.sources() if name in self.net.inputs
                and np.size(self._default(name)) <= EDITABLE]

    def _default(self, name: str) -> Any:
        return self.defaults[name] if name in self.defaults else self.net.inputs[name].value

    def run(self, feed: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The walk on the defaults with `feed`'s inputs replaced, as JSON for the page, with the
        editable inputs' values (`feed`) and the notes. Raises FeedError for a feed that does not
        fit (an unknown input, a value that is not a number or a list of numbers, a wrong
        shape, a non-integer for an integer input)."""
        values = dict(self.defaults)
        integers = self.net.integer_inputs()
        for name, value in (feed or {}).items():
            if name not in self.net.inputs:
                raise FeedError(f"{name!r} is not an input of net {self.net.name!r} (inputs: "
                                f"{', '.join(self.net.inputs)})")
            array = _numbers(name, value)    # JSON's 4 is a float for a float input, not a label
            values[name] = array if name in integers else array.astype(self.net.dtype)
        with self._lock:
            try:
                walk = trace_walk(self.net, values)
            except (ValueError, KeyError, IndexError, GateworkError) as err:
                message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
                raise FeedError(message) from None
            result = walk_json(walk)
        result["feed"] = {name: np.asarray(values.get(name, self._default(name))).tolist()
                          for name in self.editable()}
        result["notes"] = self.notes
        return result

    def page(self, static: bool = False) -> str:
        """The page, self-contained: layout, first walk, script and style inline. `static`: no
        server behind it (inputs are shown but not editable)."""
        data = {"layout": self.layout, "walk": self.run(), "static": static}
        folder = resources.files(__package__)
        template = folder.joinpath("page.html").read_text(encoding="utf-8")
        return (template.replace("/*STYLE*/", folder.joinpath("page.css").read_text("utf-8"))
                .replace("/*SCRIPT*/", folder.joinpath("page.js").read_text("utf-8"))
                .replace("/*DATA*/", _script_json(data))
                .replace("<!--TITLE-->", _html_text(f"{self.net.name}: Gatework explorer")))


def parse_feed(body: bytes) -> dict[str, Any]:
    """The `feed` of a POST /api/run body: {"feed": {input: number or nested list}}."""
    try:
        payload = json.loads(body.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise FeedError(f"the request body is not JSON: {err}") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("feed", {}), dict):
        raise FeedError('the request body must be {"feed": {"input name": value, ...}}')
    return payload.get("feed", {})


def _no_constant(name: str) -> None:
    raise FeedError(f"{name} is not a number the explorer accepts")


def _numbers(name: str, value: Any) -> np.ndarray:
    """A JSON value as an array, if it is a number or a (nested, rectangular) list of numbers."""
    def check(item: Any) -> None:
        if isinstance(item, list):
            for inner in item:
                check(inner)
        elif isinstance(item, bool) or not isinstance(item, Real):
            raise FeedError(f"input {name!r}: expected a number or a list of numbers, got "
                            f"{json.dumps(item)[:40]}")
    check(value)
    try:
        array = np.array(value)
    except ValueError:
        array = np.array(None, dtype=object)
    if array.dtype == object:
        raise FeedError(f"input {name!r}: the lists are ragged (rows of different lengths)")
    if not np.all(np.isfinite(array)):
        raise FeedError(f"input {name!r}: values must be finite")
    return array


def _script_json(data: Any) -> str:
    """JSON safe inside a <script> element: no '<' that could close it."""
    return json.dumps(data, allow_nan=False).replace("<", "\\u003c")


def _html_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
