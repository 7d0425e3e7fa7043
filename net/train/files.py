"""Files a run reads and writes: every write is atomic (a temporary file in the same folder,
flushed and fsync'ed, then renamed over the real name), so a crash never leaves a half-written
file under a real name, and never follows a symlink (the rename replaces a link, it does not
write through it; `open_new` refuses one); `inside` keeps what a run writes inside its output
directory. Every .npz read is made without pickle, member by member, and names the file when it
fails. Temporary files are named `.NAME.XXXXXXXX.tmp`, so `remove_temporaries` can clear what a
killed write of a run's files left behind, and only that.
"""
from __future__ import annotations

import io
import math
import os
import re
import stat
import tempfile
import zipfile
import zlib
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator, Mapping, TextIO

import numpy as np

from ..core.memory import available_bytes
from ..errors import DataError


TEMPORARY_SUFFIX = ".tmp"


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None]) -> Path:
    """Call `write(handle)` on a temporary file beside `path`, then rename it over `path`: all
    or nothing. A symlink at `path` is replaced, never written through. A write the system
    refuses (a full disk, a folder made read-only) is a DataError naming `path`, and the file
    there before is left as it was."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX,
                                         dir=path.parent)
    except OSError as err:
        raise DataError(f"{path}: cannot write ({err.strerror or err})") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o666 & ~_umask())     # mkstemp makes it private; use the umask
        os.replace(temporary, path)
    except BaseException as err:
        with suppress(OSError):
            os.unlink(temporary)
        if isinstance(err, OSError):
            raise DataError(f"{path}: cannot write ({err.strerror or err})") from None
        raise
    with suppress(OSError):              # make the rename itself durable where the OS allows
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """`data` to `path` through `atomic_write`."""
    return atomic_write(path, lambda handle: handle.write(data))


def atomic_savez(path: str | Path, arrays: dict[str, Any]) -> Path:
    """np.savez to `path` through `atomic_write`."""
    return atomic_write(path, lambda handle: np.savez(handle, **arrays))


#: the name `atomic_write` gives a temporary file: `.NAME.XXXXXXXX.tmp`, where NAME is the file's
#: and XXXXXXXX is what tempfile.mkstemp draws
_TEMPORARY_NAME = re.compile(r"\.(.+)\.[a-z0-9_]{8}" + re.escape(TEMPORARY_SUFFIX), re.S)


def remove_temporaries(folder: str | Path, targets: Iterable[str]) -> list[Path]:
    """Delete the temporary files that writes killed half-way left in `folder`: only regular
    files named as `atomic_write` names them, for a file whose name matches one of the glob
    patterns `targets` (a run's own files); nothing else is touched. Returns them."""
    found = []
    for path in Path(folder).glob(f".*{TEMPORARY_SUFFIX}"):
        match = _TEMPORARY_NAME.fullmatch(path.name)
        if match and any(fnmatchcase(match[1], pattern) for pattern in targets) and \
                path.is_file() and not path.is_symlink():
            found.append(path)
    for temporary in found:
        with suppress(OSError):
            temporary.unlink()
    return found


def inside(root: str | Path, relative: str | Path, what: str) -> Path:
    """`root / relative`, checked to stay inside `root`: `relative` is not absolute, has no
    `..`, ends in a name, and no folder between `root` and the file is a symlink."""
    relative = Path(relative)
    parts = relative.parts
    if relative.is_absolute() or ".." in parts or not parts or relative.name in ("", "."):
        raise DataError(f"{what} {str(relative)!r} must be a relative path inside the output "
                        f"directory {root} (no '..', not absolute)")
    folder = Path(root)
    for part in parts[:-1]:
        folder = folder / part
        if folder.is_symlink():
            raise DataError(f"{what}: {folder} is a symlink; a run never writes through one")
    return Path(root) / relative


def open_new(path: str | Path, append: bool = False) -> TextIO:
    """Open a text file for writing (or appending), refusing to follow a symlink at `path`."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    try:
        fd = os.open(path, flags | getattr(os, "O_NOFOLLOW", 0), 0o666)
    except OSError as err:
        if Path(path).is_symlink():
            raise DataError(f"{path} is a symlink; a run never writes through one") from None
        raise DataError(f"{path}: cannot write ({err.strerror})") from None
    return os.fdopen(fd, "a" if append else "w", encoding="utf-8")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: members of an .npz a run reads with no expectation may not declare more than this in all
DEFAULT_MAX_BYTES = 1 << 36          # 64 GiB, and never more than the memory that is free
#: the compressed members of one archive may declare at most this many times their compressed
#: bytes in all, plus EXPANSION_ALLOWANCE: just above deflate's own ceiling (about 1032:1, for
#: arrays of zeros), so whatever np.savez_compressed or gzip wrote is read, while a header that
#: claims more than its compressed bytes could hold (forged, or bzip2/lzma) is refused before
#: anything is set aside; what is read is counted and must match the header
MAX_EXPANSION = 1100
EXPANSION_ALLOWANCE = 4 << 20
#: the longest .npy header read (numpy writes a few hundred bytes)
MAX_NPY_HEADER = 1 << 16
#: the most numpy can hold in one array's shape (numpy 1 allows 32 dimensions, numpy 2 64)
MAX_DIMENSIONS = 32
_CHUNK = 4 << 20                     # the most one read of an array's data asks for

Expect = Mapping[str, "tuple | int | None"]


def regular_file(path: str | Path, what: str, where: str | None = None) -> int:
    """The size in bytes of `path`, checked to be a regular file (or a symlink to one) before
    anything opens it; DataError naming it (as `where`, by default the path) otherwise: a device
    such as /dev/zero would be read until memory runs out, and opening a FIFO waits forever for
    a writer."""
    where = where or str(path)
    try:
        status = os.stat(path)
    except FileNotFoundError:
        raise DataError(f"{where}: no such {what}") from None
    except OSError as err:
        raise DataError(f"{where}: cannot read the {what} ({err.strerror or err})") from None
    if not stat.S_ISREG(status.st_mode):
        kind = ("a folder" if stat.S_ISDIR(status.st_mode) else
                "a FIFO" if stat.S_ISFIFO(status.st_mode) else
                "a device" if stat.S_ISCHR(status.st_mode) or stat.S_ISBLK(status.st_mode)
                else "a socket")
        raise DataError(f"{where}: not a regular file but {kind}" +
                        ("" if what == "file" else f" (a {what} is a file)"))
    return status.st_size


def size_text(size: int | float) -> str:
    """Bytes as a person reads them: 512 bytes, 3.2 MiB, 1.9 GiB."""
    if size < 1 << 20:
        return f"{int(size)} bytes"
    return f"{size / 2**20:.1f} MiB" if size < 1 << 30 else f"{size / 2**30:.1f} GiB"


@dataclass(frozen=True)
class NpyHeader:
    """What an .npy header declares, checked: no Python objects, no negative size, at most
    MAX_DIMENSIONS axes. `nbytes` is the size of the data that must follow the header."""
    shape: tuple[int, ...]
    fortran: bool
    dtype: np.dtype

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def read_npy_header(stream: BinaryIO, where: str) -> NpyHeader:
    """The header at the start of `stream` (an .npy file, or a member of an .npz), read with
    at most MAX_NPY_HEADER bytes, whatever its length field claims; `where` names the file (and
    the member) in the DataError for anything else."""
    prefix = stream.read(8)
    if len(prefix) < 8 or not prefix.startswith(b"\x93NUMPY"):
        raise DataError(f"{where}: corrupt or truncated (not a .npy array: it starts with "
                        f"{prefix!r})")
    version = (prefix[6], prefix[7])
    read = {(1, 0): np.lib.format.read_array_header_1_0,
            (2, 0): np.lib.format.read_array_header_2_0}.get(version)
    if read is None:
        raise DataError(f"{where} has an unknown .npy version {version}")
    length_field = stream.read(2 if version == (1, 0) else 4)
    length = int.from_bytes(length_field, "little")
    if length > MAX_NPY_HEADER:
        raise DataError(f"{where}: its .npy header claims {length} bytes, more than the "
                        f"{MAX_NPY_HEADER} a header may have")
    header = stream.read(length)
    if len(length_field) < (2 if version == (1, 0) else 4) or len(header) < length:
        raise DataError(f"{where}: corrupt or truncated (its .npy header ends early)")
    try:
        shape, fortran, dtype = read(io.BytesIO(length_field + header),
                                     max_header_size=MAX_NPY_HEADER)
    except (ValueError, TypeError, SyntaxError) as err:
        raise DataError(f"{where}: a damaged .npy header ({err})") from None
    if dtype.hasobject:
        raise DataError(f"{where} holds pickled Python objects, which Gatework never loads "
                        "(is this a Gatework file?)")
    shape = tuple(shape)
    if len(shape) > MAX_DIMENSIONS or any(size < 0 for size in shape):
        raise DataError(f"{where}: its .npy header declares the shape {shape}, which no array "
                        f"has (at most {MAX_DIMENSIONS} axes, none negative)")
    return NpyHeader(shape, bool(fortran), dtype)


def read_array_data(stream: BinaryIO, header: NpyHeader, where: str) -> np.ndarray:
    """The array `header` declares, from the bytes after it in `stream`, read in chunks of at
    most _CHUNK bytes into the one buffer it needs (the caller has checked its size); DataError
    naming `where` if the stream ends before that or holds more."""
    data = np.empty(header.nbytes, dtype=np.uint8)
    view, got = memoryview(data), 0
    while got < header.nbytes:
        count = stream.readinto(view[got:got + _CHUNK])
        if not count:
            raise DataError(f"{where} is truncated: {got} of its {header.nbytes} bytes")
        got += count
    if stream.read(1):
        raise DataError(f"{where} holds more than the {header.nbytes} bytes its header declares")
    try:
        return data.view(header.dtype).reshape(header.shape,
                                               order="F" if header.fortran else "C")
    except ValueError as err:                  # a zero-size or sub-array dtype
        raise DataError(f"{where}: cannot hold {header.dtype} values in shape {header.shape} "
                        f"({err})") from None


def read_npy(path: str | Path, what: str = "file", max_bytes: int | None = None
             ) -> np.ndarray:
    """The array of an .npy file, without pickle: its header checked against the file's length
    and against `max_bytes` (default: the memory free, at most DEFAULT_MAX_BYTES) before the
    data is read; DataError naming the file for anything else."""
    path = Path(path)
    size = regular_file(path, what)
    budget = max_bytes if max_bytes is not None else min(DEFAULT_MAX_BYTES, available_bytes())
    try:
        with open(path, "rb") as handle:
            header = read_npy_header(handle, str(path))
            held = size - handle.tell()
            if header.nbytes != held:
                raise DataError(f"{path}: its header declares {header.dtype} {header.shape} "
                                f"({header.nbytes} bytes) but the file holds {held} "
                                f"({'truncated' if held < header.nbytes else 'too long'})")
            if header.nbytes > budget:
                raise DataError(f"{path}: declares {header.dtype} {header.shape} "
                                f"({size_text(header.nbytes)}), more than the "
                                f"{size_text(budget)} this {what} may take")
            return read_array_data(handle, header, str(path))
    except OSError as err:
        raise DataError(f"{path}: cannot read {what} ({err.strerror or err})") from None


class _Archive:
    """An open .npz and the account of what its members declare, so each member is checked
    before anything is allocated for it: its entry lies inside the file; a stored member holds
    the bytes it declares; compressed members together expand by at most MAX_EXPANSION (plus
    EXPANSION_ALLOWANCE); and the members read stay within `budget` bytes."""

    def __init__(self, path: Path, what: str, budget: int | None):
        self.path, self.what, self.budget, self.limit = path, what, budget, budget
        self.size = regular_file(path, what)
        try:
            with open(path, "rb") as handle:
                magic = handle.read(6)
        except OSError as err:
            raise DataError(f"{path}: cannot read {what} ({err.strerror})") from None
        if not magic.startswith(b"PK"):
            kind = "a single .npy array" if magic.startswith(b"\x93NUMPY") else \
                "not a zip archive"
            raise DataError(f"{path}: not an .npz {what}: {kind} (corrupt, truncated, or "
                            "another kind of file)")
        self.packed = self.unpacked = 0          # compressed members: their bytes, declared

    def members(self) -> Iterator[tuple[str, zipfile.ZipInfo, BinaryIO]]:
        """(array name, entry, open stream) of each member, in the archive's order, each
        entry checked to lie inside the file and to be stored or deflated, as numpy writes
        them (zipfile decompresses bzip2 and lzma with no bound on what one read yields).
        Iterate inside `self.errors()`."""
        with zipfile.ZipFile(self.path) as archive:
            for info in archive.infolist():
                if info.header_offset + info.compress_size > self.size:
                    raise DataError(f"{self.path}: member {info.filename!r} claims "
                                    f"{info.compress_size} bytes, but the whole file has "
                                    f"{self.size} (corrupt or forged)")
                if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                    raise DataError(f"{self.path}: member {info.filename!r} is compressed "
                                    f"with method {info.compress_type}; an .npz holds stored "
                                    "or deflated members (np.savez, np.savez_compressed)")
                with archive.open(info) as member:
                    yield info.filename.removesuffix(".npy"), info, member

    @contextmanager
    def errors(self) -> Iterator[None]:
        """Turn what reading a damaged zip raises into a DataError naming the file."""
        try:
            yield
        except DataError:
            raise
        except (OSError, EOFError, zipfile.BadZipFile, KeyError, RuntimeError, ValueError,
                NotImplementedError, zlib.error) as err:
            raise DataError(f"{self.path}: corrupt or truncated {self.what} "
                            f"({err or type(err).__name__})") from None

    def admit(self, name: str, info: zipfile.ZipInfo, header: NpyHeader, limit: Any) -> None:
        """Count one member about to be read; DataError if it may not be (see the class), or if
        it does not fit `limit` (a tuple: the shape it must have; an int: a bound in bytes)."""
        problem = self._expected(header, limit) or self._held(info, header)
        if problem is None and self.budget is not None:
            if header.nbytes > self.budget:
                before = ", with the arrays before it," if self.budget < self.limit else ""
                problem = (f"declares shape {header.shape} {header.dtype} "
                           f"({size_text(header.nbytes)}){before} more than the "
                           f"{size_text(self.limit)} this {self.what} may hold")
            self.budget -= header.nbytes
        if problem:
            raise DataError(f"{self.path}: array {name!r} {problem}")

    @staticmethod
    def _expected(header: NpyHeader, limit: Any) -> str | None:
        if isinstance(limit, tuple) and header.shape != tuple(limit):
            return f"has shape {header.shape}; expected {tuple(limit)}"
        if isinstance(limit, int) and header.nbytes > limit:
            return f"declares {header.nbytes} bytes, more than the {limit} it may hold"
        return None

    def _held(self, info: zipfile.ZipInfo, header: NpyHeader) -> str | None:
        """What is wrong with the bytes the member declares against the bytes it has."""
        shape, declared = header.shape, header.nbytes
        if info.compress_type == zipfile.ZIP_STORED:
            if declared > info.compress_size:
                return (f"declares shape {shape} ({declared} bytes) but its entry holds only "
                        f"{info.compress_size} bytes")
            return None
        self.packed += info.compress_size
        self.unpacked += declared
        if self.unpacked > MAX_EXPANSION * self.packed + EXPANSION_ALLOWANCE:
            return (f"declares shape {shape} ({size_text(declared)}) from "
                    f"{size_text(info.compress_size)} compressed: more than {MAX_EXPANSION} "
                    f"times the compressed bytes (plus {size_text(EXPANSION_ALLOWANCE)}), "
                    "more than deflate can expand to; save it with np.savez or "
                    "np.savez_compressed")
        return None


def read_npz(path: str | Path, what: str = "file", expect: Expect | None = None,
             max_bytes: int | None = None) -> dict[str, np.ndarray | None]:
    """The arrays of an .npz file, read without pickle, member by member, each checked before
    anything is allocated for it and read in bounded chunks, counting the bytes that really
    come out; DataError naming the file (and the array) if it is not a regular file, is missing,
    truncated, corrupt, holds Python objects, or declares more than it may.

    expect: read only these names (others come back as None, unread): each with the shape it
        must have (a tuple), a bound on its size in bytes (an int), or None (any size).
    max_bytes: a bound on the bytes all members read may declare together (default: the memory
        free, at most DEFAULT_MAX_BYTES). A stored member may not declare more than its entry
        holds, and compressed members not more than MAX_EXPANSION times theirs (plus
        EXPANSION_ALLOWANCE for the archive), so a few bytes cannot claim gigabytes; the zip's
        own size fields are never trusted.
    """
    path = Path(path)
    budget = max_bytes if max_bytes is not None else min(DEFAULT_MAX_BYTES, available_bytes())
    archive = _Archive(path, what, budget)
    arrays: dict[str, np.ndarray | None] = {}
    with archive.errors():
        for name, info, member in archive.members():
            if expect is not None and name not in expect:
                arrays[name] = None
                continue
            where = f"{path}: array {name!r}"
            header = read_npy_header(member, where)
            archive.admit(name, info, header, expect.get(name) if expect is not None else None)
            arrays[name] = read_array_data(member, header, where)
    return arrays


def npz_headers(path: str | Path, what: str = "file") -> dict[str, NpyHeader]:
    """Every member's header, read and checked as `read_npz` checks it before reading data (no
    budget: the caller adds the sizes up), without reading any array."""
    archive = _Archive(Path(path), what, None)
    headers = {}
    with archive.errors():
        for name, info, member in archive.members():
            headers[name] = read_npy_header(member, f"{path}: array {name!r}")
            archive.admit(name, info, headers[name], None)
    return headers
