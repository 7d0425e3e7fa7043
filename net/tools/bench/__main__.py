"""`python -m net.tools.bench`: the benchmark (see net.tools.bench.cli)."""
import sys

from .cli import run_cli

sys.exit(run_cli())
