"""The vision part of Caffe's catalog (gates/vision.py): Deconvolution against PyTorch's
conv_transpose2d in float64 (stored fixtures, and live where PyTorch imports) on every route its
forward may take, as the adjoint of Convolution, and in a net; Pooling's argmax mask top against
Caffe's TestForwardMaxTopMask values and a loop reference; STOCHASTIC pooling against the
semantics of Caffe's test_stochastic_pooling.cpp and values computed by hand."""
from __future__ import annotations

import numpy as np
import pytest

from gates import build_gate, gate_class, vision
from net import ConfigError, Net
from net.gradcheck import check_gate
from tests.gates.fixtures import make_torch_fixtures_vision as ORACLE
from tests.helpers import make, numeric_check

RNG = np.random.default_rng(13)
CASES = ORACLE.CASES
STORED = ORACLE.read()


def distinct(shape, low=-1.0):
    """Well-separated values in random order: no max window near a tie."""
    return RNG.permutation(np.linspace(low, 1.0, int(np.prod(shape)))).reshape(shape)


# -- Deconvolution ---------------------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_deconvolution_matches_pytorch_fixture(case):
    ORACLE.compare(case, STORED[case.name])


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_deconvolution_matches_pytorch_live(case):
    pytest.importorskip("torch")
    ORACLE.compare(case, ORACLE.live(case))


ROUTES = {"gathered": (True, False), "scattered-pixels": (False, False),
          "scattered-rows": (False, True)}


@pytest.mark.parametrize("route, case", [
    pytest.param(route, case, id=f"{route}-{case.name}") for route in ROUTES for case in CASES
    if not (ROUTES[route][0] and "stride" in case.options)])
def test_every_forward_route_matches_pytorch(monkeypatch, route, case):
    """The forward is Convolution's input gradient, gathered (stride 1 only) or scattered in
    runs of pixels or of rows, whichever moves less data: each route must give PyTorch's values,
    forward and backward."""
    gathers, rows = ROUTES[route]
    monkeypatch.setattr(vision.ConvolutionGate, "_gathers", lambda self, *shapes: gathers)
    monkeypatch.setattr(vision.ConvolutionGate, "_scatters_rows", lambda self, shape: rows)
    ORACLE.compare(case, STORED[case.name])


def test_the_fixtures_reach_every_route():
    """Without forcing, the stored cases take all three forward routes."""
    taken = set()
    for case in CASES:
        gate = make("Deconvolution", **case.options)
        x = STORED[case.name]["inputs"][0]
        convolution = gate._transposed(x.shape[1])
        out_shape = gate.infer_shapes(x.shape)[0]
        taken.add("gathered" if convolution._gathers(out_shape, x.shape) else
                  "scattered-rows" if convolution._scatters_rows(out_shape) else
                  "scattered-pixels")
    assert taken == set(ROUTES)


@pytest.mark.parametrize("case", [CASES[1], CASES[4], CASES[-1]], ids=lambda c: c.name)
def test_deconvolution_gradients(case):
    numeric_check(make("Deconvolution", **case.options), [case.inputs()[0]])


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_deconvolution_is_the_adjoint_of_convolution(case):
    """<conv(y), x> = <y, deconv(x)> for the same W and options (no bias): Deconvolution is the
    transpose of the linear map Convolution is."""
    options = {k: v for k, v in case.options.items() if k != "bias_term"}
    deconvolution = make("Deconvolution", bias_term=False, **options)
    x, W = case.inputs()[:2]
    out = deconvolution.forward(x, W)
    convolution = make("Convolution", **dict(options, num_output=x.shape[1]), bias_term=False)
    y = RNG.standard_normal(out.shape)
    assert np.isclose(np.sum(convolution.forward(y, W) * x), np.sum(y * out), rtol=1e-12)


@pytest.mark.parametrize("size, options, expected", [
    (5, {"kernel_size": 4, "stride": 2, "pad": 1}, 10),        # the 2x upsampling of FCNs
    (4, {"kernel_size": 3}, 6),
    (4, {"kernel_size": 3, "pad": 1}, 4),
    (3, {"kernel_size": 2, "stride": 3}, 8),                   # gaps between the windows
    (4, {"kernel_size": 3, "dilation": 2, "stride": 2, "pad": 2}, 7),
    (6, {"kernel_size": 64, "stride": 32}, 224),               # FCN-32s' last layer
])
def test_deconvolution_output_size(size, options, expected):
    gate = make("Deconvolution", num_output=2, **options)
    assert gate.infer_shapes((None, 3, size, size)) == ((None, 2, expected, expected),)
    convolution = make("Convolution", num_output=3, **options)   # and back again
    assert convolution.infer_shapes((None, 2, expected, expected))[0][2:] == (size, size)


def test_deconvolution_parameters_have_caffes_layout_and_the_input_dtype():
    gate = make("Deconvolution", num_output=6, kernel_size=[3, 2], group=2)
    specs = gate.param_specs((None, 4, 5, 5))
    assert specs["W"][0] == (4, 3, 3, 2) and specs["b"][0] == (6,)
    x = RNG.standard_normal((2, 4, 5, 5)).astype(np.float32)
    out = gate.forward(x, RNG.standard_normal((4, 3, 3, 2)).astype(np.float32),
                       np.zeros(6, np.float32))
    assert out.dtype == np.float32 and out.shape == (2, 6, 7, 6)
    assert all(g.dtype == np.float32 for g in gate.backward(np.ones_like(out)))


def test_deconvolution_by_hand():
    """One 2x2 input, a 2x2 kernel of ones, stride 2: each input pixel becomes a 2x2 block of
    its value (plus the bias); the gradient of x sums each block of dout."""
    gate = make("Deconvolution", num_output=1, kernel_size=2, stride=2)
    out = gate.forward(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]), np.ones((1, 1, 2, 2)),
                       np.array([0.5]))
    np.testing.assert_array_equal(out, [[[[1.5, 1.5, 2.5, 2.5], [1.5, 1.5, 2.5, 2.5],
                                          [3.5, 3.5, 4.5, 4.5], [3.5, 3.5, 4.5, 4.5]]]])
    dout = np.arange(16.0).reshape(1, 1, 4, 4)
    dx, dW, db = gate.backward(dout)
    np.testing.assert_array_equal(dx, [[[[0 + 1 + 4 + 5, 2 + 3 + 6 + 7],
                                         [8 + 9 + 12 + 13, 10 + 11 + 14 + 15]]]])
    np.testing.assert_array_equal(dW, [[[[0 + 2 * 2 + 8 * 3 + 10 * 4, 1 + 3 * 2 + 9 * 3 + 11 * 4],
                                         [4 + 6 * 2 + 12 * 3 + 14 * 4,
                                          5 + 7 * 2 + 13 * 3 + 15 * 4]]]])
    np.testing.assert_array_equal(db, [120])


def test_deconvolution_skips_unneeded_gradients():
    case = CASES[1]
    gate = make("Deconvolution", **case.options)
    record = STORED[case.name]
    gate.forward(*record["inputs"])
    gate.needs_input_grad = (False, True, False)
    dx, dW, db = gate.backward(record["dout"])
    assert dx is None and db is None
    np.testing.assert_allclose(dW, record["grads"][1], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("threads, per_chunk", [(1, 1), (3, 1), (3, 2)])
def test_deconvolution_chunks_and_threads_agree(monkeypatch, threads, per_chunk):
    case = CASES[-1]
    record = STORED[case.name]
    monkeypatch.setattr(vision, "THREADS", threads)
    monkeypatch.setattr(vision, "_chunks", lambda first, last, _: (per_chunk, [
        (start, min(start + per_chunk, last)) for start in range(first, last, per_chunk)]))
    ORACLE.compare(case, record)


@pytest.mark.parametrize("options, shape, message", [
    ({"num_output": 3, "kernel_size": 2, "group": 2}, (1, 4, 3, 3), "not divisible by group"),
    ({"num_output": 2, "kernel_size": 2, "group": 2}, (1, 3, 3, 3), "3 input channels"),
    ({"num_output": 2, "kernel_size": 1, "pad": 1}, (1, 2, 1, 1), "output would have size -1"),
    ({"num_output": 2}, (1, 2, 3, 3), "kernel_size"),
])
def test_deconvolution_rejects_bad_options_and_shapes(options, shape, message):
    with pytest.raises(ValueError, match=message):
        make("Deconvolution", **options).infer_shapes(shape)


FCN_LIKE = {
    "name": "fcn_like",
    "dtype": "float64",
    "inputs": {"data": {"shape": [None, 3, 8, 8]}},
    "gates": [
        {"name": "conv", "type": "Convolution", "bottom": "data", "top": "conv",
         "num_output": 4, "kernel_size": 3, "stride": 2, "pad": 1},
        {"name": "relu", "type": "ReLU", "bottom": "conv", "top": "conv"},
        {"name": "up", "type": "Deconvolution", "bottom": "conv", "top": "up", "num_output": 3,
         "kernel_size": 4, "stride": 2, "pad": 1, "weight_filler": {"type": "gaussian",
                                                                     "std": 0.1}},
        {"name": "loss", "type": "EuclideanLoss", "bottom": ["up", "data"], "top": "loss"},
    ],
}


def test_deconvolution_in_a_net_restores_the_input_size_and_checks():
    net = Net.from_config(FCN_LIKE)
    assert net.shapes["conv"] == (None, 4, 4, 4) and net.shapes["up"] == (None, 3, 8, 8)
    assert net.params["up.W"].shape == (4, 3, 4, 4) and net.params["up.b"].shape == (3,)
    from net.gradcheck import check_net
    report = check_net(net, {"data": RNG.standard_normal((2, 3, 8, 8))}, sample=40)
    assert report.ok and report.checked, str(report)


# -- Pooling's argmax mask -------------------------------------------------------------------------
def pooling(num_tops=1, **options):
    return build_gate(gate_class("Pooling"), options, num_tops=num_tops)


MAGIC6 = np.array([[35, 1, 6, 26, 19, 24], [3, 32, 7, 21, 23, 25], [31, 9, 2, 22, 27, 20],
                   [8, 28, 33, 17, 10, 15], [30, 5, 34, 12, 14, 16], [4, 36, 29, 13, 18, 11]],
                  dtype=float)


@pytest.mark.parametrize("plane, options, out, mask_from_one", [
    # TestForwardSquare: 2x2 windows, stride 1
    (np.array([[1, 2, 5, 2, 3], [9, 4, 1, 4, 8], [1, 2, 5, 2, 3]], dtype=float),
     {"kernel_size": 2}, [[9, 5, 5, 8], [9, 5, 5, 8]], [[6, 3, 3, 10], [6, 13, 13, 10]]),
    # TestForwardRectHigh: 3x2 windows over MATLAB's magic(6)
    (MAGIC6, {"kernel_h": 3, "kernel_w": 2},
     [[35, 32, 26, 27, 27], [32, 33, 33, 27, 27], [31, 34, 34, 27, 27], [36, 36, 34, 18, 18]],
     [[1, 8, 4, 17, 17], [8, 21, 21, 17, 17], [13, 27, 27, 17, 17], [32, 32, 27, 35, 35]]),
    # TestForwardRectWide: 2x3 windows
    (MAGIC6, {"kernel_h": 2, "kernel_w": 3},
     [[35, 32, 26, 26], [32, 32, 27, 27], [33, 33, 33, 27], [34, 34, 34, 17], [36, 36, 34, 18]],
     [[1, 8, 4, 4], [8, 8, 17, 17], [21, 21, 21, 17], [27, 27, 27, 22], [32, 32, 27, 35]]),
], ids=["square", "rect-high", "rect-wide"])
def test_mask_top_as_caffes_test_forward_max_top_mask(plane, options, out, mask_from_one):
    """Caffe's TestForwardMaxTopMask: 2 images x 2 channels of the same plane; the mask's
    comments in Caffe count from 1 (MATLAB), its values from 0."""
    gate = pooling(2, pool="MAX", **options)
    x = np.tile(plane, (2, 2, 1, 1))
    assert gate.infer_shapes(x.shape) == ((2, 2) + np.shape(out),) * 2
    pooled, mask = gate.forward(x)
    np.testing.assert_array_equal(pooled, np.tile(out, (2, 2, 1, 1)))
    np.testing.assert_array_equal(mask, np.tile(np.array(mask_from_one) - 1, (2, 2, 1, 1)))
    assert mask.dtype == x.dtype


def reference_mask(x, kernel, stride, pad, out_size):
    """Caffe's MAX loop: each window clipped to the image, the first strictly greater value
    taking the index h W + w."""
    n, c, height, width = x.shape
    mask = np.full((n, c) + tuple(out_size), -1.0)
    for b, ch, i, j in np.ndindex(mask.shape):
        h0, w0 = i * stride[0] - pad[0], j * stride[1] - pad[1]
        best = -np.inf
        for h in range(max(h0, 0), min(h0 + kernel[0], height)):
            for w in range(max(w0, 0), min(w0 + kernel[1], width)):
                if x[b, ch, h, w] > best:
                    best, mask[b, ch, i, j] = x[b, ch, h, w], h * width + w
    return mask


@pytest.mark.parametrize("options, shape", [
    ({"kernel_size": 3, "stride": 2}, (2, 3, 7, 6)),
    ({"kernel_size": 3, "stride": 2, "pad": 1}, (2, 2, 6, 5)),
    ({"kernel_size": 2, "stride": 2, "pad": 1}, (1, 2, 5, 4)),
    ({"kernel_h": 3, "kernel_w": 2, "stride": [2, 3]}, (1, 2, 6, 6)),
    ({"kernel_size": 3, "stride": 1, "round_mode": "FLOOR"}, (2, 1, 4, 5)),
    ({"kernel_size": 2, "stride": 3}, (1, 2, 6, 6)),
    ({"global_pooling": True}, (2, 3, 3, 4)),
    ({"kernel_size": 3, "stride": 3, "pad": 1}, (1, 2, 2, 2)),     # one padded window
])
def test_mask_matches_caffes_loop(options, shape):
    gate = pooling(2, pool="MAX", **options)
    x = distinct(shape)
    out, mask = gate.forward(x)
    kernel = shape[2:] if gate.global_pooling else gate.kernel
    expected = reference_mask(x, kernel, gate.strides, gate.pads, out.shape[2:])
    np.testing.assert_array_equal(mask, expected)
    np.testing.assert_array_equal(np.take_along_axis(
        x.reshape(*shape[:2], -1), mask.reshape(*shape[:2], -1).astype(int), axis=2),
        out.reshape(*shape[:2], -1))


def test_mask_takes_the_first_of_tied_maxima():
    gate = pooling(2, pool="MAX", kernel_size=2, stride=1)
    out, mask = gate.forward(np.array([[[[0.0, 3.0, 3.0], [3.0, 3.0, 1.0]]]]))
    np.testing.assert_array_equal(mask, [[[[1, 1]]]])


@pytest.mark.parametrize("threads", [1, 3])
def test_mask_in_chunks_and_threads(monkeypatch, threads):
    monkeypatch.setattr(vision, "THREADS", threads)
    monkeypatch.setattr(vision, "_POOL_THREADED_BYTES", 0)
    gate = pooling(2, pool="MAX", kernel_size=3, stride=2, pad=1)
    x = distinct((5, 3, 9, 8))
    out, mask = gate.forward(x)
    np.testing.assert_array_equal(mask, reference_mask(x, (3, 3), (2, 2), (1, 1), out.shape[2:]))


def test_no_gradient_flows_through_the_mask():
    gate = pooling(2, pool="MAX", kernel_size=3, stride=2)
    x = distinct((2, 2, 7, 7))
    out, mask = gate.forward(x)
    dout = RNG.standard_normal(out.shape)
    (with_mask,) = gate.backward((dout, RNG.standard_normal(mask.shape)))
    single = pooling(1, pool="MAX", kernel_size=3, stride=2)
    single.forward(x)
    np.testing.assert_array_equal(with_mask, single.backward(dout)[0])
    numeric_check(gate, [x])


def test_mask_matches_pytorch_live():
    torch = pytest.importorskip("torch")
    x = distinct((2, 3, 9, 8))
    out, mask = pooling(2, pool="MAX", kernel_size=3, stride=2, pad=1).forward(x)
    theirs, indices = torch.nn.functional.max_pool2d(torch.tensor(x), 3, 2, 1, ceil_mode=True,
                                                     return_indices=True)
    np.testing.assert_array_equal(out, theirs.numpy())
    np.testing.assert_array_equal(mask, indices.numpy())


@pytest.mark.parametrize("pool", ["MAX", "AVE"])
@pytest.mark.parametrize("shape, kernel, stride, pad", [((2, 3, 1, 1), 2, 2, 0),
                                                         ((2, 3, 2, 7), 3, 2, 0),
                                                         ((1, 2, 3, 3), 4, 2, 1)])
def test_a_window_past_the_input_matches_pytorch_live(pool, shape, kernel, stride, pad):
    # under ceil rounding a window that overshoots the padded input by less than a stride
    # is one window clipped to it: PyTorch's ceil_mode, forward and backward (AVE divides by
    # the window clipped to the padded input, as Caffe does)
    torch = pytest.importorskip("torch")
    x = distinct(shape)
    gate = pooling(pool=pool, kernel_size=kernel, stride=stride, pad=pad)
    out = gate.forward(x)
    dout = RNG.standard_normal(out.shape)
    (dx,) = gate.backward(dout)
    ours_x = torch.tensor(x, requires_grad=True)
    pool_2d = (torch.nn.functional.max_pool2d if pool == "MAX" else
               torch.nn.functional.avg_pool2d)
    theirs = pool_2d(ours_x, kernel, stride, pad, ceil_mode=True)
    theirs.backward(torch.tensor(dout))
    np.testing.assert_allclose(out, theirs.detach().numpy(), rtol=1e-14, atol=0)
    np.testing.assert_allclose(dx, ours_x.grad.numpy(), rtol=1e-14, atol=1e-15)


def test_only_max_pooling_has_a_mask_top():
    with pytest.raises(ValueError, match="only MAX pooling has a second top"):
        pooling(2, pool="AVE", kernel_size=2)
    config = {"inputs": {"x": {"shape": [None, 1, 4, 4]}}, "gates": [
        {"name": "pool", "type": "Pooling", "bottom": "x", "top": ["p", "m"], "pool": "AVE",
         "kernel_size": 2, "stride": 2}]}
    with pytest.raises(ConfigError, match="pool.*only MAX pooling"):
        Net.from_config(config)
    config["gates"][0]["pool"] = "MAX"
    net = Net.from_config(config, phase="test")
    assert net.shapes["m"] == (None, 1, 2, 2)
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    np.testing.assert_array_equal(net.forward({"x": x}, outputs=["m"])["m"],
                                  [[[[5, 7], [13, 15]]]])


# -- STOCHASTIC pooling ----------------------------------------------------------------------------
class FixedDraws:
    """A stand-in for the gate's rng: every uniform draw is `u`."""
    def __init__(self, u):
        self.u = u

    def random(self, shape):
        return np.full(shape, self.u)


def stochastic(phase="train", **options):
    """STOCHASTIC pooling in `phase`, 3x3 windows at stride 2 (Caffe's test) unless given."""
    gate = make("Pooling", pool="STOCHASTIC", **(options or {"kernel_size": 3, "stride": 2}))
    gate.phase = phase
    return gate


def caffe_bottom():
    """Caffe's test blob: 2 x 3 x 6 x 5, uniform in [0.1, 1]."""
    return np.random.default_rng(1701).uniform(0.1, 1.0, (2, 3, 6, 5))


def windows_of(x, i, j):
    """Caffe's test windows: 3x3 at stride 2, clipped to the image."""
    return x[:, :, 2 * i:min(2 * i + 3, x.shape[2]), 2 * j:min(2 * j + 3, x.shape[3])]


def test_stochastic_setup_shape_as_caffe():
    assert stochastic().infer_shapes((2, 3, 6, 5)) == ((2, 3, 3, 2),)


def test_stochastic_train_draws_a_pixel_of_each_window_as_caffe():
    """Caffe's TestStochastic: every output is one of its window's values, and their mean is
    at least 0.55 (larger values are drawn more often than the inputs' mean, 0.55)."""
    x = caffe_bottom()
    out = stochastic().forward(x)
    for i, j in np.ndindex(out.shape[2:]):
        window = windows_of(x, i, j).reshape(2, 3, -1)
        assert np.all(np.any(window == out[:, :, i, j, None], axis=-1))
    assert out.mean() >= 0.55


def test_stochastic_test_phase_is_the_weighted_average_as_caffe():
    """Caffe's TestStochasticTestPhase (no output above its window's maximum), and the value:
    sum(x^2) / sum(x)."""
    x = caffe_bottom()
    out = stochastic("test").forward(x)
    for i, j in np.ndindex(out.shape[2:]):
        window = windows_of(x, i, j)
        assert np.all(out[:, :, i, j] <= window.max(axis=(2, 3)))
        np.testing.assert_allclose(out[:, :, i, j], (window ** 2).sum(axis=(2, 3)) /
                                   window.sum(axis=(2, 3)), rtol=1e-14)


@pytest.mark.parametrize("u, drawn", [(0.0, 0), (0.2, 0), (0.25, 2), (0.5, 2), (0.74, 2),
                                      (0.75, 3), (0.99, 3)])
def test_stochastic_draw_by_hand(u, drawn):
    """A 1x4 window [1, 0, 2, 1] (sum 4, running sums 1, 1, 3, 4): pixel k is drawn when
    running[k - 1] <= 4 u < running[k]; the zero is never drawn."""
    gate = stochastic(kernel_h=1, kernel_w=4, stride=1)
    gate.rng = FixedDraws(u)
    x = np.array([[[[1.0, 0.0, 2.0, 1.0]]]])
    assert gate.forward(x)[0, 0, 0, 0] == x[0, 0, 0, drawn]
    (dx,) = gate.backward(np.array([[[[5.0]]]]))
    np.testing.assert_array_equal(dx[0, 0, 0], 5.0 * (np.arange(4) == drawn))


def test_stochastic_draw_frequencies_follow_the_values():
    """20 000 draws from the window [1, 2, 3, 4]: each pixel about value / 10 of the time."""
    gate = stochastic(kernel_size=2, stride=2)
    x = np.tile(np.array([[1.0, 2.0], [3.0, 4.0]]), (20000, 1, 1, 1))
    out = gate.forward(x)
    frequencies = [np.mean(out == value) for value in (1, 2, 3, 4)]
    np.testing.assert_allclose(frequencies, [0.1, 0.2, 0.3, 0.4], atol=0.01)


def test_stochastic_zero_window_gives_zero_and_its_first_pixel_the_gradient():
    gate = stochastic(kernel_size=2, stride=2)
    x = np.zeros((1, 1, 2, 4))
    x[0, 0, 1, 3] = 1.0
    np.testing.assert_array_equal(gate.forward(x), [[[[0.0, 1.0]]]])
    (dx,) = gate.backward(np.array([[[[2.0, 3.0]]]]))
    np.testing.assert_array_equal(dx, [[[[2, 0, 0, 0], [0, 0, 0, 3]]]])
    np.testing.assert_array_equal(stochastic("test", kernel_size=2, stride=2).forward(x),
                                  [[[[0.0, 1.0]]]])


def test_stochastic_draws_come_from_the_gates_seeded_rng():
    """Two gates with the same seed draw the same pixels; the next forward draws anew."""
    x = caffe_bottom()
    first, second = stochastic(), stochastic()
    out = first.forward(x)
    np.testing.assert_array_equal(out, second.forward(x))
    assert not np.array_equal(out, first.forward(x))


@pytest.mark.parametrize("phase", ["train", "test"])
@pytest.mark.parametrize("options, shape", [
    ({}, (2, 3, 6, 5)),
    ({"kernel_size": 2, "stride": 1}, (1, 2, 4, 5)),
    ({"kernel_h": 3, "kernel_w": 2, "stride": [3, 2]}, (1, 2, 7, 5)),
    ({"global_pooling": True}, (2, 2, 3, 4)),
])
def test_stochastic_gradients(phase, options, shape):
    """Train: the gradient goes to the drawn pixel (the checker draws the same u at every
    evaluation and skips pixels near a boundary of the draw). Test: the exact derivative of
    sum(x^2) / sum(x)."""
    report = check_gate(stochastic(phase, **options), [RNG.uniform(0.1, 1.0, shape)],
                        phase=phase)
    assert report.ok and report.checked, str(report)


def test_stochastic_kinks_are_the_distances_to_a_change_of_draw():
    """A 1x2 window [a, b] with u: pixel 0 is drawn while a > u (a + b). Moving a by d moves
    a - u (a + b) by (1 - u) d, moving b by -u d: the distances |a - u (a + b)| / (1 - u) and
    / u."""
    gate = stochastic(kernel_h=1, kernel_w=2, stride=2)
    gate.rng = FixedDraws(0.3)
    x = np.array([[[[0.5, 1.0]]]])
    gate.forward(x)
    (distance,) = gate.kinks(x)
    gap = abs(0.5 - 0.3 * 1.5)
    np.testing.assert_allclose(distance, [[[[gap / 0.7, gap / 0.3]]]])
    assert stochastic("test").kinks(caffe_bottom()) is None


def test_stochastic_checker_skips_a_pixel_at_a_boundary_of_the_draw():
    """A 1x2 window [a, 1] whose running sum a lies 5e-8 above the threshold u (a + 1) of the
    gate's first draw: a centred difference across it would see the drawn pixel change, so the
    checker must skip both pixels (and fail without the kinks)."""
    u = np.random.default_rng(0).random()            # a fresh gate's rng: its first draw
    a = u / (1 - u) + 5e-8
    x = np.array([[[[a, 1.0]]]])
    report = check_gate(stochastic(kernel_h=1, kernel_w=2, stride=2), [x])
    assert report.ok and report.inputs[0].skipped == 2, str(report)
    blind = stochastic(kernel_h=1, kernel_w=2, stride=2)
    blind.kinks = lambda x: None
    assert not check_gate(blind, [x]).ok


@pytest.mark.parametrize("options, message", [
    ({"kernel_size": 3, "pad": 1}, "STOCHASTIC pooling takes no pad"),
])
def test_stochastic_rejects_padding(options, message):
    with pytest.raises(ValueError, match=message):
        stochastic(**options)


def test_stochastic_rejects_negative_inputs_and_a_mask_top():
    with pytest.raises(ValueError, match="non-negative inputs .* got -0.5"):
        stochastic().forward(np.full((1, 1, 3, 3), -0.5))
    with pytest.raises(ValueError, match="only MAX pooling has a second top"):
        pooling(2, pool="STOCHASTIC", kernel_size=2)


def test_stochastic_pooling_in_a_net_trains_and_tests():
    config = {"inputs": {"x": {"shape": [None, 1, 6, 6]}, "y": {"shape": [None, 2, 3, 3]}},
              "gates": [
                  {"name": "conv", "type": "Convolution", "bottom": "x", "top": "c",
                   "num_output": 2, "kernel_size": 3, "pad": 1},
                  {"name": "relu", "type": "ReLU", "bottom": "c", "top": "c"},
                  {"name": "pool", "type": "Pooling", "bottom": "c", "top": "p",
                   "pool": "STOCHASTIC", "kernel_size": 2, "stride": 2},
                  {"name": "loss", "type": "EuclideanLoss", "bottom": ["p", "y"], "top": "loss"}]}
    feed = {"x": RNG.standard_normal((3, 1, 6, 6)), "y": RNG.standard_normal((3, 2, 3, 3))}
    train = Net.from_config(config, seed=5)
    again = Net.from_config(config, seed=5)
    np.testing.assert_array_equal(train.forward(feed)["loss"], again.forward(feed)["loss"])
    grads = train.backward(wrt=["conv.W"])
    assert np.any(grads["conv.W"] != 0)
    test = Net.from_config(config, phase="test", seed=5)
    p = test.forward(feed, outputs=["p", "c"])
    c = p["c"].astype(np.float64).reshape(3, 2, 3, 2, 3, 2).transpose(0, 1, 2, 4, 3, 5)
    expected = (c ** 2).sum(axis=(4, 5)) / (c.sum(axis=(4, 5)) + np.finfo(np.float32).tiny)
    np.testing.assert_allclose(p["p"], expected, rtol=1e-5)
