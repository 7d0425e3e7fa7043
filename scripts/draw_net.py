#!/usr/bin/env python3
"""Draw a network's computation graph with graphviz; with --values, the lecture's figure.

    python scripts/draw_net.py configs/two_layer.yaml two_layer.svg
    python scripts/draw_net.py configs/seed_example.yaml seed.png --values
    python scripts/draw_net.py configs/seed_example.yaml seed.dot --values --set y=-1

The format follows OUTPUT's extension: .png, .svg, .pdf (these need Graphviz's `dot`), or .dot.
With --values, one forward and one backward pass run first: each edge carries its forward value
(black arrow) and the gradient flowing back along it (blue arrow). Inputs with neither --set nor a
`value:` in the config get random values of their declared shapes.
"""
from __future__ import annotations

import argparse
import sys

from net import Net
from net.tools.cli import add_common_arguments, guarded, parse_assignments
from net.tools.draw import digraph, trace, values_feed, write
from net.train.snapshot import load_weights


def main(args: argparse.Namespace) -> int:
    net = Net.from_yaml(args.config, phase=args.phase)
    if args.weights:
        load_weights(net, args.weights)
    traced = None
    if args.values:
        feed, randomised = values_feed(net, parse_assignments(args.set), args.batch_size)
        if randomised:
            print(f"random values for {', '.join(randomised)} (no --set and no `value:`)")
        traced = trace(net, feed)
    path = write(digraph(net, traced, rankdir=args.rankdir), args.output)
    print(f"wrote {path}")
    return 0


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="a YAML network")
    parser.add_argument("output", help="the picture to write: .png, .svg, .pdf or .dot")
    parser.add_argument("--values", action="store_true",
                        help="run one forward and one backward pass and label each edge with its "
                             "value (black) and gradient (blue)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="value of an input for --values (YAML syntax: 1, [1, 2]); repeatable")
    parser.add_argument("--batch-size", type=int, metavar="B",
                        help="batch size of random inputs for --values (default: the data "
                             "section's train batch_size, else 32)")
    parser.add_argument("--weights", metavar="FILE",
                        help="a weights file (.npz of arrays by parameter name, e.g. fc1.W, as "
                             "train.py snapshots write) to load first")
    parser.add_argument("--rankdir", choices=("LR", "TB"), default="LR",
                        help="layout direction: left to right (default) or top to bottom")
    parser.add_argument("--phase", choices=("train", "test"), default="train")
    add_common_arguments(parser)
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(guarded(main, parse_args()))
