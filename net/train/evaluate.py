"""Testing a trained net (Caffe's `caffe test`) and asking it about new inputs.

    from net.train.evaluate import evaluate, Predictor
    report = evaluate(net, evaluation_batches(net))   # loss, accuracies, per class, confusion
    predictor = Predictor(net)                      # the score blob, the test transform
    probabilities = predictor.predict(raw_samples)  # (N, classes)

Which blobs a classifier has: the scores are the first bottom, and the labels the second, of
the test phase's first Accuracy gate, else of its first loss gate reading an integer input
(SoftmaxWithLoss). `evaluate` averages every scalar output over the samples, as the solver's
test pass does, and counts (true class, predicted class) pairs, the prediction being the arg-max
of the scores; labels equal to an Accuracy gate's `ignore_label` are left out of the counts.

`Predictor` runs only what the score blob depends on (no label needed), in the test phase, so a
deploy net and a train/test config work alike. The blob is `output` when given, else the scores
as above, else the net's only output. It applies a softmax over axis 1 unless the blob is the
top of a Softmax gate (already probabilities) or `softmax=False`. Raw samples go through the
test source's transform, exactly as test samples do.
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.spec import SourceSpec
from ..errors import ConfigError, DataError
from .data import Batches, Checks, load_source
from .files import atomic_write_bytes, read_npy
from .sources.images import decode_image
from .sources.tables import read_csv
from .sources.transform import Transformer

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm",
                  ".pgm")


def classifier_blobs(net: Any) -> tuple[str, str, int | None] | None:
    """(scores, labels, ignore_label) of the net's test phase, or None (see the docstring)."""
    phase = net.phase
    net.phase = "test"
    try:
        steps = [step.spec for step in net.runner.steps]
    finally:
        net.phase = phase
    integer = set(net.integer_inputs())
    for spec in steps:
        if spec.type == "Accuracy":
            return spec.bottom[0], spec.bottom[1], spec.options.get("ignore_label")
    for spec in steps:
        if spec.cls.loss_gate() and len(spec.bottom) > 1 and spec.bottom[1] in integer:
            return spec.bottom[0], spec.bottom[1], spec.options.get("ignore_label")
    return None


@dataclass
class Evaluation:
    """What `evaluate` found: `figures` (loss and every scalar output, averaged over the
    samples), `samples`, and for a classifier `confusion` ((true, predicted) counts)."""
    figures: dict[str, float]
    samples: int
    scores: str | None = None
    confusion: np.ndarray | None = field(default=None, repr=False)

    def per_class(self) -> np.ndarray:
        """Accuracy per true class (NaN for a class with no test sample)."""
        totals = self.confusion.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.diag(self.confusion) / totals

    def lines(self, names: list[str] | None = None) -> list[str]:
        """The report scripts/test.py prints."""
        lines = [", ".join(f"{k} = {v:.6g}" for k, v in self.figures.items())
                 + f" ({self.samples} samples)"]
        if self.confusion is None:
            return lines
        lines.append(f"per-class accuracy (scores '{self.scores}', prediction = arg-max):")
        width = max([5] + [len(n) for n in names or []])
        lines.append(f"  {'class':>5}  {'name':<{width}}  {'samples':>7}  accuracy")
        for index, (total, accuracy) in enumerate(zip(self.confusion.sum(axis=1),
                                                      self.per_class())):
            name = names[index] if names and index < len(names) else str(index)
            shown = "-" if total == 0 else f"{accuracy:.4f}"
            lines.append(f"  {index:>5}  {name:<{width}}  {total:>7}  {shown}")
        return lines


def evaluate(net: Any, batches: Batches, iterations: int | None = None) -> Evaluation:
    """Run the test phase over `batches` (every sample once, or `iterations` batches from the
    start) and report as the module docstring says."""
    previous = net.phase
    net.phase = "test"
    try:
        found = classifier_blobs(net)
        wanted = list(net.outputs)
        if found is not None and found[0] not in wanted:
            wanted.append(found[0])
        weights = net.loss_weights
        totals: dict[str, float] = {}
        confusion, count = None, 0
        for number, (feed, n) in enumerate(batches.one_pass()):
            if iterations is not None and number >= iterations:
                break
            outputs = net.forward(feed, outputs=wanted)
            if weights:
                totals["loss"] = totals.get("loss", 0.0) + n * sum(
                    w * float(np.sum(outputs[t])) for t, w in weights.items())
            for name in net.outputs:
                if np.size(outputs[name]) == 1 and not (name == "loss" and weights):
                    totals[name] = totals.get(name, 0.0) + n * float(np.asarray(outputs[name]))
            if found is not None:
                scores, labels, ignore = found
                counts = _confusion(outputs[scores], feed[labels], ignore)
                confusion = counts if confusion is None else confusion + counts
            count += n
    finally:
        net.phase = previous
    figures = {name: total / max(count, 1) for name, total in totals.items()}
    return Evaluation(figures, count, found[0] if found else None, confusion)


def _confusion(scores: np.ndarray, labels: np.ndarray, ignore: int | None) -> np.ndarray:
    classes = scores.shape[1]
    predicted = np.argmax(scores, axis=1).reshape(-1)
    truth = np.asarray(labels).reshape(-1).astype(np.int64)
    keep = (truth >= 0) & (truth < classes)
    if ignore is not None:
        keep &= truth != ignore
    return np.bincount(truth[keep] * classes + predicted[keep],
                       minlength=classes * classes).reshape(classes, classes)


def plot_confusion(evaluation: Evaluation, path: str | Path, title: str = "",
                   names: list[str] | None = None) -> Path | None:
    """The confusion matrix as a PNG (rows: true class, columns: predicted; each row as a
    fraction of its samples, with the counts written in), written atomically and never through
    a symbolic link. None when matplotlib is missing or the net is not a classifier."""
    if evaluation.confusion is None:
        return None
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    counts = evaluation.confusion
    classes = len(counts)
    with np.errstate(invalid="ignore", divide="ignore"):
        fractions = np.nan_to_num(counts / counts.sum(axis=1, keepdims=True))
    labels = [names[i] if names and i < len(names) else str(i) for i in range(classes)]
    size = max(5.0, 0.55 * classes + 2)
    fig, axis = plt.subplots(figsize=(size + 1, size))
    image = axis.imshow(fractions, cmap="Blues", vmin=0, vmax=1)
    if classes <= 30:
        for (row, column), value in np.ndenumerate(counts):
            if value:
                axis.text(column, row, str(value), ha="center", va="center", fontsize=7,
                          color="white" if fractions[row, column] > 0.5 else "black")
        axis.set_xticks(range(classes), labels, rotation=45, ha="right")
        axis.set_yticks(range(classes), labels)
    axis.set_xlabel("predicted class")
    axis.set_ylabel("true class")
    accuracy = np.trace(counts) / max(counts.sum(), 1)
    axis.set_title(f"{title + ': ' if title else ''}{counts.sum()} samples, "
                   f"accuracy {accuracy:.4f}")
    fig.colorbar(image, ax=axis, fraction=0.046, label="fraction of the true class")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return atomic_write_bytes(Path(path), buffer.getvalue())


def evaluation_batches(net: Any, batch_size: int | None = None) -> Batches:
    """The config's `data: test:` source, loaded and checked, batched in file order."""
    spec = net.spec.data.test if net.spec.data is not None else None
    if spec is None:
        raise ConfigError("testing needs a `data: test:` source in the config", net.spec.file,
                          net.spec.line_of("data"))
    source, prepare = load_source(net, spec)
    return Batches(source, batch_size or spec.batch_size, False, 0, prepare=prepare,
                   prefetch=spec.prefetched)


# -- prediction ------------------------------------------------------------------------------------
class Predictor:
    """Class probabilities for raw samples (see the module docstring).

    net: a Net with its weights loaded; output: the blob to read (default: the scores);
    softmax: None for the rule of the docstring, or force it on or off; source: the SourceSpec
    whose transform and image settings inputs get (default: the config's test source)."""

    def __init__(self, net: Any, output: str | None = None, softmax: bool | None = None,
                 source: SourceSpec | None = None):
        self.net = net
        net.phase = "test"
        if source is None and net.spec.data is not None:
            source = net.spec.data.test or net.spec.data.train
        self.source = source
        self.input = source.feeds[0] if source is not None and source.feeds else "data"
        if self.input not in net.inputs:
            raise ConfigError(f"the net has no input {self.input!r} to predict from (inputs: "
                              f"{', '.join(net.inputs)})", net.spec.file)
        self.output = output or self._default_output()
        if self.output not in net.shapes:
            raise ConfigError(f"{self.output!r} is not a blob of the net's test phase",
                              net.spec.file)
        producer = next((step.spec for step in net.runner.steps if self.output in step.tops),
                        None)
        self.softmax = softmax if softmax is not None else not (
            producer is not None and producer.type == "Softmax")
        self.declared = tuple(net.inputs[self.input].shape[1:])
        spec = source.transform if source is not None else None
        self.transform_spec = spec if spec is not None and not spec.identity else None
        self.raw_shape = self._raw_shape()
        self._transformers: dict[tuple, Transformer] = {}
        self.checks = Checks(net, [self.input], "input")

    def _default_output(self) -> str:
        found = classifier_blobs(self.net)
        if found is not None:
            return found[0]
        outputs = self.net.outputs
        if len(outputs) == 1:
            return outputs[0]
        raise ConfigError("cannot tell which blob holds the scores (no Accuracy or loss gate "
                          f"names them; outputs: {', '.join(outputs)}): pass output=NAME",
                          self.net.spec.file)

    def _raw_shape(self) -> tuple | None:
        """The raw sample shape inputs should have: the images' resize when the source sets
        one, else the input's shape; None (any size) before a crop."""
        source = self.source
        if source is not None and source.kind == "images" and source.new_height:
            return self.declared[:1] + (source.new_height, source.new_width)
        if self.transform_spec is not None and self.transform_spec.crop_size:
            return None
        return self.declared

    def image_size(self) -> tuple[int, int] | None:
        """The (height, width) an image file is resized to, or None to keep its size."""
        source = self.source
        if source is not None and source.kind == "images" and source.new_height:
            return source.new_height, source.new_width
        if self.raw_shape is None or len(self.raw_shape) != 3:
            return None
        return tuple(self.raw_shape[1:])

    def load(self, path: str | Path) -> np.ndarray:
        """The raw samples of one input file: an image (one sample), an .npy array (one sample
        or (N, ...) samples) or a .csv table (one sample a row; a row with one value more than
        the input takes is a data-section row and its last value, the label, is dropped)."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix in IMAGE_SUFFIXES:
            channels = self.declared[0] if self.declared else 1
            image = decode_image(path, str(path), channels == 3, self.image_size())
            return image[np.newaxis]
        if suffix == ".npy":
            array = read_npy(path, "input array")
            expected = self.raw_shape
            if expected is None or None in expected or array.shape[1:] == tuple(expected):
                return array                                  # N samples (or not checkable)
            if array.size == math.prod(expected):
                return array.reshape((1,) + tuple(expected))  # one sample, in any layout
            raise DataError(f"{path}: an array of shape {array.shape}, but the net's input "
                            f"takes samples of shape {tuple(expected)} (give one sample, or "
                            "N of them stacked on a first axis)")
        if suffix == ".csv":
            table = read_csv(path, ["data"])["data"]
            size = math.prod(self.declared) if None not in self.declared else None
            if size is not None and table.shape[1] == size + 1:
                table = table[:, :-1]
            return table
        raise DataError(f"{path}: unknown input type {suffix or '(none)'!r}: give an image "
                        f"({', '.join(IMAGE_SUFFIXES)}), an .npy array or a .csv table")

    def predict(self, samples: np.ndarray) -> np.ndarray:
        """Probabilities (or the raw blob with softmax off) for a batch of raw samples."""
        samples = np.asarray(samples)
        if self.transform_spec is not None:
            shape = samples.shape[1:]
            if shape not in self._transformers:
                self._transformers[shape] = Transformer(
                    self.transform_spec, "test", shape, self.net.dtype, self.net.spec.base_dir,
                    self.net.spec.file)
            samples = self._transformers[shape](samples, None, 0, len(samples), len(samples))
        feed = self.checks({self.input: samples}, lambda i: f"sample {i}")
        scores = self.net.forward(feed, outputs=[self.output])[self.output]
        scores = np.asarray(scores, dtype=np.float64)
        if not self.softmax:
            return scores
        shifted = scores - scores.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        return exp / exp.sum(axis=1, keepdims=True)


def top_k(probabilities: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
    """Per sample, the k most probable classes and their probabilities, most probable first."""
    flat = probabilities.reshape(len(probabilities), -1)
    order = np.argsort(-flat, axis=1, kind="stable")[:, :k]
    return [[(int(c), float(row[c])) for c in picks] for row, picks in zip(flat, order)]
