"""The output directory of a training run: one run at a time, never mixed with another's files.

- A run locks its directory (an exclusive `flock` on `.gatework.lock` inside it) while it
  writes there; a second run into the same directory stops with an error naming the first's
  process, before it writes anything.
- A directory that holds another run's files (metrics.jsonl, snapshots) is not reused unless
  the run resumes from it or is told to `overwrite` (which removes the earlier run's files
  first). When the caller gave no directory, the default `runs/<name>` gets a numbered sibling
  instead (`runs/<name>-2`), so running a config twice keeps both runs.
- Temporary files that a killed write of a run's files left behind are removed when a run
  starts. Nothing else there is removed or overwritten: the lock is `.gatework.lock`, and a file
  of that name that is not a run's lock (a process id) stops the run with an error naming it.
"""
from __future__ import annotations

import os
import re
import stat
from contextlib import suppress
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TextIO

from ..core.config import SNAPSHOT_NAME_EXTRA
from ..errors import DataError
from .files import inside, open_new, remove_temporaries

try:
    import fcntl
except ImportError:            # not on Windows: there a run's directory is not locked
    fcntl = None

RUN_FILES = ("metrics.jsonl", "curves.png")
SNAPSHOT_PATTERNS = ("*.weights.npz", "*.solverstate.npz")
#: the lock file, and what a run writes in it: its process id (nothing, when a run was killed
#: between creating the file and writing it)
LOCK_NAME = ".gatework.lock"
LOCK_TEXT = re.compile(r"[0-9]{0,20}\n?")
DEFAULT_PATH_MAX = 4096
#: how often a run opens and locks the lock file again when the one it locked was removed
LOCK_TRIES = 10


class RunDirectory:
    """The directory a run writes into, locked while the run lasts (use as a context manager)."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = None

    @classmethod
    def choose(cls, given: str | Path | None, default: Path, resume: str | Path | None = None,
               overwrite: bool = False, prefix: str = "") -> "RunDirectory":
        """`given` if set; else the directory of the run whose snapshot is resumed (the
        snapshot's folder, less the folders of the `prefix` it was written with); else
        `default`, or its first free numbered sibling when it holds another run."""
        resumed = None if resume is None else _resumed_run(Path(resume), prefix)
        if given is not None:
            path = Path(given)
        elif resumed is not None:
            path = resumed
        else:
            path = default
            number = 2
            while holds_a_run(path, prefix) and not overwrite:
                path = default.with_name(f"{default.name}-{number}")
                number += 1
        earlier = run_files(path, prefix)
        continuing = resumed is not None and _same_folder(path, resumed)
        if earlier and not continuing and not overwrite:
            # resuming is offered only where a run got as far as a complete snapshot
            states = [found for found in earlier if found.name.endswith(".solverstate.npz")]
            resume_it = f"resume from {max(states, key=_iteration).relative_to(path)}, " \
                if states else ""
            raise DataError(f"{path} holds another run's files ({earlier[0].relative_to(path)}"
                            f"{', ...' if len(earlier) > 1 else ''}): choose another "
                            f"--output-dir, {resume_it}or pass --overwrite to replace that run")
        return cls(path)

    def __enter__(self) -> "RunDirectory":
        """Create and lock the directory, and remove what killed writes of a run left there.
        A lock file is only ever taken over when it is a run's (unlocked: its run is gone)."""
        self.path.mkdir(parents=True, exist_ok=True)
        if fcntl is not None:
            self._lock = self._take_lock(self.path / LOCK_NAME)
        remove_temporaries(self.path, RUN_FILES + SNAPSHOT_PATTERNS)
        return self

    def _take_lock(self, lock: Path):
        """Lock `lock` and write this process's id in it; refuses a lock held by another run,
        and a file there that is not a run's lock (which it leaves untouched)."""
        not_ours = DataError(f"{self.path}: holds a file {LOCK_NAME} that is not a Gatework "
                             "run's lock; it was left as it is: move it, or choose another "
                             "--output-dir")
        with suppress(FileNotFoundError):
            if not stat.S_ISREG(lock.lstat().st_mode):
                raise not_ours
        for _ in range(LOCK_TRIES):
            handle = open_new(lock, append=True)      # changes nothing in a file already there
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                owner = _lock_text(lock).strip()
                raise DataError(f"{self.path} is in use by another run (process "
                                f"{owner if owner.isdigit() else '?'}); wait for it, or choose "
                                "another --output-dir") from None
            if _names(lock, handle):
                break
            handle.close()       # a run ending removed the file between the open and the lock
        else:
            raise DataError(f"{self.path}: its {LOCK_NAME} kept being replaced while this run "
                            "tried to lock it; is another run starting there?")
        if not LOCK_TEXT.fullmatch(_lock_text(lock)):
            handle.close()
            raise not_ours
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        return handle

    def prepare_snapshot_folder(self, prefix: str) -> None:
        """Make the folder `prefix` puts snapshots in, before training starts, and remove what
        killed writes of snapshots left there; DataError if a snapshot's path cannot be made
        there (a file in the way, a path longer than the system takes)."""
        target = inside(self.path, prefix, "solver.snapshot_prefix")
        folder = target.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise DataError(f"{folder}: cannot hold the snapshots of solver.snapshot_prefix "
                            f"{prefix!r} ({err.strerror})") from None
        longest = len(os.fsencode(str(target))) + SNAPSHOT_NAME_EXTRA
        path_max = _path_max(folder)
        if longest > path_max:
            raise DataError(f"{folder}: snapshot paths there would take up to {longest} bytes, "
                            f"more than the {path_max} this system allows; choose a shorter "
                            "--output-dir or solver.snapshot_prefix")
        if folder != self.path:
            remove_temporaries(folder, SNAPSHOT_PATTERNS)

    def clear_earlier_run(self, prefix: str = "") -> list[Path]:
        """Remove the files an earlier run left here (for `overwrite`): its metrics and curves,
        and the snapshots in this directory and in the folder of `prefix` (the solver's
        snapshot_prefix), never those of other runs in folders below; returns them."""
        removed = []
        for path in run_files(self.path, prefix):
            with suppress(OSError):
                path.unlink()
                removed.append(path)
        return removed

    def __exit__(self, *exc) -> None:
        if self._lock is not None:
            with suppress(OSError):
                (self.path / LOCK_NAME).unlink()   # still held: no other run is using it
            with suppress(OSError):
                self._lock.close()                 # closing releases the flock
            self._lock = None


def _resumed_run(snapshot: Path, prefix: str) -> Path:
    """The directory of the run that wrote `snapshot`: its folder, less the folders of the
    `prefix` it was written with."""
    path = snapshot.parent
    for _ in Path(prefix).parts[:-1]:
        path = path.parent
    return path


def _iteration(snapshot: Path) -> int:
    """The iteration in a snapshot's name (NAME_iter_N.solverstate.npz), or -1."""
    found = re.search(r"_iter_([0-9]+)\.solverstate\.npz$", snapshot.name)
    return int(found[1]) if found else -1


def _same_folder(one: Path, other: Path) -> bool:
    """Whether two paths name one folder (a folder not made yet is only itself)."""
    try:
        return one.samefile(other)
    except OSError:
        return one.resolve() == other.resolve()


def run_files(path: Path, prefix: str = "") -> list[Path]:
    """The files of a training run in `path` itself (metrics, curves, snapshots) and, for a
    `prefix` with folders, the snapshots in its folder (runs in other folders below are
    theirs, not this one's); sorted, so an error names the same one each time."""
    folders = [path] + ([(path / prefix).parent] if prefix and Path(prefix).parent.parts
                        else [])
    found = []
    for folder in folders:
        if not folder.is_dir() or (folder != path and folder.is_symlink()):
            continue
        names = RUN_FILES if folder == path else ()
        found += [entry for entry in folder.iterdir() if (entry.is_file() or entry.is_symlink())
                  and (entry.name in names or any(fnmatchcase(entry.name, pattern)
                                                  for pattern in SNAPSHOT_PATTERNS))]
    return sorted(found)


def _path_max(folder: Path) -> int:
    """The longest path (in bytes) the system takes in `folder` (DEFAULT_PATH_MAX if unsaid)."""
    try:
        found = os.pathconf(folder, "PC_PATH_MAX")
    except (OSError, ValueError, AttributeError):
        return DEFAULT_PATH_MAX
    return found if found > 0 else DEFAULT_PATH_MAX


def _names(lock: Path, handle: TextIO) -> bool:
    """Whether `lock` still names the file `handle` has open (a run that ends removes its lock
    file, so a lock taken on a file opened just before that locks nothing)."""
    try:
        there = lock.lstat()
    except FileNotFoundError:
        return False
    mine = os.fstat(handle.fileno())
    return (there.st_dev, there.st_ino) == (mine.st_dev, mine.st_ino)


def _lock_text(lock: Path) -> str:
    """The start of a lock file's text: enough to tell a process id from anything else."""
    try:
        with open(lock, "rb") as handle:
            return handle.read(64).decode("ascii", errors="replace")
    except OSError:
        return ""


def holds_a_run(path: Path, prefix: str = "") -> bool:
    """Whether `path` holds a training run's files (see `run_files`)."""
    return bool(run_files(path, prefix))
