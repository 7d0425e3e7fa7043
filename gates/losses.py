"""Losses and metrics: SoftmaxWithLoss, EuclideanLoss (Caffe's), and Accuracy (top-k).

Each loss returns a scalar (a 0-d array of the scores' dtype). A loss is a *mean* over the batch
(Caffe's normalisation), so the learning rate does not depend on the batch size. Integer class
labels arrive as an integer array (an input declared `dtype: int`); labels given as floats with
integer values are accepted too. Labels never receive a gradient.
"""
from __future__ import annotations

import numpy as np

from .base import Gate, Option, register_gate


def _labels(label: np.ndarray, n: int, classes: int, ignore: int | None) -> np.ndarray:
    """The labels as a flat integer array, checked against the batch size and class count."""
    if label.size != n or (label.ndim > 1 and label.shape[0] != n):
        raise ValueError(f"expected one label per sample ({n}), got labels of shape {label.shape}")
    flat = label.reshape(n)
    if flat.dtype.kind not in "iu":
        if flat.dtype.kind != "f" or not np.all(np.mod(flat, 1) == 0):
            raise ValueError("labels must be integers (declare the input `dtype: int`)")
        flat = flat.astype(np.intp)
    valid = flat if ignore is None else flat[flat != ignore]
    if valid.size and (valid.min() < 0 or valid.max() >= classes):
        bad = valid[(valid < 0) | (valid >= classes)][0]
        raise ValueError(f"label {int(bad)} is out of range for {classes} classes")
    return flat


class _Classifier(Gate):
    """Shared by the gates reading (scores (N, C), labels (N,)): shape checks and class count."""

    num_bottoms = 2
    check_shapes = ((4, 5),)

    def num_classes(self, scores_shape, label_shape=None) -> int | None:
        """The number of classes the labels index (read by the data loader to check labels)."""
        return scores_shape[-1] if len(scores_shape) == 2 else None

    def sample_inputs(self, rng):
        scores = rng.standard_normal((4, 5))
        return [scores, rng.integers(0, 5, 4)]

    def _check(self, scores: np.ndarray, label: np.ndarray) -> np.ndarray:
        if scores.ndim != 2:
            raise ValueError(f"{self.type_name} expects scores of shape (N, C), got {scores.shape}")
        return _labels(label, scores.shape[0], scores.shape[1], self.ignore_label)

    def _check_shapes(self, scores_shape, label_shape) -> None:
        if len(scores_shape) != 2:
            raise ValueError(f"expects scores of shape (N, C), got {scores_shape}")
        n, m = scores_shape[0], label_shape[0] if label_shape else 1
        if len(label_shape) > 2 or (None not in (n, m) and n != m):
            raise ValueError(f"expects one label per sample: scores {scores_shape}, "
                             f"labels {label_shape}")


@register_gate
class SoftmaxWithLossGate(_Classifier):
    """Softmax of the scores followed by the cross-entropy with integer labels (Caffe's
    SoftmaxWithLoss), averaged over the samples whose label is not `ignore_label`.
    Inputs: scores (N, C), labels (N,) integers in [0, C). Returns: loss, a scalar
    -mean_i log softmax(scores_i)[label_i]. Computed from scores minus their row maximum, so large
    scores never overflow.
    Local gradient: (softmax(scores) - onehot(labels)) / count; none for the labels."""

    options = {"ignore_label": Option((int, type(None)), None,
                                      "samples with this label add nothing to the loss")}

    def forward(self, scores, label):
        labels = self._check(scores, label)
        rows = np.arange(scores.shape[0])
        shifted = scores - scores.max(axis=1, keepdims=True)
        keep = None if self.ignore_label is None else labels != self.ignore_label
        safe = labels if keep is None else np.where(keep, labels, 0)
        picked = shifted[rows, safe]
        prob = np.exp(shifted, out=shifted)
        sums = prob.sum(axis=1, keepdims=True)
        prob /= sums
        log_likelihood = picked - np.log(sums[:, 0])
        self.count = scores.shape[0] if keep is None else int(keep.sum())
        if keep is not None:
            log_likelihood = log_likelihood[keep]
        self.prob, self.rows, self.labels, self.keep = prob, rows, safe, keep
        return np.asarray(-log_likelihood.sum() / max(self.count, 1), dtype=scores.dtype)

    def backward(self, dout):
        dscores = None
        if self.needs_input_grad[0]:
            dscores = self.prob.copy()
            dscores[self.rows, self.labels] -= 1
            if self.keep is not None:
                dscores[~self.keep] = 0
            dscores *= float(dout) / max(self.count, 1)
        return dscores, None

    def infer_shapes(self, scores_shape, label_shape):
        self._check_shapes(scores_shape, label_shape)
        return ((),)


@register_gate
class EuclideanLossGate(Gate):
    """Caffe's Euclidean loss: sum((a - b)^2) / (2N), N the batch size (the first dimension).
    Inputs: a (N, ...), b of the same shape (predictions and targets). Returns: loss, a scalar.
    Local gradients: (a - b) / N and -(a - b) / N."""

    check_shapes = ((4, 3), (4, 3))

    def forward(self, a, b):
        if a.shape != b.shape:
            raise ValueError(f"EuclideanLoss needs inputs of one shape, got {a.shape} and "
                             f"{b.shape}")
        self.diff = a - b
        self.n = a.shape[0] if a.ndim else 1
        flat = self.diff.reshape(-1)
        return np.asarray(np.dot(flat, flat) / (2 * self.n), dtype=self.diff.dtype)

    def backward(self, dout):
        needs = self.needs_input_grad
        scaled = self.diff * (float(dout) / self.n)
        return (scaled if needs[0] else None), (-scaled if needs[1] else None)

    def infer_shapes(self, a_shape, b_shape):
        if len(a_shape) != len(b_shape) or any(
                None not in (x, y) and x != y for x, y in zip(a_shape, b_shape)):
            raise ValueError(f"inputs must have one shape, got {a_shape} and {b_shape}")
        return ((),)


@register_gate
class AccuracyGate(_Classifier):
    """The fraction of samples whose label is among the `top_k` highest scores (Caffe's
    Accuracy; a tie with the true class's score counts against it).
    Inputs: scores (N, C), labels (N,) integers. Returns: accuracy, a scalar in [0, 1].
    Not a loss and not differentiable: the accuracy is piecewise constant, so the gradient for the
    scores is zero (away from ties, which are its kinks) and the labels get none."""

    is_loss = False
    options = {"top_k": Option(int, 1, "a sample counts when its label is among the k best",
                               range="[1, inf)"),
               "ignore_label": Option((int, type(None)), None,
                                      "samples with this label are skipped")}
    kink_note = "a score equal to the true class's score: the accuracy jumps there"

    def forward(self, scores, label):
        labels = self._check(scores, label)
        keep = None if self.ignore_label is None else labels != self.ignore_label
        safe = labels if keep is None else np.where(keep, labels, 0)
        self.shape, self.dtype = scores.shape, scores.dtype
        true = scores[np.arange(scores.shape[0]), safe][:, None]
        better = (scores >= true).sum(axis=1) - 1
        correct = (better < self.top_k) & ~np.isnan(scores).any(axis=1)  # NaN scores never win
        if keep is not None:
            correct = correct[keep]
        return np.asarray(correct.mean() if correct.size else 0.0, dtype=scores.dtype)

    def backward(self, dout):
        return (np.zeros(self.shape, dtype=self.dtype) if self.needs_input_grad[0] else None), None

    def infer_shapes(self, scores_shape, label_shape):
        self._check_shapes(scores_shape, label_shape)
        return ((),)

    def kinks(self, scores, label):
        labels = _labels(label, scores.shape[0], scores.shape[1], None)
        rows = np.arange(scores.shape[0])
        gap = np.abs(scores - scores[rows, labels][:, None])
        gap[rows, labels] = np.inf
        gap[rows, labels] = gap.min(axis=1)
        return gap, None
