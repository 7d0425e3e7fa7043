"""`net.forward(feed, outputs=[...])`: any blob on request, running only what it depends on and
needing only the inputs that part reads (a classifier's scores need no label)."""
from __future__ import annotations

import numpy as np
import pytest

from net import Net

from tests.helpers import CONFIGS


def test_scores_need_no_label_and_only_their_gates_run():
    net = Net.from_yaml(CONFIGS / "digits_mlp.yaml")
    x = np.random.default_rng(0).random((5, 64))
    ran = []
    out = net.forward({"data": x}, hook=lambda step, d, v: ran.append(step.spec.name),
                      outputs=["scores"])
    assert list(out) == ["scores"] and out["scores"].shape == (5, 10)
    assert "loss" not in ran and ran[-1] == "fc3"
    full = net.forward({"data": x, "label": np.zeros(5, int)})
    assert set(full) == {"loss"}
    np.testing.assert_array_equal(net.blobs["scores"], out["scores"])


def test_any_blob_can_be_asked_for_and_unknown_names_get_a_suggestion():
    net = Net.from_yaml(CONFIGS / "seed_example.yaml")
    assert net.forward(outputs="a")["a"] == 3.0
    assert float(net.forward(outputs=["b", "f"])["f"]) == 6.0
    with pytest.raises(KeyError, match="'ff' is not a blob .*did you mean 'f'"):
        net.forward(outputs=["ff"])
