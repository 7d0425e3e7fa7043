"""The runner's hooks: in debug mode the first NaN or Inf stops the pass, naming the gate, the
blob and the direction."""
from __future__ import annotations

import numpy as np
import pytest

from net import Net


def test_debug_mode_stops_at_the_first_nan_naming_gate_blob_and_direction():
    from net import NumericalError
    net = Net.from_config({"dtype": "float64", "debug": True, "inputs": {"x": {"shape": [3]}},
                           "gates": [{"name": "log", "type": "Log", "bottom": "x", "top": "y"},
                                     {"name": "twice", "type": "Power", "bottom": "y", "top": "z",
                                      "scale": 2.0}]})
    with pytest.raises(NumericalError, match="forward pass: gate 'log' \\(Log\\) wrote NaN/Inf "
                                             "to its output 'y' \\(1 of 3 values\\)") as err, \
            np.errstate(invalid="ignore"):
        net.forward({"x": [1.0, -1.0, 2.0]})
    assert (err.value.gate, err.value.blob, err.value.direction) == ("log", "y", "forward")
    net.forward({"x": [1.0, 0.5, 2.0]})
    with pytest.raises(NumericalError, match="backward pass: gate 'twice'"):
        net.backward({"z": [1.0, np.inf, 0.0]})
    net.debug = False
    with np.errstate(invalid="ignore"):
        net.forward({"x": [1.0, -1.0, 2.0]})  # without debug, NaN flows on silently as in numpy
