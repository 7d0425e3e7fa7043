#!/usr/bin/env python3
"""Test trained weights on the config's test set, as `caffe test` does.

It reports the loss and every accuracy, accuracy per class and a confusion-matrix PNG.

    python scripts/test.py configs/lenet_fashion.yaml \
        --weights runs/lenet_fashion/lenet_fashion_iter_10000.weights.npz
    python scripts/test.py configs/lenet_fashion.yaml --weights W --iterations 10 --json

The test set is the config's `data: test:` source; the whole set is used unless --iterations
limits it to that many batches. The PNG goes to --confusion (default: beside the weights file,
named like it: lenet_fashion_iter_10000.confusion.png).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from net import Net
from net.tools.cli import add_common_arguments, guarded
from net.train.evaluate import evaluate, plot_confusion, evaluation_batches


def main(args: argparse.Namespace) -> int:
    net = Net.from_file(args.config, phase="test")
    report = net.load_weights(args.weights)
    batches = evaluation_batches(net, args.batch_size)
    names = read_names(args.labels) if args.labels else None
    evaluation = evaluate(net, batches, args.iterations)
    picture = None
    if evaluation.confusion is not None and not args.no_plot:
        target = Path(args.confusion) if args.confusion else default_picture(args.weights)
        picture = plot_confusion(evaluation, target, net.name, names)
    if args.json:
        print(json.dumps({"net": net.name, "weights": str(Path(args.weights).resolve()),
                          "samples": evaluation.samples, **evaluation.figures,
                          "per_class_accuracy": None if evaluation.confusion is None else
                          [None if a != a else float(a) for a in evaluation.per_class()],
                          "confusion": None if evaluation.confusion is None else
                          evaluation.confusion.tolist(),
                          "confusion_png": str(picture) if picture else None}))
        return 0
    print(f"net {net.name!r}: weights {Path(args.weights).resolve()} "
          f"({len(report['loaded'])} arrays)")
    print(f"test data: {batches.dataset.name}, {len(batches)} samples, batch size "
          f"{batches.batch_size}" + (f", first {args.iterations} batches"
                                     if args.iterations else ""))
    print("\n".join(evaluation.lines(names)))
    if picture:
        print(f"confusion matrix: {picture}")
    return 0


def default_picture(weights: str) -> Path:
    path = Path(weights)
    stem = path.name.removesuffix(".npz").removesuffix(".weights")
    return path.with_name(f"{stem}.confusion.png")


def read_names(path: str) -> list[str]:
    """Class names, one a line (Caffe's synset_words.txt style)."""
    return [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines()]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="a config with a `data: test:` source")
    parser.add_argument("--weights", required=True, metavar="FILE",
                        help="trained weights (.weights.npz, or a registered format)")
    parser.add_argument("--iterations", type=int, metavar="N",
                        help="test on the first N batches only (default: the whole test set)")
    parser.add_argument("--batch-size", type=int, metavar="B",
                        help="test batch size (default: the test source's)")
    parser.add_argument("--labels", metavar="FILE", help="class names, one a line")
    parser.add_argument("--confusion", metavar="PNG",
                        help="where the confusion matrix goes (default: beside the weights)")
    parser.add_argument("--no-plot", action="store_true", help="write no confusion PNG")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    for name in ("iterations", "batch_size"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer")
    return args


if __name__ == "__main__":
    sys.exit(guarded(main, parse_args()))
