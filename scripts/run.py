#!/usr/bin/env python3
"""Run one forward and one backward pass of a config and print every output, then every gradient.

    python scripts/run.py configs/seed_example.yaml
    python scripts/run.py configs/seed_example.yaml --set x=-2 --json
"""
from __future__ import annotations

import argparse
import sys

from net import Net
from net.tools.cli import add_common_arguments, dump_json, format_values, guarded, jsonable, \
    parse_assignments


def main(args: argparse.Namespace) -> int:
    net = Net.from_yaml(args.config, phase=args.phase)
    if args.summary:
        print(net.summary())
        return 0
    outputs = net.forward(parse_assignments(args.set))
    gradients = net.backward()
    if args.json:
        print(dump_json({"outputs": jsonable(outputs), "gradients": jsonable(gradients)}))
    else:
        print(f"outputs:\n{format_values(outputs)}\ngradients:\n{format_values(gradients)}")
    return 0


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="a YAML network")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="value of an input (YAML syntax: 1, [1, 2]); repeatable")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--summary", action="store_true",
                        help="print the gates, their shapes and parameter counts, and stop")
    parser.add_argument("--phase", choices=("train", "test"), default="train")
    add_common_arguments(parser)
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(guarded(main, parse_args()))
