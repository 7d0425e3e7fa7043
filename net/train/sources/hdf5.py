"""Caffe's HDF5Data source: a list file naming .h5 files (one a line, relative to the list
file's folder), each holding one dataset per feed, named like the feed (`data`, `label`), all
with the same number of rows. The files' rows follow each other in list order; every file must
give each feed the same per-sample shape. Rows are read on demand, a batch at a time, with
h5py; a file that cannot be opened or a read that fails is a DataError naming the file, the
dataset and the rows.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import DataError
from ..files import regular_file
from .base import Source


def _h5py():
    try:
        import h5py
    except ImportError:
        raise DataError("source hdf5 needs h5py: pip install -e '.[data]'") from None
    return h5py


def read_file_list(path: Path) -> list[Path]:
    """The .h5 files a list file names, relative to its folder; only a regular file is read."""
    regular_file(path, "HDF5 file list")
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except OSError as err:
        raise DataError(f"{path}: cannot read the HDF5 file list ({err.strerror})") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: the HDF5 file list is not UTF-8 text") from None
    files = [path.parent / line.strip() for line in lines if line.strip()]
    if not files:
        raise DataError(f"{path}: the HDF5 file list names no files")
    return files


class Hdf5Source(Source):
    """Rows of the datasets named like the feeds, across the listed files."""
    on_disk = True

    def __init__(self, list_file: Path, feeds: list[str]):
        h5py = _h5py()
        self.name = f"{list_file} (HDF5)"
        self.feeds = list(feeds)
        self.files, counts, shapes = [], [], None
        for path in read_file_list(list_file):
            try:
                regular_file(path, "HDF5 file")
            except DataError as err:
                raise DataError(f"{err}; listed in {list_file}") from None
            try:
                handle = h5py.File(path, "r")
            except (OSError, ValueError) as err:
                raise DataError(f"{path}: not a readable HDF5 file ({err}); listed in "
                                f"{list_file}") from None
            datasets = []
            for feed in feeds:
                dataset = handle.get(feed)
                if not isinstance(dataset, h5py.Dataset):
                    raise DataError(f"{path}: no dataset named {feed!r} for the input {feed!r} "
                                    f"(it has: {', '.join(handle.keys()) or 'nothing'})")
                if dataset.ndim < 1 or dataset.dtype.kind not in "biuf":
                    raise DataError(f"{path}: dataset {feed!r} is {dataset.dtype} "
                                    f"{dataset.shape}; a feed needs numbers, (N, ...)")
                datasets.append(dataset)
            rows = {len(d) for d in datasets}
            if len(rows) != 1:
                raise DataError(f"{path}: the datasets {', '.join(feeds)} have different row "
                                f"counts ({', '.join(str(len(d)) for d in datasets)})")
            these = [d.shape[1:] for d in datasets]
            if shapes is not None and these != shapes:
                raise DataError(f"{path}: per-sample shapes {these} differ from those of "
                                f"{self.files[0][0]} ({shapes})")
            shapes = these
            self.files.append((path, handle, datasets))
            counts.append(rows.pop())
        self.sample_shapes = dict(zip(feeds, shapes))
        self.starts = np.concatenate([[0], np.cumsum(counts)])

    def __len__(self) -> int:
        return int(self.starts[-1])

    def record(self, i: int) -> str:
        file_index = int(np.searchsorted(self.starts, i, side="right")) - 1
        return f"row {i - self.starts[file_index]} of {self.files[file_index][0]}"

    def shapes(self) -> dict[str, tuple]:
        return dict(self.sample_shapes)

    def read(self, index: np.ndarray, rng: np.random.Generator | None = None
             ) -> dict[str, np.ndarray]:
        index = np.asarray(index)
        which = np.searchsorted(self.starts, index, side="right") - 1
        out = {feed: None for feed in self.feeds}
        for file_index in np.unique(which):
            path, _, datasets = self.files[file_index]
            mask = which == file_index
            rows = index[mask] - self.starts[file_index]
            unique, inverse = np.unique(rows, return_inverse=True)
            for feed, dataset in zip(self.feeds, datasets):
                try:
                    values = dataset[unique]
                except (OSError, ValueError, KeyError) as err:
                    raise DataError(f"{path}: dataset {feed!r}, rows {unique.min()} to "
                                    f"{unique.max()}: cannot be read ({err})") from None
                if out[feed] is None:
                    out[feed] = np.empty((len(index),) + values.shape[1:], dtype=values.dtype)
                out[feed][mask] = values[inverse]
        return out
