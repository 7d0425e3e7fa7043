"""Files a run reads and writes: every write is atomic (a temporary file in the same folder,
flushed and fsync'ed, then renamed over the real name), so a crash never leaves a half-written
file under a real name, and never follows a symlink (the rename replaces a link, it does not
write through it; `open_new` refuses one); `inside` keeps what a run writes inside its output
directory. Every .npz read is made without pickle, member by member, and names the file when it
fails. Temporary files are named `.NAME.XXXXXXXX.tmp`, so `remove_temporaries` can clear what a
killed write of a run's files left behind, and only that.
"""
from __future__ import annotations

import math
import os
import re
import tempfile
import zipfile
import zlib
from contextlib import suppress
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Mapping, TextIO

import numpy as np

from ..core.memory import available_bytes
from ..errors import DataError


TEMPORARY_SUFFIX = ".tmp"


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None]) -> Path:
    """Call `write(handle)` on a temporary file beside `path`, then rename it over `path`: all
    or nothing. A symlink at `path` is replaced, never written through."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX,
                                     dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o666 & ~_umask())     # mkstemp makes it private; use the umask
        os.replace(temporary, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(temporary)
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

Expect = Mapping[str, "tuple | int | None"]


def read_npz(path: str | Path, what: str = "file", expect: Expect | None = None,
             max_bytes: int | None = None) -> dict[str, np.ndarray | None]:
    """The arrays of an .npz file, read without pickle, member by member, each checked before
    anything is allocated for it; DataError naming the file (and the array) if it is missing,
    truncated, corrupt, holds Python objects, or declares more than it may.

    expect: read only these names (others come back as None, unread): each with the shape it
        must have (a tuple), a bound on its size in bytes (an int), or None (any size).
    max_bytes: a bound on the bytes all members read may declare together (default: the memory
        free, at most DEFAULT_MAX_BYTES). A member also may not declare more data than its zip
        entry holds, so a few bytes cannot claim gigabytes.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such {what}")
    try:
        with open(path, "rb") as handle:
            magic = handle.read(6)
    except OSError as err:
        raise DataError(f"{path}: cannot read {what} ({err.strerror})") from None
    if not magic.startswith(b"PK"):
        kind = "a single .npy array" if magic.startswith(b"\x93NUMPY") else "not a zip archive"
        raise DataError(f"{path}: not an .npz {what}: {kind} (corrupt, truncated, or another "
                        "kind of file)")
    budget = max_bytes if max_bytes is not None else min(DEFAULT_MAX_BYTES, available_bytes())
    try:
        with zipfile.ZipFile(path) as archive:
            return _read_members(archive, path, what, expect, budget)
    except DataError:
        raise
    except (OSError, EOFError, zipfile.BadZipFile, KeyError, RuntimeError, ValueError,
            zlib.error) as err:
        raise DataError(f"{path}: corrupt or truncated {what} "
                        f"({err or type(err).__name__})") from None


def _read_members(archive: zipfile.ZipFile, path: Path, what: str, expect: Expect | None,
                  budget: int) -> dict[str, np.ndarray | None]:
    arrays: dict[str, np.ndarray | None] = {}
    for info in archive.infolist():
        name = info.filename.removesuffix(".npy")
        if expect is not None and name not in expect:
            arrays[name] = None
            continue
        with archive.open(info) as member:
            shape, fortran, dtype = _header(member, path, name)
            declared = math.prod(shape) * dtype.itemsize
            limit = expect.get(name) if expect is not None else None
            problem = _declared_problem(shape, declared, limit, info, budget)
            if problem:
                raise DataError(f"{path}: array {name!r} {problem}")
            budget -= declared
            data = bytearray(declared)
            view, got = memoryview(data), 0
            while got < declared:
                count = member.readinto(view[got:])
                if not count:
                    raise DataError(f"{path}: array {name!r} is truncated: {got} of its "
                                    f"{declared} bytes")
                got += count
        arrays[name] = np.frombuffer(data, dtype=dtype).reshape(
            shape, order="F" if fortran else "C")
    return arrays


def _header(member, path: Path, name: str) -> tuple[tuple, bool, np.dtype]:
    version = np.lib.format.read_magic(member)
    read = {(1, 0): np.lib.format.read_array_header_1_0,
            (2, 0): np.lib.format.read_array_header_2_0}.get(version)
    if read is None:
        raise DataError(f"{path}: array {name!r} has an unknown .npy version {version}")
    shape, fortran, dtype = read(member)
    if dtype.hasobject:
        raise DataError(f"{path}: holds pickled Python objects, which Gatework never loads "
                        "(is this a Gatework file?)")
    return tuple(shape), bool(fortran), dtype


def _declared_problem(shape: tuple, declared: int, limit: Any, info: zipfile.ZipInfo,
                      budget: int) -> str | None:
    if isinstance(limit, tuple) and shape != tuple(limit):
        return f"has shape {shape}; expected {tuple(limit)}"
    if isinstance(limit, int) and declared > limit:
        return f"declares {declared} bytes, more than the {limit} it may hold"
    if declared > info.file_size:
        return (f"declares shape {shape} ({declared} bytes) but its entry holds only "
                f"{info.file_size} bytes")
    if declared > budget:
        return (f"declares shape {shape} ({declared / 2**30:.1f} GiB), more than the memory "
                "this file may take")
    return None
