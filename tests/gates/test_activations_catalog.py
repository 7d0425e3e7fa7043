"""Caffe's neuron layers (gates/activations.py): ReLU with negative_slope, PReLU, ELU, AbsVal,
BNLL, Threshold, Clip, Swish and the TanH name. Forward and backward against PyTorch in float64
(stored fixtures, and live where torch is importable), Caffe's conventions at the kinks by hand,
and the centred difference over option variants the registry-wide check does not cover."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from gates import Gate, UnknownGateType, gate_class, register_alias, register_gate, registered_gates
from net import Net
from net.gradcheck import check_gate
from tests.gates.fixtures import make_torch_fixtures_a as ORACLE


def make(type_name, **options):
    return gate_class(type_name)(**options)


# -- the values at the kinks, as Caffe takes them ----------------------------------------------
@pytest.mark.parametrize("type_name, options, x, out, grad", [
    ("ReLU", {}, [-2.0, 0.0, 3.0], [0.0, 0.0, 3.0], [0.0, 0.0, 1.0]),
    ("ReLU", {"negative_slope": 0.1}, [-2.0, 0.0, 3.0], [-0.2, 0.0, 3.0], [0.1, 0.1, 1.0]),
    ("ELU", {"alpha": 0.5}, [-np.log(2), 0.0, 3.0], [-0.25, 0.0, 3.0], [0.25, 0.5, 1.0]),
    ("AbsVal", {}, [-2.0, 0.0, 3.0], [2.0, 0.0, 3.0], [-1.0, 0.0, 1.0]),
    ("Clip", {"min": -1.0, "max": 2.0}, [-3.0, -1.0, 0.5, 2.0, 5.0], [-1.0, -1.0, 0.5, 2.0, 2.0],
     [0.0, 1.0, 1.0, 1.0, 0.0]),
    ("Threshold", {"threshold": 0.5}, [0.4, 0.5, 0.6], [0.0, 0.0, 1.0], None),
    ("BNLL", {}, [0.0, -1000.0, 1000.0], [np.log(2), 0.0, 1000.0], [0.5, 0.0, 1.0]),
    ("Swish", {"beta": 2.0}, [0.0, np.log(3) / 2], [0.0, 0.75 * np.log(3) / 2],
     [0.5, 0.75 + 0.75 * 0.25 * np.log(3)]),
])
def test_hand_values_and_caffes_gradient_at_the_kinks(type_name, options, x, out, grad):
    gate = make(type_name, **options)
    x = np.array(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                  # BNLL at +-1000: no overflow
        np.testing.assert_allclose(gate.forward(x), out, rtol=1e-15, atol=1e-15)
        (dx,) = gate.backward(np.ones_like(x))
    if grad is None:
        assert dx is None
    else:
        np.testing.assert_allclose(dx, grad, rtol=1e-15, atol=1e-15)


def test_relu_keeps_its_plain_form_and_float32():
    gate = make("ReLU")
    x = np.array([-1.0, 2.0], np.float32)
    assert gate.forward(x).dtype == np.float32
    leaky = make("ReLU", negative_slope=0.2)
    assert leaky.forward(x).dtype == np.float32
    assert leaky.backward(np.ones(2, np.float32))[0].dtype == np.float32


# -- PReLU's parameter --------------------------------------------------------------------------
@pytest.mark.parametrize("options, x_shape, slope_shape", [
    ({}, (2, 3, 4, 4), (3,)),
    ({}, (5, 7), (7,)),
    ({"channel_shared": True}, (2, 3, 4, 4), ()),
])
def test_prelu_has_one_slope_per_channel_or_one_shared(options, x_shape, slope_shape):
    gate = make("PReLU", **options)
    (shape, filler), = gate.param_specs(x_shape).values()
    assert shape == slope_shape and filler == {"type": "constant", "value": 0.25}
    report = check_gate(gate, [ORACLE.away(x_shape, 0.0)(np.random.default_rng(1))])
    assert report.ok and report.checked == int(np.prod(x_shape)) + int(np.prod(slope_shape))


def test_prelu_slope_gradient_is_the_sum_over_its_channel_of_the_negative_part():
    gate = make("PReLU")
    x = np.array([[[-1.0, 2.0], [3.0, -4.0]]])         # N=1, C=2, 2 positions
    out = gate.forward(x, np.array([0.5, 0.1]))
    np.testing.assert_array_equal(out, [[[-0.5, 2.0], [3.0, -0.4]]])
    dx, dslope = gate.backward(np.array([[[1.0, 1.0], [2.0, 2.0]]]))
    np.testing.assert_array_equal(dslope, [-1.0, -8.0])
    np.testing.assert_array_equal(dx, [[[0.5, 1.0], [2.0, 0.2]]])


def test_prelu_needs_a_channel_axis():
    with pytest.raises(ValueError, match="PReLU needs input \\(N, C, ...\\)"):
        make("PReLU").param_specs((5,))


def test_prelu_in_a_net_gets_a_named_parameter_filled_with_caffes_default():
    net = Net.from_config({"dtype": "float64", "inputs": {"x": {"shape": [None, 3, 2, 2]}},
                           "gates": [{"name": "act", "type": "PReLU", "bottom": "x",
                                      "top": "y"}]})
    np.testing.assert_array_equal(net.params["act.slope"], [0.25] * 3)
    net.forward({"x": -np.ones((2, 3, 2, 2))})
    assert net.backward({"y": np.ones((2, 3, 2, 2))}, wrt=["act.slope"])["act.slope"].shape == (3,)


# -- the centred difference over options the registry-wide check leaves out ---------------------
@pytest.mark.parametrize("type_name, options", [
    ("ReLU", {"negative_slope": -0.3}),
    ("ELU", {}),
    ("ELU", {"alpha": 2.5}),
    ("Swish", {}),
    ("Swish", {"beta": -0.5}),
    ("Clip", {"min": 0.0, "max": 0.0}),
    ("BNLL", {}),
])
def test_gradients_match_centred_differences(type_name, options):
    report = check_gate(type_name, options=options)
    assert report.ok and report.checked + report.skipped == 12, str(report)


def test_threshold_is_reported_not_differentiable():
    report = check_gate("Threshold")
    assert report.ok and report.status == "not differentiable"


def test_clip_rejects_min_above_max():
    with pytest.raises(ValueError, match="min \\(1\\) is above max \\(0\\)"):
        make("Clip", min=1.0, max=0.0)


def test_clip_requires_both_bounds_as_caffe_does():
    with pytest.raises(ValueError, match="option 'max' is required"):
        make("Clip", min=0.0)


# -- Caffe's type name TanH ---------------------------------------------------------------------
def test_tanh_answers_to_caffes_name_too_and_is_listed_once():
    assert gate_class("TanH") is gate_class("Tanh")
    assert "Tanh" in registered_gates() and "TanH" not in registered_gates()
    net = Net.from_config({"dtype": "float64", "inputs": {"x": {"shape": [2]}},
                           "gates": [{"name": "t", "type": "TanH", "bottom": "x", "top": "y"}]})
    np.testing.assert_allclose(net.forward({"x": [0.0, 1.0]})["y"], np.tanh([0.0, 1.0]))


def test_an_alias_neither_shadows_a_type_nor_points_nowhere(clean_registry):
    with pytest.raises(ValueError, match="'Tanh' is a registered gate type, not free"):
        register_alias("Tanh", "Sigmoid")
    with pytest.raises(UnknownGateType, match="cannot alias 'Foo' to 'NoSuch': no such gate"):
        register_alias("Foo", "NoSuch")

    class TanHGate(Gate):
        def forward(self, x):
            return x

    with pytest.raises(ValueError, match="gate type 'TanH' is already an alias of 'Tanh'"):
        register_gate(TanHGate)
