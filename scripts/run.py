#!/usr/bin/env python3
"""Run one forward and one backward pass of a config and print every output, then every gradient.

    python scripts/run.py configs/seed_example.yaml
    python scripts/run.py configs/seed_example.yaml --set x=-2 --json
    python scripts/run.py lenet_deploy.prototxt --weights lenet.caffemodel --phase test
    python scripts/run.py configs/seed_example.yaml --trace
    python scripts/run.py configs/seed_example.yaml --wrt a --wrt b

--trace prints the passes step by step (net.tools.trace): each gate forward in topological order
with its inputs' values and its output, then each gate backward in reverse with the upstream
gradient, the local gradient of each input, their product, and the sum where a blob fans out.
Inputs with no --set and no `value:` take the config's test data there (random values when it has
no data section, and the trace says so). --wrt names the blobs whose gradients are wanted: inputs,
parameters or intermediate blobs (`net.backward(wrt=[...])`). The config may be YAML, a Caffe
.prototxt or an .onnx model; --weights loads a .weights.npz, .caffemodel or .onnx file first.
Inputs without a value (a deploy net's `data`) take the config's test data, else random values
(a note on stderr says which).
"""
from __future__ import annotations

import argparse
import sys

from net import Net
from net.tools.cli import add_common_arguments, dump_json, format_values, guarded, jsonable, \
    parse_assignments
from net.tools.trace import example_feed, format_walk, trace_walk


def main(args: argparse.Namespace) -> int:
    net = Net.from_file(args.config, phase=args.phase)
    if args.weights:
        net.load_weights(args.weights)
    if args.summary:
        print(net.summary())
        return 0
    wrt = args.wrt or None
    feed, notes = example_feed(net, parse_assignments(args.set))
    if args.trace:
        print(format_walk(trace_walk(net, feed, wrt=wrt), notes))
        return 0
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    outputs = net.forward(feed)
    gradients = net.backward(wrt=wrt)
    if args.json:
        print(dump_json({"outputs": jsonable(outputs), "gradients": jsonable(gradients)}))
    else:
        print(f"outputs:\n{format_values(outputs)}\ngradients:\n{format_values(gradients)}")
    return 0


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="a network: YAML, Caffe .prototxt or .onnx")
    parser.add_argument("--weights", metavar="FILE",
                        help="load parameters first (.weights.npz, .caffemodel or .onnx)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="value of an input (YAML syntax: 1, [1, 2]); repeatable")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--trace", action="store_true",
                        help="print every forward and backward step: values, upstream and local "
                             "gradients, products, and sums where a blob fans out")
    parser.add_argument("--wrt", action="append", default=[], metavar="BLOB",
                        help="a blob whose gradient is wanted (an input, a parameter or an "
                             "intermediate blob; default: every input and parameter); repeatable")
    parser.add_argument("--summary", action="store_true",
                        help="print the gates, their shapes and parameter counts, and stop")
    parser.add_argument("--phase", choices=("train", "test"), default="train")
    add_common_arguments(parser)
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(guarded(main, parse_args()))
