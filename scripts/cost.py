#!/usr/bin/env python3
"""The cost the lecture describes: backprop against the numeric gradient, for growing nets.

    python scripts/cost.py
    python scripts/cost.py --widths 8 32 128 512 --depth 3 --max-timed 500

Each net is a stack of InnerProduct+ReLU layers (float64). For each it prints the time of one
forward pass, of one forward+backward pass, and of the numeric gradient over every parameter
(two forward passes per element; beyond --max-timed elements it is timed on a sample and scaled,
marked "est."). Backprop stays within a small factor of the forward pass; the numeric gradient
grows with the number of parameters.
"""
from __future__ import annotations

import argparse
import sys

from net.tools.cli import add_common_arguments, guarded
from net.tools.cost import cost_rows, format_cost


def main(args: argparse.Namespace) -> int:
    rows = cost_rows(args.widths, args.depth, args.batch, args.repeats, args.max_timed or None)
    print(f"InnerProduct+ReLU stacks, depth {args.depth}, batch {args.batch}, float64; "
          f"best of {args.repeats} runs")
    print(format_cost(rows))
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=_positive, nargs="+", default=[4, 8, 16, 32, 64, 128],
                        metavar="W", help="layer widths, one net each (default 4 8 16 32 64 128)")
    parser.add_argument("--depth", type=_positive, default=2, help="hidden layers (default 2)")
    parser.add_argument("--batch", type=_positive, default=16, help="batch size (default 16)")
    parser.add_argument("--repeats", type=_positive, default=5,
                        help="forward/backward timings keep the best of this many (default 5)")
    parser.add_argument("--max-timed", type=int, default=2000, metavar="N",
                        help="time the numeric gradient on at most N elements and scale up "
                             "(0: time every element; default 2000)")
    add_common_arguments(parser)
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(guarded(main, parse_args()))
