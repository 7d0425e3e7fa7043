"""Testing and prediction from Python: figures, per-class accuracy and the confusion matrix of
a classifier whose weights are set by hand (so every count is known), the score blob found in
train/test and deploy configs alike, and raw inputs through the test transform."""
from __future__ import annotations

import numpy as np
import pytest

from net import ConfigError, Net, load_config
from net.train.evaluate import Predictor, evaluate, plot_confusion, evaluation_batches, top_k
from tests.helpers import needs_matplotlib

# scores = 10 x data: the prediction is the arg-max of the three features
CLASSIFIER = """\
name: argmax
inputs:
  data:  {shape: [null, 3]}
  label: {shape: [null], dtype: int}
gates:
  - {name: fc, type: InnerProduct, bottom: data, top: scores, num_output: 3}
  - {name: loss, type: SoftmaxWithLoss, bottom: [scores, label], top: loss}
  - {name: accuracy, type: Accuracy, bottom: [scores, label], top: accuracy, phase: test}
data:
  test: {source: test.npz, batch_size: 4}
"""
DATA = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]],
                dtype=np.float32)
LABEL = np.array([0, 1, 2, 1, 1, 0, 0])      # samples 3 and 5 are predicted wrongly


def classifier(tmp_path, text=CLASSIFIER) -> Net:
    np.savez(tmp_path / "test.npz", data=DATA, label=LABEL)
    (tmp_path / "net.yaml").write_text(text)
    net = Net(load_config(tmp_path / "net.yaml"))
    net.params["fc.W"][...] = 10 * np.eye(3)
    net.params["fc.b"][...] = 0
    return net


def test_figures_per_class_accuracy_and_confusion_by_hand(tmp_path):
    net = classifier(tmp_path)
    report = evaluate(net, evaluation_batches(net))
    assert report.samples == 7 and report.scores == "scores"
    assert report.figures["accuracy"] == pytest.approx(5 / 7)
    # rows: true class; columns: predicted. class 0: samples 0, 5 (-> 2), 6; class 1: 1, 3 (-> 0),
    # 4; class 2: sample 2
    np.testing.assert_array_equal(report.confusion, [[2, 0, 1], [1, 2, 0], [0, 0, 1]])
    np.testing.assert_allclose(report.per_class(), [2 / 3, 2 / 3, 1])
    # the loss of a right sample: -log(e^10 / (e^10 + 2)); of a wrong one: -log(1 / (e^10 + 2))
    right, wrong = np.log1p(2 * np.exp(-10)), np.log(np.exp(10) + 2)
    assert report.figures["loss"] == pytest.approx((5 * right + 2 * wrong) / 7, rel=1e-5)
    assert "      1  1            3  0.6667" in "\n".join(report.lines())
    assert net.phase == "train"


def test_iterations_limit_the_batches(tmp_path):
    net = classifier(tmp_path)
    report = evaluate(net, evaluation_batches(net), iterations=1)
    assert report.samples == 4 and report.confusion.sum() == 4


@needs_matplotlib
def test_the_confusion_png_replaces_a_symlink_instead_of_following_it(tmp_path):
    net = classifier(tmp_path)
    target = tmp_path / "elsewhere.txt"
    target.write_text("keep me")
    (tmp_path / "confusion.png").symlink_to(target)
    path = plot_confusion(evaluate(net, evaluation_batches(net)), tmp_path / "confusion.png", "t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and not path.is_symlink()
    assert target.read_text() == "keep me"


def test_prediction_needs_no_label_and_applies_a_softmax(tmp_path):
    net = classifier(tmp_path)
    predictor = Predictor(net)
    probabilities = predictor.predict(np.array([[0, 0, 1], [0.2, 0.1, 0]]))
    assert predictor.output == "scores" and predictor.softmax
    np.testing.assert_allclose(probabilities.sum(axis=1), 1)
    expected = np.exp([0, 0, 10]) / np.exp([0, 0, 10]).sum()
    np.testing.assert_allclose(probabilities[0], expected, rtol=1e-5)
    assert top_k(probabilities, 2)[1] == [(0, pytest.approx(probabilities[1, 0])),
                                          (1, pytest.approx(probabilities[1, 1]))]


def test_a_deploy_net_with_a_softmax_top_is_used_as_it_is(tmp_path):
    gates = CLASSIFIER.split("  - {name: loss")[0]
    deploy = gates.replace("  label: {shape: [null], dtype: int}\n", "") + \
        "  - {name: prob, type: Softmax, bottom: scores, top: prob}\n"
    net = classifier(tmp_path, deploy)
    predictor = Predictor(net)
    assert predictor.output == "prob" and not predictor.softmax
    np.testing.assert_allclose(predictor.predict(np.eye(3))[0, 0], np.exp(10) / (np.exp(10) + 2),
                               rtol=1e-5)
    with pytest.raises(ConfigError, match="'nothing' is not a blob"):
        Predictor(net, output="nothing")


def test_inputs_get_the_test_transform_and_files_are_read(tmp_path):
    text = CLASSIFIER.replace("{source: test.npz, batch_size: 4}",
                              "{source: test.npz, batch_size: 4, transform: {scale: 0.5, "
                              "mean_value: 2}}")
    predictor = Predictor(classifier(tmp_path, text), softmax=False)
    np.testing.assert_allclose(predictor.predict(np.array([[4, 2, 0]])), [[10, 0, -10]])
    np.save(tmp_path / "one.npy", np.array([1.0, 2, 3]))
    (tmp_path / "rows.csv").write_text("x,y,z,label\n1,2,3,0\n3,2,1,1\n")
    assert predictor.load(tmp_path / "one.npy").shape == (1, 3)
    np.testing.assert_array_equal(predictor.load(tmp_path / "rows.csv"), [[1, 2, 3], [3, 2, 1]])


def test_one_npy_sample_in_another_layout_is_one_sample_and_a_wrong_one_names_the_file(tmp_path):
    predictor = Predictor(classifier(tmp_path))
    np.save(tmp_path / "column.npy", np.array([[1.0], [2.0], [3.0]]))      # (3, 1): one sample
    np.save(tmp_path / "three.npy", np.eye(3))                               # (3, 3): three
    np.save(tmp_path / "wrong.npy", np.zeros((2, 2)))
    assert predictor.load(tmp_path / "column.npy").shape == (1, 3)
    assert predictor.load(tmp_path / "three.npy").shape == (3, 3)
    with pytest.raises(Exception, match=r"wrong.npy: an array of shape \(2, 2\), but the net's "
                                        r"input takes samples of shape \(3,\)"):
        predictor.load(tmp_path / "wrong.npy")
