#!/usr/bin/env python3
"""Benchmark one training iteration through Gatework against a hand-written numpy loop.

    python scripts/bench_train.py [--repeats 15] [--iterations 20]

The net is the 784-256-256-10 ReLU MLP with SoftmaxWithLoss, batch 128, float32, trained by SGD
with momentum 0.9 and weight decay 5e-4 (Caffe's update: v = mu v + lr (g + wd w); w -= v). The
hand-written loop does the same arithmetic with plain numpy (in-place updates, no gradient for the
data). Both run in this process on the same data, alternating block by block; each time is the
median over `--repeats` blocks of `--iterations` iterations, and the ratio is the median of the
per-block ratios Gatework / hand (back-to-back blocks see the same machine load).
Timings on a shared machine are noisy: compare ratios from one run, not absolute times.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

from net import Net, Solver
from net.cli import add_common_arguments, guarded

SIZES = (784, 256, 256, 10)
BATCH, LR, MOMENTUM, DECAY = 128, 0.01, 0.9, 5e-4


def gatework_mlp() -> tuple[Net, Solver]:
    gates = []
    bottom = "data"
    for index, width in enumerate(SIZES[1:], start=1):
        gates.append({"name": f"fc{index}", "type": "InnerProduct", "bottom": bottom,
                      "top": f"fc{index}", "num_output": width, "weight_filler": {"type": "msra"}})
        bottom = f"fc{index}"
        if index < len(SIZES) - 1:
            gates.append({"name": f"relu{index}", "type": "ReLU", "bottom": bottom,
                          "top": f"relu{index}"})
            bottom = f"relu{index}"
    gates.append({"name": "loss", "type": "SoftmaxWithLoss", "bottom": [bottom, "label"],
                  "top": "loss"})
    net = Net.from_config({"name": "bench_mlp", "dtype": "float32", "gates": gates,
                           "inputs": {"data": {"shape": [None, SIZES[0]]},
                                      "label": {"shape": [None], "dtype": "int"}}})
    solver = Solver.from_config(net, {"type": "SGD", "base_lr": LR, "momentum": MOMENTUM,
                                      "weight_decay": DECAY})
    return net, solver


class HandWritten:
    """The same MLP, loss and update written out by hand in numpy."""

    def __init__(self, params: dict[str, np.ndarray]):
        self.layers = [(params[f"fc{i}.W"].copy(), params[f"fc{i}.b"].copy())
                       for i in range(1, len(SIZES))]
        self.velocity = [(np.zeros_like(W), np.zeros_like(b)) for W, b in self.layers]
        self.scratch = [(np.empty_like(W), np.empty_like(b)) for W, b in self.layers]

    def step(self, x: np.ndarray, y: np.ndarray) -> float:
        activations = [x]
        for index, (W, b) in enumerate(self.layers):
            out = activations[-1] @ W.T
            out += b
            activations.append(np.maximum(out, 0) if index < len(self.layers) - 1 else out)
        scores = activations.pop()
        n = len(y)
        rows = np.arange(n)
        shifted = scores - scores.max(axis=1, keepdims=True)
        picked = shifted[rows, y]
        prob = np.exp(shifted, out=shifted)
        sums = prob.sum(axis=1, keepdims=True)
        prob /= sums
        loss = float(-(picked - np.log(sums[:, 0])).sum() / n)
        upstream = prob
        upstream[rows, y] -= 1
        upstream *= 1.0 / n
        grads = []
        for index in range(len(self.layers) - 1, -1, -1):
            W, _ = self.layers[index]
            below = activations[index]
            grads.append((upstream.T @ below, upstream.sum(axis=0)))
            if index:
                upstream = (upstream @ W) * (below > 0)
        for (W, b), (gW, gb), (vW, vb), (sW, sb) in zip(self.layers, grads[::-1], self.velocity,
                                                       self.scratch):
            for w, g, v, s in ((W, gW, vW, sW), (b, gb, vb, sb)):
                np.multiply(w, DECAY, out=s)
                s += g
                s *= LR
                v *= MOMENTUM
                v += s
                w -= v
        return loss


def main(args: argparse.Namespace) -> int:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, SIZES[0])).astype(np.float32)
    y = rng.integers(0, SIZES[-1], BATCH)
    feed = {"data": x, "label": y}
    net, solver = gatework_mlp()
    hand = HandWritten(net.params)
    first = solver.step(feed), hand.step(x, y)
    if abs(first[0] - first[1]) > 1e-4 * max(1.0, abs(first[1])):
        print(f"warning: first losses differ: Gatework {first[0]:.6f}, hand {first[1]:.6f}")

    def block(fn) -> float:
        start = time.perf_counter()
        for _ in range(args.iterations):
            fn()
        return (time.perf_counter() - start) / args.iterations

    ours, theirs = [], []
    for _ in range(args.repeats):
        ours.append(block(lambda: solver.step(feed)))
        theirs.append(block(lambda: hand.step(x, y)))
    gw, hw = statistics.median(ours), statistics.median(theirs)
    ratio = statistics.median(a / b for a, b in zip(ours, theirs))
    print(f"one training iteration, MLP {'-'.join(map(str, SIZES))}, batch {BATCH}, float32, "
          f"SGD momentum (median of {args.repeats} x {args.iterations}):")
    print(f"  Gatework      {gw * 1e3:8.3f} ms")
    print(f"  hand numpy    {hw * 1e3:8.3f} ms")
    print(f"  ratio         {ratio:8.3f}   (median of the back-to-back ratios; target <= 1.15)")
    return 0


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=31, help="timed blocks per contender")
    parser.add_argument("--iterations", type=int, default=10, help="iterations per block")
    add_common_arguments(parser)
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(guarded(main, parse_args()))
