#!/usr/bin/env python3
"""Write a net's test-phase graph as an ONNX model (for onnxruntime, Netron, ...).

    python scripts/export_onnx.py configs/lenet_digits.yaml --weights lenet_iter_500.weights.npz \
        -o lenet.onnx
    python scripts/export_onnx.py configs/digits_mlp.yaml -o mlp.onnx --with-losses --opset 13

The batch dimension stays symbolic ("N"), parameters are initializers under their Gatework names,
and a deployed model (the default) outputs SoftmaxWithLoss's probabilities instead of the loss
and reads no labels. Needs the onnx package: pip install -e '.[onnx]'.
"""
from __future__ import annotations

import argparse
import sys

from net import Net
from net.formats.onnx_export import DEFAULT_OPSET, export_onnx
from net.tools.cli import add_common_arguments, guarded


def main(args: argparse.Namespace) -> int:
    net = Net.from_file(args.config, phase="test")
    if args.weights:
        net.load_weights(args.weights)
    outputs = [name for part in args.outputs for name in part.split(",") if name] or None
    model = export_onnx(net, args.output, opset=args.opset, losses=args.with_losses,
                        outputs=outputs)
    graph = model.graph
    print(f"wrote {args.output}: opset {args.opset}, {len(graph.node)} nodes, "
          f"{len(graph.initializer)} initializers; inputs "
          f"{', '.join(i.name for i in graph.input)}; outputs "
          f"{', '.join(o.name for o in graph.output)}")
    return 0


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="a network config (YAML, or a format Gatework reads)")
    parser.add_argument("-o", "--output", required=True, metavar="FILE",
                        help="the .onnx file to write")
    parser.add_argument("--weights", metavar="FILE",
                        help="parameters to export (a .weights.npz snapshot, ...); default: "
                             "the config's fillers")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                        help=f"ONNX opset version (13 to 21; default {DEFAULT_OPSET})")
    parser.add_argument("--with-losses", action="store_true",
                        help="also write the loss and Accuracy gates (labels become inputs)")
    parser.add_argument("--outputs", action="append", default=[], metavar="BLOB[,BLOB]",
                        help="the blobs the model outputs (default: the graph's ends)")
    add_common_arguments(parser)
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(guarded(main, parse_args()))
