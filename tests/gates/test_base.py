"""gates/base.py: options (types, conversion, ranges, finiteness), the registry (taken names,
suggestions, redefinition, classes that skip Gate.__init__), needs_input_grad and max_along."""
from __future__ import annotations

import re

import numpy as np
import pytest

from gates import Gate, Option, gate_class, register_gate
from gates.base import max_along
from net import ConfigError, Net


# -- the registry ----------------------------------------------------------------------------------
def test_registering_a_taken_name_is_an_error(clean_registry):
    with pytest.raises(ValueError, match="already registered"):
        @register_gate("Add")
        class AnotherAdd(Gate):
            def forward(self, a, b):
                return a + b


def test_unknown_type_suggests_the_closest():
    with pytest.raises(KeyError, match="did you mean 'Multiply'"):
        gate_class("Multipy")


def test_a_gate_class_that_skips_gate_init_is_refused(clean_registry):
    with pytest.raises(TypeError, match="does not call Gate.__init__"):
        @register_gate
        class ForgetfulGate(Gate):
            def __init__(self, **options):
                self.scale = 2.0

            def forward(self, x):
                return x


def test_defining_the_same_gate_class_again_replaces_it(clean_registry):
    def define(factor):
        @register_gate
        class TwiceGate(Gate):
            def forward(self, x):
                return factor * x

            def backward(self, dout):
                return (factor * dout,)
        return TwiceGate

    first, second = define(2.0), define(3.0)
    assert gate_class("Twice") is second and first is not second


# -- options ---------------------------------------------------------------------------------------
def test_option_types_are_checked():
    with pytest.raises(ConfigError, match="option 'num_output' must be a positive integer"):
        Net.from_config({"inputs": {"x": {"shape": [None, 3]}}, "gates": [
            {"name": "fc", "type": "InnerProduct", "bottom": "x", "top": "y",
             "num_output": "ten"}]})


def test_options_default_and_convert():
    assert Option(float, 1.0).convert(2) == 2.0
    with pytest.raises(ValueError):
        Option(int, 1).convert(True)


@pytest.mark.parametrize("interval, good, bad, words", [
    ("[0, 1)", (0, 0.5, 0.999), (1, -0.1, 2), "must be a number in [0, 1) or a list"),
    ("(0, inf)", (1e-9, 5, 1e300), (0, -1), "must be a positive number or a list"),
    ("[1, inf)", (1, 7, [2, 3]), (0, [2, 0]), "must be a number in [1, inf) or a list"),
])
def test_option_ranges_are_checked_and_said_in_words(interval, good, bad, words):
    option = Option((float, list), 1.0, range=interval)
    for value in good:
        option.convert(value)
    for value in bad:
        with pytest.raises(ValueError, match=re.escape(f"{words}, got {value!r}")):
            option.convert(value)


def test_float_options_are_finite_and_numpy_scalars_are_numbers():
    with pytest.raises(ValueError, match="finite"):
        Option(float, 1.0).convert(float("nan"))
    assert Option(int, 1).convert(np.int64(3)) == 3 and type(Option(int, 1).convert(np.int64(3))) is int
    assert Option(float, 1.0).convert(np.float32(0.5)) == 0.5


# -- the contract ----------------------------------------------------------------------------------
def test_needs_input_grad_is_always_a_full_tuple():
    fc = gate_class("InnerProduct")(num_output=2)
    assert all(fc.needs_input_grad[:3])                       # by hand: every input wanted
    net = Net.from_config({"inputs": {"x": {"shape": [None, 3]}}, "gates": [
        {"name": "fc", "type": "InnerProduct", "bottom": "x", "top": "y", "num_output": 2}]})
    assert net.gates["fc"].needs_input_grad == (True, True, True)   # set by the Net at build


# -- helpers ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape, axis", [((130, 10), 1), ((130, 10), -1), ((64, 32), 1),
                                         ((63, 10), 1), ((130, 33), 1), ((130, 10), 0),
                                         ((4, 130, 10), 2), ((130, 1), 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_max_along_is_numpys_max(shape, axis, dtype):
    """Either way it is found (a transposed copy for tall arrays of short rows), the maximum is
    numpy's keepdims max: the same shape, dtype and values, NaN and infinities included (a row of
    zeros of both signs may give either zero, as numpy's own order of comparisons may)."""
    rng = np.random.default_rng(3)
    x = (rng.standard_normal(shape) * 10).astype(dtype)
    if dtype != np.int64:
        flat = x.reshape(-1)
        flat[[0, 7, 50]] = np.nan, np.inf, -np.inf
        rows = x.reshape(-1, shape[-1])
        rows[5] = -0.0                  # all negative zeros
        rows[6] = 0.0                   # zeros of both signs, both ways round
        rows[6, ::2] = -0.0
        rows[8] = -0.0
        rows[8, ::2] = 0.0
    ours, numpys = max_along(x, axis), x.max(axis=axis, keepdims=True)
    assert ours.shape == numpys.shape and ours.dtype == numpys.dtype
    np.testing.assert_array_equal(ours, numpys, strict=True)
