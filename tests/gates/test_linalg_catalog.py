"""Caffe's Embed: a learned vector per integer index.

Oracle: PyTorch's F.embedding in float64 (fixtures/linalg_torch.npz, written by
make_torch_fixtures_b.py, and live where torch imports); a case worked by hand.
"""
from __future__ import annotations


import numpy as np
import pytest

from gates import gate_class
from net import ConfigError, Net
from net.gradcheck import check_gate


def test_embed_by_hand():
    """Rows of W by index plus b; index 2 appears twice, so its row gathers both gradients."""
    gate = gate_class("Embed")(input_dim=3, num_output=2)
    W, b = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]), np.array([0.5, -0.5])
    out = gate.forward(np.array([[2, 0], [2, 1]]), W, b)
    np.testing.assert_array_equal(out, [[[5.5, 5.5], [1.5, 1.5]], [[5.5, 5.5], [3.5, 3.5]]])
    dout = np.arange(8.0).reshape(2, 2, 2)
    dindices, dW, db = gate.backward(dout)
    assert dindices is None
    np.testing.assert_array_equal(dW, [[2, 3], [6, 7], [0 + 4, 1 + 5]])
    np.testing.assert_array_equal(db, [12, 16])


@pytest.mark.parametrize("indices, message", [
    (np.array([0, 3]), r"index 3 is out of range for input_dim 3 \(indices must lie in "
                       r"\[0, 3\)\)"),
    (np.array([-1, 0]), "index -1 is out of range for input_dim 3"),
    (np.array([0.5, 1.0]), "Embed takes integer indices"),
])
def test_embed_rejects_bad_indices(indices, message):
    with pytest.raises(ValueError, match=message):
        gate_class("Embed")(input_dim=3, num_output=2).forward(indices, np.zeros((3, 2)))


def test_embed_takes_integral_floats_and_has_no_bias_when_asked():
    gate = gate_class("Embed")(input_dim=3, num_output=2, bias_term=False)
    assert list(gate.param_specs((4,))) == ["W"]
    W = np.arange(6.0).reshape(3, 2)
    np.testing.assert_array_equal(gate.forward(np.array([2.0, 0.0]), W), W[[2, 0]])
    assert len(gate.backward(np.ones((2, 2)))) == 2
    assert check_gate("Embed", options={"bias_term": False}).ok


def test_embed_in_a_net_with_caffes_weight_layout():
    config = {"dtype": "float64",
              "inputs": {"words": {"shape": [None, 5], "dtype": "int"},
                         "label": {"shape": [None], "dtype": "int"}},
              "gates": [{"name": "embed", "type": "Embed", "bottom": "words", "top": "vectors",
                         "input_dim": 10, "num_output": 4},
                        {"name": "fc", "type": "InnerProduct", "bottom": "vectors",
                         "top": "scores", "num_output": 3},
                        {"name": "loss", "type": "SoftmaxWithLoss",
                         "bottom": ["scores", "label"], "top": "loss"}]}
    net = Net.from_config(config)
    assert net.params["embed.W"].shape == (10, 4) and net.params["embed.b"].shape == (4,)
    assert net.shapes["vectors"] == (None, 5, 4)
    net.forward({"words": np.array([[1, 2, 3, 4, 9], [0, 0, 0, 0, 0]]), "label": np.array([0, 2])})
    grads = net.backward()
    assert grads["words"] is None and not grads["embed.W"][5:9].any()
    config["gates"][0]["num_output"] = 0
    with pytest.raises(ConfigError, match="num_output"):
        Net.from_config(config)
