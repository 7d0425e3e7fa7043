"""Nets of one gate for the ONNX tests: the gate built from its gradient-check settings (or
given options and input shapes), its inputs declared with an open batch dimension."""
from __future__ import annotations

import numpy as np

from gates import gate_class
from net import Net

#: gates whose first input axis is time, not the batch: their inputs keep fixed shapes
TIME_MAJOR = ("RNN", "LSTM")


def one_gate_net(type_name: str, options: dict | None = None, shapes: list | None = None,
                 open_batch: bool = True, dtype: str = "float32", open_inputs: int = 99
                 ) -> tuple[Net, dict]:
    """A net of one gate fed its gradient-check inputs (or standard normal ones of `shapes`),
    the first dimension of each input (of the first `open_inputs`) open unless the gate is
    time-major."""
    cls = gate_class(type_name)
    options = dict(cls.check_options if options is None else options)
    gate = cls(**options)
    rng = np.random.default_rng(0)
    samples = [rng.standard_normal(s) for s in shapes] if shapes else gate.sample_inputs(rng)
    inputs, feed = {}, {}
    for index, value in enumerate(samples):
        value = np.asarray(value)
        shape = list(value.shape)
        if open_batch and shape and type_name not in TIME_MAJOR and index < open_inputs:
            shape[0] = None
        inputs[f"in{index}"] = {"shape": shape, **({"dtype": "int"} if value.dtype.kind in "iu"
                                                    else {})}
        feed[f"in{index}"] = value
    spec = {"name": type_name, "dtype": dtype, "inputs": inputs, "gates": [
        {"name": "g", "type": type_name, "bottom": list(inputs),
         "top": [f"out{k}" for k in range(gate.num_tops)], **options}]}
    return Net.from_config(spec, phase="test"), feed
