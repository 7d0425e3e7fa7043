#!/usr/bin/env python3
"""Time each gate of a network forward and backward on random inputs, like `caffe time`.

    python scripts/time_net.py configs/two_layer.yaml
    python scripts/time_net.py configs/two_layer.yaml --iterations 200 --batch-size 128 --json

Inputs get random values of their declared shapes (an open batch dimension takes --batch-size,
by default the data section's train batch size); integer inputs and labels get integers in range.
One untimed warm-up pass runs first. Prints each gate's mean forward and backward time in ms, in
execution order, then the averages of whole passes.
"""
from __future__ import annotations

import argparse
import sys

from net import Net
from net.tools.cli import add_common_arguments, dump_json, guarded
from net.tools.timing import default_batch_size, has_batch_dimension, random_feed, time_net


def main(args: argparse.Namespace) -> int:
    if args.iterations < 1:
        raise ValueError(f"--iterations must be at least 1, got {args.iterations}")
    if args.batch_size is not None and args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    net = Net.from_yaml(args.config, phase=args.phase)
    batch_size = args.batch_size or default_batch_size(net)
    timing = time_net(net, random_feed(net, batch_size), args.iterations,
                      batch_size if has_batch_dimension(net) else None)
    if args.json:
        print(dump_json({"config": args.config, **timing.as_dict()}))
    else:
        print(f"{net.name}: {args.config}")
        print(timing.table())
    return 0


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="a YAML network")
    parser.add_argument("--iterations", type=int, default=50, metavar="N",
                        help="timed forward+backward passes (default 50)")
    parser.add_argument("--batch-size", type=int, metavar="B",
                        help="size of an open batch dimension (default: the data section's "
                             "train batch_size, else 32)")
    parser.add_argument("--phase", choices=("train", "test"), default="train")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_common_arguments(parser)
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(guarded(main, parse_args()))
