"""Training and test data: loading the sources of a config's `data:` section (validated by
net.core.config), checking them against the net, and batching.

    data:
      train: {source: digits, batch_size: 64, shuffle: true}
      test:  {source: data/test.npz, batch_size: 500}

A source is an `.npz` file (arrays `data` (N, ...) and `label` (N,)), a `.csv` file (the last
column is the label; an optional header line), or a built-in dataset: `digits` (scikit-learn's
8x8 handwritten digits, pixels scaled to [0, 1]), `iris` (features standardised) or `diabetes`
(a regression set, target standardised). A built-in source gives its `train` part in the train
section and its `test` part in the test section (`split:` chooses another); the parts are fixed:
every fifth sample (index % 5 == 0) is a test sample. File paths are relative to the config file.

Each source is validated once, when it is loaded, against the net: the data's sample shape
against the `data` input (rows are reshaped when the element count matches, so 64 columns feed a
(1, 8, 8) input), labels against the class count of the gates reading `label`, and NaN/Inf.

Batching (`Batches`) draws from one global order: with `shuffle: false` the file order, wrapping
at the end; with `shuffle: true` a new permutation each epoch, a function of the seed and the epoch
number only. Process `rank` of `world` takes the rank-th slice of each global batch of
`world * batch_size` samples, so the sequence of global batches does not depend on `world`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from gates import format_shape

from ..core.spec import BUILTIN_SOURCES, SourceSpec
from ..errors import DataError
from .files import read_npz

FEEDS = ("data", "label")


@dataclass
class Dataset:
    """Arrays of one source, already validated and cast: `data` (N, ...), maybe `label` (N, ...)."""
    name: str                       # what was loaded: a resolved file path or a built-in's name
    arrays: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.arrays["data"])


# -- loading and validating sources ---------------------------------------------------------------
def load_source(net: Any, source: SourceSpec) -> Dataset:
    """Read one source and validate it against the net (see the module docstring)."""
    if source.source in BUILTIN_SOURCES and not _looks_like_file(source.source,
                                                                 net.spec.base_dir):
        arrays = builtin_dataset(source.source, source.part)
        name = f"{source.source} (built-in, {source.part} part)"
    else:
        path = (Path(net.spec.base_dir) / source.source).resolve()
        name = str(path)
        if not path.is_file():
            raise net.spec.error(f"data.{source.phase}.source: no file {source.source!r} "
                                 f"(looked for {path}); built-in sources: "
                                 f"{', '.join(BUILTIN_SOURCES)}",
                                 source.key_lines.get("source", source.line))
        arrays = read_file(path)
    return Dataset(name, validate(net, arrays, name))


def _looks_like_file(name: str, base_dir: Any) -> bool:
    return (Path(base_dir) / name).is_file()


def read_file(path: Path) -> dict[str, np.ndarray]:
    """`data` and `label` arrays from an .npz or .csv file; DataError naming the file."""
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _read_npz(path)
    if suffix == ".csv":
        return _read_csv(path)
    raise DataError(f"{path}: unknown data file type {suffix or '(none)'!r}: use .npz or .csv")


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    arrays = read_npz(path, "data file")
    if "data" not in arrays:
        raise DataError(f"{path}: no array named 'data' (arrays: {', '.join(arrays) or 'none'})")
    return {k: arrays[k] for k in FEEDS if k in arrays}


def _read_csv(path: Path) -> dict[str, np.ndarray]:
    try:
        with open(path, encoding="utf-8") as handle:
            first, index = "", 0
            for index, first in enumerate(handle):
                if first.strip() and not first.lstrip().startswith("#"):
                    break
        skip = 0
        try:
            [float(field) for field in first.split(",")]
        except ValueError:
            skip = index + 1   # a header: skip it and the comment lines above it (raw lines)
        table = np.loadtxt(path, delimiter=",", ndmin=2, skiprows=skip, comments="#",
                           dtype=np.float64)
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read ({err})") from None
    except ValueError as err:
        raise DataError(f"{path}: not a numeric CSV table ({err})") from None
    if table.shape[1] < 2:
        raise DataError(f"{path}: needs at least two columns (features, then the label)")
    return {"data": table[:, :-1], "label": table[:, -1]}


def builtin_dataset(name: str, split: str) -> dict[str, np.ndarray]:
    """A built-in dataset's fixed `train` or `test` part (scikit-learn's bundled copies)."""
    try:
        from sklearn import datasets
    except ImportError:
        raise DataError(f"the built-in dataset {name!r} needs scikit-learn: "
                        "pip install -e '.[train]'") from None
    if name == "digits":
        bunch = datasets.load_digits()
        data, label = bunch.data / 16.0, bunch.target
    elif name == "iris":
        bunch = datasets.load_iris()
        data, label = bunch.data, bunch.target
    elif name == "diabetes":
        bunch = datasets.load_diabetes()
        data, label = bunch.data, bunch.target.astype(np.float64)
    else:
        raise DataError(f"unknown built-in dataset {name!r} (known: "
                        f"{', '.join(BUILTIN_SOURCES)})")
    test = np.arange(len(data)) % 5 == 0
    train = ~test
    if name in ("iris", "diabetes"):     # standardise with statistics of the train part only
        data = (data - data[train].mean(axis=0)) / data[train].std(axis=0)
    if name == "diabetes":
        label = (label - label[train].mean()) / label[train].std()
    part = test if split == "test" else train
    return {"data": data[part], "label": label[part]}


def validate(net: Any, arrays: dict[str, np.ndarray], name: str) -> dict[str, np.ndarray]:
    """Check `arrays` against the net's `data`/`label` inputs; return them cast and reshaped."""
    data = arrays["data"]
    if data.dtype.kind not in "iuf" or data.ndim < 1:
        raise DataError(f"{name}: 'data' must be a numeric array of shape (N, ...), got "
                        f"{data.dtype} {data.shape}")
    if len(data) == 0:
        raise DataError(f"{name}: holds no samples")
    out = {"data": _fit(net, "data", data, name)}
    if np.issubdtype(out["data"].dtype, np.floating):
        finite = np.isfinite(out["data"]).reshape(len(data), -1).all(axis=1)
        if not finite.all():
            raise DataError(f"{name}: 'data' holds NaN or Inf (first in sample "
                            f"{int(np.argmin(finite))})")
    if "label" in net.inputs:
        if "label" not in arrays:
            raise DataError(f"{name}: no 'label' array, but the net has a `label` input")
        label = arrays["label"]
        if label.dtype.kind not in "iuf" or len(label) != len(data):
            raise DataError(f"{name}: 'label' must be numeric with one entry per sample "
                            f"({len(data)}), got {label.dtype} {label.shape}")
        classes = net.integer_inputs().get("label")
        if classes is not None or net.inputs["label"].dtype == "int":
            label = _class_labels(label, classes, name)
        elif not np.all(np.isfinite(label)):
            raise DataError(f"{name}: 'label' holds NaN or Inf (first in sample "
                            f"{int(np.argmin(np.isfinite(label).reshape(len(label), -1).all(1)))})")
        out["label"] = _fit(net, "label", label, name)
    return out


def _class_labels(label: np.ndarray, classes: int | None, name: str) -> np.ndarray:
    flat = label.reshape(-1)
    if label.dtype.kind == "f":
        whole = np.isfinite(flat) & (np.mod(flat, 1) == 0)
        if not whole.all():
            index = int(np.argmin(whole))
            raise DataError(f"{name}: labels must be whole numbers (class indices); entry "
                            f"{index} is {flat[index]!r}")
    label = label.astype(np.int64)
    if classes is not None:
        bad = (label.reshape(-1) < 0) | (label.reshape(-1) >= classes)
        if bad.any():
            index = int(np.argmax(bad))
            raise DataError(f"{name}: label {int(label.reshape(-1)[index])} (entry {index}) is "
                            f"out of range: the net has {classes} classes (labels 0 to "
                            f"{classes - 1})")
    return label


def _fit(net: Any, input_name: str, array: np.ndarray, name: str) -> np.ndarray:
    """Cast to the input's dtype and reshape each sample to the input's declared shape."""
    spec = net.inputs[input_name]
    declared = tuple(spec.shape[1:])
    sample = array.shape[1:]
    if len(spec.shape) == 0:
        raise DataError(f"{name}: the net's `{input_name}` input is a scalar; it needs a "
                        "batch dimension, e.g. shape: [null, ...]")
    if len(declared) != len(sample) or any(d is not None and d != s
                                           for d, s in zip(declared, sample)):
        if None in declared or int(np.prod(declared)) != int(np.prod(sample)):
            raise DataError(f"{name}: '{input_name}' samples have shape {sample}, but the net's "
                            f"`{input_name}` input takes {format_shape(spec.shape)}")
        array = array.reshape((len(array),) + declared)
    integer = spec.dtype == "int" or (spec.dtype is None and array.dtype.kind in "iu"
                                      and input_name == "label")
    dtype = np.int64 if integer else net.dtype
    return np.ascontiguousarray(array, dtype=dtype)


# -- batching ------------------------------------------------------------------------------------
class Batches:
    """Batches of one dataset drawn in a fixed global order (see the module docstring).

    `next()` returns the next feed {name: array}; `state()`/`set_state()` give the position
    (epoch, cursor) so a resumed run draws exactly the batches it would have drawn.
    """

    def __init__(self, dataset: Dataset, batch_size: int, shuffle: bool = False, seed: int = 0,
                 rank: int = 0, world: int = 1):
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} is outside a world of {world}")
        self.dataset, self.batch_size, self.shuffle, self.seed = dataset, batch_size, shuffle, seed
        self.rank, self.world = rank, world
        self.epoch, self.cursor = 0, 0
        self._order: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.dataset)

    def order(self, epoch: int) -> np.ndarray | None:
        """The permutation of one epoch (None: file order)."""
        if not self.shuffle:
            return None
        if self._order is None or self._order[0] != epoch:
            self._order = (epoch, np.random.default_rng((self.seed, epoch)).permutation(len(self)))
        return self._order[1]

    def next(self) -> dict[str, np.ndarray]:
        """The next batch for this rank; advances the position by one global batch."""
        n, size = len(self), self.batch_size * self.world
        start, stop = self.rank * self.batch_size, (self.rank + 1) * self.batch_size
        arrays = self.dataset.arrays
        if self.cursor + size <= n:
            lo, hi = self.cursor + start, self.cursor + stop
            order = self.order(self.epoch)
            self.cursor += size
            if self.cursor == n:
                self.epoch, self.cursor = self.epoch + 1, 0
            if order is None:
                return {k: a[lo:hi] for k, a in arrays.items()}
            index = order[lo:hi]
        else:
            pieces = []
            while size:
                take = min(size, n - self.cursor)
                order = self.order(self.epoch)
                span = np.arange(self.cursor, self.cursor + take)
                pieces.append(span if order is None else order[span])
                size -= take
                self.cursor += take
                if self.cursor == n:
                    self.epoch, self.cursor = self.epoch + 1, 0
            index = np.concatenate(pieces)[start:stop]
        return {k: a[index] for k, a in arrays.items()}

    def one_pass(self) -> Iterator[tuple[dict[str, np.ndarray], int]]:
        """Every sample once, in file order: (feed, samples in it) for this rank; the last
        global batch may be short (and a rank's share of it empty, then skipped)."""
        n, size = len(self), self.batch_size * self.world
        for begin in range(0, n, size):
            lo = min(n, begin + self.rank * self.batch_size)
            hi = min(n, begin + (self.rank + 1) * self.batch_size)
            if hi > lo:
                yield {k: a[lo:hi] for k, a in self.dataset.arrays.items()}, hi - lo

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "cursor": self.cursor}

    def set_state(self, epoch: int, cursor: int) -> None:
        if not (0 <= cursor < max(len(self), 1) and epoch >= 0):
            raise ValueError(f"data position epoch {epoch}, cursor {cursor} does not fit a "
                             f"dataset of {len(self)} samples")
        self.epoch, self.cursor = int(epoch), int(cursor)


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
                             + (", shuffled each epoch" if batches.shuffle else ""))
        return lines


def load_data(net: Any, seed: int = 0, rank: int = 0, world: int = 1) -> Data:
    """Load and validate the sources of the net's `data:` section; shuffling follows `seed`."""
    sources = net.spec.data.sources() if net.spec.data is not None else {}
    loaded = {phase: Batches(load_source(net, spec), spec.batch_size, spec.shuffled, seed, rank,
                             world) for phase, spec in sources.items()}
    return Data(loaded.get("train"), loaded.get("test"))


def as_data(net: Any, data: Any, seed: int = 0) -> Data:
    """What `Solver.solve(data=...)` accepts, as a Data: a Data as it is; None: the config's
    `data:` section; in-memory arrays: `(X, y)` or a mapping of input name to array for
    training, or {"train": ..., "test": ...} of those. Arrays are validated like files and
    batched with the config's batch size and shuffling for that phase (64 and shuffled for
    training, when the config has none)."""
    if data is None:
        return load_data(net, seed)
    if isinstance(data, Data):
        return data
    parts = data if isinstance(data, Mapping) and set(data) <= {"train", "test"} else \
        {"train": data}
    loaded = {}
    for phase, arrays in parts.items():
        if isinstance(arrays, tuple):
            if len(arrays) != 2:
                raise ValueError(f"{phase} data as a tuple must be (data, label), got "
                                 f"{len(arrays)} arrays")
            arrays = dict(zip(FEEDS, arrays))
        if not isinstance(arrays, Mapping):
            raise TypeError(f"{phase} data must be (data, label), a mapping of input name to "
                            f"array, or a Data; got {type(arrays).__name__}")
        spec = net.spec.data.sources().get(phase) if net.spec.data is not None else None
        spec = spec or SourceSpec(source="arrays", phase=phase)
        name = f"in-memory arrays ({phase})"
        dataset = Dataset(name, validate(net, {k: np.asarray(v) for k, v in arrays.items()},
                                         name))
        loaded[phase] = Batches(dataset, spec.batch_size, spec.shuffled, seed)
    return Data(loaded.get("train"), loaded.get("test"))
