"""What a batch is drawn from: a `Source` (N samples, one array per feed, read by index), and
`Dataset`, the source held in memory (.npz, .csv, built-in sets, IDX files, arrays from Python).

A source reads raw samples: `read(index, rng)` returns {feed: array (len(index), ...)} in the
source's own dtype (uint8 pixels stay uint8); the transform and the checks against the net
come after it (net.train.data). `record(i)` names sample i for error messages (an LMDB key, a
line of a list file). Sources read from disk on demand (LMDB, images, HDF5) set `on_disk`,
which makes prefetching the default for them.
"""
from __future__ import annotations

from typing import Callable

import numpy as np


class Source:
    """The interface of every data source; see the module docstring."""
    name = "source"
    on_disk = False

    def __len__(self) -> int:
        raise NotImplementedError

    def shapes(self) -> dict[str, tuple]:
        """The per-sample shape of each feed, in feed order."""
        raise NotImplementedError

    def read(self, index: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """The samples at `index` (an int array), one array per feed."""
        raise NotImplementedError

    def record(self, i: int) -> str:
        """Sample i, as an error message names it."""
        return f"sample {i}"


class Dataset(Source):
    """A source held in memory: `arrays` (feed name -> (N, ...)), all of one length N; `record`,
    when given, names sample i as its file does (a CSV's line), else "sample i"."""

    def __init__(self, name: str, arrays: dict[str, np.ndarray],
                 record: Callable[[int], str] | None = None):
        self.name, self.arrays, self._record = name, arrays, record

    def record(self, i: int) -> str:
        return self._record(i) if self._record is not None else super().record(i)

    def __len__(self) -> int:
        return len(next(iter(self.arrays.values())))

    def shapes(self) -> dict[str, tuple]:
        return {feed: array.shape[1:] for feed, array in self.arrays.items()}

    def read(self, index: np.ndarray, rng: np.random.Generator | None = None
             ) -> dict[str, np.ndarray]:
        return {feed: array[index] for feed, array in self.arrays.items()}


class FeedsError(ValueError):
    """A data entry's `feeds` names more arrays than its source gives (reported at the config's
    `feeds` line; any other ValueError from a reader is reported at the entry's source line)."""


def check_feeds(what: tuple[str, ...], feeds: list[str], name: str) -> list[str]:
    """`feeds` for a source that gives the arrays `what` (e.g. pixels, labels) in that order;
    a FeedsError when it names more feeds than the source has arrays."""
    if len(feeds) > len(what):
        raise FeedsError(f"{name} gives {len(what)} arrays ({', '.join(what)}), but `feeds` "
                         f"names {len(feeds)}: {', '.join(feeds)}")
    return list(feeds)
