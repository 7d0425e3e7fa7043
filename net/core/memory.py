"""How much memory this process may still allocate, for the checks that refuse a net, a filler
or a file before allocating what it declares (`Net`'s memory check, `read_npz`'s budget).

The answer is the smallest of three limits, each where the system has it:
- the machine's free memory: Linux's MemAvailable (else all physical memory);
- the process's address-space limits (`ulimit -v`: RLIMIT_AS; RLIMIT_DATA), less what the
  process already maps (VmSize, VmData);
- its memory cgroup's limit (v2 memory.max; v1 memory.limit_in_bytes; its own group's or an
  enclosing one's), less the group's usage, not counting inactive file cache (which the kernel
  reclaims before it refuses memory).
The file paths are module constants so tests can point them at files of their own.
"""
from __future__ import annotations

import os
from pathlib import Path

try:
    import resource
except ImportError:             # not on Windows: there only the free memory counts
    resource = None

MEMINFO = "/proc/meminfo"
PROC_STATUS = "/proc/self/status"
PROC_CGROUP = "/proc/self/cgroup"
CGROUP_ROOT = "/sys/fs/cgroup"

#: no limit (and what a cgroup v1 limit at or above this means: unlimited)
NO_LIMIT = 2 ** 60
#: each address-space limit and the line of /proc/self/status saying what it already holds
RLIMITS = (("RLIMIT_AS", "VmSize"), ("RLIMIT_DATA", "VmData"))
#: per cgroup version: the folder under CGROUP_ROOT, the limit, the usage, and the memory.stat
#: line of reclaimable file cache
CGROUP_FILES = {2: ("", "memory.max", "memory.current", "inactive_file"),
                1: ("memory", "memory.limit_in_bytes", "memory.usage_in_bytes",
                    "total_inactive_file")}


def available_bytes() -> int:
    """The bytes this process may still allocate: the smallest of the free memory, the room
    its rlimits leave and the room its cgroup leaves (never negative)."""
    return max(0, min(free_memory(), rlimit_room(), cgroup_room()))


def free_memory() -> int:
    """Memory this machine has free (Linux's MemAvailable; else all of its physical memory)."""
    found = _kib_field(MEMINFO, "MemAvailable")
    if found is not None:
        return found
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return NO_LIMIT


def rlimit_room() -> int:
    """What the soft RLIMIT_AS and RLIMIT_DATA leave above what the process maps already
    (NO_LIMIT where neither is set)."""
    room = NO_LIMIT
    if resource is None:
        return room
    for name, field in RLIMITS:
        kind = getattr(resource, name, None)
        if kind is None:
            continue
        try:
            soft, _ = resource.getrlimit(kind)
        except (OSError, ValueError):
            continue
        if soft == resource.RLIM_INFINITY or soft < 0:
            continue
        room = min(room, soft - (_kib_field(PROC_STATUS, field) or 0))
    return room


def cgroup_room() -> int:
    """What the memory cgroups holding this process leave (the smallest over its group and
    the groups enclosing it, v2 and v1), NO_LIMIT where none is limited."""
    room = NO_LIMIT
    for version, path in _cgroups():
        below, limit_name, usage_name, cache_name = CGROUP_FILES[version]
        top = Path(CGROUP_ROOT, below) if below else Path(CGROUP_ROOT)
        folder = top.joinpath(*[p for p in path.split("/") if p not in ("", ".", "..")])
        for group in [folder, *folder.parents]:
            if len(group.parts) < len(top.parts):
                break
            limit = _number(group / limit_name)
            if limit is None or limit >= NO_LIMIT:
                continue
            used = _number(group / usage_name) or 0
            cache = _stat_field(group / "memory.stat", cache_name) or 0
            room = min(room, limit - max(0, used - cache))
    return room


def _cgroups() -> list[tuple[int, str]]:
    """(version, path) of this process's memory cgroups, from /proc/self/cgroup: the v2 group
    (`0::/path`) and the v1 memory controller's (`N:memory:/path`)."""
    try:
        with open(PROC_CGROUP, encoding="utf-8", errors="replace") as lines:
            text = lines.read(1 << 16)
    except OSError:
        return []
    found = []
    for line in text.splitlines():
        number, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if number == "0" and controllers == "":
            found.append((2, path))
        elif "memory" in controllers.split(","):
            found.append((1, path))
    return found


def _read(path: str | Path) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            return handle.read(1 << 16)
    except OSError:
        return None


def _number(path: Path) -> int | None:
    """The integer in a cgroup file (None when absent, `max`, or not a number)."""
    text = _read(path)
    try:
        return int(text.strip()) if text is not None else None
    except ValueError:
        return None


def _stat_field(path: Path, name: str) -> int | None:
    """The value of the line `name N` of a cgroup memory.stat file."""
    for line in (_read(path) or "").splitlines():
        key, _, value = line.partition(" ")
        if key == name and value.strip().isdigit():
            return int(value)
    return None


def _kib_field(path: str, name: str) -> int | None:
    """The value in bytes of the line `name:  N kB` of a /proc file (None if absent)."""
    for line in (_read(path) or "").splitlines():
        key, _, value = line.partition(":")
        words = value.split()
        if key == name and words and words[0].isdigit():
            return int(words[0]) * 1024
    return None
