"""gates/regularization.py: Dropout scales the survivors in the train phase, is the identity in
the test phase, repeats its masks from a seed, passes a centred-difference check with its mask
held fixed, and rejects a ratio outside [0, 1) with the config's line."""
from __future__ import annotations

import numpy as np
import pytest

from net import ConfigError, Net
from tests.helpers import centred_difference_check, make


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
    centred_difference_check(gate, [np.random.default_rng(0).standard_normal((3, 5))], reset=reset)


def test_bad_dropout_ratio_is_a_config_error_with_a_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("inputs:\n  x: {shape: [null, 2]}\ngates:\n"
                    "  - {name: d, type: Dropout, bottom: x, top: y,\n"
                    "     dropout_ratio: 1.5}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:5: .*dropout_ratio.*a number in \[0, 1\), got 1.5"):
        Net.from_yaml(path)
