"""Training and test data: opening the sources of a config's `data:` section (validated by
net.core.config), checking them against the net, transforming and batching.

    data:
      train: {source: fashion_mnist, batch_size: 64, transform: {scale: 0.00390625}}
      test:  {source: data/test.npz, batch_size: 500}

Sources (README "Data sources"; the readers are in net.train.sources):

    a path      an .npz file (arrays named like the feeds) or a .csv file (the last column is
                the label; header rule in net.train.sources.tables), relative to the config
    digits, iris, diabetes    scikit-learn's bundled sets (net.train.sources.builtin)
    fashion_mnist, mnist      IDX files: Debian's dataset-fashion-mnist, or MNIST under `path`
    lmdb        Caffe Datum records in the LMDB folder `path`, read on demand
    images      Caffe's ImageData: the list file `path` of "relative/path label" lines
    hdf5        Caffe's HDF5Data: the list file `path` of .h5 files, datasets named like feeds
    dummy       Caffe's DummyData: generated values (`dummy:` gives shapes and fillers)

A source's arrays go to the net inputs named by `feeds` (default: data, and label when the net
has one). The built-in and IDX sets give their `train` part in the train section and their
`test` part in the test section (`split:` chooses another). In-memory sources (files, built-in
and IDX sets, arrays) may hold at most MAX_IN_MEMORY_BYTES; their declared sizes are checked
before anything is read. Larger sets belong in LMDB or HDF5, which are read a batch at a time.

Each sample's first feed then goes through `transform` (Caffe's DataTransformer, see
net.train.sources.transform), and every feed is checked against the net: the sample shape
against the input's (rows are reshaped when the element count matches, so 64 columns feed a
(1, 8, 8) input); labels against the class count of the gates reading them; NaN and Inf; and
no lossy cast (float values for an integer input must be whole numbers). In-memory sources are
checked once, when loaded; sources read from disk, batch by batch, naming the record.

Batching (`Batches`) draws from one global order: with `shuffle: false` the file order, wrapping
at the end; with `shuffle: true` a new permutation each epoch, a function of the seed and the epoch
number only. Process `rank` of `world` takes the rank-th slice of each global batch of
`world * batch_size` samples, so the sequence of global batches does not depend on `world`.
A batch, random crops and mirrors included, is a function of the seed and its position alone,
so loading it ahead in a background thread (`prefetch`) or on demand gives the same bits.
"""
from __future__ import annotations

import math
import weakref
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from gates import format_shape

from ..core.spec import BUILTIN_SOURCES, DEFAULT_FEEDS, SourceSpec
from ..errors import ConfigError, DataError
from .sources import builtin, idx
from .sources.base import Dataset, FeedsError, Source, check_feeds
from .sources.database import LmdbSource
from .sources.dummy import DummySource
from .sources.hdf5 import Hdf5Source
from .sources.images import ImageListSource
from .sources.prefetch import Lookahead
from .sources.tables import csv_record, csv_shapes, npz_shapes, read_csv, read_npz_source
from .sources.transform import Transformer

__all__ = ["Batches", "Data", "Dataset", "MAX_IN_MEMORY_BYTES", "Source", "as_data",
           "load_data", "load_source", "open_source", "source_shapes", "validate"]

#: the most bytes an in-memory source may declare (files, built-in and IDX sets)
MAX_IN_MEMORY_BYTES = 4 << 30
FEEDS = DEFAULT_FEEDS


# -- opening sources ------------------------------------------------------------------------------
def _path(spec: SourceSpec, base_dir: Path, file: str | None, key: str) -> Path:
    """The file or folder `key` (source or path) names, resolved; ConfigError at its line."""
    given = spec.source if key == "source" else spec.path
    path = (Path(base_dir) / given).resolve()
    if not path.exists():
        hint = f"; source kinds: {', '.join(BUILTIN_SOURCES)}, fashion_mnist, mnist, lmdb, " \
               "images, hdf5, dummy" if key == "source" else ""
        looked = "" if str(path) == given else f" (looked for {path})"
        raise ConfigError(f"data.{spec.phase}.{key}: no file {given!r}{looked}{hint}", file,
                          spec.line_of(key))
    return path


def _reader_error(spec: SourceSpec, file: str | None, err: ValueError) -> ConfigError:
    """A reader's ValueError as a one-line error at its config line: a FeedsError at `feeds`,
    anything else at the line naming the data (`source`, or `path` for a source kind)."""
    if isinstance(err, FeedsError):
        return ConfigError(f"data.{spec.phase}.feeds: {err}", file, spec.line_of("feeds"))
    key = "path" if spec.kind != "file" and spec.path else "source"
    return ConfigError(f"data.{spec.phase}.{key}: {err}", file, spec.line_of(key))


def open_source(spec: SourceSpec, base_dir: str | Path, file: str | None = None,
                integer_feeds: frozenset = frozenset()) -> Source:
    """The Source of one `data:` entry, unchecked against any net (raw samples)."""
    base_dir, kind, feeds = Path(base_dir), spec.kind, list(spec.feeds)
    try:
        if kind == "file":
            path = _path(spec, base_dir, file, "source")
            suffix = path.suffix.lower()
            if suffix == ".npz":
                return Dataset(str(path), read_npz_source(path, feeds, MAX_IN_MEMORY_BYTES))
            if suffix == ".csv":
                return Dataset(str(path), read_csv(path, feeds), csv_record(path))
            raise DataError(f"{path}: unknown data file type {suffix or '(none)'!r}: use .npz "
                            "or .csv, or a source kind")
        if kind in BUILTIN_SOURCES:
            arrays = builtin.builtin_dataset(kind, spec.part)
            name = f"{kind} (built-in, {spec.part} part)"
            return Dataset(name, _ordered([arrays["data"], arrays["label"]], ("data", "label"),
                                          feeds, name))
        if kind in ("fashion_mnist", "mnist"):
            folder = _path(spec, base_dir, file, "path") if spec.path else None
            if kind == "fashion_mnist":
                folder = idx.fashion_folder(folder, f"data.{spec.phase}")
            arrays = idx.mnist_part(folder, spec.part, MAX_IN_MEMORY_BYTES)
            name = f"{kind} ({spec.part} part, {folder})"
            return Dataset(name, _ordered([arrays["images"], arrays["labels"]],
                                          ("images", "labels"), feeds, name))
        if kind == "lmdb":
            return LmdbSource(_path(spec, base_dir, file, "path"), feeds)
        if kind == "images":
            list_file = _path(spec, base_dir, file, "path")
            root = (list_file.parent / spec.root_folder) if spec.root_folder else list_file.parent
            size = (spec.new_height, spec.new_width) if spec.new_height else None
            return ImageListSource(list_file, feeds, root, size, spec.is_color)
        if kind == "hdf5":
            return Hdf5Source(_path(spec, base_dir, file, "path"), feeds)
        return DummySource({feed: spec.dummy[feed] for feed in feeds}, spec.batch_size,
                           integer_feeds)
    except (DataError, ConfigError):
        raise
    except ValueError as err:
        raise _reader_error(spec, file, err) from None


def _ordered(arrays: list[np.ndarray], what: tuple[str, ...], feeds: list[str], name: str
             ) -> dict[str, np.ndarray]:
    return dict(zip(check_feeds(what, feeds, name), arrays))


def source_shapes(spec: SourceSpec, base_dir: str | Path, file: str | None = None
                  ) -> dict[str, tuple]:
    """The per-sample shape each feed of `spec` gets, after the transform, without loading the
    data: headers of .npz and IDX files, the first row of a CSV, the first record of an LMDB,
    the first image, the HDF5 datasets' shapes, `dummy:`'s shapes. For example
    {"data": (1, 28, 28), "label": ()} for fashion_mnist."""
    base_dir, kind, feeds = Path(base_dir), spec.kind, list(spec.feeds)
    try:
        if kind == "file":
            path = _path(spec, base_dir, file, "source")
            shapes = npz_shapes(path, feeds) if path.suffix.lower() == ".npz" else \
                csv_shapes(path, feeds)
        elif kind in BUILTIN_SOURCES:
            shapes = _ordered(list(builtin.SHAPES[kind]), ("data", "label"), feeds, kind)
        elif kind in ("fashion_mnist", "mnist"):
            folder = _path(spec, base_dir, file, "path") if spec.path else None
            if kind == "fashion_mnist":
                folder = idx.fashion_folder(folder, f"data.{spec.phase}")
            found = idx.mnist_shapes(folder, spec.part)
            shapes = _ordered([found["images"], found["labels"]], ("images", "labels"), feeds,
                              kind)
        else:
            shapes = open_source(spec, base_dir, file).shapes()
    except (DataError, ConfigError):
        raise
    except ValueError as err:
        raise _reader_error(spec, file, err) from None
    shapes = {feed: tuple(shape) for feed, shape in shapes.items()}
    if spec.transform is not None and feeds:
        shapes[feeds[0]] = Transformer(spec.transform, spec.phase, shapes[feeds[0]], np.float32,
                                       base_dir, file).output_shape()
    return shapes


# -- checking samples against the net ------------------------------------------------------------
class Checks:
    """What each fed input of a net needs: its declared shape and dtype, and for integer
    inputs (labels) the class count. `__call__(arrays, record)` returns the arrays cast and
    reshaped, or raises a DataError naming the source and, through `record(i)`, the sample."""

    def __init__(self, net: Any, feeds: list[str], name: str):
        self.net, self.feeds, self.name = net, list(feeds), name
        counts = net.integer_inputs()
        self.classes = {feed: counts.get(feed) for feed in feeds}
        self.integer = frozenset(feed for feed in feeds if net.inputs[feed].dtype == "int"
                                 or counts.get(feed) is not None)

    def __call__(self, arrays: dict[str, np.ndarray], record: Callable[[int], str],
                 skip: frozenset = frozenset()) -> dict[str, np.ndarray]:
        out, count = {}, None
        for feed in self.feeds:
            array = arrays[feed]
            if array.dtype.kind not in "biuf" or array.ndim < 1:
                raise DataError(f"{self.name}: '{feed}' must be a numeric array of shape "
                                f"(N, ...), got {array.dtype} {array.shape}")
            if count is None:
                count = len(array)
                if count == 0:
                    raise DataError(f"{self.name}: holds no samples")
            elif len(array) != count:
                raise DataError(f"{self.name}: '{feed}' must have one entry per sample "
                                f"({count}), got {array.dtype} {array.shape}")
            if feed in skip:
                out[feed] = array
                continue
            if feed in self.integer:
                array = self._whole(feed, array, record)
            elif array.dtype.kind == "f":
                finite = np.isfinite(array).reshape(len(array), -1).all(axis=1)
                if not finite.all():
                    raise DataError(f"{self.name}: '{feed}' holds NaN or Inf (first in "
                                    f"{record(int(np.argmin(finite)))})")
            out[feed] = self.fit(feed, array)
        return out

    def _whole(self, feed: str, array: np.ndarray, record: Callable[[int], str]) -> np.ndarray:
        """Integer values of an integer input: no value truncated, and in the class range."""
        flat = array.reshape(len(array), -1)
        if array.dtype.kind == "f":
            whole = np.isfinite(flat) & (np.mod(flat, 1) == 0) & (np.abs(flat) < 2.0 ** 63)
            if not whole.all():
                row, column = np.unravel_index(int(np.argmin(whole)), whole.shape)
                what = "labels must be whole numbers (class indices)" \
                    if self.classes[feed] is not None else \
                    f"the input `{feed}` is declared int, so its values must be whole numbers " \
                    "(refusing to truncate them)"
                raise DataError(f"{self.name}: {what}; {record(int(row))} holds "
                                f"{flat[row, column].item()!r}")
        array = array.astype(np.int64)
        classes = self.classes[feed]
        if classes is not None:
            bad = ((array < 0) | (array >= classes)).reshape(len(array), -1)
            if bad.any():
                row, column = np.unravel_index(int(np.argmax(bad)), bad.shape)
                value = int(array.reshape(len(array), -1)[row, column])
                raise DataError(f"{self.name}: label {value} ({record(int(row))}) is "
                                f"out of range: the net has {classes} classes (labels 0 to "
                                f"{classes - 1})")
        return array

    def fit(self, feed: str, array: np.ndarray) -> np.ndarray:
        """Cast to the input's dtype and reshape each sample to the input's declared shape."""
        spec = self.net.inputs[feed]
        declared = tuple(spec.shape[1:])
        sample = array.shape[1:]
        if len(spec.shape) == 0:
            raise DataError(f"{self.name}: the net's `{feed}` input is a scalar; it needs a "
                            "batch dimension, e.g. shape: [null, ...]")
        if len(declared) != len(sample) or any(d is not None and d != s
                                               for d, s in zip(declared, sample)):
            if None in declared or math.prod(declared) != math.prod(sample):
                where = self.net.spec.file
                declared_at = f" ({where}:{spec.line})" if where and spec.line else ""
                raise DataError(f"{self.name}: '{feed}' samples have shape {sample}, but the "
                                f"net's `{feed}` input takes {format_shape(spec.shape)}"
                                f"{declared_at}")
            array = array.reshape((len(array),) + declared)
        integer = feed in self.integer or (spec.dtype is None and array.dtype.kind in "iu"
                                           and feed == "label")
        return np.ascontiguousarray(array, dtype=np.int64 if integer else self.net.dtype)


def _in_memory(i: int) -> str:
    return f"sample {i}"


def validate(net: Any, arrays: dict[str, np.ndarray], name: str,
             feeds: list[str] | None = None) -> dict[str, np.ndarray]:
    """Check in-memory `arrays` against the net's inputs; return them cast and reshaped."""
    feeds = feeds or [feed for feed in FEEDS if feed in net.inputs]
    for feed in feeds:
        if feed not in arrays:
            raise DataError(f"{name}: no '{feed}' array, but the net has a `{feed}` input")
    return Checks(net, feeds, name)({k: arrays[k] for k in feeds}, _in_memory)


@dataclass
class _Prepared:
    """A source made ready for a net: the transform of the first feed (or None) and what each
    batch still needs: every check (a source on disk), only the first feed's cast (an
    in-memory set checked when loaded, whose first feed is transformed), or nothing."""
    source: Source
    transform: Transformer | None
    checks: Checks | None
    first: str
    cast_only: bool = False

    def __call__(self, arrays: dict[str, np.ndarray], index: np.ndarray,
                 rng: np.random.Generator | None, lo: int, hi: int, total: int
                 ) -> dict[str, np.ndarray]:
        if self.transform is not None:
            arrays[self.first] = self.transform(arrays[self.first], rng, lo, hi, total)
        if self.cast_only:
            arrays[self.first] = self.checks.fit(self.first, arrays[self.first])
        elif self.checks is not None:
            arrays = self.checks(arrays, lambda i: self.source.record(int(index[i])))
        return arrays


def load_source(net: Any, spec: SourceSpec, opened: Source | None = None
                ) -> tuple[Source, _Prepared]:
    """Open one source (or take `opened`, arrays already in memory) and check it against the
    net: in-memory sets entirely now, sources on disk their shapes now and their values batch
    by batch; the spec's transform applies to either."""
    file, base_dir = net.spec.file, net.spec.base_dir
    feeds = list(spec.feeds)
    checks = Checks(net, feeds, "")
    source = opened if opened is not None else open_source(spec, base_dir, file, checks.integer)
    checks.name = source.name
    shapes = {feed: tuple(shape) for feed, shape in source.shapes().items()}
    transform = None
    if spec.transform is not None and not spec.transform.identity:
        transform = Transformer(spec.transform, spec.phase, shapes[feeds[0]], net.dtype,
                                base_dir, file)
        shapes[feeds[0]] = transform.output_shape()
    batch_bytes = spec.batch_size * sum(math.prod(shape) * 8 for shape in shapes.values())
    if batch_bytes > MAX_IN_MEMORY_BYTES:
        raise DataError(f"{source.name}: a batch of {spec.batch_size} samples of "
                        f"{', '.join(f'{k} {v}' for k, v in shapes.items())} would take "
                        f"{batch_bytes / 2**30:.1f} GiB, over the "
                        f"{MAX_IN_MEMORY_BYTES / 2**30:.1f} GiB a data set may hold in memory")
    for feed in feeds:                                   # shapes against the inputs, now
        checks.fit(feed, np.empty((0,) + shapes[feed], dtype=np.float64))
    if isinstance(source, Dataset):
        if transform is None:
            source = Dataset(source.name, checks(source.arrays, source.record), source.record)
            return source, _Prepared(source, None, None, feeds[0])
        checked = checks(source.arrays, source.record, skip=frozenset(feeds[:1]))
        raw = source.arrays[feeds[0]]
        if raw.dtype.kind not in "biuf":
            raise DataError(f"{source.name}: '{feeds[0]}' must be numeric, got {raw.dtype}")
        finite = np.isfinite(raw).reshape(len(raw), -1).all(axis=1) if raw.dtype.kind == "f" \
            else None
        if finite is not None and not finite.all():
            raise DataError(f"{source.name}: '{feeds[0]}' holds NaN or Inf (first in "
                            f"{source.record(int(np.argmin(finite)))})")
        source = Dataset(source.name, checked, source.record)
        return source, _Prepared(source, transform, checks, feeds[0], cast_only=True)
    return source, _Prepared(source, transform, checks, feeds[0])


# -- batching ------------------------------------------------------------------------------------
class _Pipeline:
    """Everything that makes a batch, and nothing that changes while batches are drawn except
    `seed`: shared by Batches and its prefetching thread (which must not hold the Batches)."""

    def __init__(self, source: Source, batch_size: int, shuffle: bool, seed: int, rank: int,
                 world: int, prepare: _Prepared | None):
        self.source, self.batch_size, self.shuffle, self.seed = source, batch_size, shuffle, seed
        self.rank, self.world, self.prepare = rank, world, prepare
        self._order: tuple[int, np.ndarray] | None = None

    def order(self, epoch: int) -> np.ndarray | None:
        if not self.shuffle:
            return None
        cached = self._order
        if cached is None or cached[0] != epoch:
            cached = (epoch, np.random.default_rng((self.seed, epoch)).permutation(
                len(self.source)))
            self._order = cached
        return cached[1]

    def global_index(self, epoch: int, cursor: int) -> tuple[np.ndarray, int, int]:
        """The sample indices of the global batch at (epoch, cursor), and the next position."""
        n, size, pieces = len(self.source), self.batch_size * self.world, []
        while size:
            take = min(size, n - cursor)
            order = self.order(epoch)
            span = np.arange(cursor, cursor + take)
            pieces.append(span if order is None else order[span])
            size -= take
            cursor += take
            if cursor == n:
                epoch, cursor = epoch + 1, 0
        return np.concatenate(pieces), epoch, cursor

    def make(self, index: np.ndarray, lo: int, hi: int, key: tuple[int, ...]
             ) -> dict[str, np.ndarray]:
        """This rank's samples lo:hi of the global batch `index`; `key` seeds its randomness."""
        mine = index[lo:hi]
        arrays = self.source.read(mine, np.random.default_rng((self.seed, 1, *key, self.rank)))
        if self.prepare is not None:
            arrays = self.prepare(arrays, mine, np.random.default_rng((self.seed, 2, *key)),
                                  lo, hi, len(index))
        return arrays

    def batch_at(self, epoch: int, cursor: int) -> dict[str, np.ndarray]:
        index, _, _ = self.global_index(epoch, cursor)
        return self.make(index, self.rank * self.batch_size, (self.rank + 1) * self.batch_size,
                         (epoch, cursor))

    def stream(self, epoch: int, cursor: int) -> Iterator[tuple[tuple[int, int], dict]]:
        """(position, batch) from (epoch, cursor) on, forever: what prefetching runs."""
        while True:
            yield (epoch, cursor), self.batch_at(epoch, cursor)
            _, epoch, cursor = self.global_index(epoch, cursor)

    def one_pass(self) -> Iterator[tuple[dict[str, np.ndarray], int]]:
        n, size = len(self.source), self.batch_size * self.world
        for begin in range(0, n, size):
            lo = min(n, begin + self.rank * self.batch_size)
            hi = min(n, begin + (self.rank + 1) * self.batch_size)
            if hi > lo:
                index = np.arange(begin, min(n, begin + size))
                yield self.make(index, lo - begin, hi - begin, (0, begin, 1)), hi - lo


def _close(holder: list) -> None:
    if holder[0] is not None:
        holder[0][1].close()
        holder[0] = None


class Batches:
    """Batches of one source drawn in a fixed global order (see the module docstring).

    `next()` returns the next feed {name: array}; `state()`/`set_state()` give the position
    (epoch, cursor) so a resumed run draws exactly the batches it would have drawn. With
    `prefetch` > 0, batches are made that many ahead in a background thread.
    """

    def __init__(self, dataset: Source, batch_size: int, shuffle: bool = False, seed: int = 0,
                 rank: int = 0, world: int = 1, prepare: _Prepared | None = None,
                 prefetch: int = 0):
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} is outside a world of {world}")
        self._pipeline = _Pipeline(dataset, batch_size, shuffle, seed, rank, world, prepare)
        self.prefetch = prefetch
        self.epoch, self.cursor = 0, 0
        self._ahead: list = [None]        # (next position, Lookahead) while prefetching
        weakref.finalize(self, _close, self._ahead)

    dataset = property(lambda self: self._pipeline.source)
    batch_size = property(lambda self: self._pipeline.batch_size)
    shuffle = property(lambda self: self._pipeline.shuffle)
    rank = property(lambda self: self._pipeline.rank)
    world = property(lambda self: self._pipeline.world)

    @property
    def seed(self) -> int:
        return self._pipeline.seed

    @seed.setter
    def seed(self, seed: int) -> None:
        self.close()
        self._pipeline.seed = seed
        self._pipeline._order = None

    def __len__(self) -> int:
        return len(self._pipeline.source)

    def order(self, epoch: int) -> np.ndarray | None:
        """The permutation of one epoch (None: file order)."""
        return self._pipeline.order(epoch)

    def next(self) -> dict[str, np.ndarray]:
        """The next batch for this rank; advances the position by one global batch."""
        position = (self.epoch, self.cursor)
        if self.prefetch:
            if self._ahead[0] is None or self._ahead[0][0] != position:
                self.close()
                self._ahead[0] = (position, Lookahead(self._pipeline.stream(*position),
                                                      self.prefetch))
            made_at, feed = next(self._ahead[0][1])
            assert made_at == position
        else:
            feed = self._pipeline.batch_at(*position)
        _, self.epoch, self.cursor = self._pipeline.global_index(*position)
        if self._ahead[0] is not None:
            self._ahead[0] = ((self.epoch, self.cursor), self._ahead[0][1])
        return feed

    def one_pass(self) -> Iterator[tuple[dict[str, np.ndarray], int]]:
        """Every sample once, in file order: (feed, samples in it) for this rank; the last
        global batch may be short (and a rank's share of it empty, then skipped)."""
        if not self.prefetch:
            yield from self._pipeline.one_pass()
            return
        ahead = Lookahead(self._pipeline.one_pass(), self.prefetch)
        try:
            yield from ahead
        finally:
            ahead.close()

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "cursor": self.cursor}

    def set_state(self, epoch: int, cursor: int) -> None:
        if not (0 <= cursor < max(len(self), 1) and epoch >= 0):
            raise ValueError(f"data position epoch {epoch}, cursor {cursor} does not fit a "
                             f"dataset of {len(self)} samples")
        self.epoch, self.cursor = int(epoch), int(cursor)

    def close(self) -> None:
        """Stop prefetching (it restarts at the next `next()`)."""
        _close(self._ahead)


@dataclass
class Data:
    """What a run trains and tests on: `train` and `test` batch sources (either may be None)."""
    train: Batches | None
    test: Batches | None

    def describe(self) -> list[str]:
        """One line per source saying which file (resolved) or built-in was used."""
        lines = []
        for phase, batches in (("train", self.train), ("test", self.test)):
            if batches is not None:
                lines.append(f"{phase} data: {batches.dataset.name}, {len(batches)} samples, "
                             f"batch size {batches.batch_size}"
                             + (", shuffled each epoch" if batches.shuffle else "")
                             + (f", {batches.prefetch} batches prefetched"
                                if batches.prefetch else ""))
        return lines

    def close(self) -> None:
        for batches in (self.train, self.test):
            if batches is not None:
                batches.close()


def load_data(net: Any, seed: int = 0, rank: int = 0, world: int = 1) -> Data:
    """Load and check the sources of the net's `data:` section; shuffling follows `seed`."""
    sources = net.spec.data.sources() if net.spec.data is not None else {}
    loaded = {}
    for phase, spec in sources.items():
        source, prepare = load_source(net, spec)
        loaded[phase] = Batches(source, spec.batch_size, spec.shuffled, seed, rank, world,
                                prepare, spec.prefetched)
    return Data(loaded.get("train"), loaded.get("test"))


def as_data(net: Any, data: Any, seed: int = 0) -> Data:
    """What `Solver.solve(data=...)` accepts, as a Data: a Data as it is; None: the config's
    `data:` section; in-memory arrays: `(X, y)` (for the phase's feeds, by default `data` and
    `label`) or a mapping of input name to array for training only, or {"train": ..., "test":
    ...} of those. Arrays are checked like files and batched with the config's batch size,
    shuffling and transform for that phase (64 and shuffled for training, when the config has
    none); a phase given no arrays has no source."""
    if data is None:
        return load_data(net, seed)
    if isinstance(data, Data):
        return data
    parts = data if isinstance(data, Mapping) and set(data) <= {"train", "test"} else \
        {"train": data}
    loaded = {}
    for phase, arrays in parts.items():
        spec = net.spec.data.sources().get(phase) if net.spec.data is not None else None
        spec = spec or SourceSpec(source="arrays", phase=phase,
                                  feeds=[feed for feed in FEEDS if feed in net.inputs])
        arrays = _named_arrays(net, phase, arrays, list(spec.feeds))
        spec = dataclasses.replace(spec, feeds=list(arrays))
        opened = Dataset(f"in-memory arrays ({phase})",
                         {name: np.asarray(value) for name, value in arrays.items()})
        source, prepare = load_source(net, spec, opened)
        loaded[phase] = Batches(source, spec.batch_size, spec.shuffled, seed, prepare=prepare)
    return Data(loaded.get("train"), loaded.get("test"))


def _named_arrays(net: Any, phase: str, arrays: Any, feeds: list[str]) -> dict[str, Any]:
    """In-memory arrays by the net input each feeds."""
    if isinstance(arrays, tuple):
        if len(arrays) != len(feeds) or not feeds:
            wanted = ", ".join(feeds) or "none: the net has no input named data or label"
            raise ValueError(f"{phase} data as a tuple gives one array per feed of the phase "
                             f"({wanted}), got {len(arrays)}; or pass a mapping of input name "
                             "to array")
        return dict(zip(feeds, arrays))
    if not isinstance(arrays, Mapping):
        raise TypeError(f"{phase} data must be a tuple of arrays, a mapping of input name to "
                        f"array, or a Data; got {type(arrays).__name__}")
    unknown = [name for name in arrays if name not in net.inputs]
    if unknown:
        raise ValueError(f"{phase} data: {', '.join(map(repr, unknown))} is not an input of the "
                         f"net (inputs: {', '.join(net.inputs)})")
    return dict(arrays)
