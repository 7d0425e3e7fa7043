"""Caffe's arithmetic layers (gates/arithmetic.py): Power, Exp and Log with base/scale/shift
(against PyTorch in float64), Scale and Bias along axes, Eltwise, Reduction and ArgMax (against
values written out from Caffe's layer tests and formulas), the retired constant-factor Scale, and
the centred difference over the option variants the registry-wide check does not cover."""
from __future__ import annotations


import numpy as np
import pytest

from gates import gate_class
from net import ConfigError, Net
from net.gradcheck import check_gate

RNG = np.random.default_rng(13)


def make(type_name, **options):
    return gate_class(type_name)(**options)


def passes_gradcheck(gate, inputs=None, params=None, **tolerance):
    report = check_gate(gate, inputs, params, **tolerance)
    assert report.ok and report.checked, str(report)
    return report


# -- Power, Exp, Log ----------------------------------------------------------------------------
def test_power_with_a_zero_slope_is_a_constant_with_a_zero_gradient_even_at_base_zero():
    x = np.array([-1.0, 0.0, 2.0])
    zero_power = make("Power", power=0.0)
    np.testing.assert_array_equal(zero_power.forward(x), [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(zero_power.backward(np.ones(3))[0], [0.0, 0.0, 0.0])
    zero_scale = make("Power", power=2.0, scale=0.0, shift=3.0)
    np.testing.assert_array_equal(zero_scale.forward(x), [9.0, 9.0, 9.0])
    np.testing.assert_array_equal(zero_scale.backward(np.ones(3))[0], [0.0, 0.0, 0.0])


@pytest.mark.parametrize("options", [{"power": 3.0, "shift": -0.2}, {"power": 0.5, "shift": 2.0},
                                     {"power": -2.0, "scale": 0.3, "shift": 1.0}])
def test_power_variants_pass_the_gradient_check(options):
    passes_gradcheck(make("Power", **options))


@pytest.mark.parametrize("type_name, base, message", [
    ("Exp", 0.0, "base must be positive, or -1 for e"),
    ("Exp", -2.0, "base must be positive, or -1 for e"),
    ("Log", -0.5, "base must be positive, or -1 for e"),
    ("Log", 1.0, "base 1 has no logarithm"),
])
def test_exp_and_log_refuse_a_base_caffe_refuses(type_name, base, message):
    with pytest.raises(ValueError, match=message):
        make(type_name, base=base)


def test_exp_with_base_one_is_a_constant_as_in_caffe():
    gate = make("Exp", base=1.0, scale=5.0)
    np.testing.assert_array_equal(gate.forward(np.array([-3.0, 4.0])), [1.0, 1.0])
    np.testing.assert_array_equal(gate.backward(np.ones(2))[0], [0.0, 0.0])


def test_the_old_constant_scale_fails_at_its_line_saying_what_to_write(tmp_path):
    config = tmp_path / "old.yaml"
    config.write_text("inputs: {x: {shape: [3]}}\n"
                      "gates:\n"
                      "  - {name: twice, type: Scale, bottom: x, top: y, scale: 2.0}\n")
    with pytest.raises(ConfigError) as caught:
        Net.from_yaml(config)
    message = str(caught.value)
    assert message.startswith(f"{config}:3:")
    assert "gate 'twice' (Scale): option 'scale' is retired: Scale is now Caffe's learned Scale; for a " \
           "constant factor use Power with scale: k" in message


def test_power_with_scale_is_the_old_constant_factor():
    net = Net.from_config({"dtype": "float64", "inputs": {"x": {"shape": [3]}},
                           "gates": [{"name": "twice", "type": "Power", "bottom": "x",
                                      "top": "y", "scale": 2.0}]})
    np.testing.assert_array_equal(net.forward({"x": [1.0, -2.0, 3.0]})["y"], [2.0, -4.0, 6.0])
    np.testing.assert_array_equal(net.backward({"y": np.ones(3)})["x"], [2.0, 2.0, 2.0])


# -- Scale and Bias -----------------------------------------------------------------------------
def reference_scale(x, s, axis):
    """Caffe's test_scale_layer.cpp, in loops: every element of x times the element of s at
    x's indices axis .. axis + s.ndim - 1."""
    out = np.empty_like(x)
    for index in np.ndindex(x.shape):
        out[index] = x[index] * s[index[axis:axis + s.ndim]]
    return out


@pytest.mark.parametrize("s_shape, axis", [
    ((2, 3, 4, 5), 0),         # TestForwardEltwise
    ((2, 3), 0),               # TestForwardBroadcastBegin
    ((3, 4), 1),               # TestForwardBroadcastMiddle
    ((4, 5), 2),               # TestForwardBroadcastEnd
    ((4, 5), -2),
    ((), 1),                   # TestForwardScale: a scalar, whatever the axis
    ((), 2),                   # TestForwardScaleAxis2
])
def test_scale_by_a_second_bottom_broadcasts_as_caffes_layer_test(s_shape, axis):
    x, s = RNG.standard_normal((2, 3, 4, 5)), RNG.standard_normal(s_shape)
    gate = make("Scale", axis=axis)
    assert gate.param_specs(x.shape, s.shape) == {}
    assert gate.infer_shapes(x.shape, s.shape) == (x.shape,)
    np.testing.assert_allclose(gate.forward(x, s), reference_scale(x, s, axis % 4 if s.ndim
                                                                   else 0), rtol=1e-15)
    passes_gradcheck(make("Scale", axis=axis), [x, s])


@pytest.mark.parametrize("options, shape", [
    ({}, (3,)),
    ({"num_axes": 2}, (3, 4)),
    ({"num_axes": -1}, (3, 4, 5)),
    ({"num_axes": 0}, ()),
    ({"axis": -1}, (5,)),
    ({"axis": 0, "num_axes": -1}, (2, 3, 4, 5)),
])
def test_a_learned_scale_has_the_shape_axis_and_num_axes_give(options, shape):
    gate = make("Scale", **options, bias_term=True)
    specs = gate.param_specs((2, 3, 4, 5))
    assert specs == {"scale": (shape, {"type": "constant", "value": 1.0}),
                     "bias": (shape, {"type": "constant", "value": 0.0})}
    x = RNG.standard_normal((2, 3, 4, 5))
    scale, bias = RNG.standard_normal(shape), RNG.standard_normal(shape)
    axis = 0 if not shape else options.get("axis", 1) % 4
    np.testing.assert_allclose(gate.forward(x, scale, bias),
                               reference_scale(x, scale, axis) + reference_scale(
                                   np.ones_like(x), bias, axis), rtol=1e-14)
    passes_gradcheck(gate, [x], {"scale": scale, "bias": bias}, sample=30)


def test_scale_with_a_second_bottom_and_a_bias_learns_only_the_bias():
    gate = make("Scale", axis=1, bias_term=True, bias_filler={"type": "constant", "value": 0.5})
    assert gate.param_specs((2, 3, 4), (3, 4)) == {
        "bias": ((3, 4), {"type": "constant", "value": 0.5})}
    passes_gradcheck(gate, [RNG.standard_normal((2, 3, 4)), RNG.standard_normal((3, 4))])


def test_a_given_filler_is_caffes_filler_parameter():
    specs = make("Scale", filler={"value": 2.0}).param_specs((2, 3))
    assert specs["scale"] == ((3,), {"type": "constant", "value": 2.0})
    specs = make("Bias", filler={"type": "gaussian", "std": 0.1}).param_specs((2, 3))
    assert specs["bias"] == ((3,), {"type": "gaussian", "std": 0.1})


@pytest.mark.parametrize("type_name, options, shapes, message", [
    ("Scale", {}, [(2, 3, 4), (4,)], "the scale of shape \\(4,\\) does not match the input's "
                                     "axes from 1 on: \\(2, 3, 4\\)"),
    ("Scale", {"axis": 2}, [(2, 3, 4), (4, 5)], "does not match"),
    ("Bias", {"axis": 3}, [(2, 3, 4), (4,)], "axis 3 is out of range for an input of 3 dim"),
])
def test_a_blob_that_does_not_fit_is_an_error_naming_both_shapes(type_name, options, shapes,
                                                                 message):
    with pytest.raises(ValueError, match=message):
        make(type_name, **options).infer_shapes(*shapes)


def test_num_axes_reaching_past_the_input_is_an_error():
    with pytest.raises(ValueError, match="num_axes 3 from axis 1 reaches past the 3 axes"):
        make("Scale", num_axes=3).param_specs((2, 3, 4))


def test_bias_adds_along_axes_and_sums_its_gradient_there():
    gate = make("Bias", axis=1)
    x = np.zeros((2, 3, 2))
    out = gate.forward(x, np.array([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(out[1, :, 1], [1.0, 2.0, 3.0])
    dx, db = gate.backward(np.ones((2, 3, 2)))
    np.testing.assert_array_equal(db, [4.0, 4.0, 4.0])
    assert dx.shape == x.shape
    passes_gradcheck(make("Bias", num_axes=-1))
    passes_gradcheck(make("Bias", axis=0), [RNG.standard_normal((2, 3)), RNG.standard_normal(())])


def test_batchnorm_then_scale_with_bias_is_batchnorm_with_affine():
    """ResNet's BatchNorm + Scale pair equals Gatework's BatchNorm `affine: true`."""
    def net(gates):
        return Net.from_config({"dtype": "float64", "inputs": {"x": {"shape": [None, 3, 2, 2]}},
                                "gates": gates})
    caffe = net([{"name": "bn", "type": "BatchNorm", "bottom": "x", "top": "n"},
                 {"name": "sc", "type": "Scale", "bottom": "n", "top": "y", "bias_term": True}])
    fused = net([{"name": "bn", "type": "BatchNorm", "bottom": "x", "top": "y", "affine": True}])
    gamma, beta = RNG.standard_normal(3), RNG.standard_normal(3)
    caffe.params["sc.scale"][...], caffe.params["sc.bias"][...] = gamma, beta
    fused.params["bn.gamma"][...], fused.params["bn.beta"][...] = gamma, beta
    x, dy = RNG.standard_normal((4, 3, 2, 2)), RNG.standard_normal((4, 3, 2, 2))
    np.testing.assert_allclose(caffe.forward({"x": x})["y"], fused.forward({"x": x})["y"],
                               rtol=1e-13)
    ours, theirs = caffe.backward({"y": dy}), fused.backward({"y": dy})
    np.testing.assert_allclose(ours["x"], theirs["x"], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(ours["sc.scale"], theirs["bn.gamma"], rtol=1e-12)


# -- Eltwise ------------------------------------------------------------------------------------
def test_eltwise_sum_with_coefficients_as_caffes_test_sum_coeff():
    a, b, c = (RNG.standard_normal((2, 3)) for _ in range(3))
    gate = make("Eltwise", operation="SUM", coeff=[1, -0.5, 2])
    np.testing.assert_allclose(gate.forward(a, b, c), a - 0.5 * b + 2 * c, rtol=1e-15)
    dout = RNG.standard_normal((2, 3))
    for grad, coeff in zip(gate.backward(dout), [1.0, -0.5, 2.0]):
        np.testing.assert_array_equal(grad, coeff * dout)
    passes_gradcheck(make("Eltwise", operation="SUM", coeff=[1, -0.5, 2]))


def test_eltwise_prod_gradients_stable_and_caffes_shortcut():
    a, b, c = (RNG.standard_normal((2, 3)) for _ in range(3))
    dout = RNG.standard_normal((2, 3))
    stable, shortcut = make("Eltwise", operation="PROD"), make(
        "Eltwise", operation="PROD", stable_prod_grad=False)
    np.testing.assert_allclose(stable.forward(a, b, c), a * b * c, rtol=1e-15)
    shortcut.forward(a, b, c)
    for mine, caffes, want in zip(stable.backward(dout), shortcut.backward(dout),
                                  [dout * b * c, dout * a * c, dout * a * b]):
        np.testing.assert_allclose(mine, want, rtol=1e-14)
        np.testing.assert_allclose(caffes, want, rtol=1e-12)
    a[0, 0] = 0.0                                   # the shortcut divides by zero here
    stable.forward(a, b, c)
    assert stable.backward(dout)[0][0, 0] == dout[0, 0] * b[0, 0] * c[0, 0]
    shortcut.forward(a, b, c)
    with np.errstate(invalid="ignore", divide="ignore"):
        assert np.isnan(shortcut.backward(dout)[0][0, 0])
    passes_gradcheck(make("Eltwise", operation="PROD", stable_prod_grad=False))


def test_eltwise_max_routes_each_gradient_to_the_winner_with_caffes_tie_order():
    x1 = np.array([1.0, 2.0, 3.0, 5.0, 0.0])
    x2 = np.array([1.0, 1.0, 3.0, 4.0, 7.0])
    x3 = np.array([0.0, 2.0, 3.0, 5.0, 9.0])
    gate = make("Eltwise", operation="MAX")
    np.testing.assert_array_equal(gate.forward(x1, x2, x3), [1.0, 2.0, 3.0, 5.0, 9.0])
    # ties: x1 == x2 goes to x2; a later input must be strictly larger to take an element
    winners = [1, 0, 1, 0, 2]
    dout = np.array([10.0, 20.0, 30.0, 40.0, 50.0])
    for i, grad in enumerate(gate.backward(dout)):
        np.testing.assert_array_equal(grad, np.where(np.array(winners) == i, dout, 0.0))
    report = passes_gradcheck(make("Eltwise", operation="MAX"), [x1, x2, x3])
    assert report.skipped == 2 + 2 + 3 + 2     # the inputs tied at the maximum, per element


def test_eltwise_max_of_random_inputs_passes_the_gradient_check():
    passes_gradcheck(make("Eltwise", operation="MAX"),
                     [RNG.standard_normal((3, 4)) for _ in range(4)])


@pytest.mark.parametrize("options, shapes, message", [
    ({"operation": "PROD", "coeff": [1, 2]}, None, "coeff applies to SUM only"),
    ({"coeff": [1, "a"]}, None, "coeff must be a list of numbers"),
    ({"coeff": [1, 2, 3]}, [(2,), (2,)], "coeff has 3 values for 2 inputs"),
    ({}, [(2, 3), (3, 2)], "input 2 has shape \\(3, 2\\), the first \\(2, 3\\)"),
])
def test_eltwise_mistakes(options, shapes, message):
    with pytest.raises(ValueError, match=message):
        make("Eltwise", **options).infer_shapes(*(shapes or [(2,), (2,)]))


def test_eltwise_max_ignores_coeff_as_caffe_does():
    gate = make("Eltwise", operation="MAX", coeff=[3, 4])
    np.testing.assert_array_equal(gate.forward(np.array([1.0]), np.array([2.0])), [2.0])


# -- Reduction ----------------------------------------------------------------------------------
@pytest.mark.parametrize("operation, reduce, local", [
    ("SUM", np.sum, lambda x, n: np.ones_like(x)),
    ("ASUM", lambda v, axis: np.sum(np.abs(v), axis=axis), lambda x, n: np.sign(x)),
    ("SUMSQ", lambda v, axis: np.sum(v * v, axis=axis), lambda x, n: 2 * x),
    ("MEAN", np.mean, lambda x, n: np.full_like(x, 1.0 / n)),
])
@pytest.mark.parametrize("axis, kept", [(0, 0), (1, 1), (-1, 2), (2, 2)])
def test_reduction_reduces_every_axis_from_axis_on(operation, reduce, local, axis, kept):
    x = RNG.standard_normal((2, 3, 4))
    gate = make("Reduction", operation=operation, axis=axis, coeff=-1.5)
    reduced = tuple(range(kept, 3))
    count = int(np.prod(x.shape[kept:]))
    out = gate.forward(x)
    assert isinstance(out, np.ndarray) and out.shape == x.shape[:kept] == \
        gate.infer_shapes(x.shape)[0]
    np.testing.assert_allclose(out, -1.5 * reduce(x, axis=reduced), rtol=1e-14)
    dout = RNG.standard_normal(out.shape)
    expected = -1.5 * local(x, count) * np.reshape(dout, out.shape + (1,) * (3 - kept))
    np.testing.assert_allclose(gate.backward(dout)[0], expected, rtol=1e-14)
    passes_gradcheck(make("Reduction", operation=operation, axis=axis, coeff=-1.5))


def test_reduction_axis_out_of_range():
    with pytest.raises(ValueError, match="axis 3 is out of range for an input of 3 dimensions"):
        make("Reduction", axis=3).infer_shapes((2, 3, 4))


# -- ArgMax -------------------------------------------------------------------------------------
def test_argmax_without_axis_searches_each_item_whole():
    x = np.array([[[1.0, 5.0], [3.0, 5.0]], [[2.0, 0.0], [-1.0, 4.0]]])     # (2, 2, 2)
    gate = make("ArgMax", top_k=2)
    out = gate.forward(x)
    # item 0 flattened: [1, 5, 3, 5]: the two 5s tie, the larger index (3) first
    np.testing.assert_array_equal(out, [[[3.0, 1.0]], [[3.0, 0.0]]])
    assert out.shape == gate.infer_shapes(x.shape)[0] == (2, 1, 2)
    values = make("ArgMax", top_k=2, out_max_val=True).forward(x)
    np.testing.assert_array_equal(values, [[[3.0, 1.0], [5.0, 5.0]], [[3.0, 0.0], [4.0, 2.0]]])


def test_argmax_along_an_axis_gives_indices_or_values_in_place_of_that_axis():
    x = RNG.permutation(24).reshape(2, 3, 4).astype(float)
    gate = make("ArgMax", axis=1, top_k=2)
    out = gate.forward(x)
    assert out.shape == gate.infer_shapes(x.shape)[0] == (2, 2, 4)
    order = np.argsort(-x, axis=1)[:, :2]
    np.testing.assert_array_equal(out, order)
    values = make("ArgMax", axis=-2, top_k=2, out_max_val=True).forward(x)
    np.testing.assert_array_equal(values, np.take_along_axis(x, order, axis=1))


def test_argmax_output_shapes_follow_caffe():
    assert make("ArgMax").infer_shapes((5, 3, 4, 4)) == ((5, 1, 1, 1),)
    assert make("ArgMax", top_k=3, out_max_val=True).infer_shapes((5, 10)) == ((5, 2, 3),)
    assert make("ArgMax", axis=0).infer_shapes((5, 10)) == ((1, 10),)
    assert make("ArgMax").forward(np.zeros((2, 3, 4, 4))).shape == (2, 1, 1, 1)


def test_argmax_is_not_differentiable_and_checks_top_k():
    report = check_gate("ArgMax")
    assert report.ok and report.status == "not differentiable"
    with pytest.raises(ValueError, match="top_k 5 is more than the 4 entries searched"):
        make("ArgMax", top_k=5, axis=1).infer_shapes((2, 4))
