"""Data files held in memory: .npz archives and .csv tables.

.npz: arrays named like the feeds (`data`, `label` by default), each (N, ...). Before anything
is read, every member's header is checked (net.train.files): its declared shape and dtype (no
object arrays), the total every member declares against the in-memory bound, a stored member's
size in the archive, and how far compressed members expand (at most MAX_EXPANSION times); then
only the feeds' arrays are read, in bounded chunks, each holding exactly what it declares. So a
small file cannot make the process allocate what it does not hold.

.csv: one sample a row, comma-separated numbers; the last column is the label (with a single
feed, every column is data). Read as UTF-8; a byte-order mark is ignored. Blank lines and lines
starting with `#` are skipped. The header rule: the first other line is a header when NONE of
its fields is a number (`x1,x2,label`); a line mixing numbers and other text (`1.O,2,3`) or
with an empty field is an error naming the line and the field, never a header taken silently.
Every row must have the same number of fields. A number is what numpy reads: ASCII, Python's
float syntax without `_` (`1e-3`, `.5`, `nan`, `inf`). Errors found after reading (a NaN, a
label out of range) name the row by its line in the file (`csv_record`).
"""
from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Callable

import numpy as np

from ...errors import DataError
from ..files import npz_headers, read_npz, regular_file
from .base import check_feeds


# -- .npz ------------------------------------------------------------------------------------------
def npz_declared(path: Path) -> dict[str, tuple[tuple, np.dtype]]:
    """Each member's declared (shape, dtype), read from the .npy headers alone, every member
    checked as `net.train.files.read_npz` checks it (stored members hold what they declare,
    compressed ones expand by at most MAX_EXPANSION); DataError naming the file and member for
    what is not an .npz of plain arrays."""
    return {name: (header.shape, header.dtype)
            for name, header in npz_headers(path, "data file").items()}


def read_npz_source(path: Path, feeds: list[str], limit: int) -> dict[str, np.ndarray]:
    """The arrays named like `feeds`, after checking that every member (named *.npy or not)
    declares, in all, at most `limit` bytes; members that feed nothing are not read."""
    declared = npz_declared(path)
    total = sum(math.prod(shape) * dtype.itemsize for shape, dtype in declared.values())
    if total > limit:
        raise DataError(f"{path}: its arrays declare {total / 2**30:.1f} GiB, over the "
                        f"{limit / 2**30:.1f} GiB a data set may hold in memory "
                        f"({', '.join(f'{k} {v[0]}' for k, v in declared.items())})")
    return _named(read_npz(path, "data file", {feed: None for feed in feeds}, limit), feeds,
                  path)


def _named(arrays: dict[str, np.ndarray], feeds: list[str], path: Path
           ) -> dict[str, np.ndarray]:
    for feed in feeds:
        if feed not in arrays:
            raise DataError(f"{path}: no array named {feed!r} for the input {feed!r} (arrays: "
                            f"{', '.join(arrays) or 'none'})")
    return {feed: arrays[feed] for feed in feeds}


def npz_shapes(path: Path, feeds: list[str]) -> dict[str, tuple]:
    declared = npz_declared(path)
    missing = [feed for feed in feeds if feed not in declared]
    if missing:
        raise DataError(f"{path}: no array named {missing[0]!r} (arrays: "
                        f"{', '.join(declared) or 'none'})")
    return {feed: declared[feed][0][1:] for feed in feeds}


# -- .csv ------------------------------------------------------------------------------------------
def _is_number(field: str) -> bool:
    """Whether numpy's loadtxt reads `field` as a float: Python's float syntax, but ASCII only
    and without the `_` between digits that Python allows."""
    if not field.isascii() or "_" in field:
        return False
    try:
        float(field)
    except ValueError:
        return False
    return True


def _lines(path: Path):
    """(line number, text) of each line that is neither blank nor a comment."""
    try:
        with open(path, encoding="utf-8-sig") as handle:
            for number, line in enumerate(handle, 1):
                text = line.strip()
                if text and not text.startswith("#"):
                    yield number, text
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror})") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text") from None


def _check_row(path: Path, number: int, fields: list[str], width: int | None) -> None:
    """DataError naming the line and field that keep a row from being numbers."""
    if width is not None and len(fields) != width:
        raise DataError(f"{path}:{number}: {len(fields)} fields, but the rows before have "
                        f"{width}")
    for column, field in enumerate(fields, 1):
        if not field.strip():
            raise DataError(f"{path}:{number}: field {column} is empty")
        if not _is_number(field):
            raise DataError(f"{path}:{number}: field {column} ({field.strip()[:40]!r}) is not "
                            "a number (a header line has no numeric field at all)")


def csv_header(path: Path) -> tuple[int, int]:
    """(lines to skip, fields per row), from the first lines: the header rule of the module
    docstring. DataError if `path` is not a regular file, so nothing reads from a device or
    waits on a FIFO."""
    regular_file(path, "CSV file")
    rows = _lines(path)
    first = next(rows, None)
    if first is None:
        raise DataError(f"{path}: holds no rows")
    number, text = first
    fields = text.split(",")
    if not any(_is_number(field) for field in fields):
        following = next(rows, None)
        if following is None:
            raise DataError(f"{path}: holds a header line and no rows")
        _check_row(path, following[0], following[1].split(","), None)
        return number, len(following[1].split(","))
    _check_row(path, number, fields, None)
    return number - 1, len(fields)


def read_csv(path: Path, feeds: list[str]) -> dict[str, np.ndarray]:
    """The table as float64: data = every column but the last, label = the last (with one
    feed, data = every column). DataError naming the line of the first bad row."""
    skip, width = csv_header(path)
    check_feeds(("data", "label"), feeds, str(path))
    if len(feeds) == 2 and width < 2:
        raise DataError(f"{path}: needs at least two columns (features, then the label)")
    rows = (text for number, text in _lines(path) if number > skip)    # as csv_record counts
    try:
        table = np.loadtxt(rows, delimiter=",", ndmin=2, comments="#", dtype=np.float64)
    except (ValueError, IndexError):
        _find_bad_row(path, skip, width)
        raise DataError(f"{path}: not a numeric CSV table") from None
    if len(feeds) == 1:
        return {feeds[0]: table}
    return {feeds[0]: table[:, :-1], feeds[1]: table[:, -1]}


def _find_bad_row(path: Path, skip: int, width: int) -> None:
    """Raise the located error for the row numpy could not read (slow; only after a failure)."""
    for number, text in _lines(path):
        if number > skip:
            _check_row(path, number, text.split(","), width)


def csv_record(path: Path) -> Callable[[int], str]:
    """Names row i of the table `read_csv` returns by its line in the file ("line 21"), found
    by reading the file again when an error message needs it."""
    def record(row: int) -> str:
        skip, _ = csv_header(path)
        rows = (number for number, _ in _lines(path) if number > skip)
        number = next(itertools.islice(rows, row, None), None)
        return f"line {number}" if number is not None else f"row {row}"
    return record


def csv_shapes(path: Path, feeds: list[str]) -> dict[str, tuple]:
    _, width = csv_header(path)
    check_feeds(("data", "label"), feeds, str(path))
    if len(feeds) == 1:
        return {feeds[0]: (width,)}
    return {feeds[0]: (width - 1,), feeds[1]: ()}
