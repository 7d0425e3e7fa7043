"""The output directory of a training run: one run at a time, never mixed with another's files.

- A run locks its directory (an exclusive `flock` on `.lock` inside it) for as long as it
  writes there; a second run into the same directory stops with an error naming the first's
  process, before it writes anything.
- A directory that holds another run's files (metrics.jsonl, snapshots) is not reused unless
  the run resumes from it or is told to `overwrite` (which removes the earlier run's files
  first). When the caller gave no directory, the default `runs/<name>` gets a numbered sibling
  instead (`runs/<name>-2`), so running a config twice keeps both runs.
- Temporary files that a killed snapshot write left behind are removed when a run starts.
"""
from __future__ import annotations

import os
from contextlib import suppress
from pathlib import Path

from ..errors import DataError
from .files import open_new, remove_temporaries

try:
    import fcntl
except ImportError:            # not on Windows: there a run's directory is not locked
    fcntl = None

RUN_FILES = ("metrics.jsonl", "curves.png")
SNAPSHOT_PATTERNS = ("*.weights.npz", "*.solverstate.npz")


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
        if given is not None:
            path = Path(given)
        elif resume is not None:
            path = Path(resume).parent
            for _ in Path(prefix).parts[:-1]:
                path = path.parent
        else:
            path = default
            number = 2
            while holds_a_run(path) and not overwrite:
                path = default.with_name(f"{default.name}-{number}")
                number += 1
        if holds_a_run(path) and resume is None and not overwrite:
            raise DataError(f"{path} holds another run's files (metrics.jsonl, snapshots): "
                            "choose another --output-dir, resume from its snapshot, or pass "
                            "--overwrite to replace that run")
        return cls(path)

    def __enter__(self) -> "RunDirectory":
        self.path.mkdir(parents=True, exist_ok=True)
        if fcntl is not None:
            handle = open_new(self.path / ".lock", append=True)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                owner = (self.path / ".lock").read_text(encoding="utf-8").strip() or "?"
                raise DataError(f"{self.path} is in use by another run (process {owner}); "
                                "wait for it, or choose another --output-dir") from None
            handle.truncate(0)
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            self._lock = handle
        remove_temporaries(self.path)
        return self

    def clean_snapshot_folder(self, prefix: str) -> None:
        """Remove what killed writes left in the folder `prefix` puts snapshots in."""
        folder = (self.path / prefix).parent
        if folder != self.path and folder.is_dir():
            remove_temporaries(folder)

    def clear_earlier_run(self, prefix: str = "") -> list[Path]:
        """Remove the files an earlier run left here (for `overwrite`): its metrics and curves,
        and the snapshots in this directory and in the folder of `prefix` (the solver's
        snapshot_prefix), never those of other runs in folders below; returns them."""
        found = [self.path / name for name in RUN_FILES]
        for folder in {self.path, (self.path / prefix).parent}:
            found += [p for pattern in SNAPSHOT_PATTERNS for p in folder.glob(pattern)]
        removed = []
        for path in found:
            if path.is_file() or path.is_symlink():
                with suppress(OSError):
                    path.unlink()
                    removed.append(path)
        return removed

    def __exit__(self, *exc) -> None:
        if self._lock is not None:
            with suppress(OSError):
                (self.path / ".lock").unlink()     # still held: no other run is using it
            with suppress(OSError):
                self._lock.close()                 # closing releases the flock
            self._lock = None


def holds_a_run(path: Path) -> bool:
    """Whether `path` itself holds a training run's files (its metrics, curves or snapshots;
    runs in folders below it are theirs, not this one's)."""
    if not path.is_dir():
        return False
    return any((path / name).exists() for name in RUN_FILES) or any(
        next(path.glob(pattern), None) is not None for pattern in SNAPSHOT_PATTERNS)
