"""PyTorch side of the benchmark, run in its own process by `common.Worker` (by path, with the
interpreter `--torch-python` names: that environment needs torch and numpy, not Gatework).

It needs only torch and numpy (it may run from another environment, `--torch-python`). It reads
one JSON request per line on stdin and answers one JSON line on stdout:
    {"cmd": "info"}  ->  {"version": torch's version, "threads": n}
    {"cmd": "time", "model": MODEL, "iterations": k}
        ->  {"seconds": mean seconds per training step over k timed steps}
where MODEL is {"kind": "mlp", "sizes": [...], "batch": B, "solver": {...}} (Linear/ReLU layers
on torch.randn data) or {"kind": "lenet", "batch": B, "solver": {...}} (Caffe's LeNet: conv 20
5x5, max pool 2, conv 50 5x5, max pool 2, fully connected 500, ReLU, fully connected 10, on the
same random 28x28 images as Gatework's side). A step is the benchmark's: forward, cross-entropy
averaged over the batch, backward, SGD with momentum and weight decay; float32 on the CPU, with
OMP_NUM_THREADS threads when set. One model per description, kept.
"""
from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
import torch


def mlp(sizes: list[int], batch: int):
    layers = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes, sizes[1:])):
        layers.append(torch.nn.Linear(fan_in, fan_out))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    return (torch.nn.Sequential(*layers), torch.randn(batch, sizes[0]),
            torch.randint(0, sizes[-1], (batch,)))


def lenet(batch: int):
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 20, 5), torch.nn.MaxPool2d(2, 2),
        torch.nn.Conv2d(20, 50, 5), torch.nn.MaxPool2d(2, 2),
        torch.nn.Flatten(), torch.nn.Linear(800, 500), torch.nn.ReLU(), torch.nn.Linear(500, 10))
    rng = np.random.default_rng(0)           # net.bench_lenet.lenet_batch's images and labels
    return (model, torch.from_numpy(rng.random((batch, 1, 28, 28), dtype=np.float32)),
            torch.from_numpy(rng.integers(0, 10, batch)))


def build(model: dict):
    """One training step of `model` (see the module docstring), run once; returns it."""
    torch.manual_seed(0)
    net, x, y = (mlp(model["sizes"], model["batch"]) if model["kind"] == "mlp" else
                 lenet(model["batch"]))
    solver = model["solver"]
    optimizer = torch.optim.SGD(net.parameters(), lr=solver["base_lr"],
                                momentum=solver["momentum"], weight_decay=solver["weight_decay"])
    loss_fn = torch.nn.CrossEntropyLoss()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(net(x), y)
        loss.backward()
        optimizer.step()
    step()
    return step


def main() -> None:
    threads = int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
    if threads > 0:
        torch.set_num_threads(threads)
    steps = {}
    for line in sys.stdin:
        request = json.loads(line)
        if request["cmd"] == "info":
            answer = {"version": torch.__version__, "threads": torch.get_num_threads()}
        else:
            key = json.dumps(request["model"], sort_keys=True)
            if key not in steps:
                steps[key] = build(request["model"])
            step, k = steps[key], request["iterations"]
            start = time.perf_counter()
            for _ in range(k):
                step()
            answer = {"seconds": (time.perf_counter() - start) / k}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
