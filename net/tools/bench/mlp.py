"""The MLP table of the benchmark: Gatework against the same arithmetic written by hand (and
PyTorch), for one training iteration of three MLPs, plus the lecture's scalar example, a chain of
N gates (the O(n) claim), backward / forward, and peak memory.

- `mlp_rows`: one training iteration (forward, backward, momentum SGD) of ReLU MLPs ending in
  SoftmaxWithLoss, float32, through Gatework, through `NumpyMLP` (a hand-written numpy loop doing
  the same arithmetic, from the same initial weights) and through PyTorch in its own process.
- `scalar_example`: the lecture's f = (x + y) max(y, z), forward + backward, per call; beside
  it the same maths on plain Python floats and, in its own process, micrograd's.
- `chain_rows`: a chain of N Power gates (scale only), time per gate forward and backward.
- `backward_over_forward`: backward time / forward time of one MLP.
- `peak_memory`: the peak traced memory (tracemalloc; numpy reports its buffers to it) during one
  steady-state training iteration, run in a fresh process per variant
  (`python -m net.tools.bench.mlp VARIANT MLP` prints it).
"""
from __future__ import annotations

import gc
import json
import subprocess
import sys
import time
import tracemalloc
from dataclasses import dataclass

import numpy as np

from ...core.net import Net
from ...errors import GateworkError
from ...train.solver import Solver
from .common import (SOLVER, TARGETS, alternate, calibrate, machine, median, paired_ratio,
                     Worker, micrograd_worker, per_call, rows_text, torch_worker, verdict)


SEED_EXAMPLE = {
    "name": "seed_example", "dtype": "float64",
    "inputs": {"x": {"shape": [], "value": 1}, "y": {"shape": [], "value": 2},
               "z": {"shape": [], "value": 0}},
    "gates": [{"name": "add", "type": "Add", "bottom": ["x", "y"], "top": "a"},
              {"name": "max", "type": "Max", "bottom": ["y", "z"], "top": "b"},
              {"name": "mul", "type": "Multiply", "bottom": ["a", "b"], "top": "f"}],
}


@dataclass(frozen=True)
class MLP:
    """A ReLU MLP: `sizes` from the input features to the classes, trained on batches of `batch`."""
    sizes: tuple[int, ...]
    batch: int

    @property
    def name(self) -> str:
        return "-".join(map(str, self.sizes))


MLPS = (MLP((64, 32, 10), 32), MLP((784, 256, 256, 10), 128), MLP((784, 1024, 1024, 10), 256))

RATIO_MLP = MLPS[1]      # backward / forward is measured on this one

def mlp_by_name(name: str) -> MLP:
    return next(m for m in MLPS if m.name == name)


def mlp_config(mlp: MLP) -> dict:
    """The MLP as a Gatework config: InnerProduct/ReLU pairs, then SoftmaxWithLoss."""
    gates, bottom = [], "data"
    layers = len(mlp.sizes) - 1
    for i, width in enumerate(mlp.sizes[1:], 1):
        gates.append({"name": f"fc{i}", "type": "InnerProduct", "bottom": bottom,
                      "top": f"fc{i}", "num_output": width})
        bottom = f"fc{i}"
        if i < layers:
            gates.append({"name": f"relu{i}", "type": "ReLU", "bottom": bottom,
                          "top": f"relu{i}"})
            bottom = f"relu{i}"
    gates.append({"name": "loss", "type": "SoftmaxWithLoss", "bottom": [bottom, "label"],
                  "top": "loss"})
    return {"name": f"mlp_{mlp.name}", "dtype": "float32",
            "inputs": {"data": {"shape": [None, mlp.sizes[0]]},
                       "label": {"shape": [None], "dtype": "int"}},
            "gates": gates, "solver": dict(SOLVER)}


def mlp_batch(mlp: MLP, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"data": rng.standard_normal((mlp.batch, mlp.sizes[0])).astype(np.float32),
            "label": rng.integers(0, mlp.sizes[-1], mlp.batch)}


class GateworkMLP:
    """One training iteration through Gatework: `Solver.step` (forward, backward to the
    trainable parameters, Caffe's momentum SGD in place: v = mu v + lr (g + wd w); w -= v)."""

    def __init__(self, mlp: MLP, seed: int = 0):
        self.net = Net.from_config(mlp_config(mlp), seed=seed)
        self.solver = Solver.from_config(self.net, SOLVER)
        self.step = self.solver.step


class NumpyMLP:
    """The same iteration written by hand in numpy, the way a course assignment does it (forward,
    a backward pass collecting every gradient, then the update): the same operations in the same
    float32 arithmetic as the gates and the solver, from the same initial weights."""

    def __init__(self, params: list[np.ndarray], mlp: MLP):
        self.W = [p.copy() for p in params[0::2]]
        self.b = [p.copy() for p in params[1::2]]
        self.params = [p for pair in zip(self.W, self.b) for p in pair]
        self.velocity = [np.zeros_like(p) for p in self.params]
        self.scratch = [np.empty_like(p) for p in self.params]
        self.lr, self.mu, self.wd = SOLVER["base_lr"], SOLVER["momentum"], SOLVER["weight_decay"]

    def step(self, feed: dict[str, np.ndarray]) -> float:
        x, labels = feed["data"], feed["label"]
        acts = [x]
        for i, (W, b) in enumerate(zip(self.W, self.b)):
            h = acts[-1] @ W.T
            h += b
            acts.append(np.maximum(h, 0) if i < len(self.W) - 1 else h)
        scores = acts.pop()
        rows = np.arange(len(labels))
        shifted = scores - scores.max(axis=1, keepdims=True)
        picked = shifted[rows, labels]
        prob = np.exp(shifted, out=shifted)
        sums = prob.sum(axis=1, keepdims=True)
        prob /= sums
        loss = np.asarray(-(picked - np.log(sums[:, 0])).sum() / len(labels), dtype=scores.dtype)
        dout = prob.copy()
        dout[rows, labels] -= 1
        dout *= 1.0 / len(labels)
        grads = [None] * len(self.params)
        for i in range(len(self.W) - 1, -1, -1):
            a = acts[i]
            grads[2 * i], grads[2 * i + 1] = dout.T @ a, dout.sum(axis=0)
            if i > 0:
                dout = (dout @ self.W[i]) * (a > 0)
        for w, v, g, step in zip(self.params, self.velocity, grads, self.scratch):
            np.multiply(w, self.wd, out=step)      # v = mu v + lr (g + wd w);  w -= v
            step += g
            v *= self.mu
            np.multiply(step, self.lr, out=step)
            v += step
            w -= v
        return float(loss)


def mlp_model(mlp: MLP) -> dict:
    """The MLP as a PyTorch worker builds it (`scripts/_bench_torch.py`)."""
    return {"kind": "mlp", "sizes": list(mlp.sizes), "batch": mlp.batch, "solver": SOLVER}


def mlp_rows(mlps: tuple[MLP, ...], repeats: int, block: float,
             torch: Worker | None = None) -> list[dict]:
    """One row per MLP: median ms per training iteration of each variant, and their ratios."""
    rows = []
    for mlp in mlps:
        feed = mlp_batch(mlp)
        gatework = GateworkMLP(mlp)
        numpy_loop = NumpyMLP(list(gatework.net.params.values()), mlp)
        steps = {"gatework": lambda g=gatework: g.step(feed),
                 "numpy": lambda n=numpy_loop: n.step(feed)}
        counts = {name: calibrate(per_call(fn, 2), block) for name, fn in steps.items()}
        blocks: dict[str, Callable[[], float]] = {
            name: (lambda fn=fn, k=counts[name]: per_call(fn, k)) for name, fn in steps.items()}
        if torch is not None:
            model = mlp_model(mlp)
            torch_k = calibrate(torch.seconds_per_step(model, 2), block)
            blocks["pytorch"] = lambda k=torch_k, m=model: torch.seconds_per_step(m, k)
        times = alternate(blocks, repeats)
        row = {"mlp": mlp.name, "batch": mlp.batch,
               **{f"{name}_ms": median(values) * 1e3 for name, values in times.items()}}
        row["gatework_over_numpy"] = paired_ratio(times["gatework"], times["numpy"])
        if torch is not None:
            row["pytorch_over_numpy"] = paired_ratio(times["pytorch"], times["numpy"])
        rows.append(row)
    return rows


def scalar_example(repeats: int, block: float, micrograd: Worker | None = None) -> dict:
    """The lecture's example, net.forward() + net.backward(), in microseconds per call; the same
    two calls written as plain Python on floats, for scale; and, when `micrograd` is a worker
    (micrograd_side.py, checked by `check_micrograd`), micrograd's forward and backward of it,
    timed in alternation with the others, and Gatework / micrograd as the median of the
    per-repeat ratios."""
    net = Net.from_config(SEED_EXAMPLE)

    def gatework() -> None:
        net.forward()
        net.backward()

    def plain() -> None:
        x, y, z = 1.0, 2.0, 0.0
        a, b = x + y, max(y, z)
        da, db = b, a
        return da, da + db * (y > z), db * (z >= y)

    counts = {"gatework": calibrate(per_call(gatework, 20), block),
              "python": calibrate(per_call(plain, 20), block)}
    blocks = {"gatework": lambda: per_call(gatework, counts["gatework"]),
              "python": lambda: per_call(plain, counts["python"])}
    if micrograd is not None:
        counts["micrograd"] = calibrate(micrograd_call(micrograd, 20), block)
        blocks["micrograd"] = lambda: micrograd_call(micrograd, counts["micrograd"])
    times = alternate(blocks, repeats)
    result = {name + "_us": median(times[name]) * 1e6 for name in times}
    if micrograd is not None:
        result["micrograd_version"] = micrograd.info["version"]
        result["gatework_over_micrograd"] = paired_ratio(times["gatework"], times["micrograd"])
    return result


def check_micrograd(micrograd: Worker) -> None:
    """Refuse, in one line, a micrograd whose gradients of the scalar example are not Gatework's
    (the lecture's df/dx, df/dy, df/dz = 2, 5, 0): it would time other maths."""
    net = Net.from_config(SEED_EXAMPLE)
    net.forward()
    ours = [float(g) for g in net.backward().values()]
    theirs = micrograd.info["gradients"]
    if theirs != ours:
        raise GateworkError(f"micrograd's gradients of the scalar example are {theirs}, "
                            f"Gatework's {ours}: not the same maths, so not timed")


def micrograd_call(micrograd: Worker, iterations: int) -> float:
    """Seconds per call of micrograd's scalar example, over `iterations` calls in its process."""
    return micrograd.ask({"cmd": "time", "iterations": iterations})["seconds"]


def forward_backward(net: Net, feed: dict, wrt: list[str], k: int) -> tuple[float, float]:
    """Seconds per forward and per backward (to `wrt`) over `k` passes, timed in one loop."""
    forward = backward = 0.0
    for _ in range(k):
        start = time.perf_counter()
        net.forward(feed)
        middle = time.perf_counter()
        net.backward(wrt=wrt)
        forward += middle - start
        backward += time.perf_counter() - middle
    return forward / k, backward / k


def chain_config(n: int) -> dict:
    """x -> Power -> Power -> ... (n gates), on a vector of 16 float32 values."""
    gates = [{"name": f"s{i}", "type": "Power", "bottom": f"b{i}" if i else "x",
              "top": f"b{i + 1}", "scale": 1.0} for i in range(n)]
    return {"name": f"chain_{n}", "inputs": {"x": {"shape": [16]}}, "gates": gates}


def chain_rows(sizes: tuple[int, ...], repeats: int, block: float) -> list[dict]:
    """Per N: microseconds per gate of a whole forward and of a whole backward pass."""
    feed = {"x": np.ones(16, np.float32)}
    nets = {n: Net.from_config(chain_config(n)) for n in sizes}
    wrt = ["x"]
    for net in nets.values():
        net.forward(feed)
        net.backward(wrt=wrt)
    blocks, counts = {}, {}
    for n, net in nets.items():
        single = per_call(lambda net=net: (net.forward(feed), net.backward(wrt=wrt)), 2)
        counts[n] = calibrate(single, block)
        blocks[n] = lambda net=net, k=counts[n]: forward_backward(net, feed, wrt, k)
    times = alternate(blocks, repeats)
    return [{"n": n, "forward_us_per_gate": median([f for f, _ in times[n]]) * 1e6 / n,
             "backward_us_per_gate": median([b for _, b in times[n]]) * 1e6 / n}
            for n in sizes]


def backward_over_forward(mlp: MLP, repeats: int, block: float) -> dict:
    """Forward and backward (to the parameters, as in training) of the Gatework MLP, timed
    separately in the same loop; medians in ms and their ratio."""
    gatework = GateworkMLP(mlp)
    net, feed, wrt = gatework.net, mlp_batch(mlp), gatework.solver.trainable
    single = per_call(lambda: (net.forward(feed), net.backward(wrt=wrt)), 2)
    k = calibrate(single, block)
    times = alternate({"run": lambda: forward_backward(net, feed, wrt, k)}, repeats)["run"]
    forward, backward = median([f for f, _ in times]), median([b for _, b in times])
    return {"mlp": mlp.name, "batch": mlp.batch, "forward_ms": forward * 1e3,
            "backward_ms": backward * 1e3, "ratio": backward / forward}


def peak_memory(variant: str, mlp: MLP, warmup: int = 2) -> dict:
    """Peak memory traced during one steady-state training iteration of `variant` ("gatework" or
    "numpy"), everything the process allocated since before the model was built included.
    Run it in a fresh process: tracemalloc slows everything and sees only what follows start()."""
    tracemalloc.start()
    feed = mlp_batch(mlp)
    gatework = GateworkMLP(mlp)
    model = gatework if variant == "gatework" else NumpyMLP(list(gatework.net.params.values()), mlp)
    if variant != "gatework":
        del gatework
        gc.collect()
    for _ in range(warmup):
        model.step(feed)
    before = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    model.step(feed)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"variant": variant, "mlp": mlp.name, "before_bytes": before, "peak_bytes": peak}


# -- the machine -----------------------------------------------------------------------------------

def run(quick: bool = False, repeats: int | None = None, threads: int | None = None,
        torch_python: str | None = None, micrograd_python: str | None = None) -> dict:
    """Every section above (two MLPs, shorter blocks and chains, 3 repeats when `quick`); the
    PyTorch rows when `torch_python` can import torch, micrograd's scalar example when
    `micrograd_python` can import micrograd. `threads` is only recorded: the thread variables
    must be set before numpy loads (the script does it)."""
    repeats = repeats or (3 if quick else 21)
    block = 0.005 if quick else 0.05
    mlps = MLPS[:2] if quick else MLPS
    micrograd = micrograd_worker(micrograd_python)
    try:
        if micrograd is not None:
            check_micrograd(micrograd)      # before the long MLP rows, not after them
        torch = torch_worker(torch_python)
        try:
            results = {"machine": machine(), "repeats": repeats, "threads": threads,
                       "torch": torch.info if torch else None,
                       "mlp": mlp_rows(mlps, repeats, block, torch)}
        finally:
            if torch is not None:
                torch.close()
        results["scalar"] = scalar_example(repeats, block, micrograd)
    finally:
        if micrograd is not None:
            micrograd.close()
    results["chain"] = chain_rows((10, 100, 1000) if quick else (10, 100, 1000, 10000),
                                  repeats, block)
    results["backward_over_forward"] = backward_over_forward(RATIO_MLP, repeats, block)
    results["memory"] = [memory_row(mlp) for mlp in (mlps[:1] if quick else mlps)]
    return results


def memory_row(mlp: MLP) -> dict:
    """Peak memory of Gatework and of the numpy loop, each measured in a fresh process
    (`python -m net.tools.bench.mlp VARIANT MLP` prints `peak_memory`'s answer)."""
    row = {"mlp": mlp.name, "batch": mlp.batch}
    for variant in ("gatework", "numpy"):
        done = subprocess.run([sys.executable, "-m", "net.tools.bench.mlp", variant, mlp.name],
                              capture_output=True, text=True, check=True)
        row[f"{variant}_mb"] = json.loads(done.stdout)["peak_bytes"] / 2**20
    row["ratio"] = row["gatework_mb"] / row["numpy_mb"]
    return row


def report(results: dict) -> str:
    """`run`'s results as the table the README shows."""
    m = results["machine"]
    torch = results["torch"]
    torch_text = ", PyTorch not run"
    if torch:
        plural = "s" if torch["threads"] != 1 else ""
        torch_text = f", PyTorch {torch['version']} ({torch['threads']} thread{plural})"
    lines = [f"Gatework benchmark, {m['date']}, {m['cpu']} ({m['cores']} cores), Python "
             f"{m['python']}, numpy {m['numpy']} ({m['blas']})" + torch_text,
             f"medians of {results['repeats']} alternating repeats; ratios are medians of the "
             "per-repeat ratios; " + (f"{results['threads']} BLAS/OpenMP thread(s)"
                                      if results.get("threads") else "default threads"), "",
             "Training iteration (forward, backward, momentum SGD), float32, ms per iteration:"]
    header = ["MLP", "batch", "Gatework", "numpy loop", "PyTorch", "Gatework/numpy",
              "PyTorch/numpy", "target"]
    rows = []
    for r in results["mlp"]:
        target = TARGETS["mlp_tiny"] if r["mlp"] == MLPS[0].name else TARGETS["mlp"]
        rows.append([r["mlp"], str(r["batch"]), f"{r['gatework_ms']:.3f}", f"{r['numpy_ms']:.3f}",
                     f"{r['pytorch_ms']:.3f}" if "pytorch_ms" in r else "-",
                     f"{r['gatework_over_numpy']:.2f}",
                     f"{r['pytorch_over_numpy']:.2f}" if "pytorch_over_numpy" in r else "-",
                     f"<= {target:.2f} {verdict(r['gatework_over_numpy'] <= target)}"])
    lines += rows_text(header, rows)
    s = results["scalar"]
    lines += ["", f"Scalar example f = (x + y) max(y, z), forward + backward: "
                  f"{s['gatework_us']:.1f} us per call (target < {TARGETS['scalar_us']:.0f} us "
                  f"{verdict(s['gatework_us'] < TARGETS['scalar_us'])}; the same maths as plain "
                  f"Python floats: {s['python_us']:.2f} us)"]
    if "micrograd_us" in s:
        lines.append(f"  micrograd {s['micrograd_version']} (its own process): "
                     f"{s['micrograd_us']:.1f} us per call; Gatework / micrograd = "
                     f"{s['gatework_over_micrograd']:.2f}")
    else:
        lines.append("  micrograd not run (it cannot be imported by --micrograd-python's "
                     "interpreter, by default --torch-python's)")
    chain = results["chain"]
    lines += ["", "Chain of N Power gates (16 float32 values), us per gate:"]
    lines += rows_text(["N", "forward", "backward"],
                  [[str(c["n"]), f"{c['forward_us_per_gate']:.2f}",
                    f"{c['backward_us_per_gate']:.2f}"] for c in chain])
    for key, word in (("forward_us_per_gate", "forward"), ("backward_us_per_gate", "backward")):
        values = [c[key] for c in chain]
        spread = max(values) / min(values)
        flat = TARGETS["chain_flat"]
        lines.append(f"  {word}: largest / smallest per-gate cost = {spread:.2f} "
                     f"(target <= {flat} {verdict(spread <= flat)})")
    b = results["backward_over_forward"]
    lines += ["", f"Backward / forward, {b['mlp']} batch {b['batch']}: {b['backward_ms']:.3f} ms / "
                  f"{b['forward_ms']:.3f} ms = {b['ratio']:.2f} (target <= "
                  f"{TARGETS['backward_over_forward']} "
                  f"{verdict(b['ratio'] <= TARGETS['backward_over_forward'])})"]
    lines += ["", "Peak memory of one training iteration (tracemalloc, fresh process each), MiB:"]
    lines += rows_text(["MLP", "batch", "Gatework", "numpy loop", "ratio", "target"],
                  [[r["mlp"], str(r["batch"]), f"{r['gatework_mb']:.2f}", f"{r['numpy_mb']:.2f}",
                    f"{r['ratio']:.2f}",
                    f"<= {TARGETS['memory']} {verdict(r['ratio'] <= TARGETS['memory'])}"]
                   for r in results["memory"]])
    return "\n".join(lines)


if __name__ == "__main__":
    print(json.dumps(peak_memory(sys.argv[1], mlp_by_name(sys.argv[2]))))
