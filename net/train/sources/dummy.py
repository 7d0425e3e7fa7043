"""Caffe's DummyData source: batches of generated values, for benchmarks and tests.

Each feed has a per-sample `shape` and a `filler` (net.core.fillers: constant, gaussian,
uniform, xavier, msra; constant 0 by default), given under `dummy:`. A constant filler gives the
same batch every time; the others draw new values for every batch from its seeded generator
(Caffe refills them each forward pass too). A feed that goes to an integer input (labels)
receives the filler's values rounded down, so `{type: uniform, min: 0, max: 10}` gives classes 0
to 9. The source is one batch long: every batch is a new epoch.
"""
from __future__ import annotations

import numpy as np

from ...core.fillers import fill
from .base import Source


class DummySource(Source):
    def __init__(self, feeds: dict, batch_size: int, integer_feeds: frozenset = frozenset()):
        self.name = "dummy (generated)"
        self.specs, self.size, self.integer_feeds = feeds, batch_size, integer_feeds

    def __len__(self) -> int:
        return self.size

    def shapes(self) -> dict[str, tuple]:
        return {feed: tuple(spec.shape) for feed, spec in self.specs.items()}

    def read(self, index: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
        out = {}
        for feed, spec in self.specs.items():
            values = fill((len(index),) + tuple(spec.shape), spec.filler, rng, np.float64)
            out[feed] = np.floor(values).astype(np.int64) if feed in self.integer_feeds else \
                values
        return out
