"""Gatework's engine: config loading, the graph, the Net and its runner, and the Solver.

    from net import Net
    net = Net.from_yaml("configs/seed_example.yaml")
"""
from .config import NetSpec, load_config, parse_config
from .errors import ConfigError, DataError, GateworkError, NumericalError
from .net import Net
from .runner import ContractError
from .solver import Solver, SolverConfig

__all__ = ["Net", "NetSpec", "ConfigError", "DataError", "GateworkError", "NumericalError",
           "ContractError", "load_config", "parse_config", "Solver", "SolverConfig"]
