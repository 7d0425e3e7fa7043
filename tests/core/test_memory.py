"""The memory a process may still allocate (net.core.memory): the smallest of the machine's free
memory, the room `ulimit -v` (RLIMIT_AS, RLIMIT_DATA) leaves and the room a v1 or v2 memory
cgroup leaves; every file and the rlimits are faked here, never the real limits changed."""
from __future__ import annotations

import textwrap

import pytest

from net import ConfigError, Net
from net.core import memory

pytest.importorskip("resource")        # Unix: elsewhere only the free memory counts
GIB, MIB = 2 ** 30, 2 ** 20


@pytest.fixture
def system(tmp_path, monkeypatch):
    """A made-up machine with 64 GiB free, no rlimits and no cgroup; returns a function that
    writes one of its files (relative to tmp_path)."""
    def write(relative: str, text: str) -> None:
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    for name, relative in (("MEMINFO", "meminfo"), ("PROC_STATUS", "status"),
                           ("PROC_CGROUP", "cgroup"), ("CGROUP_ROOT", "sys")):
        monkeypatch.setattr(memory, name, str(tmp_path / relative))
    write("meminfo", f"MemTotal: {128 * GIB // 1024} kB\nMemAvailable: {64 * GIB // 1024} kB\n")
    write("status", f"Name: python\nVmSize:\t{512 * MIB // 1024} kB\nVmData:\t{MIB // 1024} kB\n")
    write("cgroup", "0::/\n")
    limits = {}
    monkeypatch.setattr(memory.resource, "getrlimit", lambda kind: limits.get(
        kind, (memory.resource.RLIM_INFINITY, memory.resource.RLIM_INFINITY)))
    write.limits = limits
    return write


def test_without_limits_the_free_memory_counts(system):
    assert memory.available_bytes() == 64 * GIB


def test_ulimit_v_counts_less_what_the_process_maps_already(system):
    system.limits[memory.resource.RLIMIT_AS] = (2 * GIB, memory.resource.RLIM_INFINITY)
    assert memory.available_bytes() == 2 * GIB - 512 * MIB          # VmSize is 512 MiB


def test_rlimit_data_counts_less_the_data_mapped_already(system):
    system.limits[memory.resource.RLIMIT_DATA] = (GIB, GIB)
    assert memory.available_bytes() == GIB - MIB                    # VmData is 1 MiB


def test_a_v2_cgroup_limit_counts_less_its_usage_but_not_its_file_cache(system):
    system("cgroup", "0::/a/b\n")
    system("sys/a/b/memory.max", "max\n")                # the group itself: no limit
    system("sys/a/memory.max", f"{3 * GIB}\n")            # the one enclosing it has one
    system("sys/a/memory.current", f"{2 * GIB}\n")
    system("sys/a/memory.stat", f"active_file 7\ninactive_file {GIB // 2}\n")
    assert memory.available_bytes() == GIB + GIB // 2


def test_a_v1_memory_cgroup_limit_counts_and_unlimited_is_no_limit(system):
    system("cgroup", "4:memory:/g\n3:cpu,cpuacct:/\n0::/\n")
    system("sys/memory/memory.limit_in_bytes", "9223372036854771712\n")     # v1's unlimited
    system("sys/memory/g/memory.limit_in_bytes", f"{GIB}\n")
    system("sys/memory/g/memory.usage_in_bytes", f"{256 * MIB}\n")
    system("sys/memory/g/memory.stat", "total_inactive_file 0\n")
    assert memory.available_bytes() == 768 * MIB


def test_the_smallest_limit_wins_and_a_full_group_leaves_nothing(system):
    system.limits[memory.resource.RLIMIT_AS] = (4 * GIB, memory.resource.RLIM_INFINITY)
    system("sys/memory.max", f"{GIB}\n")
    system("sys/memory.current", f"{2 * GIB}\n")                     # over its limit
    assert memory.available_bytes() == 0


def test_a_net_is_refused_under_ulimit_v_before_its_weights_are_allocated(system, tmp_path):
    """The audit's case (num_output 300000000 under `ulimit -v 4000000`), scaled down: 1000 x
    1000 weights need 11.4 MiB to fill, and the address-space limit leaves 10 MiB."""
    system("status", "VmSize:\t0 kB\n")
    system.limits[memory.resource.RLIMIT_AS] = (10 * MIB, memory.resource.RLIM_INFINITY)
    path = tmp_path / "wide.yaml"
    path.write_text(textwrap.dedent("""\
        inputs: {data: {shape: [null, 1000]}}
        gates:
          - {name: fc, type: InnerProduct, bottom: data, top: out, num_output: 1000}
        """))
    with pytest.raises(ConfigError, match=r"wide\.yaml:3: .*needs 11\.4 MiB of memory to fill, "
                                          r"more than the 10\.0 MiB available"):
        Net.from_yaml(path)
