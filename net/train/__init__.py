"""The training floor: the solver and its update rules, data, snapshots, metrics, data-parallel
training over MPI, and `train()`, the whole of `scripts/train.py` as one call.

    solver       Solver: step, test, the training loop
    updates      update rules and learning-rate policies, as tables
    data         the data section: sources checked against the net, batching, prefetching
    sources      the readers (npz/csv, built-in sets, IDX, LMDB, images, HDF5, dummy), Caffe's
                 DataTransformer, Datum and BlobProto records, the protobuf wire codec
    evaluate     testing (scripts/test.py) and prediction (scripts/predict.py)
    files        atomic writes and safe .npz reads
    snapshot     weights and solverstate files
    metrics      metrics.jsonl and curves.png
    distributed  DataParallelSolver (MPI)
    session      train(config, ...)

It imports the core floor (and `gates`, `net.errors`), never the tools or scripts.
"""
from .session import train

__all__ = ["train"]
