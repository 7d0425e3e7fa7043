#!/usr/bin/env python3
"""Convert a Caffe net (or solver) prototxt, and its caffemodel, to a Gatework YAML config.

    python scripts/convert_caffe.py deploy.prototxt -o lenet.yaml
    python scripts/convert_caffe.py deploy.prototxt lenet.caffemodel -o lenet.yaml \
        --weights-out lenet.weights.npz
    python scripts/convert_caffe.py lenet_train_test.prototxt -o lenet.yaml --no-data \
        --input-shape data=1,28,28 --input-shape label=

The YAML keeps Caffe's layer names and writes only the options that differ from Gatework's
defaults. With a caffemodel, its blobs are loaded into the net by layer name (layers matching no
gate are listed, as Caffe's CopyTrainedLayersFrom does) and saved as a .weights.npz (default:
beside the YAML). Any script also reads the prototxt and caffemodel directly; converting gives a
file to read and edit.
"""
from __future__ import annotations

import argparse
import sys

from net.formats.caffe_convert import convert_caffe
from net.tools.cli import add_common_arguments, guarded


def main(args: argparse.Namespace) -> int:
    result = convert_caffe(args.prototxt, args.output, weights=args.caffemodel,
                           weights_out=args.weights_out, input_shapes=args.input_shapes,
                           with_data=not args.no_data, level=args.level, stages=args.stage)
    print(f"wrote {args.output}: {len(result.spec.gates)} gates, "
          f"{len(result.spec.inputs)} inputs{', a solver section' if result.spec.solver else ''}")
    if result.weights is not None:
        print(f"weights: {len(result.weights['loaded'])} arrays loaded")
    for note in result.notes:
        print(f"note: {note}")
    return 0


def shape_argument(text: str) -> tuple[str, tuple[int, ...]]:
    """NAME=D1,D2,... (per sample; NAME= for a scalar per sample, a label)."""
    name, sep, dims = text.partition("=")
    try:
        if not sep or not name:
            raise ValueError
        return name, tuple(int(dim) for dim in dims.split(",") if dim.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected NAME=D1,D2,... got {text!r}") from None


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prototxt", help="a Caffe net or solver .prototxt")
    parser.add_argument("caffemodel", nargs="?", help="the net's .caffemodel weights")
    parser.add_argument("-o", "--output", required=True, metavar="YAML",
                        help="the config to write")
    parser.add_argument("--weights-out", metavar="NPZ",
                        help="where the weights go (default: <output name>.weights.npz)")
    parser.add_argument("--input-shape", action="append", type=shape_argument, default=[],
                        metavar="NAME=D1,D2,...", dest="input_shapes_list",
                        help="per-sample shape of a data layer's top; repeatable")
    parser.add_argument("--no-data", action="store_true",
                        help="data layers become plain inputs (no data section)")
    parser.add_argument("--stage", action="append", metavar="STAGE",
                        help="a NetState stage for include/exclude rules; repeatable")
    parser.add_argument("--level", type=int, help="the NetState level for include rules")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    if args.weights_out and not args.caffemodel:
        parser.error("--weights-out needs a caffemodel to convert")
    args.input_shapes = dict(args.input_shapes_list) or None
    args.stage = tuple(args.stage) if args.stage else None
    return args


if __name__ == "__main__":
    sys.exit(guarded(main, parse_args()))
