#!/usr/bin/env python3
"""Time Caffe's 28x28 LeNet training step through Gatework and PyTorch (CPU), and their ratio.

    python scripts/bench_lenet.py                                  # 1 thread each, ~10 s
    python scripts/bench_lenet.py --threads 2 --profile
    python scripts/bench_lenet.py --torch-python /work/torchvenv/bin/python --json

One step: forward, backward and momentum SGD on a batch of 64 float32 images
(configs/lenet_mnist.yaml). Each side runs in its own process with --threads threads; they are
timed in alternating blocks and the medians compared. The PyTorch row is skipped when torch cannot
be imported by --torch-python (default: this interpreter). --profile adds Gatework's per-gate
forward/backward times. Also prints the Gatework worker's resident memory after warm-up and at
the end, which must not grow with the number of steps.
"""
from __future__ import annotations

import argparse
import sys

from net import bench_lenet
from net.cli import add_common_arguments, dump_json, guarded

TARGET = 1.5     # Gatework's step at most this many times PyTorch's


def main(args: argparse.Namespace) -> int:
    for name in ("threads", "repeats"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be at least 1, got {getattr(args, name)}")
    result = bench_lenet.run(args.threads, args.repeats, args.block, args.torch_python,
                             args.profile_iterations if args.profile else 0)
    print(dump_json(result) if args.json else bench_lenet.report(result, TARGET))
    return 0


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1,
                        help="math threads of each side (BLAS / torch), default 1")
    parser.add_argument("--repeats", type=int, default=11, help="timed blocks per side")
    parser.add_argument("--block", type=float, default=0.3, help="seconds per timed block")
    parser.add_argument("--torch-python", metavar="PATH",
                        help="the interpreter that runs the PyTorch side (default: this one)")
    parser.add_argument("--profile", action="store_true", help="add Gatework's per-gate times")
    parser.add_argument("--profile-iterations", type=int, default=50, help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    add_common_arguments(parser)
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(guarded(main, parse_args()))
