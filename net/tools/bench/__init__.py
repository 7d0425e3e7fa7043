"""The benchmarks: `python -m net.tools.bench` (or `scripts/bench.py`).

    common      timing in alternation, medians, the machine, Worker processes
    mlp         the MLP table, the scalar example, the gate chain, memory
    convnets    LeNet and cifar10_quick against PyTorch: training step and inference
    mpi         data-parallel throughput with 1 and N processes
    torch_side  the PyTorch side of every comparison (run by path by another interpreter)
    cli         the command line

Workers are started as `python -m net.tools.bench.<module>`, so the benchmark runs the same from
an installed package as from a checkout. Nothing is imported here, so a worker loads only what
it uses.
"""
