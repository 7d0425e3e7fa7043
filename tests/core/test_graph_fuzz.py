"""Random valid graphs built from the registered gates build, run forward and backward, and pass
the gradient checker: the engine (ordering, fan-out sums, parameters) holds for any wiring.

A gate type takes part when, built with its `check_options`, it maps inputs of one shape to an
output of that shape, and it does not restrict its inputs' domain (a class that overrides
`sample_inputs`, as Log and the losses do, is left out). Found through the registry, so gates
added later join in.
"""
from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gates import Gate, registered_gates
from net import Net
from net.gradcheck import check_net
from tests.helpers import examples

SHAPE = (3, 4)


def composable() -> list[str]:
    names = []
    for name, cls in sorted(registered_gates().items()):
        if cls.__module__.split(".")[0] != "gates" or cls.sample_inputs is not Gate.sample_inputs:
            continue
        low, high = cls.bottom_range()
        if low < 1 or (high is not None and high < low) or cls.num_tops != 1:
            continue
        try:
            gate = cls(**cls.check_options)
            shapes = [SHAPE] * low
            params = gate.param_specs(*shapes)
            out = gate.infer_shapes(*shapes, *[tuple(s) for s, _ in params.values()])
        except Exception:
            continue
        if out is not None and tuple(out[0]) == SHAPE and not params:
            names.append(name)
    return names


TYPES = composable()


@st.composite
def graphs(draw):
    blobs = ["x0", "x1"]
    gates = []
    for index in range(draw(st.integers(1, 6))):
        type_name = draw(st.sampled_from(TYPES))
        cls = registered_gates()[type_name]
        gate = {"name": f"g{index}", "type": type_name, "top": f"b{index}",
                "bottom": [draw(st.sampled_from(blobs)) for _ in range(cls.bottom_range()[0])]}
        gate.update(cls.check_options)
        gates.append(gate)
        blobs.append(gate["top"])
    order = draw(st.permutations(gates))
    return {"dtype": "float64", "inputs": {"x0": {"shape": list(SHAPE)},
                                           "x1": {"shape": list(SHAPE)}}, "gates": list(order)}


def test_enough_gate_types_take_part():
    assert {"Add", "Multiply", "Max", "ReLU", "Tanh"} <= set(TYPES)


@settings(max_examples=examples(40), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(config=graphs(), seed=st.integers(0, 2**16))
def test_random_graphs_build_run_and_pass_the_checker(config, seed):
    net = Net.from_config(config)
    rng = np.random.default_rng(seed)
    feed = {name: 0.5 * rng.standard_normal(SHAPE) for name in ("x0", "x1")}
    outputs = net.forward(feed)
    assert outputs and all(np.all(np.isfinite(v)) for v in outputs.values())
    grads = net.backward()
    assert grads and all(g.shape == SHAPE for g in grads.values())
    report = check_net(net, feed, seed=seed)
    assert report.ok, str(report)
