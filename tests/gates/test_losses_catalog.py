"""Caffe's losses and metrics: SoftmaxWithLoss over any axis with Caffe's normalization,
SigmoidCrossEntropyLoss, ContrastiveLoss, HingeLoss, InfogainLoss, MultinomialLogisticLoss and
Accuracy with its per-class top.

Oracles: PyTorch in float64 (fixtures/losses_torch.npz, written by make_torch_fixtures_b.py, and
live where torch imports) for the softmax and sigmoid cross-entropies and the hinge loss; for the
losses PyTorch lacks, Caffe's own layer tests (their reference loops, transcribed) and cases
worked by hand.
"""
from __future__ import annotations


import numpy as np
import pytest

from gates import gate_class
from net import Net
from net.gradcheck import check_gate

FLT_MIN = float(np.finfo(np.float32).tiny)


def make(type_name, tops=1, **options):
    gate = gate_class(type_name)(**options)
    gate.num_tops = tops
    return gate


# -- SoftmaxWithLoss -------------------------------------------------------------------------------
def test_softmax_loss_of_2d_scores_is_still_the_mean_over_the_batch():
    scores = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    expected = -(np.log(np.exp(3) / np.exp([1, 2, 3]).sum()) + np.log(1 / 3)) / 2
    assert make("SoftmaxWithLoss").forward(scores, np.array([2, 1])) == pytest.approx(expected)


@pytest.mark.parametrize("mode, divisor", [("FULL", 6), ("VALID", 4), ("BATCH_SIZE", 2),
                                           ("NONE", 1)])
def test_softmax_loss_normalizers(mode, divisor):
    """Uniform scores: every counted position adds log 3; 4 of the 6 positions count."""
    labels = np.array([[0, -1, 2], [1, 1, -1]])
    gate = make("SoftmaxWithLoss", ignore_label=-1, normalization=mode)
    assert gate.forward(np.zeros((2, 3, 3)), labels) == pytest.approx(4 * np.log(3) / divisor)


@pytest.mark.parametrize("options, mode", [({}, "VALID"), ({"normalize": True}, "VALID"),
                                           ({"normalize": False}, "BATCH_SIZE"),
                                           ({"normalize": False, "normalization": "FULL"},
                                            "FULL")])
def test_legacy_normalize_and_which_wins(options, mode):
    assert make("SoftmaxWithLoss", **options).mode == mode


def test_all_positions_ignored_gives_zero_not_nan():
    gate = make("SoftmaxWithLoss", ignore_label=-1)
    assert gate.forward(np.ones((2, 3)), np.array([-1, -1])) == 0.0
    assert not gate.backward(np.asarray(1.0))[0].any()


def test_caffes_flt_min_clamp_keeps_the_unclamped_gradient_and_is_a_kink():
    scores = np.array([[200.0, 0.0], [0.0, 1.0]])
    gate = make("SoftmaxWithLoss")
    loss = gate.forward(scores, np.array([1, 1]))
    unclamped_second = np.log1p(np.exp(-1.0))
    assert loss == pytest.approx((-np.log(FLT_MIN) + unclamped_second) / 2)
    p = 1 / (1 + np.exp(-1.0))
    np.testing.assert_allclose(gate.backward(np.asarray(1.0))[0],
                               [[0.5, -0.5], [(1 - p) / 2, (p - 1) / 2]], atol=1e-15)
    distance = gate.kinks(scores, np.array([1, 1]))[0]
    assert (distance[0] == 0).all() and (distance[1] > 80).all()
    report = check_gate("SoftmaxWithLoss", [scores, np.array([1, 1])])
    assert report.ok and report.skipped == 2 and report.checked == 2


def test_probabilities_top_and_its_gradient():
    gate = make("SoftmaxWithLoss", tops=2, axis=2)
    scores = np.random.default_rng(0).standard_normal((2, 3, 4))
    loss, prob = gate.forward(scores, np.zeros((2, 3), int))
    np.testing.assert_allclose(prob.sum(axis=2), 1.0)
    assert gate.infer_shapes((None, 3, 4), (None, 3)) == ((), (None, 3, 4))
    report = check_gate(make("SoftmaxWithLoss", tops=2, axis=2, ignore_label=0),
                        [scores, np.array([[0, 1, 3], [2, 0, 0]])])
    assert report.ok and report.checked == 24, str(report)


@pytest.mark.parametrize("scores_shape, labels_shape, axis, message", [
    ((2, 3), (3,), 1, r"one label per sample \(2\), got labels of shape \(3,\)"),
    ((2, 3, 4), (2, 3), 1, r"one label per sample and position \(8: the scores' shape "
                           r"\(2, 3, 4\) without axis 1\)"),
    ((2, 3), (2,), 2, "axis 2 is out of range for scores of 2 dimension"),
])
def test_softmax_loss_shape_errors(scores_shape, labels_shape, axis, message):
    with pytest.raises(ValueError, match=message):
        make("SoftmaxWithLoss", axis=axis).forward(np.zeros(scores_shape),
                                                   np.zeros(labels_shape, int))


def test_label_shapes_at_build_time():
    gate = make("SoftmaxWithLoss")
    assert gate.infer_shapes((None, 5, 4, 4), (None, 1, 4, 4)) == ((),)
    assert gate.infer_shapes((None, 5, 4, 4), (None, 4, 4)) == ((),)
    with pytest.raises(ValueError, match="one label per sample and position"):
        gate.infer_shapes((None, 5, 4, 4), (None, 4, 3))
    with pytest.raises(ValueError, match="one label per sample"):
        gate.infer_shapes((8, 5), (6,))


@pytest.mark.parametrize("type_name, options, shapes, classes", [
    ("SoftmaxWithLoss", {}, [(None, 5, 4, 4), (None, 4, 4)], 5),
    ("SoftmaxWithLoss", {"axis": -1}, [(None, 7, 3), (None, 7)], 3),
    ("Accuracy", {"axis": 2}, [(None, 7, 3), (None, 7)], 3),
    ("InfogainLoss", {}, [(None, 4), (None,), (4, 4)], 4),
    ("HingeLoss", {}, [(None, 3, 2), (None,)], 6),
    ("MultinomialLogisticLoss", {}, [(None, 5), (None,)], 5),
])
def test_num_classes_for_the_data_loader(type_name, options, shapes, classes):
    assert make(type_name, **options).num_classes(*shapes) == classes


def test_a_segmentation_net_builds_trains_a_step_and_reports_its_classes():
    """FCN-style: scores (N, C, H, W), labels (N, H, W) with an ignored border value."""
    net = Net.from_config({
        "dtype": "float64",
        "inputs": {"data": {"shape": [None, 2, 3, 3]},
                   "label": {"shape": [None, 3, 3], "dtype": "int"}},
        "gates": [{"name": "score", "type": "Convolution", "bottom": "data", "top": "scores",
                   "num_output": 4, "kernel_size": 1},
                  {"name": "loss", "type": "SoftmaxWithLoss", "bottom": ["scores", "label"],
                   "top": "loss", "ignore_label": 255},
                  {"name": "acc", "type": "Accuracy", "bottom": ["scores", "label"],
                   "top": "accuracy", "ignore_label": 255}]})
    assert net.integer_inputs()["label"] == 4
    labels = np.random.default_rng(0).integers(0, 4, (2, 3, 3))
    labels[:, 0, :] = 255
    outputs = net.forward({"data": np.random.default_rng(1).standard_normal((2, 2, 3, 3)),
                           "label": labels})
    assert outputs["loss"].shape == () and 0 <= outputs["accuracy"] <= 1
    assert net.backward()["score.W"].shape == (4, 2, 1, 1)


# -- InfogainLoss --------------------------------------------------------------------------------
def test_infogain_matches_caffes_layer_test():
    """Caffe's TestInfogainLoss: data (4, 2, 5, 2) uniform in [-0.5, 2], labels (4, 2, 1, 2),
    H (1, 1, 5, 5) uniform in [0.1, 2], axis 2, two tops; the reference loops as Caffe's."""
    rng = np.random.default_rng(1701)
    data = rng.uniform(-0.5, 2.0, (4, 2, 5, 2))
    labels = rng.integers(0, 5, (4, 2, 1, 2)).astype(float)
    H = rng.uniform(0.1, 2.0, (1, 1, 5, 5))
    loss, prob = make("InfogainLoss", tops=2, axis=2).forward(data, labels, H)
    outer, inner, classes = 8, 2, 5
    flat_data, flat_prob, flat_h = data.reshape(-1), prob.reshape(-1), H.reshape(-1)
    expected = 0.0
    for i in range(outer):
        for j in range(inner):
            est = [np.exp(flat_data[i * classes * inner + k * inner + j]) for k in range(classes)]
            for k in range(classes):
                assert flat_prob[i * classes * inner + k * inner + j] == pytest.approx(
                    est[k] / sum(est), abs=1e-12)
            truth = int(labels.reshape(-1)[i * inner + j])
            for k in range(classes):
                expected -= flat_h[truth * classes + k] * np.log(
                    max(flat_prob[i * classes * inner + k * inner + j], 1e-20))
    assert loss == pytest.approx(expected / (outer * inner), rel=1e-12)


def test_infogain_with_the_identity_is_softmax_with_loss():
    rng = np.random.default_rng(3)
    scores, labels = rng.standard_normal((3, 4, 2)), np.array([[0, 3], [-1, 2], [1, -1]])
    infogain = make("InfogainLoss", ignore_label=-1)
    softmax = make("SoftmaxWithLoss", ignore_label=-1)
    assert infogain.forward(scores, labels, np.eye(4)) == pytest.approx(
        softmax.forward(scores, labels), rel=1e-14)
    np.testing.assert_allclose(infogain.backward(np.asarray(0.7))[0],
                               softmax.backward(np.asarray(0.7))[0], rtol=1e-13, atol=1e-16)


def test_infogain_gradient_of_h_by_hand():
    """One sample, label 1, uniform scores: dH[1, l] = -log(1/2) = log 2, other rows 0."""
    gate = make("InfogainLoss")
    gate.forward(np.zeros((1, 2)), np.array([1]), np.array([[1.0, 0.0], [0.5, 2.0]]))
    np.testing.assert_allclose(gate.backward(np.asarray(1.0))[2],
                               [[0.0, 0.0], [np.log(2), np.log(2)]])


@pytest.mark.parametrize("options, inputs, message", [
    ({"source": "infogain.binaryproto"}, 2, r"reading H from source 'infogain.binaryproto' "
                                            r"\(a .binaryproto file\) is not supported yet"),
    ({}, 2, "needs the infogain matrix H as its third bottom"),
    ({}, 3, r"H must hold 3 x 3 values .* got shape \(2, 2\)"),
])
def test_infogain_errors(options, inputs, message):
    args = [np.zeros((2, 3)), np.array([0, 1]), np.eye(2)][:inputs]
    with pytest.raises(ValueError, match=message):
        make("InfogainLoss", **options).forward(*args)


def test_infogain_two_tops_pass_the_gradient_check():
    gate = make("InfogainLoss", tops=2, axis=-1, ignore_label=2)
    rng = np.random.default_rng(5)
    report = check_gate(gate, [rng.standard_normal((2, 3, 3)), np.array([[0, 2, 1], [1, 1, 2]]),
                               rng.uniform(0.1, 2.0, (3, 3))])
    assert report.ok and report.checked == 18 + 9, str(report)


# -- SigmoidCrossEntropyLoss -------------------------------------------------------------------
def test_sigmoid_cross_entropy_by_hand_with_caffes_truncated_ignore():
    """x = 0: each counted element adds log 2. Targets -1.5 and -1 both truncate to -1."""
    gate = make("SigmoidCrossEntropyLoss", ignore_label=-1)
    targets = np.array([[1.0, -1.5], [0.0, -1.0]])
    assert gate.forward(np.zeros((2, 2)), targets) == pytest.approx(2 * np.log(2) / 2)
    dx, dt = gate.backward(np.asarray(1.0))
    np.testing.assert_allclose(dx, [[-0.25, 0.0], [0.25, 0.0]])
    np.testing.assert_allclose(dt, 0.0)


def test_sigmoid_cross_entropy_is_stable_for_large_scores():
    gate = make("SigmoidCrossEntropyLoss")
    loss = gate.forward(np.array([[800.0, -800.0]]), np.array([[0.0, 1.0]]))
    assert loss == pytest.approx(1600.0)


def test_sigmoid_cross_entropy_targets_of_another_shape_get_their_own_shape_back():
    gate = make("SigmoidCrossEntropyLoss")
    gate.forward(np.zeros((2, 3, 1, 1)), np.full((2, 3), 0.5))
    dx, dt = gate.backward(np.asarray(1.0))
    assert dx.shape == (2, 3, 1, 1) and dt.shape == (2, 3)


def test_sigmoid_cross_entropy_integer_targets_take_no_gradient():
    gate = make("SigmoidCrossEntropyLoss")
    gate.forward(np.zeros((2, 2)), np.array([[0, 1], [1, 0]]))
    assert gate.backward(np.asarray(1.0))[1] is None


# -- ContrastiveLoss -------------------------------------------------------------------------------
@pytest.mark.parametrize("legacy, loss, row2", [(False, 25.29 / 6, [0.0, 0.2 / 3]),
                                               (True, 26.11 / 6, [0.0, 0.8 / 3])])
def test_contrastive_loss_by_hand(legacy, loss, row2):
    """Distances 5 (similar), 0.5 and 0.8 (dissimilar), margin 1. At d = 0.5 both forms give
    the same gradient, (margin - d) / d = 1; at d = 0.8 they differ."""
    a = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0]])
    b = np.array([[3.0, 4.0], [0.3, 0.4], [1.0, 0.8]])
    gate = make("ContrastiveLoss", legacy_version=legacy)
    assert gate.forward(a, b, np.array([1, 0, 0])) == pytest.approx(loss)
    da, db, dy = gate.backward(np.asarray(1.0))
    np.testing.assert_allclose(da, [[-1.0, -4 / 3], [0.1, 0.4 / 3], row2])
    np.testing.assert_allclose(db, -da)
    assert dy is None


@pytest.mark.parametrize("legacy", [False, True])
def test_contrastive_loss_matches_caffes_layer_test(legacy):
    """Caffe's TestForward and TestForwardLegacy: (512, 2) pairs uniform in [-1, 1], y in {0, 1},
    margin 1; their reference loop."""
    rng = np.random.default_rng(1701)
    a, b = rng.uniform(-1, 1, (512, 2)), rng.uniform(-1, 1, (512, 2))
    y = rng.integers(0, 2, 512).astype(float)
    expected = 0.0
    for i in range(512):
        dist_sq = sum((a[i, j] - b[i, j]) ** 2 for j in range(2))
        if y[i]:
            expected += dist_sq
        elif legacy:
            expected += max(1.0 - dist_sq, 0.0)
        else:
            expected += max(1.0 - np.sqrt(dist_sq), 0.0) ** 2
    got = make("ContrastiveLoss", legacy_version=legacy).forward(a, b, y)
    assert got == pytest.approx(expected / 512 / 2, rel=1e-13)


@pytest.mark.parametrize("legacy", [False, True])
def test_contrastive_loss_gradient_check_with_active_and_inactive_pairs(legacy):
    report = check_gate("ContrastiveLoss", options={"legacy_version": legacy, "margin": 0.8})
    assert report.ok and report.checked == 36, str(report)


# -- HingeLoss and MultinomialLogisticLoss ---------------------------------------------------------
def test_hinge_loss_by_hand():
    """Label 0: hinges max(0, 1 - 2) = 0 for the true class, max(0, 1 + 0.5) = 1.5 and
    max(0, 1 - 3) = 0 for the others."""
    scores, labels = np.array([[2.0, 0.5, -3.0]]), np.array([0])
    l1, l2 = make("HingeLoss"), make("HingeLoss", norm="L2")
    assert l1.forward(scores, labels) == pytest.approx(1.5)
    assert l2.forward(scores, labels) == pytest.approx(2.25)
    np.testing.assert_allclose(l1.backward(np.asarray(1.0))[0], [[0.0, 1.0, 0.0]])
    np.testing.assert_allclose(l2.backward(np.asarray(1.0))[0], [[0.0, 3.0, 0.0]])


def test_hinge_l2_passes_the_gradient_check():
    assert check_gate("HingeLoss", options={"norm": "L2"}).ok


def test_multinomial_logistic_loss_by_hand_and_its_clamp():
    gate = make("MultinomialLogisticLoss")
    p = np.array([[0.2, 0.8], [0.5, 0.5]])
    assert gate.forward(p, np.array([1, 0])) == pytest.approx(-(np.log(0.8) + np.log(0.5)) / 2)
    np.testing.assert_allclose(gate.backward(np.asarray(1.0))[0], [[0, -1 / 1.6], [-1.0, 0]])
    assert gate.forward(np.array([[0.0, 1.0]]), np.array([0])) == pytest.approx(-np.log(1e-20))
    assert gate.backward(np.asarray(1.0))[0][0, 0] == pytest.approx(-1e20)
    assert gate.kinks(np.array([[0.0, 1.0]]), np.array([0]))[0][0, 0] == 0


# -- Accuracy --------------------------------------------------------------------------------------
def caffe_accuracy(scores, labels, axis, top_k, ignore=None):
    """Caffe's AccuracyLayer::Forward_cpu as loops: overall and per-class accuracy."""
    outer = int(np.prod(scores.shape[:axis]))
    classes, inner = scores.shape[axis], int(np.prod(scores.shape[axis + 1:]))
    data, flat_labels = scores.reshape(-1), labels.reshape(-1)
    accuracy = count = 0
    hits, totals = np.zeros(classes), np.zeros(classes)
    for i in range(outer):
        for j in range(inner):
            label = int(flat_labels[i * inner + j])
            if ignore is not None and label == ignore:
                continue
            totals[label] += 1
            true = data[i * classes * inner + label * inner + j]
            better = -1
            for k in range(classes):
                better += data[i * classes * inner + k * inner + j] >= true
            if better < top_k:
                accuracy += 1
                hits[label] += 1
            count += 1
    per_class = np.where(totals > 0, hits / np.maximum(totals, 1), 0)
    return (accuracy / count if count else 0.0), per_class


@pytest.mark.parametrize("shape, axis, top_k, ignore", [
    ((100, 10), 1, 1, None),                # Caffe's TestForward
    ((100, 10), 1, 3, None),                # TestForwardTopK
    ((2, 10, 4, 5), 1, 1, None),            # TestForwardWithSpatialAxes
    ((100, 10), 1, 1, 3),                   # TestForwardIgnoreLabel
    ((6, 5, 4), -1, 2, 0),
])
def test_accuracy_and_per_class_accuracy_match_caffes_layer_tests(shape, axis, top_k, ignore):
    rng = np.random.default_rng(1701)
    scores = rng.standard_normal(shape)
    ax = axis % len(shape)
    labels = rng.integers(0, shape[ax], shape[:ax] + shape[ax + 1:])
    gate = make("Accuracy", tops=2, axis=axis, top_k=top_k, ignore_label=ignore)
    accuracy, per_class = gate.forward(scores, labels)
    expected, expected_per_class = caffe_accuracy(scores, labels, ax, top_k, ignore)
    assert accuracy == pytest.approx(expected) and per_class.shape == (shape[ax],)
    np.testing.assert_allclose(per_class, expected_per_class)


def test_per_class_accuracy_by_hand():
    scores = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8]])
    accuracy, per_class = make("Accuracy", tops=2).forward(scores, np.array([0, 1, 1, 0]))
    assert accuracy == pytest.approx(0.5)
    np.testing.assert_allclose(per_class, [0.5, 0.5, 0.0])      # class 2 has no samples: 0
    assert make("Accuracy", tops=2).infer_shapes((None, 3), (None,)) == ((), (3,))


def test_accuracy_top_k_beyond_the_classes_is_an_error():
    with pytest.raises(ValueError, match=r"top_k 4 exceeds the number of classes \(3\)"):
        make("Accuracy", top_k=4).infer_shapes((None, 3), (None,))


# -- every loss under the gradient checker, beyond the registry's one configuration ----------------
@pytest.mark.parametrize("type_name, options", [
    ("SoftmaxWithLoss", {"normalization": "FULL"}),
    ("SoftmaxWithLoss", {"normalization": "NONE", "axis": -1}),
    ("SigmoidCrossEntropyLoss", {}),
    ("SigmoidCrossEntropyLoss", {"ignore_label": 0, "normalization": "FULL"}),
    ("InfogainLoss", {"normalization": "BATCH_SIZE"}),
])
def test_options_pass_the_gradient_check(type_name, options):
    report = check_gate(type_name, options=options)
    assert report.ok and report.checked > 0, str(report)
