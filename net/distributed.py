"""`net.distributed` as it always was: data-parallel training now lives in
`net.train.distributed`; this name stays for code written against it."""
from .train.distributed import Communicator, DataParallelSolver, FlatBuffer, checksum, communicator

__all__ = ["Communicator", "DataParallelSolver", "FlatBuffer", "checksum", "communicator"]
