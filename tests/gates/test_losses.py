"""The loss gates: SoftmaxWithLoss, EuclideanLoss, Accuracy.

Hand-computed values first, then a centred-difference gradient check of each gate (float64), then
the gates inside a Net (loss weights, phases)."""
from __future__ import annotations

import numpy as np
import pytest

from gates import build_gate, gate_class
from gates.losses import LOG_FLT_MIN
from net import Net
from tests.helpers import centred_difference_check, make


# -- SoftmaxWithLoss -------------------------------------------------------------------------------
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
    centred_difference_check(make("SoftmaxWithLoss", **options),
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


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("tops, normalization", [(1, "VALID"), (2, "NONE"), (1, "BATCH_SIZE")])
@pytest.mark.parametrize("count", [37, 130])
def test_softmax_loss_rows_take_the_general_paths_arithmetic(dtype, tops, normalization, count):
    """(N, C) scores with (N,) labels skip the (outer, C, inner) view; the same scores as
    (N, C, 1) with (N, 1) labels go the general way. Loss, probabilities and gradient agree bit
    for bit, the clamp at log(FLT_MIN) included (the large scores reach it). 130 rows take
    max_along's transposed copy; the general way never does."""
    rng = np.random.default_rng(5)
    scores = (rng.standard_normal((count, 11)) * 40).astype(dtype)
    labels = rng.integers(0, 11, count)
    shifted = scores - scores.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    assert log_p[np.arange(count), labels].min() < LOG_FLT_MIN    # the clamp holds somewhere
    rows, general = (build_gate(gate_class("SoftmaxWithLoss"), {"normalization": normalization},
                                num_tops=tops) for _ in range(2))
    fast, slow = rows.forward(scores, labels), general.forward(scores[:, :, None], labels[:, None])
    fast, slow = (fast, slow) if tops == 2 else ((fast,), (slow,))
    assert fast[0].dtype == slow[0].dtype == dtype
    for ours, theirs in zip(fast, slow):
        assert np.asarray(ours).tobytes() == np.asarray(theirs).tobytes()
    upstream = np.asarray(1.5, dtype)
    if tops == 2:
        dprob = rng.standard_normal(scores.shape).astype(dtype)
        fast_grad = rows.backward((upstream, dprob))[0]
        slow_grad = general.backward((upstream, dprob[:, :, None]))[0]
    else:
        fast_grad, slow_grad = rows.backward(upstream)[0], general.backward(upstream)[0]
    assert fast_grad.shape == scores.shape and fast_grad.dtype == dtype
    assert fast_grad.tobytes() == slow_grad.tobytes()


def test_softmax_loss_rows_check_the_label_range_both_ways():
    gate = make("SoftmaxWithLoss")
    for bad in (-1, 3):
        with pytest.raises(ValueError, match=f"label {bad} is out of range for 3 classes"):
            gate.forward(np.zeros((2, 3)), np.array([0, bad]))
        with pytest.raises(ValueError, match=f"label {bad} is out of range"):
            gate.forward(np.zeros((2, 3)), np.array([0, bad], dtype=np.int32))


def test_softmax_loss_reads_labels_of_either_byte_order():
    """Labels stored big-endian (an .npz written on another machine) give the same loss as
    native ones, and their range is checked in their own byte order."""
    scores = np.random.default_rng(3).standard_normal((3, 4))
    native = np.array([0, 3, 1])
    for order in (">i4", "<i4", ">i8", ">u2"):
        labels = native.astype(order)
        assert make("SoftmaxWithLoss").forward(scores, labels) == \
            make("SoftmaxWithLoss").forward(scores, native)
    for order in (">i4", ">i8"):
        with pytest.raises(ValueError, match="label -1 is out of range for 4 classes"):
            make("SoftmaxWithLoss").forward(scores, np.array([0, -1, 1], dtype=order))
        with pytest.raises(ValueError, match="label 4 is out of range for 4 classes"):
            make("SoftmaxWithLoss").forward(scores, np.array([0, 4, 1], dtype=order))


def test_softmax_loss_rows_follow_the_batch_size():
    """The row index kept between calls is remade when the batch size changes: a gate fed
    batches of 4, 3 and 4 answers as a fresh gate does for each."""
    rng = np.random.default_rng(8)
    gate = make("SoftmaxWithLoss")
    for size in (4, 3, 4):
        scores, labels = rng.standard_normal((size, 5)), rng.integers(0, 5, size)
        fresh = make("SoftmaxWithLoss")
        assert gate.forward(scores, labels).tobytes() == fresh.forward(scores, labels).tobytes()
        upstream = np.asarray(1.0)
        assert gate.backward(upstream)[0].tobytes() == fresh.backward(upstream)[0].tobytes()


# -- EuclideanLoss ---------------------------------------------------------------------------------
def test_euclidean_loss_by_hand():
    gate = make("EuclideanLoss")
    loss = gate.forward(np.array([[1.0, 2.0], [3.0, 4.0]]), np.zeros((2, 2)))
    assert loss == pytest.approx((1 + 4 + 9 + 16) / (2 * 2))
    da, db = gate.backward(np.asarray(1.0))
    np.testing.assert_allclose(da, [[0.5, 1.0], [1.5, 2.0]])
    np.testing.assert_allclose(db, -da)


def test_euclidean_loss_gradient():
    rng = np.random.default_rng(0)
    centred_difference_check(make("EuclideanLoss"), [rng.standard_normal((4, 3)),
                                          rng.standard_normal((4, 3))], wrt=(0, 1))


# -- Accuracy --------------------------------------------------------------------------------------
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


# -- inside a Net ----------------------------------------------------------------------------------
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
