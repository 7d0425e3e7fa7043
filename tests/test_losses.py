"""The learning gates: SoftmaxWithLoss, EuclideanLoss, Accuracy, Softmax, Dropout.

Hand-computed values first, then a centred-difference gradient check of each gate (float64), then
the gates inside a Net (loss weights, phases, config errors)."""
from __future__ import annotations

import numpy as np
import pytest

from gates import gate_class
from net import ConfigError, Net


def numeric_check(gate, inputs, wrt=(0,), h=1e-6, reset=None):
    """Compare gate.backward with centred differences of L = sum(out * dout)."""
    rng = np.random.default_rng(1)
    inputs = [np.array(x, dtype=np.float64) if np.asarray(x).dtype.kind == "f" else x
              for x in inputs]
    out = gate.forward(*inputs)
    dout = rng.standard_normal(np.shape(out))
    analytic = gate.backward(dout if np.ndim(out) else np.asarray(dout))

    def objective():
        if reset:
            reset()
        return float(np.sum(gate.forward(*inputs) * dout))

    for index in wrt:
        x = inputs[index]
        numeric = np.zeros_like(x)
        for i in np.ndindex(x.shape):
            keep = x[i]
            x[i] = keep + h
            plus = objective()
            x[i] = keep - h
            minus = objective()
            x[i] = keep
            numeric[i] = (plus - minus) / (2 * h)
        np.testing.assert_allclose(analytic[index], numeric, rtol=1e-5, atol=1e-7)


def make(type_name, **options):
    return gate_class(type_name)(**options)


# -- SoftmaxWithLoss ----------------------------------------------------------------------------
def test_softmax_loss_by_hand():
    gate = make("SoftmaxWithLoss")
    loss = gate.forward(np.zeros((2, 3)), np.array([0, 2]))
    assert loss.shape == () and loss == pytest.approx(np.log(3))
    dscores, dlabel = gate.backward(np.asarray(1.0))
    np.testing.assert_allclose(dscores, (np.full((2, 3), 1 / 3) - np.eye(3)[[0, 2]]) / 2)
    assert dlabel is None


def test_softmax_loss_is_stable_and_keeps_dtype():
    gate = make("SoftmaxWithLoss")
    scores = np.array([[1000.0, 0.0], [-1000.0, 0.0]], dtype=np.float32)
    loss = gate.forward(scores, np.array([0, 1]))
    assert loss.dtype == np.float32 and np.isfinite(loss) and loss == pytest.approx(0.0, abs=1e-6)
    clamped = -np.log(np.finfo(np.float32).tiny)       # Caffe clamps p at FLT_MIN: 87.34
    assert gate.forward(scores, np.array([1, 0])) == pytest.approx(clamped)


@pytest.mark.parametrize("options", [{}, {"ignore_label": 1}])
def test_softmax_loss_gradient(options):
    rng = np.random.default_rng(0)
    numeric_check(make("SoftmaxWithLoss", **options),
                  [rng.standard_normal((5, 4)), np.array([0, 1, 3, 1, 2])])


def test_softmax_loss_ignore_label_averages_the_rest():
    gate = make("SoftmaxWithLoss", ignore_label=-1)
    loss = gate.forward(np.array([[0.0, 0.0], [5.0, -5.0]]), np.array([0, -1]))
    assert loss == pytest.approx(np.log(2))
    assert np.all(gate.backward(np.asarray(1.0))[0][1] == 0)


def test_softmax_loss_label_errors():
    gate = make("SoftmaxWithLoss")
    with pytest.raises(ValueError, match="label 3 is out of range for 3 classes"):
        gate.forward(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match="integers"):
        gate.forward(np.zeros((2, 3)), np.array([0.5, 1.0]))
    with pytest.raises(ValueError, match="one label per sample"):
        gate.forward(np.zeros((2, 3)), np.array([0, 1, 2]))
    assert gate.forward(np.zeros((2, 3)), np.array([0.0, 2.0])) == pytest.approx(np.log(3))


# -- EuclideanLoss ------------------------------------------------------------------------------
def test_euclidean_loss_by_hand():
    gate = make("EuclideanLoss")
    loss = gate.forward(np.array([[1.0, 2.0], [3.0, 4.0]]), np.zeros((2, 2)))
    assert loss == pytest.approx((1 + 4 + 9 + 16) / (2 * 2))
    da, db = gate.backward(np.asarray(1.0))
    np.testing.assert_allclose(da, [[0.5, 1.0], [1.5, 2.0]])
    np.testing.assert_allclose(db, -da)


def test_euclidean_loss_gradient():
    rng = np.random.default_rng(0)
    numeric_check(make("EuclideanLoss"), [rng.standard_normal((4, 3)),
                                          rng.standard_normal((4, 3))], wrt=(0, 1))


# -- Accuracy -----------------------------------------------------------------------------------
@pytest.mark.parametrize("top_k, expected", [(1, 1 / 4), (2, 3 / 4), (3, 1.0)])
def test_accuracy_top_k(top_k, expected):
    scores = np.array([[0.9, 0.1, 0.0],    # label 0: best
                       [0.9, 0.5, 0.0],    # label 1: second
                       [0.1, 0.5, 0.9],    # label 0: third
                       [0.5, 0.5, 0.0]])   # label 1: tied with class 0: counts against it
    gate = make("Accuracy", top_k=top_k)
    assert gate.forward(scores, np.array([0, 1, 0, 1])) == pytest.approx(expected)


def test_accuracy_of_nan_scores_is_zero():
    """A diverged net must not look perfect: NaN compares false with everything."""
    scores = np.array([[np.nan, np.nan], [np.nan, 1.0], [2.0, 1.0]])
    assert make("Accuracy").forward(scores, np.array([0, 1, 0])) == pytest.approx(1 / 3)


def test_accuracy_passes_no_gradient():
    gate = make("Accuracy")
    scores = np.random.default_rng(0).standard_normal((3, 4))
    gate.forward(scores, np.array([0, 1, 2]))
    dscores, dlabel = gate.backward(np.asarray(1.0))
    assert dlabel is None and not dscores.any()
    with pytest.raises(ValueError, match="top_k"):
        make("Accuracy", top_k=0)


# -- Softmax ------------------------------------------------------------------------------------
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_softmax_gradient_and_normalisation(axis):
    rng = np.random.default_rng(0)
    gate = make("Softmax", axis=axis)
    x = rng.standard_normal((3, 4))
    np.testing.assert_allclose(gate.forward(x).sum(axis=axis), 1.0)
    numeric_check(gate, [x])


def test_softmax_large_inputs():
    out = make("Softmax").forward(np.array([[1000.0, 1000.0, -1000.0]]))
    np.testing.assert_allclose(out, [[0.5, 0.5, 0.0]])


# -- Dropout ------------------------------------------------------------------------------------
def test_dropout_train_phase_scales_survivors():
    gate = make("Dropout", dropout_ratio=0.25)
    gate.rng = np.random.default_rng(3)
    x = np.ones((200, 50), dtype=np.float32)
    out = gate.forward(x)
    assert out.dtype == np.float32
    assert set(np.unique(out)) <= {0.0, np.float32(1 / 0.75)}
    assert (out == 0).mean() == pytest.approx(0.25, abs=0.02)
    assert out.mean() == pytest.approx(1.0, abs=0.03)
    np.testing.assert_array_equal(gate.backward(np.ones_like(x))[0], out)


def test_dropout_test_phase_is_identity_and_seeded_masks_repeat():
    gate = make("Dropout")
    gate.phase = "test"
    x = np.arange(6.0).reshape(2, 3)
    assert gate.forward(x) is x and gate.backward(x)[0] is x
    a, b = make("Dropout"), make("Dropout")
    a.rng, b.rng = np.random.default_rng(7), np.random.default_rng(7)
    np.testing.assert_array_equal(a.forward(np.ones((4, 4))), b.forward(np.ones((4, 4))))


def test_dropout_gradient_with_a_fixed_mask():
    gate = make("Dropout", dropout_ratio=0.4)
    state = gate.rng.bit_generator.state

    def reset():
        gate.rng.bit_generator.state = state
    reset()
    numeric_check(gate, [np.random.default_rng(0).standard_normal((3, 5))], reset=reset)


# -- inside a Net -------------------------------------------------------------------------------
CLASSIFIER = {
    "inputs": {"data": {"shape": [None, 4]}, "label": {"shape": [None], "dtype": "int"}},
    "gates": [
        {"name": "fc", "type": "InnerProduct", "bottom": "data", "top": "scores", "num_output": 3},
        {"name": "drop", "type": "Dropout", "bottom": "scores", "top": "dropped"},
        {"name": "loss", "type": "SoftmaxWithLoss", "bottom": ["dropped", "label"], "top": "loss"},
        {"name": "acc", "type": "Accuracy", "bottom": ["scores", "label"], "top": "accuracy",
         "phase": "test"},
    ],
}


def test_loss_in_a_net_seeds_its_weight_and_phases_switch_gates():
    feed = {"data": np.random.default_rng(0).standard_normal((6, 4)),
            "label": np.array([0, 1, 2, 0, 1, 2])}
    net = Net.from_config(CLASSIFIER)
    assert net.loss_weights == {"loss": 1.0} and net.outputs == ["loss"]
    net.forward(feed)
    grads = net.backward()
    assert grads["label"] is None and grads["fc.W"].shape == (3, 4)
    weighted = dict(CLASSIFIER, gates=[dict(g, loss_weight=2.0) if g["name"] == "loss" else g
                                       for g in CLASSIFIER["gates"]])
    net2 = Net.from_config(weighted)
    net2.phase = "test"                       # no dropout: the two nets now agree exactly
    net.phase = "test"
    assert sorted(net2.forward(feed)) == ["accuracy", "loss"]
    net.forward(feed)
    np.testing.assert_allclose(net2.backward()["fc.W"], 2 * net.backward()["fc.W"], rtol=1e-6)


def test_bad_dropout_ratio_is_a_config_error_with_a_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("inputs:\n  x: {shape: [null, 2]}\ngates:\n"
                    "  - {name: d, type: Dropout, bottom: x, top: y,\n"
                    "     dropout_ratio: 1.5}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:5: .*dropout_ratio.*a number in \[0, 1\), got 1.5"):
        Net.from_yaml(path)
