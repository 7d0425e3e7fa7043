"""Gatework's engine: configs, the Net and its runner, training, gradient checking.

    from net import Net, Solver
    net = Net.from_yaml("configs/seed_example.yaml")

The package is built in floors, each importing only those below it (tests/test_layering.py
checks): `net.core` (configs, the Net, the runner), `net.train` (solver, data, snapshots, MPI)
and `net.gradcheck` on top of it, `net.tools` (what only scripts use) above them.
"""
from .core.config import load_config, parse_config
from .core.net import Net
from .core.runner import ContractError
from .core.spec import NetSpec, SolverConfig
from .errors import ConfigError, DataError, GateworkError, NumericalError
from .train.solver import Solver

__all__ = ["Net", "NetSpec", "ConfigError", "DataError", "GateworkError", "NumericalError",
           "ContractError", "load_config", "parse_config", "Solver", "SolverConfig"]
