"""PyTorch side of scripts/bench.py, run in its own process by net.bench.TorchWorker.

It needs only torch and numpy (it may run from another environment, `--torch-python`). It reads
one JSON request per line on stdin and answers one JSON line on stdout:
    {"cmd": "info"}  ->  {"torch": version, "threads": n}
    {"cmd": "mlp", "sizes": [...], "batch": B, "solver": {...}, "iterations": k}
        ->  {"seconds": mean seconds per training iteration over k timed iterations}
The training iteration is the benchmark's: Linear/ReLU layers, cross-entropy (mean over the
batch), float32 on the CPU, SGD with momentum and weight decay; one model per size, kept.
"""
from __future__ import annotations

import json
import sys
import time

import torch


def build(sizes: list[int], batch: int, solver: dict):
    torch.manual_seed(0)
    layers = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes, sizes[1:])):
        layers.append(torch.nn.Linear(fan_in, fan_out))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    optimizer = torch.optim.SGD(model.parameters(), lr=solver["base_lr"],
                                momentum=solver["momentum"], weight_decay=solver["weight_decay"])
    x = torch.randn(batch, sizes[0])
    y = torch.randint(0, sizes[-1], (batch,))
    loss_fn = torch.nn.CrossEntropyLoss()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
    step()
    return step


def main() -> None:
    models = {}
    for line in sys.stdin:
        request = json.loads(line)
        if request["cmd"] == "info":
            answer = {"torch": torch.__version__, "threads": torch.get_num_threads()}
        else:
            key = (tuple(request["sizes"]), request["batch"])
            if key not in models:
                models[key] = build(list(key[0]), key[1], request["solver"])
            step, k = models[key], request["iterations"]
            start = time.perf_counter()
            for _ in range(k):
                step()
            answer = {"seconds": (time.perf_counter() - start) / k}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
