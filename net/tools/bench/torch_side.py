"""PyTorch side of the benchmark, run in its own process by `common.Worker` (by path, with the
interpreter `--torch-python` names: that environment needs torch and numpy, not Gatework).

It needs only torch and numpy (it may run from another environment, `--torch-python`). It reads
one JSON request per line on stdin and answers one JSON line on stdout:
    {"cmd": "info"}  ->  {"version": torch's version, "threads": n}
    {"cmd": "time", "model": MODEL, "iterations": k}
        ->  {"seconds": mean seconds per step over k timed ones}
where MODEL is {"kind": "mlp", "sizes": [...], "batch": B, "solver": {...}} (Linear/ReLU layers
on torch.randn data), {"kind": "lenet", ...} (Caffe's LeNet: conv 20 5x5, max pool 2, conv 50
5x5, max pool 2, fully connected 500, ReLU, fully connected 10, on 28x28 images) or
{"kind": "cifar10_quick", ...} (Caffe's CIFAR-10 quick net: conv 32 5x5 pad 2, max pool 3/2,
ReLU, conv 32 5x5 pad 2, ReLU, average pool 3/2, conv 64 5x5 pad 2, ReLU, average pool 3/2,
fully connected 64, fully connected 10; pooling windows rounded up, as in Caffe), the convnets
on convnets.batch_of's random images, with "mode": "train" (the default) or "infer". A training
step is the benchmark's: forward, cross-entropy averaged over the batch, backward, SGD with
momentum and weight decay; "infer" is the forward pass to the class scores under
torch.no_grad(). float32 on the CPU, with OMP_NUM_THREADS threads when set. One model per
description, kept.
"""
from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
import torch

IMAGES = {"lenet": (1, 28, 28), "cifar10_quick": (3, 32, 32)}


def mlp(sizes: list[int], batch: int):
    layers = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes, sizes[1:])):
        layers.append(torch.nn.Linear(fan_in, fan_out))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    return (torch.nn.Sequential(*layers), torch.randn(batch, sizes[0]),
            torch.randint(0, sizes[-1], (batch,)))


def lenet():
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 20, 5), torch.nn.MaxPool2d(2, 2),
        torch.nn.Conv2d(20, 50, 5), torch.nn.MaxPool2d(2, 2),
        torch.nn.Flatten(), torch.nn.Linear(800, 500), torch.nn.ReLU(), torch.nn.Linear(500, 10))


def cifar10_quick():
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(3, 32, 5, padding=2), nn.MaxPool2d(3, 2, ceil_mode=True), nn.ReLU(),
        nn.Conv2d(32, 32, 5, padding=2), nn.ReLU(), nn.AvgPool2d(3, 2, ceil_mode=True),
        nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.AvgPool2d(3, 2, ceil_mode=True),
        nn.Flatten(), nn.Linear(1024, 64), nn.Linear(64, 10))


def convnet(kind: str, batch: int):
    rng = np.random.default_rng(0)           # convnets.batch_of's images and labels
    images = rng.random((batch,) + IMAGES[kind], dtype=np.float32)
    return ({"lenet": lenet, "cifar10_quick": cifar10_quick}[kind](), torch.from_numpy(images),
            torch.from_numpy(rng.integers(0, 10, batch)))


def build(model: dict):
    """One step of `model` (see the module docstring), run a few times; returns it."""
    torch.manual_seed(0)
    net, x, y = (mlp(model["sizes"], model["batch"]) if model["kind"] == "mlp" else
                 convnet(model["kind"], model["batch"]))
    solver = model["solver"]
    optimizer = torch.optim.SGD(net.parameters(), lr=solver["base_lr"],
                                momentum=solver["momentum"], weight_decay=solver["weight_decay"])
    loss_fn = torch.nn.CrossEntropyLoss()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(net(x), y)
        loss.backward()
        optimizer.step()

    def infer() -> None:
        with torch.no_grad():
            net(x)
    unit = infer if model.get("mode") == "infer" else step
    for _ in range(3):                       # oneDNN picks and builds its kernels on first use
        unit()
    return unit


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
