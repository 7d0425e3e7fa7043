"""gates/normalization.py: BatchNorm normalises with batch statistics and tracks Caffe's moving
averages in the train phase, uses them in the test phase, passes centred-difference checks, and
its averages are buffers of the Net that travel in weights files."""
from __future__ import annotations

import numpy as np
import pytest

from net import Net
from tests.helpers import make, numeric_check

RNG = np.random.default_rng(7)


def test_batchnorm_train_phase_normalises_and_tracks_caffe_averages():
    gate = make("BatchNorm", moving_average_fraction=0.5)
    gate.param_specs((None, 3, 2, 2))
    x = RNG.standard_normal((4, 3, 2, 2)) * 3 + 2
    out = gate.forward(x)
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(out.var(axis=(0, 2, 3)), x.var(axis=(0, 2, 3)) /
                               (x.var(axis=(0, 2, 3)) + 1e-5))
    m = 16
    np.testing.assert_allclose(gate.buffers["scale_factor"], [1.0])
    np.testing.assert_allclose(gate.buffers["mean"], x.mean(axis=(0, 2, 3)))
    np.testing.assert_allclose(gate.buffers["variance"], x.var(axis=(0, 2, 3)) * m / (m - 1))
    gate.forward(x)
    np.testing.assert_allclose(gate.buffers["scale_factor"], [1.5])
    np.testing.assert_allclose(gate.buffers["mean"] / 1.5, x.mean(axis=(0, 2, 3)))
    # test phase: the averages (divided by the scale factor), and nothing updated
    gate.phase = "test"
    before = {k: v.copy() for k, v in gate.buffers.items()}
    y = RNG.standard_normal((2, 3, 2, 2))
    out = gate.forward(y)
    mean = x.mean(axis=(0, 2, 3)).reshape(1, 3, 1, 1)
    var = (x.var(axis=(0, 2, 3)) * m / (m - 1)).reshape(1, 3, 1, 1)
    np.testing.assert_allclose(out, (y - mean) / np.sqrt(var + 1e-5))
    for key, value in before.items():
        np.testing.assert_array_equal(gate.buffers[key], value)


@pytest.mark.parametrize("options, shape", [
    pytest.param({}, (4, 3, 2, 2), id="nchw"),
    pytest.param({}, (5, 3), id="2d"),
    pytest.param({"affine": True}, (3, 2, 3), id="affine"),
    pytest.param({"use_global_stats": True, "affine": True}, (3, 2, 2, 2), id="global-stats"),
])
def test_batchnorm_gradients(options, shape):
    gate = make("BatchNorm", **options)
    gate.param_specs(shape)
    gate.buffers.update(mean=RNG.standard_normal(shape[1]), scale_factor=np.array([2.0]),
                        variance=RNG.uniform(0.5, 2, shape[1]))
    numeric_check(gate, [RNG.standard_normal(shape)])


def test_batchnorm_in_a_net_exposes_buffers_and_switches_phase():
    net = Net.from_config({"inputs": {"x": {"shape": [None, 2, 3, 3]}}, "gates": [
        {"name": "bn", "type": "BatchNorm", "bottom": "x", "top": "y", "affine": True}]})
    assert set(net.buffers) == {"bn.mean", "bn.variance", "bn.scale_factor"}
    assert set(net.params) == {"bn.gamma", "bn.beta"}
    x = RNG.standard_normal((5, 2, 3, 3)).astype(np.float32)
    y = net.forward({"x": x})["y"]
    assert y.dtype == np.float32
    assert net.buffers["bn.scale_factor"][0] == 1.0
    net.phase = "test"
    y_test = net.forward({"x": x})["y"]
    assert y_test.dtype == np.float32 and net.buffers["bn.scale_factor"][0] == 1.0
    # with the unbiased variance the test output is slightly narrower than the train one
    assert np.std(y_test) < np.std(y)


def test_batchnorm_moving_averages_travel_in_weights_files(tmp_path):
    from net.train.snapshot import load_weights, save_weights

    config = {"inputs": {"x": {"shape": [None, 3, 2, 2]}}, "gates": [
        {"name": "bn", "type": "BatchNorm", "bottom": "x", "top": "y"}]}
    trained = Net.from_config(config)
    for _ in range(3):
        trained.forward({"x": RNG.standard_normal((4, 3, 2, 2)) * 2 + 1})
    path = save_weights(trained, tmp_path / "bn.weights.npz")
    fresh = Net.from_config(config, phase="test")
    load_weights(fresh, path, strict=True)
    for name, value in trained.buffers.items():
        np.testing.assert_array_equal(fresh.buffers[name], value)
    trained.phase = "test"
    x = RNG.standard_normal((2, 3, 2, 2))
    np.testing.assert_array_equal(fresh.forward({"x": x})["y"], trained.forward({"x": x})["y"])
