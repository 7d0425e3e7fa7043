"""Losses and metrics, as Caffe defines them: SoftmaxWithLoss, SigmoidCrossEntropyLoss,
EuclideanLoss, ContrastiveLoss, HingeLoss, InfogainLoss, MultinomialLogisticLoss, and Accuracy.

Each loss returns a scalar (a 0-d array of the scores' dtype) divided by Caffe's normaliser, so
that the learning rate does not depend on the batch size: `normalization` VALID (the positions
whose label is not `ignore_label`), FULL (every position), BATCH_SIZE (the first dimension) or
NONE (1), never less than 1. "Positions" are the labels: with scores (N, C, H, W) and the class
axis 1 there are N * H * W of them.

Integer class labels arrive as an integer array (an input declared `dtype: int`); labels given
as floats with integer values are accepted too. Labels never receive a gradient. Where Caffe
refuses to back-propagate to a floating-point input (the targets of SigmoidCrossEntropyLoss, the
matrix H of InfogainLoss, the probabilities top of SoftmaxWithLoss), these gates give the exact
gradient instead, so that every float input passes the gradient check.
"""
from __future__ import annotations

import math

import numpy as np

from .base import Gate, Option, format_shape, max_along, register_gate

#: Caffe clamps a probability at FLT_MIN before its log in SoftmaxWithLoss (float32's smallest
#: normal number, in float64 too), so one term of the loss is at most -log(FLT_MIN) = 87.34
LOG_FLT_MIN = math.log(float(np.finfo(np.float32).tiny))
#: Caffe's kLOG_THRESHOLD: the clamp of a probability before its log in InfogainLoss and
#: MultinomialLogisticLoss
LOG_THRESHOLD = 1e-20
NORMALIZATIONS = ("FULL", "VALID", "BATCH_SIZE", "NONE")


def _normalizer(mode: str, outer: int, inner: int, valid: int) -> float:
    """Caffe's get_normalizer: what a loss summed over positions is divided by (at least 1)."""
    count = {"FULL": outer * inner, "VALID": valid, "BATCH_SIZE": outer, "NONE": 1}[mode]
    return float(max(count, 1))


def _normalization_options(default: str) -> dict[str, Option]:
    return {
        "normalization": Option((str, type(None)), None,
                                f"FULL, VALID, BATCH_SIZE or NONE (null: {default}, or what "
                                "`normalize` says)", choices=NORMALIZATIONS + (None,)),
        "normalize": Option((bool, type(None)), None,
                            "Caffe's legacy spelling: true means VALID, false BATCH_SIZE; "
                            "`normalization` wins when both are given"),
    }


def _mode(normalization: str | None, normalize: bool | None, default: str) -> str:
    if normalization is not None:
        return normalization
    if normalize is not None:
        return "VALID" if normalize else "BATCH_SIZE"
    return default


def _axis(axis: int, ndim: int, what: str = "scores") -> int:
    """Caffe's CanonicalAxisIndex: `axis` counted from the end when negative."""
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis} is out of range for {what} of {ndim} dimension(s)")
    return axis % ndim


def _split(shape: tuple, axis: int) -> tuple[int, int, int]:
    """(outer, classes, inner): the sizes before, at and after the class axis."""
    return math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:])


def _int_labels(label: np.ndarray) -> np.ndarray:
    if label.dtype.kind in "iu":
        return label
    if label.dtype.kind != "f" or not np.all(np.mod(label, 1) == 0):
        raise ValueError("labels must be integers (declare the input `dtype: int`)")
    return label.astype(np.intp)


def _labels(label: np.ndarray, shape: tuple, axis: int, ignore: int | None
            ) -> tuple[np.ndarray, np.ndarray | None]:
    """The labels as an (outer, inner) integer array, checked against the scores' `shape` and
    class `axis`, and the mask of positions that count (None: all of them)."""
    outer, classes, inner = _split(shape, axis)
    if label.size != outer * inner or (axis > 0 and label.ndim and label.shape[0] != shape[0]):
        if len(shape) == 2 and axis == 1:
            want = f"one label per sample ({outer})"
        else:
            want = (f"one label per sample and position ({outer * inner}: the scores' shape "
                    f"{format_shape(shape)} without axis {axis})")
        raise ValueError(f"expected {want}, got labels of shape {format_shape(label.shape)}")
    labels = _int_labels(label).reshape(outer, inner)
    keep = None if ignore is None else labels != ignore
    _check_range(labels if keep is None else labels[keep], classes)
    return (labels if keep is None else np.where(keep, labels, 0)), keep


#: the unsigned integer dtypes by item size (looked up: parsing "u8" on every call was most of
#: the check's time in a training step)
_UNSIGNED = {np.dtype(t).itemsize: np.dtype(t)
             for t in (np.uint8, np.uint16, np.uint32, np.uint64)}


def _check_range(labels: np.ndarray, classes: int) -> None:
    """Every integer label in [0, classes), checked in one pass: read as unsigned, a negative
    label is larger than any class. Labels in the other byte order (an .npz written elsewhere)
    are read in theirs."""
    unsigned = _UNSIGNED[labels.itemsize]
    if not labels.dtype.isnative:
        unsigned = unsigned.newbyteorder()
    if labels.size and labels.view(unsigned).max() >= classes:
        bad = labels[(labels < 0) | (labels >= classes)][0]
        raise ValueError(f"label {int(bad)} is out of range for {classes} classes")


def _check_label_shapes(scores_shape: tuple, label_shape: tuple, axis: int) -> None:
    """Build-time check that the labels can hold one label per position (open dimensions
    allowed; an open batch dimension on both sides is taken to be the same)."""
    rest = tuple(scores_shape[:axis]) + tuple(scores_shape[axis + 1:])
    if label_shape and axis > 0 and None not in (scores_shape[0], label_shape[0]) \
            and scores_shape[0] != label_shape[0]:
        raise ValueError(f"expects one label per sample: scores {format_shape(scores_shape)}, "
                         f"labels {format_shape(label_shape)}")
    if rest[:1] == (None,) and label_shape[:1] == (None,):
        rest, label_shape = rest[1:], label_shape[1:]
    if None not in rest and None not in label_shape and np.prod(rest) != np.prod(label_shape):
        raise ValueError(f"expects one label per sample and position: scores "
                         f"{format_shape(scores_shape)} (class axis {axis}), labels "
                         f"{format_shape(label_shape)}")


def _softmax(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and log-probabilities along axis 1 of x (outer, C, inner), from x minus its
    maximum, so that large scores never overflow."""
    shifted = x - max_along(x, 1)
    exp = np.exp(shifted)
    sums = exp.sum(axis=1, keepdims=True)
    return exp / sums, shifted - np.log(sums)


def _softmax_backward(prob: np.ndarray, dprob: np.ndarray) -> np.ndarray:
    """The gradient of the scores from that of softmax(scores) along axis 1."""
    return prob * (dprob - (dprob * prob).sum(axis=1, keepdims=True))


class _Classifier(Gate):
    """Shared by the gates reading scores with a class axis and one integer label per position:
    the label checks, the class count, and the optional probabilities top."""

    check_shapes = ((4, 5),)
    axis = 1        # the class axis; the gates with an `axis` option set their own

    def num_classes(self, scores_shape, *other_shapes) -> int | None:
        """The number of classes the labels index (read by the data loader to check labels)."""
        if len(scores_shape) <= self.axis or len(scores_shape) < -self.axis:
            return None
        return scores_shape[self.axis]

    def sample_inputs(self, rng):
        scores = rng.standard_normal(self.check_shapes[0])
        axis = _axis(self.axis, scores.ndim)
        outer, classes, inner = _split(scores.shape, axis)
        label_shape = scores.shape[:axis] + scores.shape[axis + 1:]
        labels = rng.integers(0, classes, label_shape)
        if getattr(self, "ignore_label", None) is not None:
            labels.reshape(-1)[::3] = self.ignore_label
        return [scores, labels]

    def _view(self, scores: np.ndarray, label: np.ndarray):
        """scores as (outer, C, inner), labels as (outer, inner), the mask of counted positions."""
        axis = _axis(self.axis, scores.ndim)
        labels, keep = _labels(label, scores.shape, axis, getattr(self, "ignore_label", None))
        return scores.reshape(_split(scores.shape, axis)), labels, keep

    def _top_shapes(self, scores_shape, label_shape, second_top) -> tuple:
        axis = _axis(self.axis, len(scores_shape))
        _check_label_shapes(tuple(scores_shape), tuple(label_shape), axis)
        return ((), second_top) if self.num_tops == 2 else ((),)


class _SoftmaxClassifier(_Classifier):
    """SoftmaxWithLoss and InfogainLoss: a softmax along `axis`, a loss per position, Caffe's
    normaliser, and, when the gate has two tops, the probabilities as the second top."""

    num_tops = (1, 2)

    def _finish(self, scores, terms, keep):
        """The loss from the per-position terms ((outer, inner), or (N,) for 2-D scores); caches
        what backward needs."""
        outer = len(terms)
        valid = terms.size if keep is None else int(keep.sum())
        self.scale = 1.0 / _normalizer(self.mode, outer, terms.size // max(outer, 1), valid)
        total = terms.sum() if keep is None else terms[keep].sum()
        loss = np.asarray(total * self.scale, dtype=scores.dtype)
        if self.num_tops == 2:
            return loss, self.prob.reshape(scores.shape)
        return loss

    def _scores_grad(self, grad, dout):
        """grad: d(loss terms)/d(scores) (outer, C, inner), ignored positions zero."""
        dloss, dprob = dout if self.num_tops == 2 else (dout, None)
        grad *= float(dloss) * self.scale
        if dprob is not None:
            grad += _softmax_backward(self.prob, np.reshape(dprob, self.prob.shape))
        return grad.reshape(self.shape)


@register_gate
class SoftmaxWithLossGate(_SoftmaxClassifier):
    """Softmax of the scores along `axis`, then the cross-entropy with integer labels, one per
    position (Caffe's SoftmaxWithLoss), summed over the positions whose label is not
    `ignore_label` and divided by Caffe's normaliser (see the module docstring; VALID by default:
    the mean over the counted positions).
    Inputs: scores (..., C, ...) with the C classes at `axis` (default 1: (N, C) or (N, C, H, W));
    labels with one integer in [0, C) per position: the scores' shape without the class axis
    ((N,), (N, H, W); any shape with as many elements and the same first dimension, such as
    (N, 1, H, W), is taken too). Returns: loss, a scalar -sum log p[label] / normaliser, p the
    softmax along `axis`, computed from the scores minus their maximum so nothing overflows; and,
    when the gate has two tops, p itself (the shape of the scores), as Caffe's second top.
    Caffe's clamp: log p is taken no lower than log(FLT_MIN) = -87.34 (float32's smallest normal
    number), so one position adds at most 87.34 to the sum.
    Local gradient: (p - onehot(labels)) / normaliser, zero at ignored positions; none for the
    labels; a gradient arriving at the probabilities top passes through the softmax (Caffe drops
    it). Kink: where the clamp holds, the loss is flat but the gradient stays that of the unclamped
    loss, as in Caffe (a confidently wrong sample keeps pulling); the checker skips those positions.
    """

    num_bottoms = 2
    options = {
        "axis": Option(int, 1, "the class axis of the scores (negative: from the end)"),
        "ignore_label": Option((int, type(None)), None,
                               "positions with this label add nothing to the loss"),
        **_normalization_options("VALID"),
    }
    check_options = {"ignore_label": -1}
    check_shapes = ((2, 4, 3),)
    kink_note = "log p[label] at Caffe's clamp log(FLT_MIN): flat there, gradient kept"

    def __init__(self, **options):
        super().__init__(**options)
        self._row_index: np.ndarray | None = None       # see _rows
        self.mode = _mode(self.normalization, self.normalize, "VALID")

    def forward(self, scores, label):
        if (scores.ndim == 2 and self.axis in (1, -1) and self.ignore_label is None
                and label.shape == scores.shape[:1] and label.dtype.kind in "iu"):
            # the common case, (N, C) scores and (N,) labels: the rows are the positions, so
            # no (outer, C, inner) view and one index array less (the same arithmetic)
            _check_range(label, scores.shape[1])
            x, keep = scores, None
            self.at_label = (self._rows(len(label)), label)
        else:
            x, labels, keep = self._view(scores, label)
            self.at_label = (np.arange(x.shape[0])[:, None], labels, np.arange(x.shape[2]))
        # _softmax's arithmetic on the same arrays, without its log-probabilities of every class:
        # -log p[label] = log(sum) - shifted[label], one subtraction per position
        shifted = x - max_along(x, 1)
        picked = shifted[self.at_label]                 # a copy: shifted can become p in place
        prob = np.exp(shifted, out=shifted)
        sums = prob.sum(axis=1, keepdims=True)
        terms = np.log(sums)[:, 0]
        terms -= picked
        self.prob = np.divide(prob, sums, out=prob)
        self.keep, self.shape = keep, scores.shape
        # Caffe's clamp, log p >= log(FLT_MIN): min(-log p, -log(FLT_MIN)) is -max(log p, ...)
        # (a - b is -(b - a) in IEEE arithmetic, up to the sign of a zero or a NaN term), one
        # pass fewer than negating after
        np.minimum(terms, -LOG_FLT_MIN, out=terms)
        return self._finish(scores, terms, keep)

    def _rows(self, count: int) -> np.ndarray:
        """0 .. count-1, the row of each label: made once per batch size, read-only."""
        rows = self._row_index
        if rows is None or len(rows) != count:
            rows = self._row_index = np.arange(count)
            rows.flags.writeable = False
        return rows

    def backward(self, dout):
        if not self.needs_input_grad[0]:
            return None, None
        grad = self.prob.copy()
        grad[self.at_label] -= 1
        if self.keep is not None:
            grad *= self.keep[:, None]
        return self._scores_grad(grad, dout), None

    def infer_shapes(self, scores_shape, label_shape):
        return self._top_shapes(scores_shape, label_shape, tuple(scores_shape))

    def kinks(self, scores, label):
        x, labels, keep = self._view(scores, label)
        picked = np.take_along_axis(_softmax(x)[1], labels[:, None], axis=1)
        distance = np.where(picked < LOG_FLT_MIN, 0.0, np.abs(picked - LOG_FLT_MIN))
        if keep is not None:
            distance[~keep[:, None]] = np.inf
        return np.broadcast_to(distance, x.shape).reshape(scores.shape), None


@register_gate
class InfogainLossGate(_SoftmaxClassifier):
    """Caffe's InfogainLoss: a softmax along `axis`, then per position -sum_l H[label, l] log p_l,
    summed over the positions whose label is not `ignore_label` and divided by Caffe's normaliser
    (VALID by default). With H the identity this is SoftmaxWithLoss.
    Inputs: scores (..., C, ...) with the classes at `axis`; labels, one integer in [0, C) per
    position (as SoftmaxWithLoss); H, the C x C infogain matrix (any shape with C * C elements),
    as the third bottom. Caffe's alternative, H read from a `source` .binaryproto file, is not
    supported yet. Returns: loss, a scalar; and, when the gate has two tops, the probabilities p
    (the shape of the scores). Caffe's clamp: p is taken no lower than kLOG_THRESHOLD = 1e-20.
    Local gradients: scores: (p * sum_l H[label, l] - H[label, :]) / normaliser (Caffe's);
    H: dH[y, l] = -sum over positions labelled y of log p_l / normaliser (Caffe refuses this one);
    none for the labels. Kink: a clamped p_l makes its term flat while the scores' gradient stays
    Caffe's unclamped one; the checker skips such positions.
    """

    num_bottoms = (2, 3)        # Caffe's two-bottom form reads H from `source`
    options = {
        "axis": Option(int, 1, "the class axis of the scores (negative: from the end)"),
        "source": Option((str, type(None)), None,
                         "Caffe's .binaryproto file holding H (not supported yet: give H as "
                         "the third bottom)"),
        "ignore_label": Option((int, type(None)), None,
                               "positions with this label add nothing to the loss"),
        "normalization": Option(str, "VALID", "FULL, VALID, BATCH_SIZE or NONE",
                                choices=NORMALIZATIONS),
    }
    check_shapes = ((3, 4),)
    kink_note = "a probability at Caffe's clamp kLOG_THRESHOLD = 1e-20"

    def __init__(self, **options):
        super().__init__(**options)
        self.mode = self.normalization

    def sample_inputs(self, rng):
        classes = self.check_shapes[0][1]
        return super().sample_inputs(rng) + [rng.uniform(0.0, 2.0, (classes, classes))]

    def forward(self, scores, label, H=None):
        x, labels, keep = self._view(scores, label)
        classes = x.shape[1]
        if H is None:
            raise ValueError(self._no_matrix())
        if H.size != classes * classes:
            raise ValueError(f"H must hold {classes} x {classes} values (one per pair of "
                             f"classes), got shape {format_shape(H.shape)}")
        matrix = H.reshape(classes, classes)
        self.prob, log_prob = _softmax(x)
        self.log_prob = np.maximum(log_prob, math.log(LOG_THRESHOLD))
        rows = matrix[labels]                                 # (outer, inner, C): H[label, :]
        terms = -np.einsum("oic,oci->oi", rows, self.log_prob)
        self.labels, self.keep, self.rows, self.shape = labels, keep, rows, scores.shape
        self.H_shape = H.shape
        return self._finish(scores, terms, keep)

    def backward(self, dout):
        needs = self.needs_input_grad
        keep = np.ones(self.labels.shape, bool) if self.keep is None else self.keep
        dscores = dH = None
        if needs[0]:
            rows = np.moveaxis(self.rows, 2, 1)               # (outer, C, inner)
            grad = self.prob * rows.sum(axis=1, keepdims=True) - rows
            grad *= keep[:, None]
            dscores = self._scores_grad(grad, dout)
        if len(needs) > 2 and needs[2]:
            dloss = float(dout[0] if self.num_tops == 2 else dout) * self.scale
            classes = self.prob.shape[1]
            onehot = np.zeros((self.labels.size, classes))
            onehot[np.arange(self.labels.size), self.labels.reshape(-1)] = keep.reshape(-1)
            logs = np.moveaxis(self.log_prob, 1, 2).reshape(-1, classes)
            dH = (-dloss * (onehot.T @ logs)).reshape(self.H_shape)
        return dscores, None, dH

    def infer_shapes(self, scores_shape, label_shape, *H_shape):
        if not H_shape:
            raise ValueError(self._no_matrix())
        return self._top_shapes(scores_shape, label_shape, tuple(scores_shape))

    def kinks(self, scores, label, H=None):
        x, _, keep = self._view(scores, label)
        clamped = (_softmax(x)[1] <= math.log(LOG_THRESHOLD)).any(axis=1, keepdims=True)
        if keep is not None:
            clamped &= keep[:, None]
        distance = np.where(clamped, 0.0, np.inf)
        return np.broadcast_to(distance, x.shape).reshape(scores.shape), None, None

    def _no_matrix(self) -> str:
        if self.source is not None:
            return (f"reading H from source {self.source!r} (a .binaryproto file) is not "
                    "supported yet; give H as the third bottom")
        return "needs the infogain matrix H as its third bottom"


@register_gate
class AccuracyGate(_Classifier):
    """The fraction of positions whose label is among the `top_k` highest scores along `axis`
    (Caffe's Accuracy; a score tied with the true class's counts against it; a position with a
    NaN score is wrong, so a diverged net never looks accurate). Positions labelled
    `ignore_label` are skipped.
    Inputs: scores (..., C, ...) with the classes at `axis`; labels, one integer per position (as
    SoftmaxWithLoss). Returns: accuracy, a scalar in [0, 1] (0 when no position counts); and,
    when the gate has two tops, Caffe's per-class accuracy (C,): for each class the fraction of
    its positions that were right (0 for a class with no positions).
    Not a loss and not differentiable: the accuracy is piecewise constant, so the gradient for the
    scores is zero (away from ties, which are its kinks) and the labels get none."""

    num_bottoms = 2
    num_tops = (1, 2)
    is_loss = False
    options = {"top_k": Option(int, 1, "a position counts when its label is among the k best",
                               range="[1, inf)"),
               "axis": Option(int, 1, "the class axis of the scores (negative: from the end)"),
               "ignore_label": Option((int, type(None)), None,
                                      "positions with this label are skipped")}
    kink_note = "a score equal to the true class's score: the accuracy jumps there"

    def forward(self, scores, label):
        x, labels, keep = self._view(scores, label)
        classes = x.shape[1]
        if self.top_k > classes:
            raise ValueError(f"top_k {self.top_k} exceeds the number of classes ({classes})")
        self.shape, self.dtype = scores.shape, scores.dtype
        true = np.take_along_axis(x, labels[:, None], axis=1)
        better = (x >= true).sum(axis=1) - 1
        correct = (better < self.top_k) & ~np.isnan(x).any(axis=1)  # NaN scores never win
        counted = labels if keep is None else labels[keep]
        right = correct if keep is None else correct[keep]
        accuracy = np.asarray(right.mean() if right.size else 0.0, dtype=scores.dtype)
        if self.num_tops == 1:
            return accuracy
        totals = np.bincount(counted.reshape(-1), minlength=classes)
        hits = np.bincount(counted[right], minlength=classes)
        per_class = np.divide(hits, totals, out=np.zeros(classes), where=totals > 0)
        return accuracy, per_class.astype(scores.dtype)

    def backward(self, dout):
        return (np.zeros(self.shape, dtype=self.dtype) if self.needs_input_grad[0] else None), None

    def infer_shapes(self, scores_shape, label_shape):
        axis = _axis(self.axis, len(scores_shape))
        classes = scores_shape[axis]
        if classes is not None and self.top_k > classes:
            raise ValueError(f"top_k {self.top_k} exceeds the number of classes ({classes})")
        return self._top_shapes(scores_shape, label_shape, (classes,))

    def kinks(self, scores, label):
        x, labels, _ = self._view(scores, label)
        outer, inner = np.indices(labels.shape)
        true = x[outer, labels, inner]
        gap = np.abs(x - true[:, None])
        gap[outer, labels, inner] = np.inf
        gap[outer, labels, inner] = gap.min(axis=1)
        return gap.reshape(scores.shape), None


@register_gate
class SigmoidCrossEntropyLossGate(Gate):
    """Caffe's SigmoidCrossEntropyLoss: the cross-entropy between targets t in [0, 1] and
    sigmoid(x), element by element, summed over the elements whose target is not `ignore_label`
    (compared as Caffe does, after truncating t to an integer) and divided by Caffe's normaliser:
    BATCH_SIZE by default (the first dimension; Caffe's default for this loss), VALID (counted
    elements), FULL or NONE.
    Inputs: x (N, ...) scores; t, targets with as many elements. Returns: loss, a scalar
    sum(max(x, 0) - x t + log(1 + exp(-|x|))) / normaliser, the form that never overflows.
    Local gradients: dx = (sigmoid(x) - t) / normaliser and dt = -x / normaliser (Caffe refuses
    the second), both zero at ignored elements.
    Kinks: with `ignore_label`, a target at an edge of the values that truncate to it (the
    element switches between counted and ignored there)."""

    options = {"ignore_label": Option((int, type(None)), None,
                                      "elements whose target truncates to this are skipped"),
               **_normalization_options("BATCH_SIZE")}
    check_options = {"ignore_label": -1, "normalization": "VALID"}
    kink_note = "a target at an edge of the values that truncate to ignore_label"

    def __init__(self, **options):
        super().__init__(**options)
        self.mode = _mode(self.normalization, self.normalize, "BATCH_SIZE")

    def sample_inputs(self, rng):
        targets = rng.uniform(0.05, 0.95, (4, 3))
        targets[::2, 1] = -1.0
        return [rng.standard_normal((4, 3)) * 2, targets]

    def forward(self, x, t):
        if x.size != t.size:
            raise ValueError(f"scores {format_shape(x.shape)} and targets "
                             f"{format_shape(t.shape)} must have as many elements")
        self.t_shape, t = t.shape, t.reshape(x.shape)
        keep = None if self.ignore_label is None else np.trunc(t) != self.ignore_label
        terms = np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))
        valid = x.size if keep is None else int(keep.sum())
        outer = x.shape[0] if x.ndim else 1
        self.scale = 1.0 / _normalizer(self.mode, outer, x.size // max(outer, 1), valid)
        self.x, self.t, self.keep = x, t, keep
        total = terms.sum() if keep is None else terms[keep].sum()
        return np.asarray(total * self.scale, dtype=x.dtype)

    def backward(self, dout):
        scale = float(dout) * self.scale
        if self.keep is not None:
            scale = scale * self.keep
        needs = self.needs_input_grad
        dx = dt = None
        if needs[0]:
            z = np.exp(-np.abs(self.x))
            sigmoid = np.where(self.x >= 0, 1 / (1 + z), z / (1 + z))
            dx = (sigmoid - self.t) * scale
        if needs[1] and self.t.dtype.kind == "f":
            dt = (-self.x * scale).reshape(self.t_shape)
        return dx, dt

    def infer_shapes(self, x_shape, t_shape):
        if None not in x_shape and None not in t_shape and np.prod(x_shape) != np.prod(t_shape):
            raise ValueError(f"scores {format_shape(x_shape)} and targets "
                             f"{format_shape(t_shape)} must have as many elements")
        return ((),)

    def kinks(self, x, t):
        if self.ignore_label is None:
            return None
        k = self.ignore_label
        low, high = (k - 1, k) if k < 0 else (k, k + 1) if k > 0 else (-1, 1)
        return None, np.minimum(np.abs(t - low), np.abs(t - high))


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
class ContrastiveLossGate(Gate):
    """Caffe's ContrastiveLoss for pairs (a_i, b_i) with a similarity label y_i, d_i = |a_i - b_i|:
    loss = sum_i [y_i d_i^2 + (1 - y_i) max(margin - d_i, 0)^2] / (2N), or with `legacy_version`
    the dissimilar term max(margin - d_i^2, 0) (Caffe's original form).
    Inputs: a (N, ...) and b of the same shape (each sample flattened); y, N labels: a pair is
    similar when y truncates to a nonzero integer (1), dissimilar otherwise (0), as in Caffe.
    Returns: loss, a scalar.
    Local gradients (db = -da, none for y): similar pairs da = (a - b) / N; dissimilar pairs with
    margin - d > 0: da = -(margin - d) / d (a - b) / N, legacy: da = -(a - b) / N; else 0. (Caffe
    divides by d + 1e-4 rather than d; this is the exact gradient.)
    Kinks: a dissimilar pair at the margin (d = margin, legacy d^2 = margin) or, in the new form,
    at d = 0; y at |y| = 1, where the pair switches between similar and dissimilar."""

    options = {"margin": Option(float, 1.0, "dissimilar pairs closer than this are pushed apart"),
               "legacy_version": Option(bool, False, "use max(margin - d^2, 0) for dissimilar "
                                                     "pairs, as Caffe's first version")}
    kink_note = "a dissimilar pair at the margin (or at d = 0), or y at |y| = 1"

    def sample_inputs(self, rng):
        a = rng.standard_normal((6, 3))
        spread = np.array([0.2, 0.3, 1.0, 0.25, 0.15, 0.4])[:, None]
        return [a, a + spread * rng.standard_normal((6, 3)), np.array([1, 0, 1, 0, 0, 0])]

    def forward(self, a, b, y):
        n = a.shape[0] if a.ndim else 1
        if a.shape != b.shape or y.size != n:
            raise ValueError(f"expects a and b of one shape (N, ...) and N labels, got "
                             f"{format_shape(a.shape)}, {format_shape(b.shape)} and "
                             f"{format_shape(y.shape)}")
        self.diff = (a - b).reshape(n, -1)
        dist_sq = np.einsum("ij,ij->i", self.diff, self.diff)
        self.similar = np.trunc(y.reshape(n)) != 0
        if self.legacy_version:
            self.gap = self.margin - dist_sq
            dissimilar = np.maximum(self.gap, 0)
        else:
            self.dist = np.sqrt(dist_sq)
            self.gap = self.margin - self.dist
            dissimilar = np.maximum(self.gap, 0) ** 2
        self.n, self.shape = n, a.shape
        total = np.where(self.similar, dist_sq, dissimilar).sum()
        return np.asarray(total / (2 * n), dtype=self.diff.dtype)

    def backward(self, dout):
        active = ~self.similar & (self.gap > 0)
        if self.legacy_version:
            factor = np.where(active, -1.0, 0.0)
        else:
            safe = np.where(self.dist > 0, self.dist, 1.0)
            factor = np.where(active & (self.dist > 0), -self.gap / safe, 0.0)
        factor = np.where(self.similar, 1.0, factor) * (float(dout) / self.n)
        da = (self.diff * factor[:, None]).reshape(self.shape)
        needs = self.needs_input_grad
        return (da if needs[0] else None), (-da if needs[1] else None), None

    def infer_shapes(self, a_shape, b_shape, y_shape):
        if len(a_shape) != len(b_shape) or any(
                None not in (p, q) and p != q for p, q in zip(a_shape, b_shape)):
            raise ValueError(f"a and b must have one shape, got {format_shape(a_shape)} and "
                             f"{format_shape(b_shape)}")
        return ((),)

    def kinks(self, a, b, y):
        n = a.shape[0] if a.ndim else 1
        diff = (a - b).reshape(n, -1)
        dist_sq = np.einsum("ij,ij->i", diff, diff)
        dist = np.sqrt(dist_sq)
        if self.legacy_version:     # moving one element by e changes d^2 by at most 2 d e + e^2
            reach = np.sqrt(dist_sq + np.abs(self.margin - dist_sq)) - dist
        else:                       # ... and d by at most e
            reach = np.minimum(np.abs(self.margin - dist), dist)
        similar = np.trunc(y.reshape(n)) != 0
        distance = np.where(similar, np.inf, reach)[:, None] * np.ones_like(diff)
        distance = distance.reshape(a.shape)
        y_distance = np.abs(np.abs(y) - 1.0) if y.dtype.kind == "f" else None
        return distance, distance, y_distance


class _FlatClassifier(_Classifier):
    """HingeLoss and MultinomialLogisticLoss: scores (N, ...) flattened to (N, C), as Caffe
    reads them, and one integer label per sample."""

    num_bottoms = 2

    def num_classes(self, scores_shape, *other_shapes) -> int | None:
        rest = scores_shape[1:]
        return None if not rest or None in rest else int(np.prod(rest))

    def infer_shapes(self, x_shape, label_shape):
        if len(x_shape) < 2:
            raise ValueError(f"expects scores of shape (N, C, ...), got {format_shape(x_shape)}")
        _check_label_shapes((x_shape[0], self.num_classes(x_shape)), tuple(label_shape), 1)
        return ((),)

    def _flat(self, x, label):
        """x as (N, C) and the labels as (N,)."""
        if x.ndim < 2:
            raise ValueError(f"expects scores of shape (N, C, ...), got {format_shape(x.shape)}")
        scores = x.reshape(x.shape[0], -1)
        return scores, _labels(label, scores.shape, 1, None)[0][:, 0]


@register_gate
class HingeLossGate(_FlatClassifier):
    """Caffe's HingeLoss, one-versus-all: with s_ij = -1 for the true class j = label_i and +1
    for the others, loss = sum_ij max(0, 1 + s_ij x_ij) / N (`norm` L1) or
    sum_ij max(0, 1 + s_ij x_ij)^2 / N (L2): every wrong class is pushed below -1 and the true one
    above +1. (Not PyTorch's multi_margin_loss, which compares each wrong class with the true one.)
    Inputs: x (N, ...) scores, flattened to (N, C) as in Caffe; labels (N,) integers in [0, C).
    Returns: loss, a scalar.
    Local gradient: L1: s_ij sign(max(0, 1 + s_ij x_ij)) / N (0 at the hinge, as Caffe's sign);
    L2: 2 s_ij max(0, 1 + s_ij x_ij) / N; none for the labels.
    Kinks (L1 only): 1 + s_ij x_ij = 0, where the hinge bends."""

    options = {"norm": Option(str, "L1", "L1 (sum of hinges) or L2 (sum of squared hinges)",
                              choices=("L1", "L2"))}
    kink_note = "1 + s x = 0, where the hinge bends (L1)"

    def forward(self, x, label):
        scores, labels = self._flat(x, label)
        self.sign = np.ones_like(scores)
        self.sign[np.arange(len(scores)), labels] = -1
        self.hinge = np.maximum(0, 1 + self.sign * scores)
        self.shape = x.shape
        total = self.hinge.sum() if self.norm == "L1" else np.sum(self.hinge * self.hinge)
        return np.asarray(total / len(scores), dtype=x.dtype)

    def backward(self, dout):
        if not self.needs_input_grad[0]:
            return None, None
        slope = np.sign(self.hinge) if self.norm == "L1" else 2 * self.hinge
        return (self.sign * slope * (float(dout) / len(self.hinge))).reshape(self.shape), None

    def kinks(self, x, label):
        if self.norm == "L2":
            return None
        scores, labels = self._flat(x, label)
        sign = np.ones_like(scores)
        sign[np.arange(len(scores)), labels] = -1
        return np.abs(1 + sign * scores).reshape(x.shape), None


@register_gate
class MultinomialLogisticLossGate(_FlatClassifier):
    """Caffe's MultinomialLogisticLoss: the negative log-likelihood of probabilities computed
    elsewhere (a Softmax gate before it), loss = -sum_i log(max(p[i, label_i], 1e-20)) / N.
    Inputs: p (N, ...) probabilities, flattened to (N, C) as in Caffe; labels (N,) integers in
    [0, C). Returns: loss, a scalar.
    Local gradient: -1 / (max(p[i, label_i], 1e-20) N) at each sample's label, 0 elsewhere; none
    for the labels. Kink: at p = 1e-20 (Caffe's kLOG_THRESHOLD); below it the loss is flat but
    the gradient stays Caffe's -1 / (1e-20 N), and the checker skips those elements."""

    kink_note = "p[label] at or below Caffe's clamp kLOG_THRESHOLD = 1e-20"

    def sample_inputs(self, rng):
        return [rng.uniform(0.1, 1.0, (4, 5)), rng.integers(0, 5, 4)]

    def forward(self, p, label):
        probs, labels = self._flat(p, label)
        rows = np.arange(len(probs))
        self.picked = np.maximum(probs[rows, labels], LOG_THRESHOLD)
        self.rows, self.labels, self.shape, self.dtype = rows, labels, p.shape, p.dtype
        return np.asarray(-np.log(self.picked).sum() / len(probs), dtype=p.dtype)

    def backward(self, dout):
        if not self.needs_input_grad[0]:
            return None, None
        grad = np.zeros((len(self.rows), int(np.prod(self.shape[1:]))), dtype=self.dtype)
        grad[self.rows, self.labels] = -float(dout) / (self.picked * len(self.rows))
        return grad.reshape(self.shape), None

    def kinks(self, p, label):
        probs, labels = self._flat(p, label)
        rows = np.arange(len(probs))
        distance = np.full(probs.shape, np.inf)
        picked = probs[rows, labels]
        distance[rows, labels] = np.where(picked > LOG_THRESHOLD, picked - LOG_THRESHOLD, 0.0)
        return distance.reshape(p.shape), None
