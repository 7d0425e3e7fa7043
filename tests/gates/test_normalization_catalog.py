"""Caffe's LRN and MVN (gates/normalization.py) against PyTorch in float64 and against the loop
references of Caffe's test_lrn_layer.cpp, their gradients, and Caffe's cifar10_full net
(configs/cifar10_full.yaml), the net they were added for: Caffe's blob shapes, and training."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from gates import gate_class
from net import Net, Solver
from net.gradcheck import check_gate, check_net

RNG = np.random.default_rng(11)
CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def make(type_name, **options):
    return gate_class(type_name)(**options)


# -- LRN ----------------------------------------------------------------------------------------
def reference_lrn(x, size, alpha, beta, k, region):
    """Caffe's ReferenceLRNForward (test_lrn_layer.cpp) in loops, with `k` where Caffe's
    reference starts its across-channel sum at the default k = 1 (within a channel it is 1)."""
    n_, channels, height, width = x.shape
    half = (size - 1) // 2
    out = np.empty_like(x)
    for n, c, h, w in np.ndindex(x.shape):
        if region == "ACROSS_CHANNELS":
            window = x[n, max(c - half, 0):min(c - half + size, channels), h, w]
            scale = k + np.sum(window * window) * alpha / size
        else:
            window = x[n, c, max(h - half, 0):min(h - half + size, height),
                       max(w - half, 0):min(w - half + size, width)]
            scale = 1.0 + np.sum(window * window) * alpha / (size * size)
        out[n, c, h, w] = x[n, c, h, w] / scale ** beta
    return out


@pytest.mark.parametrize("region", ["ACROSS_CHANNELS", "WITHIN_CHANNEL"])
@pytest.mark.parametrize("size, alpha, beta, k", [(5, 1.0, 0.75, 1.0), (3, 2.0, 0.5, 3.0),
                                                   (7, 0.3, 1.2, 0.5), (1, 1.0, 0.75, 2.0)])
def test_lrn_matches_caffes_reference_loops(region, size, alpha, beta, k):
    x = RNG.standard_normal((2, 3, 4, 5))           # size 7 is wider than the 3 channels
    gate = make("LRN", local_size=size, alpha=alpha, beta=beta, k=k, norm_region=region)
    np.testing.assert_allclose(gate.forward(x), reference_lrn(x, size, alpha, beta, k, region),
                               rtol=1e-13)


@pytest.mark.parametrize("options", [
    {"local_size": 5},
    {"local_size": 3, "norm_region": "WITHIN_CHANNEL"},
    {"local_size": 5, "norm_region": "WITHIN_CHANNEL", "alpha": 3.0, "beta": 1.5},
])
def test_lrn_passes_the_gradient_check(options):
    report = check_gate(make("LRN", **options), [RNG.standard_normal((2, 6, 4, 5))], sample=60)
    assert report.ok and report.checked == 60, str(report)


def test_within_channel_lrn_ignores_k_as_caffe_does():
    x = RNG.standard_normal((1, 2, 3, 3))
    plain = make("LRN", local_size=3, norm_region="WITHIN_CHANNEL")
    with_k = make("LRN", local_size=3, norm_region="WITHIN_CHANNEL", k=5.0)
    np.testing.assert_array_equal(plain.forward(x), with_k.forward(x))


def test_lrn_keeps_float32():
    gate = make("LRN", local_size=3)
    x = RNG.standard_normal((1, 4, 2, 2)).astype(np.float32)
    assert gate.forward(x).dtype == np.float32
    assert gate.backward(np.ones_like(x))[0].dtype == np.float32


@pytest.mark.parametrize("options, shape, message", [
    ({"local_size": 4}, None, "local_size must be odd \\(Caffe's LRN\\), got 4"),
    ({}, (2, 3, 4), "LRN expects NCHW input \\(4 dimensions\\), got shape \\(2, 3, 4\\)"),
    ({"norm_region": "ACROSS"}, None, "must be one of ACROSS_CHANNELS, WITHIN_CHANNEL"),
])
def test_lrn_mistakes(options, shape, message):
    with pytest.raises(ValueError, match=message):
        make("LRN", **options).infer_shapes(shape)


# -- MVN ----------------------------------------------------------------------------------------
def test_mvn_adds_eps_to_the_standard_deviation():
    gate = make("MVN", eps=0.1)
    out = gate.forward(np.array([[[1.0, 3.0]]]))       # mean 2, std 1
    np.testing.assert_allclose(out, [[[-1 / 1.1, 1 / 1.1]]], rtol=1e-15)


@pytest.mark.parametrize("options, axes", [({}, (2, 3)), ({"across_channels": True}, (1, 2, 3))])
def test_mvn_gives_zero_mean_and_unit_variance_per_item_as_caffes_test(options, axes):
    x = 3 + 2 * RNG.standard_normal((2, 3, 4, 5))
    out = make("MVN", **options).forward(x)
    np.testing.assert_allclose(out.mean(axis=axes), 0, atol=1e-14)
    np.testing.assert_allclose(out.var(axis=axes), 1, rtol=1e-8)
    centred = make("MVN", normalize_variance=False, **options).forward(x)
    np.testing.assert_allclose(centred, x - x.mean(axis=axes, keepdims=True), rtol=1e-14)


@pytest.mark.parametrize("options", [{}, {"across_channels": True}, {"eps": 0.5},
                                     {"normalize_variance": False}])
def test_mvn_passes_the_gradient_check(options):
    report = check_gate(make("MVN", **options), [RNG.standard_normal((2, 3, 2, 3))])
    assert report.ok and report.checked == 36, str(report)


def test_mvn_of_a_constant_item_is_zero_with_a_finite_gradient():
    gate = make("MVN")
    x = np.full((1, 2, 3), 4.0)
    np.testing.assert_array_equal(gate.forward(x), np.zeros((1, 2, 3)))
    assert np.all(np.isfinite(gate.backward(np.ones((1, 2, 3)))[0]))


# -- the new gates in one net ---------------------------------------------------------------------
def test_a_net_of_the_new_gates_passes_the_net_gradient_check():
    net = Net.from_config({
        "name": "mixed", "dtype": "float64", "inputs": {"x": {"shape": [2, 3, 4, 4]}},
        "gates": [
            {"name": "lrn", "type": "LRN", "bottom": "x", "top": "n", "local_size": 3},
            {"name": "within", "type": "LRN", "bottom": "x", "top": "w", "local_size": 3,
             "norm_region": "WITHIN_CHANNEL", "alpha": 2.0},
            {"name": "prelu", "type": "PReLU", "bottom": "n", "top": "p"},
            {"name": "sum", "type": "Eltwise", "bottom": ["p", "w"], "top": "s",
             "coeff": [1.0, -2.0]},
            {"name": "scale", "type": "Scale", "bottom": "s", "top": "sc", "bias_term": True},
            {"name": "mvn", "type": "MVN", "bottom": "sc", "top": "m"},
            {"name": "swish", "type": "Swish", "bottom": "m", "top": "sw"},
            {"name": "tile", "type": "Tile", "bottom": "sw", "top": "t", "axis": 2, "tiles": 2},
            {"name": "crop", "type": "Crop", "bottom": ["t", "x"], "top": "c", "offset": [3, 0]},
            {"name": "sum2", "type": "Reduction", "bottom": "c", "top": "r", "axis": 1,
             "operation": "SUMSQ"}]})
    report = check_net(net, sample=40, rtol=1e-5)
    assert report.ok and report.checked > 40, str(report)


# -- Caffe's cifar10_full -----------------------------------------------------------------------
def caffe_conv(size, kernel, pad, stride):
    return (size + 2 * pad - kernel) // stride + 1


def caffe_pool(size, kernel, stride):
    return math.ceil((size - kernel) / stride) + 1


def test_cifar10_full_builds_with_caffes_blob_shapes():
    net = Net.from_yaml(CONFIGS / "cifar10_full.yaml")
    side = {"conv1": caffe_conv(32, 5, 2, 1)}                    # 32
    side["pool1"] = caffe_pool(side["conv1"], 3, 2)              # ceil(29 / 2) + 1 = 16
    side["pool2"] = caffe_pool(side["pool1"], 3, 2)              # ceil(13 / 2) + 1 = 8
    side["pool3"] = caffe_pool(side["pool2"], 3, 2)              # ceil(5 / 2) + 1 = 4
    assert (side["conv1"], side["pool1"], side["pool2"], side["pool3"]) == (32, 16, 8, 4)
    # the ReLUs write in place: pool1@0 is the pooling's output, pool1 the ReLU's (as in Caffe)
    expected = {"conv1": (32, 32), "pool1@0": (32, 16), "pool1": (32, 16), "norm1": (32, 16),
                "conv2@0": (32, 16), "conv2": (32, 16), "pool2": (32, 8), "norm2": (32, 8),
                "conv3@0": (64, 8), "conv3": (64, 8), "pool3": (64, 4)}
    for blob, (channels, size) in expected.items():
        assert net.shapes[blob] == (None, channels, size, size), blob
    assert net.shapes["ip1"] == (None, 10) and net.shapes["loss"] == ()
    counts = {name: p.size for name, p in net.params.items()}
    assert counts == {"conv1.W": 2400, "conv1.b": 32, "conv2.W": 25600, "conv2.b": 32,
                      "conv3.W": 51200, "conv3.b": 64, "ip1.W": 10240, "ip1.b": 10}
    assert (net.param_rules["ip1.W"].decay_mult, net.param_rules["ip1.b"].lr_mult) == (250, 2)
    net.phase = "test"
    assert net.shapes["accuracy"] == ()


def test_cifar10_full_trains_on_a_small_random_set_with_caffes_solver():
    net = Net.from_yaml(CONFIGS / "cifar10_full.yaml", seed=3)
    solver = Solver.from_config(net)              # the config's own solver: Caffe's settings
    rng = np.random.default_rng(0)
    feed = {"data": rng.standard_normal((4, 3, 32, 32)).astype(np.float32),
            "label": rng.integers(0, 10, 4)}
    before = {name: p.copy() for name, p in net.params.items()}
    losses = [solver.step(feed) for _ in range(5)]
    assert losses[0] == pytest.approx(math.log(10), abs=1e-3)    # tiny initial weights
    assert all(b < a for a, b in zip(losses, losses[1:])), losses
    assert all(not np.array_equal(before[name], p) for name, p in net.params.items())
    net.phase = "test"
    scores = net.forward(feed)
    assert 0.0 <= float(scores["accuracy"]) <= 1.0 and np.isfinite(scores["loss"])
