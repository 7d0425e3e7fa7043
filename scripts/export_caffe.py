#!/usr/bin/env python3
"""Export a Gatework config (and its weights) as Caffe's net prototxt, caffemodel and solver.

    python scripts/export_caffe.py configs/lenet_mnist.yaml -o lenet.prototxt
    python scripts/export_caffe.py configs/lenet_mnist.yaml --weights runs/lenet_mnist/\
lenet_mnist_iter_10000.weights.npz -o lenet_deploy.prototxt lenet.caffemodel --deploy
    python scripts/export_caffe.py configs/lenet_mnist.yaml -o lenet_train_test.prototxt \
        --solver lenet_solver.prototxt

Every gate with a Caffe layer is written with the options that differ from Caffe's defaults; a
gate or option Caffe has no equivalent for is an error naming it. --deploy writes the test phase
without loss and accuracy gates (what Caffe's deploy files, OpenCV and other readers take).
Without --weights the caffemodel holds the fillers' initial values (seeded by --seed).
"""
from __future__ import annotations

import argparse
import sys

from net import Net
from net.formats.caffe_export import write_caffe
from net.tools.cli import add_common_arguments, guarded


def main(args: argparse.Namespace) -> int:
    net = Net.from_file(args.config, phase="test" if args.deploy else "train", seed=args.seed)
    if args.weights:
        report = net.load_weights(args.weights)
        print(f"weights from {args.weights}: {len(report['loaded'])} arrays")
    prototxt, caffemodel = args.output[0], args.output[1] if len(args.output) > 1 else None
    notes = write_caffe(net, prototxt, caffemodel, solver=args.solver, deploy=args.deploy)
    print(f"wrote {', '.join(str(p) for p in (prototxt, caffemodel, args.solver) if p)}")
    for note in notes:
        print(f"note: {note}")
    return 0


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="a Gatework config (YAML, or any readable format)")
    parser.add_argument("-o", "--output", nargs="+", required=True,
                        metavar="FILE", help="the net .prototxt, then optionally the .caffemodel")
    parser.add_argument("--weights", metavar="FILE",
                        help="weights to export (.weights.npz or .caffemodel)")
    parser.add_argument("--solver", metavar="PROTOTXT",
                        help="also write the solver section as a solver prototxt")
    parser.add_argument("--deploy", action="store_true",
                        help="the test phase without loss and accuracy gates")
    parser.add_argument("--seed", type=int, help="seed of the fillers (without --weights)")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    if len(args.output) > 2:
        parser.error("-o takes the .prototxt and optionally the .caffemodel")
    return args


if __name__ == "__main__":
    sys.exit(guarded(main, parse_args()))
