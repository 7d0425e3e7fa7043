#!/usr/bin/env python3
"""Classify new inputs with trained weights: the top-k classes and their probabilities.

    python scripts/predict.py configs/lenet_fashion.yaml --weights W shoe.png shirt.png
    python scripts/predict.py configs/digits_mlp.yaml --weights W samples.npy --json
    python scripts/predict.py configs/iris_mlp.yaml --weights W flowers.csv --top 2

Inputs: image files (one sample each; grey or BGR by the input's channel count, resized to the
input's height and width, or to the images source's new_height/new_width), .npy arrays (one
sample, or N samples along the first axis) and .csv tables (one sample a row; a row with one
extra value, the label of a data-section CSV, has it dropped). Each goes through the test
source's transform (scale, mean, centre crop), as test samples do.

The scores are the first bottom of the test phase's Accuracy or loss gate, or --output NAME;
a softmax turns them into probabilities unless the blob is a Softmax gate's top (or with
--no-softmax). Only the gates the blob depends on run: no label is needed, and a deploy net
works the same.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from net import Net
from net.tools.cli import add_common_arguments, guarded
from net.train.evaluate import Predictor, top_k


def main(args: argparse.Namespace) -> int:
    net = Net.from_file(args.config, phase="test")
    net.load_weights(args.weights)
    predictor = Predictor(net, args.output, False if args.no_softmax else None)
    names = read_names(args.labels) if args.labels else None
    results = []
    for path in args.inputs:
        samples = predictor.load(path)
        for start in range(0, len(samples), args.batch_size):
            chunk = samples[start:start + args.batch_size]
            for offset, picks in enumerate(top_k(predictor.predict(chunk), args.top)):
                results.append({"input": str(path), "sample": start + offset,
                                "top": [{"class": c, "name": name_of(c, names), "probability"
                                         if predictor.softmax else "score": p}
                                        for c, p in picks]})
    if args.json:
        print(json.dumps({"output": predictor.output, "softmax": predictor.softmax,
                          "predictions": results}))
        return 0
    counts = {}
    for result in results:
        counts[result["input"]] = counts.get(result["input"], 0) + 1
    for result in results:
        label = result["input"] + (f"[{result['sample']}]" if counts[result["input"]] > 1
                                   else "")
        shown = "  ".join(f"{pick['name']} {list(pick.values())[2]:.4f}"
                          for pick in result["top"])
        print(f"{label}: {shown}")
    return 0


def name_of(index: int, names: list[str] | None) -> str:
    return names[index] if names and index < len(names) else str(index)


def read_names(path: str) -> list[str]:
    """Class names, one a line (Caffe's synset_words.txt style)."""
    return [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines()]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="the net's config (its test phase is used)")
    parser.add_argument("--weights", required=True, metavar="FILE", help="trained weights")
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="image files, .npy arrays or .csv tables")
    parser.add_argument("--top", type=int, default=3, metavar="K",
                        help="how many classes to show per sample (default 3)")
    parser.add_argument("--output", metavar="BLOB",
                        help="the blob holding the scores (default: the Accuracy/loss gate's)")
    parser.add_argument("--no-softmax", action="store_true",
                        help="print the blob's values as they are")
    parser.add_argument("--labels", metavar="FILE", help="class names, one a line")
    parser.add_argument("--batch-size", type=int, default=64, metavar="B",
                        help="samples per forward pass (default 64)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    if args.top < 1 or args.batch_size < 1:
        parser.error("--top and --batch-size must be positive integers")
    return args


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    sys.exit(guarded(main, parse_args()))
