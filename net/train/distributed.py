"""Synchronous data-parallel training over MPI, through mpi4py (as Horovod does).

    mpirun -np 4 python scripts/train.py configs/digits_mlp.yaml

With one process nothing here imports mpi4py: `communicator()` returns a `Communicator` whose
collectives are identities, and scripts use the plain `Solver`. Launched by mpirun with several
processes, `communicator()` wraps MPI's COMM_WORLD and `DataParallelSolver` trains:
- each process draws its slice of every global batch (`net.train.data.Batches` with rank and
  world);
- the parameters, gate buffers and solver history start as rank 0's (one broadcast);
- each step, the gradients, the loss and a stop flag travel in one contiguous buffer through one
  Allreduce (mean), so every process applies the same update; gate buffers (BatchNorm's moving
  averages) are averaged the same way, in a second buffer, when the net has any;
- test sums are added up over the processes, so test figures cover the whole test set;
- with `check_every` (debug), the processes compare a checksum of their parameters and stop,
  loudly, if they have drifted apart;
The scripts' side (an error on any process ending the whole job) is `net.tools.cli.guarded_job`;
starting mpirun for tests and benchmarks is `net.tools.launch`.
"""
from __future__ import annotations

import os
import zlib
from typing import Any, Mapping

import numpy as np

from ..core.fillers import aligned_pack
from ..core.spec import SolverConfig
from ..core.state import weight_arrays
from ..errors import GateworkError
from .solver import Solver

_SIZE_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE")
_RANK_VARIABLES = ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "MV2_COMM_WORLD_RANK")


def _launcher_value(names: tuple[str, ...], default: int) -> int:
    for name in names:
        value = os.environ.get(name)
        if value and value.isdigit():
            return int(value)
    return default


def launched_size() -> int:
    """How many processes the MPI launcher started (1 when not launched by mpirun)."""
    return _launcher_value(_SIZE_VARIABLES, 1)


def launched_rank() -> int:
    """This process's rank as the MPI launcher set it (0 when not launched by mpirun)."""
    return _launcher_value(_RANK_VARIABLES, 0)


class Communicator:
    """One process alone: every collective returns its input."""

    rank = 0
    size = 1

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def allreduce_mean_(self, flat: np.ndarray) -> None:
        """Average a contiguous array over the processes, in place."""

    def broadcast_(self, arrays: list[np.ndarray]) -> None:
        """Overwrite each array, in place, with rank 0's."""

    def allgather(self, value: Any) -> list[Any]:
        """Every process's `value` (a small picklable object), in rank order."""
        return [value]

    def barrier(self) -> None:
        """Wait until every process has come here."""


class MPICommunicator(Communicator):
    """COMM_WORLD of mpi4py (or another communicator of it)."""

    def __init__(self, comm: Any):
        from mpi4py import MPI
        self._MPI, self.comm = MPI, comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()

    def allreduce_mean_(self, flat: np.ndarray) -> None:
        self.comm.Allreduce(self._MPI.IN_PLACE, flat, op=self._MPI.SUM)
        flat /= self.size

    def broadcast_(self, arrays: list[np.ndarray]) -> None:
        for array in arrays:
            if array.flags.c_contiguous:
                self.comm.Bcast(array, root=0)
            else:
                array[...] = self.comm.bcast(array if self.is_root else None, root=0)

    def allgather(self, value: Any) -> list[Any]:
        return self.comm.allgather(value)

    def barrier(self) -> None:
        self.comm.Barrier()


def communicator() -> Communicator:
    """The communicator of this process: MPI's COMM_WORLD when launched by mpirun with several
    processes (mpi4py is imported only then), else a `Communicator` of one."""
    size = launched_size()
    if size <= 1:
        return Communicator()
    try:
        from mpi4py import MPI
    except (ImportError, RuntimeError, OSError) as err:
        raise GateworkError(f"launched by mpirun with {size} processes, but mpi4py cannot be "
                            f"used ({str(err).splitlines()[0] if str(err) else 'not installed'}): "
                            "pip install -e '.[mpi]', with Open MPI installed") from None
    return MPICommunicator(MPI.COMM_WORLD)


class FlatBuffer:
    """Arrays packed into one contiguous vector, so that one collective call covers them all:
    `views` (name -> the array's place in `flat`, each on a cache line's start; zeros fill the
    gaps) and `extra`, the `extra` scalars after them."""

    def __init__(self, arrays: Mapping[str, np.ndarray], extra: int = 0, dtype: Any = None):
        dtype = np.dtype(dtype if dtype is not None else
                         np.result_type(*arrays.values()) if arrays else np.float64)
        self.flat, self.views, self.extra = aligned_pack(
            {name: array.shape for name, array in arrays.items()}, dtype, extra)

    def pack(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Copy `arrays` (by name) into the buffer."""
        for name, view in self.views.items():
            np.copyto(view, arrays[name], casting="same_kind")

    def unpack(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Copy the buffer back into `arrays` (by name), in place."""
        for name, view in self.views.items():
            np.copyto(arrays[name], view, casting="same_kind")


def checksum(arrays: Mapping[str, np.ndarray]) -> int:
    """A CRC32 of every array's bytes, in name order: equal on processes that have not drifted."""
    crc = 0
    for name in sorted(arrays):
        crc = zlib.crc32(np.ascontiguousarray(arrays[name]).tobytes(), crc)
    return crc


class DataParallelSolver(Solver):
    """The Solver of one process of a synchronous data-parallel run (see the module docstring).

    Train with `solve()`, which loads this rank's slice of the data (unless given a Data loaded
    with the same rank and world) and first calls `synchronize()`. Rank 0 alone writes snapshots
    (`writes_files`). `check_every` > 0 compares a checksum of the parameters and gate buffers
    across processes every that many iterations (default: every `display` iterations when the
    net's `debug` or the solver's `debug_info` is on; 0: never). `gradient_buffer` is the
    FlatBuffer that travels through the Allreduce: the gradients, then the loss and a stop flag.
    """

    def __init__(self, net: Any, config: SolverConfig, comm: Communicator | None = None):
        self.comm = comm if comm is not None else communicator()
        super().__init__(net, config)
        self.writes_files = self.comm.is_root
        self.check_every = config.display if (net.debug or config.debug_info) else 0
        # the gradients, then the loss and the stop flag: one Allreduce per step
        self.gradient_buffer = FlatBuffer({s.name: s.weight for s in self.slots}, extra=2)
        buffers = net.buffers
        self._buffers = FlatBuffer(buffers) if buffers else None

    # Ctrl-C (or request_stop) on any process stops every process after the same iteration: a
    # request travels with the gradients, and the loop sees only the agreed value.
    @property
    def _stop(self) -> bool:
        return self._stop_agreed

    @_stop.setter
    def _stop(self, value: bool) -> None:
        self._stop_requested = value
        if not value:
            self._stop_agreed = False

    def reduce_gradients(self, grads: dict[str, np.ndarray], loss: float
                         ) -> tuple[dict[str, np.ndarray], float]:
        """Average the gradients, the loss (so the loss shown is the global mean) and the gate
        buffers over the processes, and agree on stopping."""
        flat = self.gradient_buffer
        flat.pack(grads)
        flat.extra[0] = loss
        flat.extra[1] = 1.0 if self._stop_requested else 0.0
        self.comm.allreduce_mean_(flat.flat)
        if flat.extra[1] > 0:
            self._stop_agreed = True
        if self._buffers is not None:
            live = self.net.buffers
            self._buffers.pack(live)
            self.comm.allreduce_mean_(self._buffers.flat)
            self._buffers.unpack(live)
        return flat.views, float(flat.extra[0])

    def reduce_totals(self, totals: dict[str, float], count: int) -> tuple[dict[str, float], int]:
        """Sum the test figures and sample counts of every process (in rank order)."""
        merged: dict[str, float] = {}
        everyone = self.comm.allgather((totals, count))
        for part, _ in everyone:
            for name, value in part.items():
                merged[name] = merged.get(name, 0.0) + value
        return merged, sum(n for _, n in everyone)

    def step(self, feed: Any, hook: Any = None) -> float:
        loss = super().step(feed, hook)
        if self.check_every and self.iter % self.check_every == 0:
            self.check_in_sync()
        return loss

    def check_in_sync(self) -> None:
        """Raise GateworkError, on every process, if their parameters or gate buffers differ."""
        sums = self.comm.allgather(checksum(weight_arrays(self.net)))
        if len(set(sums)) > 1:
            by_rank = ", ".join(f"rank {r}: {s:08x}" for r, s in enumerate(sums))
            raise GateworkError(
                f"iteration {self.iter}: the processes' parameters have drifted apart (CRC32 "
                f"{by_rank}); every process must apply the same update: look for a gate that "
                "is not deterministic, or an MPI whose Allreduce differs between ranks")

    def synchronize(self) -> None:
        """Make every process start from rank 0's parameters, gate buffers and solver history
        (after initialisation, --weights or --resume), after checking that all stand at the same
        iteration and data position; then give each rank > 0 its own random streams (Dropout)."""
        train = getattr(self.data, "train", None)
        where = (self.iter,) if train is None else (self.iter, train.epoch, train.cursor,
                                                    train.seed)
        everyone = self.comm.allgather(where)
        if any(w != everyone[0] for w in everyone):
            raise GateworkError("the processes do not start at the same iteration and data "
                                f"position (by rank: {everyone}); is a snapshot file different "
                                "on some machine?")
        arrays = list(weight_arrays(self.net).values())
        arrays += [h for per_param in self.history.values() for h in per_param.values()]
        self.comm.broadcast_(arrays)
        if self.comm.rank:
            for gate in self.net.gates.values():
                gate.rng = np.random.default_rng([int(gate.rng.integers(2**63)), self.comm.rank])

    def solve(self, data: Any = None, **options: Any) -> dict[str, Any]:
        """`Solver.solve` on this rank's slice of the data, after `synchronize()`."""
        from .data import load_data

        rank, size = self.comm.rank, self.comm.size
        if data is None:
            data = load_data(self.net, self.config.random_seed, rank, size)
        for batches in (data.train, data.test):
            if batches is not None and (batches.rank, batches.world) != (rank, size):
                raise ValueError(f"rank {rank} of {size} was given data loaded for rank "
                                 f"{batches.rank} of {batches.world}: use "
                                 "load_data(net, seed, comm.rank, comm.size)")
        self.data = data
        self.synchronize()
        return super().solve(data, **options)
