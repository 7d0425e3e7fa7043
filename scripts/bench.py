#!/usr/bin/env python3
"""Benchmark Gatework against a hand-written numpy loop and PyTorch; print one table.

    python scripts/bench.py --threads 1          # the full run (a few minutes on 2 cores)
    python scripts/bench.py --quick --profile    # a smoke test, a few seconds
    python scripts/bench.py --torch-python /path/to/venv/bin/python --json
    python scripts/bench.py --mpi [--processes 2] [--rounds 5] [--quick]

The same as `python -m net.tools.bench` (its --help says what each part measures).
"""
import sys

from net.tools.bench.cli import run_cli

if __name__ == "__main__":
    sys.exit(run_cli())
