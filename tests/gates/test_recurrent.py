"""Caffe's recurrent gates: RNN, LSTM and LSTMUnit, their `cont` resets, static input,
exposed state, weight layout and gate order, and backward through time.

Oracles: PyTorch in float64 (fixtures/recurrent_torch.npz, written by make_torch_fixtures_b.py,
and live where torch imports): torch.nn.LSTM and nn.RNN with Caffe's gate order mapped, run
segment by segment at each reset, and nn.LSTMCell for LSTMUnit; Caffe's own RNN/LSTM layer test
(the whole sequence equals the same sequence fed one step at a time); cases worked by hand.
"""
from __future__ import annotations


import numpy as np
import pytest

from gates import gate_class
from net import ConfigError, Net
from net.gradcheck import check_gate, check_net


def make(type_name, **options):
    return gate_class(type_name)(**options)


def params_for(gate, bottoms, rng):
    return [rng.standard_normal(shape) * 0.5
            for shape, _ in gate.param_specs(*[b.shape for b in bottoms]).values()]


# -- the gate order and the unit, by hand ----------------------------------------------------------
def test_lstm_unit_by_hand_in_caffes_gate_order():
    """i = 0.75, f = 0.25, o = 0.5, g = 0.6, c_prev = 2: c = 0.25 * 2 + 0.75 * 0.6 = 0.95 where
    the sequence continues, c = 0.45 where it starts (cont = 0); h = 0.5 tanh(c)."""
    x = np.array([np.log(3), -np.log(3), 0.0, np.arctanh(0.6)])
    gate = make("LSTMUnit")
    c, h = gate.forward(np.full((1, 2, 1), 2.0), np.tile(x, (1, 2, 1)), np.array([[1.0, 0.0]]))
    np.testing.assert_allclose(c[0, :, 0], [0.95, 0.45])
    np.testing.assert_allclose(h[0, :, 0], 0.5 * np.tanh([0.95, 0.45]))
    dc_prev, dx, dcont = gate.backward((np.ones((1, 2, 1)), np.zeros((1, 2, 1))))
    np.testing.assert_allclose(dc_prev[0, :, 0], [0.25, 0.0])        # cont f
    np.testing.assert_allclose(dcont[0], [0.25 * 2, 0.25 * 2])      # f c_prev
    np.testing.assert_allclose(dx[0, 0], [0.6 * 0.75 * 0.25, 2 * 0.25 * 0.75, 0.0,
                                          0.75 * (1 - 0.36)])


def test_lstm_is_lstm_unit_over_inner_products():
    """Caffe's unrolled net: gate input = W_hc (cont h) + W_xc x + b_c, then LSTMUnit."""
    rng = np.random.default_rng(0)
    x, cont = rng.standard_normal((3, 2, 4)), np.array([[0.0, 1.0], [1.0, 1.0], [1.0, 0.0]])
    gate = make("LSTM", num_output=2)
    W_xc, b_c, W_hc = params_for(gate, [x, cont], rng)
    out = gate.forward(x, cont, W_xc, b_c, W_hc)
    unit, h, c = make("LSTMUnit"), np.zeros((1, 2, 2)), np.zeros((1, 2, 2))
    for t in range(3):
        gates = (cont[t][:, None] * h[0]) @ W_hc.T + x[t] @ W_xc.T + b_c
        c, h = unit.forward(c, gates[None], cont[t][None])
        np.testing.assert_allclose(out[t], h[0], rtol=1e-14)


# -- Caffe's layer test: the whole sequence equals the same sequence one step at a time ------------
@pytest.mark.parametrize("type_name", ["RNN", "LSTM"])
def test_one_step_at_a_time_equals_the_whole_sequence(type_name):
    rng = np.random.default_rng(1)
    states = 2 if type_name == "LSTM" else 1
    x, static = rng.standard_normal((5, 3, 2)), rng.standard_normal((3, 4))
    cont = np.ones((5, 3))
    cont[0, 1] = cont[3, 2] = 0.0
    initial = [rng.standard_normal((1, 3, 2)) for _ in range(states)]
    gate = make(type_name, num_output=2, expose_hidden=True)
    params = params_for(gate, [x, cont, static] + initial, rng)
    whole = gate.forward(x, cont, static, *initial, *params)
    carried = initial
    for t in range(5):
        step = gate.forward(x[t:t + 1], cont[t:t + 1], static, *carried, *params)
        np.testing.assert_allclose(step[0][0], whole[0][t], rtol=1e-14, atol=1e-15)
        carried = list(step[1:])
    for final, want in zip(carried, whole[1:]):
        np.testing.assert_allclose(final, want, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("type_name", ["RNN", "LSTM"])
def test_a_reset_starts_the_stream_afresh(type_name):
    """From a step with cont = 0, a stream's outputs are those of its rest run alone."""
    rng = np.random.default_rng(2)
    x, cont = rng.standard_normal((4, 2, 3)), np.array([[0.0, 0.0], [1, 1], [0, 1], [1, 1]])
    gate = make(type_name, num_output=3)
    params = params_for(gate, [x, cont], rng)
    whole = gate.forward(x, cont, *params)
    rest = gate.forward(x[2:, :1], np.array([[0.0], [1.0]]), *params)
    np.testing.assert_allclose(whole[2:, :1], rest, rtol=1e-14)


def test_without_expose_hidden_every_forward_starts_from_zero():
    """Caffe would carry the last state into a next batch whose cont[0] is 1; here it does not."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 2, 3))
    gate = make("LSTM", num_output=2)
    params = params_for(gate, [x, np.ones((2, 2))], rng)
    first = gate.forward(x, np.ones((2, 2)), *params)
    np.testing.assert_array_equal(gate.forward(x, np.ones((2, 2)), *params), first)
    np.testing.assert_array_equal(first, gate.forward(x, np.array([[0.0, 0.0], [1, 1]]),
                                                      *params))


# -- the gradient checker on every variant ---------------------------------------------------------
@pytest.mark.parametrize("type_name", ["RNN", "LSTM"])
@pytest.mark.parametrize("static, exposed", [(False, False), (True, False), (False, True)])
def test_backward_through_time_passes_the_gradient_check(type_name, static, exposed):
    rng = np.random.default_rng(4)
    gate = make(type_name, num_output=2, expose_hidden=exposed)
    cont = np.array([[0.0, 1.0], [1.0, 0.5], [0.0, 1.0], [1.0, 1.0]])  # 0.5: a scaled carry
    bottoms = [rng.standard_normal((4, 2, 3)), cont]
    bottoms += [rng.standard_normal((2, 2))] * static
    bottoms += [rng.standard_normal((1, 2, 2)) for _ in gate.states] if exposed else []
    report = check_gate(gate, bottoms)
    assert report.ok and report.checked > 0 and report.skipped == 0, str(report)


@pytest.mark.parametrize("type_name", ["RNN", "LSTM"])
def test_a_float32_sequence_stays_float32(type_name):
    rng = np.random.default_rng(8)
    x, cont = rng.standard_normal((3, 2, 2)).astype(np.float32), np.ones((3, 2), np.float32)
    gate = make(type_name, num_output=2, expose_hidden=True)
    initial = [np.zeros((1, 2, 2), np.float32) for _ in gate.states]
    params = [p.astype(np.float32) for p in params_for(gate, [x, cont] + initial, rng)]
    outs = gate.forward(x, cont, *initial, *params)
    grads = gate.backward(tuple(np.ones_like(o) for o in outs))
    assert {o.dtype for o in outs} == {g.dtype for g in grads} == {np.dtype(np.float32)}


def test_integer_cont_takes_no_gradient():
    rng = np.random.default_rng(5)
    x, cont = rng.standard_normal((2, 2, 1)), np.array([[0, 1], [1, 1]])
    gate = make("RNN", num_output=2)
    gate.forward(x, cont, *params_for(gate, [x, cont], rng))
    grads = gate.backward(np.ones((2, 2, 2)))
    assert grads[1] is None and grads[0].shape == x.shape


# -- shapes, parameters and errors ---------------------------------------------------------------
@pytest.mark.parametrize("type_name, static, names", [
    ("LSTM", False, {"W_xc": (12, 6), "b_c": (12,), "W_hc": (12, 3)}),
    ("LSTM", True, {"W_xc": (12, 6), "b_c": (12,), "W_xc_static": (12, 5), "W_hc": (12, 3)}),
    ("RNN", True, {"W_xh": (3, 6), "b_h": (3,), "W_xh_static": (3, 5), "W_hh": (3, 3),
                   "W_ho": (3, 3), "b_o": (3,)}),
])
def test_parameters_in_caffes_order_and_layout(type_name, static, names):
    gate = make(type_name, num_output=3)
    bottoms = [(4, None, 2, 3), (4, None)] + [(None, 5)] * static
    specs = gate.param_specs(*bottoms)
    assert {name: shape for name, (shape, _) in specs.items()} == names
    assert list(specs) == list(names)
    assert gate.infer_shapes(*bottoms, *names.values()) == ((4, None, 3),)


@pytest.mark.parametrize("options, shapes, message", [
    ({}, [(4, 2, 3), (4, 3)], r"cont must be \(T, N\) = \(4, 2\)"),
    ({"expose_hidden": True}, [(4, 2, 3), (4, 2)],
     r"takes the bottoms x, cont, \[x_static\], h_0, c_0 \(expose_hidden is true\), got 2"),
    ({"expose_hidden": True}, [(4, 2, 3), (4, 2), (1, 2, 5), (1, 2, 5)],
     r"h_0 must be \(1, N, num_output\) = \(1, 2, 3\), got \(1, 2, 5\)"),
    ({}, [(4, 2, 3), (4, 2), (3, 5)], r"x_static must be \(N, ...\) with N = 2"),
])
def test_shape_errors(options, shapes, message):
    gate = make("LSTM", num_output=3, **options)
    with pytest.raises(ValueError, match=message):
        params = [shape for shape, _ in gate.param_specs(*shapes).values()]
        gate.infer_shapes(*shapes, *params)


def test_lstm_unit_shape_error():
    with pytest.raises(ValueError, match=r"expects c_prev \(1, N, H\), x \(1, N, 4H\) and cont "
                                         r"\(1, N\), got \(1, 2, 3\), \(1, 2, 8\) and \(1, 2\)"):
        make("LSTMUnit").infer_shapes((1, 2, 3), (1, 2, 8), (1, 2))


def test_an_lstm_and_an_rnn_in_a_net_pass_the_net_gradient_check():
    config = {"dtype": "float64",
              "inputs": {"x": {"shape": [3, None, 2]}, "cont": {"shape": [3, None]},
                         "x_static": {"shape": [None, 2]}},
              "gates": [{"name": "lstm", "type": "LSTM", "bottom": ["x", "cont", "x_static"],
                         "top": "h", "num_output": 2,
                         "weight_filler": {"type": "uniform", "min": -0.5, "max": 0.5}},
                        {"name": "rnn", "type": "RNN", "bottom": ["h", "cont"], "top": "o",
                         "num_output": 2}]}
    net = Net.from_config(config)
    assert list(net.params) == ["lstm.W_xc", "lstm.b_c", "lstm.W_xc_static", "lstm.W_hc",
                                "rnn.W_xh", "rnn.b_h", "rnn.W_hh", "rnn.W_ho", "rnn.b_o"]
    assert net.shapes["h"] == (3, None, 2) and net.shapes["o"] == (3, None, 2)
    feed = {"x": np.random.default_rng(6).standard_normal((3, 2, 2)),
            "cont": np.array([[0.0, 0.0], [1.0, 1.0], [1.0, 0.0]]),
            "x_static": np.random.default_rng(7).standard_normal((2, 2))}
    report = check_net(net, feed)
    assert report.ok and report.checked > 0, str(report)
    config["gates"][0]["num_output"] = -1
    with pytest.raises(ConfigError, match="num_output"):
        Net.from_config(config)
