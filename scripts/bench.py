#!/usr/bin/env python3
"""Benchmark Gatework against a hand-written numpy loop (and PyTorch), and print one table.

    python scripts/bench.py                      # the full run (a few minutes on 2 cores)
    python scripts/bench.py --quick              # a smoke test, a few seconds
    python scripts/bench.py --torch-python /path/to/venv/bin/python --json

Each figure is a median over repeats; each ratio compares variants timed in alternation in this
same run. PyTorch runs in its own process, from the interpreter --torch-python names (default:
this one); its rows are skipped when torch cannot be imported there.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _set_threads(argv: list[str]) -> None:
    """--threads N becomes the thread variables that OpenBLAS and OpenMP read when numpy (and,
    in its worker process, torch) load: so this runs before any import of numpy."""
    for i, arg in enumerate(argv):
        value = arg.partition("=")[2] if arg.startswith("--threads=") else (
            argv[i + 1] if arg == "--threads" and i + 1 < len(argv) else None)
        if value and value.isdigit():
            os.environ.update({name: value for name in THREAD_VARIABLES})


if __name__ == "__main__":
    _set_threads(sys.argv[1:])

from net import bench  # noqa: E402
from net.cli import add_common_arguments, dump_json, guarded  # noqa: E402

TARGETS = {"mlp_tiny": 2.0, "mlp": 1.10, "scalar_us": 15.0, "chain_flat": 1.5,
           "backward_over_forward": 2.5, "memory": 1.3}


def measure(args: argparse.Namespace) -> dict:
    quick = args.quick
    repeats = args.repeats or (3 if quick else 21)
    block = 0.005 if quick else 0.05
    mlps = bench.MLPS[:2] if quick else bench.MLPS
    torch = None
    if args.torch_python and bench.torch_available(args.torch_python):
        torch = bench.TorchWorker(args.torch_python)
    try:
        results = {"machine": bench.machine(), "repeats": repeats, "threads": args.threads,
                   "torch": torch.info if torch else None,
                   "mlp": bench.mlp_rows(mlps, repeats, block, torch)}
    finally:
        if torch is not None:
            torch.close()
    results["scalar"] = bench.scalar_example(repeats, block)
    results["chain"] = bench.chain_rows((10, 100, 1000) if quick else (10, 100, 1000, 10000),
                                        repeats, block)
    results["backward_over_forward"] = bench.backward_over_forward(bench.RATIO_MLP, repeats, block)
    results["memory"] = [memory_row(mlp) for mlp in (mlps[:1] if quick else mlps)]
    return results


def memory_row(mlp: bench.MLP) -> dict:
    """Peak memory of Gatework and of the numpy loop, each measured in a fresh process."""
    row = {"mlp": mlp.name, "batch": mlp.batch}
    for variant in ("gatework", "numpy"):
        done = subprocess.run([sys.executable, __file__, "--memory-worker", variant, mlp.name],
                              capture_output=True, text=True, check=True)
        row[f"{variant}_mb"] = json.loads(done.stdout)["peak_bytes"] / 2**20
    row["ratio"] = row["gatework_mb"] / row["numpy_mb"]
    return row


def table(results: dict) -> str:
    m = results["machine"]
    torch = results["torch"]
    torch_text = ", PyTorch not run"
    if torch:
        plural = "s" if torch["threads"] != 1 else ""
        torch_text = f", PyTorch {torch['torch']} ({torch['threads']} thread{plural})"
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
        target = TARGETS["mlp_tiny"] if r["mlp"] == bench.MLPS[0].name else TARGETS["mlp"]
        rows.append([r["mlp"], str(r["batch"]), f"{r['gatework_ms']:.3f}", f"{r['numpy_ms']:.3f}",
                     f"{r['pytorch_ms']:.3f}" if "pytorch_ms" in r else "-",
                     f"{r['gatework_over_numpy']:.2f}",
                     f"{r['pytorch_over_numpy']:.2f}" if "pytorch_over_numpy" in r else "-",
                     f"<= {target:.2f} {_verdict(r['gatework_over_numpy'] <= target)}"])
    lines += _grid(header, rows)
    s = results["scalar"]
    lines += ["", f"Scalar example f = (x + y) max(y, z), forward + backward: "
                  f"{s['gatework_us']:.1f} us per call (target < {TARGETS['scalar_us']:.0f} us "
                  f"{_verdict(s['gatework_us'] < TARGETS['scalar_us'])}; the same maths as plain "
                  f"Python floats: {s['python_us']:.2f} us)"]
    chain = results["chain"]
    lines += ["", "Chain of N Scale gates (16 float32 values), us per gate:"]
    lines += _grid(["N", "forward", "backward"],
                   [[str(c["n"]), f"{c['forward_us_per_gate']:.2f}",
                     f"{c['backward_us_per_gate']:.2f}"] for c in chain])
    for key, word in (("forward_us_per_gate", "forward"), ("backward_us_per_gate", "backward")):
        values = [c[key] for c in chain]
        spread = max(values) / min(values)
        flat = TARGETS["chain_flat"]
        lines.append(f"  {word}: largest / smallest per-gate cost = {spread:.2f} "
                     f"(target <= {flat} {_verdict(spread <= flat)})")
    b = results["backward_over_forward"]
    lines += ["", f"Backward / forward, {b['mlp']} batch {b['batch']}: {b['backward_ms']:.3f} ms / "
                  f"{b['forward_ms']:.3f} ms = {b['ratio']:.2f} (target <= "
                  f"{TARGETS['backward_over_forward']} "
                  f"{_verdict(b['ratio'] <= TARGETS['backward_over_forward'])})"]
    lines += ["", "Peak memory of one training iteration (tracemalloc, fresh process each), MiB:"]
    lines += _grid(["MLP", "batch", "Gatework", "numpy loop", "ratio", "target"],
                   [[r["mlp"], str(r["batch"]), f"{r['gatework_mb']:.2f}", f"{r['numpy_mb']:.2f}",
                     f"{r['ratio']:.2f}",
                     f"<= {TARGETS['memory']} {_verdict(r['ratio'] <= TARGETS['memory'])}"]
                    for r in results["memory"]])
    return "\n".join(lines)


def _verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def _grid(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    fmt = lambda r: "  " + "  ".join(c.rjust(w) if i else c.ljust(w)  # noqa: E731
                                     for i, (c, w) in enumerate(zip(r, widths))).rstrip()
    return [fmt(header), "  " + "  ".join("-" * w for w in widths)] + [fmt(r) for r in rows]


def main(args: argparse.Namespace) -> int:
    if args.memory_worker:
        variant, name = args.memory_worker
        print(json.dumps(bench.peak_memory(variant, bench.mlp_by_name(name))))
        return 0
    results = measure(args)
    print(dump_json(results) if args.json else table(results))
    return 0


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="a smoke test: two MLPs, short blocks, 3 repeats")
    parser.add_argument("--repeats", type=int, help="repeats per figure (default 21; quick 3)")
    parser.add_argument("--torch-python", default=sys.executable, metavar="PATH",
                        help="the Python that runs the PyTorch rows (default: this one; rows "
                             "skipped when torch is not importable there)")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="threads for numpy's BLAS and for PyTorch (default: the libraries' "
                             "own choice); 1 keeps a busy shared machine from stalling them")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--memory-worker", nargs=2, metavar=("VARIANT", "MLP"),
                        help=argparse.SUPPRESS)
    add_common_arguments(parser)
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(guarded(main, parse_args()))
