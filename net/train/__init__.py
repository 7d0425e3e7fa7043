"""The training floor: the solver and its update rules, data, snapshots, metrics, data-parallel
training over MPI, and `train()`, the whole of `scripts/train.py` as one call.

    solver       Solver: step, test, the training loop
    updates      update rules and learning-rate policies, as tables
    data         data sources, validation against the net, batching
    files        atomic writes and safe .npz reads
    snapshot     weights and solverstate files
    metrics      metrics.jsonl and curves.png
    distributed  DataParallelSolver (MPI)
    session      train(config, ...)

It imports the core floor (and `gates`, `net.errors`), never the tools or scripts.
"""
from .session import train

__all__ = ["train"]
