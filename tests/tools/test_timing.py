"""time_net: random inputs of the declared shapes, a row per gate, totals; never asserts speed."""
from __future__ import annotations

import numpy as np
import pytest

from net import Net
from net.tools.timing import default_batch_size, random_feed, time_net
from tests.helpers import CONFIGS

CLASSIFIER = {
    "name": "classifier",
    "inputs": {"data": {"shape": [None, 5]}, "label": {"shape": [None], "dtype": "int"},
               "mask": {"shape": [None, 7]}},
    "data": {"train": {"source": "digits", "batch_size": 6}},
    "gates": [{"name": "fc", "type": "InnerProduct", "bottom": "data", "top": "scores",
               "num_output": 7},
              {"name": "gate", "type": "Multiply", "bottom": ["scores", "mask"], "top": "out"},
              {"name": "twice", "type": "Power", "bottom": "label", "top": "label2", "scale": 2}],
}


def test_feed_has_declared_shapes_and_integer_labels_in_range():
    net = Net.from_config(CLASSIFIER)
    assert default_batch_size(net) == 6
    feed = random_feed(net, 9)
    assert feed["data"].shape == (9, 5) and feed["data"].dtype == np.float32
    assert feed["mask"].shape == (9, 7)
    assert feed["label"].shape == (9,) and feed["label"].dtype.kind == "i"
    net.forward(feed)   # the feed is accepted as it is


def test_label_range_comes_from_the_loss_input(clean_registry):
    from gates import Gate, register_gate

    @register_gate
    class ToyLossGate(Gate):
        """Mean of the scores picked by integer labels.  Inputs: scores (N, C), labels (N,)."""

        def forward(self, scores, labels):
            self.shape, self.labels = scores.shape, labels
            return -scores[np.arange(len(labels)), labels].mean()

        def backward(self, dout):
            grad = np.zeros(self.shape)
            grad[np.arange(len(self.labels)), self.labels] = -dout / len(self.labels)
            return grad, None

        def infer_shapes(self, scores_shape, labels_shape):
            return ((),)

    net = Net.from_config({"inputs": {"x": {"shape": [None, 3]}, "y": {"shape": [None]}},
                           "gates": [{"name": "fc", "type": "InnerProduct", "bottom": "x",
                                      "top": "s", "num_output": 4},
                                     {"name": "loss", "type": "ToyLoss", "bottom": ["s", "y"],
                                      "top": "loss"}]})
    assert net.integer_inputs() == {"y": 4}
    labels = random_feed(net, 500)["y"]
    assert labels.min() >= 0 and labels.max() == 3


def test_a_row_per_gate_in_execution_order_and_totals():
    net = Net.from_yaml(CONFIGS / "two_layer.yaml")
    timing = time_net(net, random_feed(net, 4), iterations=3, batch_size=4)
    assert [(g.name, g.type) for g in timing.gates] == [
        ("fc1", "InnerProduct"), ("relu1", "ReLU"), ("fc2", "InnerProduct")]
    assert all(g.forward_ms > 0 and g.backward_ms > 0 for g in timing.gates)
    assert timing.forward_ms >= sum(g.forward_ms for g in timing.gates) * 0.99
    assert timing.forward_backward_ms == pytest.approx(timing.forward_ms + timing.backward_ms)
    table = timing.table()
    assert "Average Forward-Backward:" in table and "relu1" in table
