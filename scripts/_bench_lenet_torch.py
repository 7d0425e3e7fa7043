"""PyTorch side of scripts/bench_lenet.py, run in its own process by net.bench_lenet.Worker.

It needs only torch and numpy (it may run from another environment, `--torch-python`). The step is
Gatework's: Caffe's LeNet (conv 20 5x5, max pool 2, conv 50 5x5, max pool 2, fully connected 500,
ReLU, fully connected 10), cross-entropy averaged over the batch, float32 on the CPU, SGD with
momentum 0.9 and weight decay 5e-4. One JSON request per line on stdin, one JSON answer per line
on stdout: {"cmd": "info"}, {"cmd": "time", "iterations": k}, {"cmd": "memory"}.
"""
from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
import torch

BATCH = 64


def build():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 20, 5), torch.nn.MaxPool2d(2, 2),
        torch.nn.Conv2d(20, 50, 5), torch.nn.MaxPool2d(2, 2),
        torch.nn.Flatten(), torch.nn.Linear(800, 500), torch.nn.ReLU(), torch.nn.Linear(500, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.random((BATCH, 1, 28, 28), dtype=np.float32))
    y = torch.from_numpy(rng.integers(0, 10, BATCH))
    loss_fn = torch.nn.CrossEntropyLoss()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
    step()
    return step


def main() -> None:
    threads = int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
    if threads > 0:
        torch.set_num_threads(threads)
    step = build()
    for line in sys.stdin:
        request = json.loads(line)
        if request["cmd"] == "info":
            answer = {"version": torch.__version__, "threads": torch.get_num_threads()}
        elif request["cmd"] == "time":
            k = request["iterations"]
            start = time.perf_counter()
            for _ in range(k):
                step()
            answer = {"seconds": (time.perf_counter() - start) / k}
        else:
            with open("/proc/self/statm") as f:
                answer = {"rss_bytes": int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
