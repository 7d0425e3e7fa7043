"""Files a run reads and writes: every write is atomic (a temporary file in the same folder,
flushed and fsync'ed, then renamed over the real name), so a crash never leaves a half-written
file under a real name; every .npz read is made without pickle and names the file when it fails.
"""
from __future__ import annotations

import os
import tempfile
import zipfile
from contextlib import suppress
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError


def atomic_savez(path: str | Path, arrays: dict[str, Any]) -> Path:
    """np.savez to `path` through a temporary file and a rename: all or nothing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **arrays)
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


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def read_npz(path: str | Path, what: str = "file") -> dict[str, np.ndarray]:
    """Every array of an .npz file, read without pickle; DataError naming the file if it is
    missing, truncated, corrupt or holds Python objects."""
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
    try:
        with np.load(path, allow_pickle=False) as archive:
            if not hasattr(archive, "files"):
                raise DataError(f"{path}: not an .npz archive (a single array?)")
            return {name: archive[name] for name in archive.files}
    except DataError:
        raise
    except ValueError as err:
        if "pickle" in str(err):
            raise DataError(f"{path}: holds pickled Python objects, which Gatework never loads "
                            "(is this a Gatework snapshot?)") from None
        raise DataError(f"{path}: corrupt or truncated {what} ({err})") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError, RuntimeError) as err:
        raise DataError(f"{path}: corrupt or truncated {what} "
                        f"({err or type(err).__name__})") from None


