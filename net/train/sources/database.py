"""Caffe's Data source: an LMDB database of Datum records (caffe_records), read on demand.

Records are taken in key order (LMDB's cursor order, which convert_imageset's zero-padded keys
make the list order). A Datum holds raw uint8 pixels, float_data, or an encoded PNG/JPEG
(decoded with Pillow into its stored channels, colour as B, G, R, as Caffe's OpenCV does).
Every record must have the shape of the first.

Safety: LMDB maps the file into memory, and reading a page past the end of a truncated file
would kill the process (SIGBUS), so the file's length is checked against the last page the
database declares before any record is read. A record that cannot be decoded or does not fit
its declared shape is a DataError naming the database and the record (its index and key); the
batch it belongs to is never returned.
"""
from __future__ import annotations

import io
import os
import weakref
from pathlib import Path

import numpy as np

from ...errors import DataError
from .base import Source, check_feeds
from .caffe_records import decode_datum
from .images import decode_image, pillow


def _lmdb():
    try:
        import lmdb
    except ImportError:
        raise DataError("source lmdb needs the lmdb package: pip install -e '.[data]'") from None
    return lmdb


#: read-only environments open in this process, by path: LMDB forbids opening one twice
_OPEN: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def open_environment(path: Path, write: bool = False, map_size: int = 1 << 30):
    """An LMDB environment at `path` (a folder holding data.mdb, or the data file itself);
    read-only and checked against truncation unless `write`. Sources reading one database
    share its read-only environment (LMDB forbids opening a file twice in one process)."""
    lmdb = _lmdb()
    if not write:
        key = str(Path(path).resolve())
        env = _OPEN.get(key)
        if env is None:
            env = _OPEN[key] = _open_reading(path, lmdb)
        return env
    try:
        return lmdb.open(str(path), map_size=map_size, subdir=True)
    except lmdb.Error as err:
        raise DataError(f"{path}: cannot create an LMDB database ({err})") from None


def _open_reading(path: Path, lmdb):
    subdir = path.is_dir()
    data_file = path / "data.mdb" if subdir else path
    if not data_file.is_file():
        raise DataError(f"{path}: no LMDB database here (no {data_file.name})")
    try:
        env = lmdb.open(str(path), readonly=True, lock=False, readahead=False, subdir=subdir,
                        max_readers=64)
    except lmdb.Error as err:
        raise DataError(f"{path}: not a readable LMDB database ({err})") from None
    try:
        check_length(env)
    except DataError:
        env.close()
        raise
    return env


def check_length(env) -> None:
    """DataError unless the data file holds every page the database declares (reading past
    the end of a mapped file kills the process)."""
    data_file = Path(env.path()) / "data.mdb" if Path(env.path()).is_dir() else Path(env.path())
    pages = env.info()["last_pgno"] + 1
    needed = pages * env.stat()["psize"]
    size = os.path.getsize(data_file)
    if size < needed:
        raise DataError(f"{data_file}: truncated: the database declares {pages} pages "
                        f"({needed} bytes) but the file holds {size}")


class LmdbSource(Source):
    """Datum records of an LMDB database, read on demand (see the module docstring)."""
    on_disk = True

    def __init__(self, path: Path, feeds: list[str]):
        self.path, self.name = path, f"{path} (LMDB)"
        self.env = open_environment(path)
        lmdb = _lmdb()
        try:
            with self.env.begin() as txn:
                self.keys = list(txn.cursor().iternext(keys=True, values=False))
        except lmdb.Error as err:
            raise DataError(f"{path}: corrupt LMDB database ({err})") from None
        if not self.keys:
            raise DataError(f"{path}: the LMDB database holds no records")
        self.feeds = check_feeds(("pixels", "labels"), feeds, self.name)
        self.sample_shape: tuple | None = None
        self.sample_shape = self._records(np.array([0]))[0].shape[1:]

    def __len__(self) -> int:
        return len(self.keys)

    def record(self, i: int) -> str:
        return f"record {i} (key {self.keys[i].decode('utf-8', 'replace')!r})"

    def _records(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lmdb = _lmdb()
        images, labels = [], np.empty(len(index), dtype=np.int64)
        check_length(self.env)
        try:
            with self.env.begin(buffers=False) as txn:
                for slot, i in enumerate(index):
                    where = f"{self.path}: {self.record(int(i))}"
                    value = txn.get(self.keys[int(i)])
                    if value is None:
                        raise DataError(f"{where}: the record has gone (was the database "
                                        "changed while training?)")
                    datum = decode_datum(value, where)
                    pixels = decode_image(datum.data, where, None) if datum.encoded else \
                        datum.to_array(where)
                    expected = self.sample_shape or (images[0].shape if images else None)
                    if expected is not None and pixels.shape != expected:
                        raise DataError(f"{where}: the Datum is {pixels.shape}, but the first "
                                        f"record is {expected}")
                    images.append(pixels)
                    labels[slot] = datum.label
        except lmdb.Error as err:
            raise DataError(f"{self.path}: corrupt LMDB database ({err})") from None
        return np.stack(images), labels

    def shapes(self) -> dict[str, tuple]:
        return {feed: (self.sample_shape if position == 0 else ())
                for position, feed in enumerate(self.feeds)}

    def read(self, index: np.ndarray, rng: np.random.Generator | None = None
             ) -> dict[str, np.ndarray]:
        return dict(zip(self.feeds, self._records(index)))


# -- writing (scripts/convert_imageset.py, scripts/compute_image_mean.py) --------------------------
MAP_SIZE = 1 << 40     # address space only: the file grows with what is written (Caffe's 1 TB)


def convert_imageset(root: Path, list_file: Path, database: Path, *, gray: bool = False,
                     shuffle: bool = False, seed: int = 0, size: tuple[int, int] | None = None,
                     encoded: bool = False, check_size: bool = False, log=None) -> int:
    """Caffe's convert_imageset: the images of `list_file` ("relative/path label" lines, paths
    under `root`) as Datum records in a new LMDB `database`, keyed "%08d_path" in list order
    (after a seeded shuffle with `shuffle`). Pixels are stored raw (C, H, W) BGR or grey, or,
    with `encoded`, as the image file's own bytes (re-encoded as PNG when resized or turned
    grey). `check_size`: every image must have the size of the first. The database is written
    in a temporary folder beside `database` and renamed when complete. Returns the count."""
    from .caffe_records import encode_datum
    from .images import read_list

    if database.exists():
        raise DataError(f"{database}: already exists; choose a new name (Caffe refuses too)")
    entries = read_list(list_file)
    if shuffle:
        entries = [entries[i] for i in np.random.default_rng(seed).permutation(len(entries))]
    temporary = database.with_name(f".{database.name}.partial")
    if temporary.exists():
        _remove_database(temporary)
    env = open_environment(temporary, write=True, map_size=MAP_SIZE)
    first_shape = None
    try:
        txn = env.begin(write=True)
        for count, (name, label, number) in enumerate(entries):
            where = f"{list_file}:{number}: {root / name}"
            if encoded and size is None and not gray:
                content = (root / name).read_bytes() if (root / name).is_file() else None
                if content is None:
                    raise DataError(f"{where}: no such image")
                decode_image(content, where, None)            # refuse what cannot be read
                value = encode_datum(content, label)
            else:
                pixels = decode_image(root / name, where, not gray, size)
                if check_size and first_shape is not None and pixels.shape != first_shape:
                    raise DataError(f"{where}: is {pixels.shape}, the first image is "
                                    f"{first_shape}")
                first_shape = first_shape or pixels.shape
                value = encode_datum(_png(pixels) if encoded else pixels, label)
            txn.put(f"{count:08d}_{name}".encode("utf-8"), value)
            if (count + 1) % 1000 == 0:
                txn.commit()
                txn = env.begin(write=True)
                if log:
                    log(f"processed {count + 1} files")
        txn.commit()
    except BaseException:
        env.close()
        _remove_database(temporary)
        raise
    env.close()
    temporary.rename(database)
    return len(entries)


def _png(pixels: np.ndarray) -> bytes:
    """A (C, H, W) BGR or grey uint8 image as PNG bytes."""
    image = pixels[0] if len(pixels) == 1 else pixels[::-1].transpose(1, 2, 0)
    buffer = io.BytesIO()
    pillow().fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG")
    return buffer.getvalue()


def _remove_database(folder: Path) -> None:
    for name in ("data.mdb", "lock.mdb"):
        (folder / name).unlink(missing_ok=True)
    folder.rmdir()


def compute_image_mean(database: Path, log=None) -> np.ndarray:
    """Caffe's compute_image_mean: the mean of every record's pixels, (1, C, H, W) float32."""
    source = LmdbSource(database, ["data"])
    total = np.zeros(source.sample_shape, dtype=np.float64)
    for start in range(0, len(source), 1000):
        batch = source.read(np.arange(start, min(len(source), start + 1000)))["data"]
        total += batch.sum(axis=0, dtype=np.float64)
        if log and start:
            log(f"processed {start} files")
    return (total / len(source)).astype(np.float32)[np.newaxis]
