"""Convolution and Pooling: against direct loop references and hand values, centred-difference
gradients over the geometry variants (stride, padding, dilation, groups, overlapping and clipped
windows), Caffe's conventions, and the gates inside a Net (LeNet-style nets and configs)."""
from __future__ import annotations

import os
import signal
import tracemalloc

import numpy as np
import pytest

from gates import spectral, vision
from net import ConfigError, Net
from tests.helpers import CONFIGS, make, numeric_check

RNG = np.random.default_rng(7)


def distinct(shape):
    """Well-separated values in random order: no max window near a tie."""
    return RNG.permutation(np.linspace(-1, 1, int(np.prod(shape)))).reshape(shape)


# -- Convolution -----------------------------------------------------------------------------------
def reference_conv(x, W, b, stride=(1, 1), pad=(0, 0), dilation=(1, 1), group=1):
    """Caffe's convolution as direct loops over every output element."""
    n, c, height, width = x.shape
    out_c, c_per_group, kh, kw = W.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])))
    oh = (height + 2 * pad[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (width + 2 * pad[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    out = np.zeros((n, out_c, oh, ow))
    per_group = out_c // group
    for o in range(out_c):
        g = o // per_group
        for i in range(oh):
            for j in range(ow):
                rows = i * stride[0] + dilation[0] * np.arange(kh)
                cols = j * stride[1] + dilation[1] * np.arange(kw)
                patch = xp[:, g * c_per_group:(g + 1) * c_per_group][:, :, rows][:, :, :, cols]
                out[:, o, i, j] = np.sum(patch * W[o], axis=(1, 2, 3)) + (b[o] if b is not None
                                                                          else 0)
    return out


CONV_CASES = [
    pytest.param({"num_output": 3, "kernel_size": 3}, (2, 2, 5, 5), id="plain"),
    pytest.param({"num_output": 2, "kernel_size": 3, "stride": 2}, (2, 2, 7, 6), id="stride2"),
    pytest.param({"num_output": 2, "kernel_size": 3, "pad": 1}, (1, 2, 4, 5), id="pad1"),
    pytest.param({"num_output": 2, "kernel_size": 2, "dilation": 2}, (1, 2, 5, 5), id="dilation2"),
    pytest.param({"num_output": 4, "kernel_size": 1, "group": 2}, (2, 4, 3, 3), id="group2"),
    pytest.param({"num_output": 6, "kernel_h": 2, "kernel_w": 3, "stride": [1, 2], "pad": [1, 0],
                  "group": 3, "bias_term": False}, (2, 3, 4, 7), id="rectangular-nobias"),
    pytest.param({"num_output": 4, "kernel_size": 3, "stride": 2, "pad": 1, "dilation": 2,
                  "group": 2}, (2, 4, 7, 6), id="everything"),
]


@pytest.mark.parametrize("options, shape", CONV_CASES)
def test_convolution_matches_direct_loops(options, shape):
    gate = make("Convolution", **options)
    specs = gate.param_specs(shape)
    x = RNG.standard_normal(shape)
    W = RNG.standard_normal(specs["W"][0])
    b = RNG.standard_normal(specs["b"][0]) if "b" in specs else None
    out = gate.forward(x, W, *([b] if b is not None else []))
    expected = reference_conv(x, W, b, gate.strides, gate.pads, gate.dilations, gate.group)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
    assert gate.infer_shapes(shape) == (out.shape,)
    assert gate.infer_shapes((None,) + shape[1:]) == ((None,) + out.shape[1:],)


@pytest.mark.parametrize("options, shape", CONV_CASES)
def test_convolution_gradients(options, shape):
    numeric_check(make("Convolution", **options), [RNG.standard_normal(shape)])


@pytest.mark.parametrize("per_chunk", [1, 2, 5])
@pytest.mark.parametrize("case", [0, 2, -1], ids=["plain", "pad1", "everything"])
def test_convolution_chunks_agree(monkeypatch, case, per_chunk):
    """The passes work a few images at a time: one image per chunk, a short last chunk (5 = 2 +
    2 + 1) and the whole batch in one chunk all match the direct loops and the centred
    differences, with and without the input's gradient."""
    monkeypatch.setattr(vision, "_chunks", lambda first, last, _: (per_chunk, [
        (start, min(start + per_chunk, last)) for start in range(first, last, per_chunk)]))
    options, shape = CONV_CASES[case].values
    shape = (5,) + shape[1:]
    gate = make("Convolution", **options)
    specs = gate.param_specs(shape)
    x, W = RNG.standard_normal(shape), RNG.standard_normal(specs["W"][0])
    b = [RNG.standard_normal(specs["b"][0])] if "b" in specs else []
    np.testing.assert_allclose(gate.forward(x, W, *b), reference_conv(
        x, W, *(b or [None]), gate.strides, gate.pads, gate.dilations, gate.group), atol=1e-12)
    numeric_check(gate, [x])
    gate.needs_input_grad = (False, True, True)
    expected = gate.backward(np.ones(gate.infer_shapes(shape)[0]))
    monkeypatch.setattr(vision, "_chunks", lambda first, last, _: (last - first, [(first, last)]))
    gate.forward(x, W, *b)
    for got, want in zip(gate.backward(np.ones(gate.infer_shapes(shape)[0]))[1:], expected[1:]):
        np.testing.assert_allclose(got, want, atol=1e-12)


ROUTES = {"gathered": (True, False), "scattered-pixels": (False, False),
          "scattered-rows": (False, True)}


@pytest.mark.parametrize("route, options, shape", [
    pytest.param(route, *case.values, id=f"{route}-{case.id}") for route in ROUTES
    for case in CONV_CASES if not (ROUTES[route][0] and "stride" in case.values[0])])
def test_convolution_input_gradient_routes_agree(monkeypatch, route, options, shape):
    """dx is gathered (dout convolved with the flipped kernel; stride 1 only) or scattered
    (col2im, adding in runs of pixels or of rows), whichever moves less data; each must match
    the centred differences wherever it may be chosen."""
    gathers, rows = ROUTES[route]
    monkeypatch.setattr(vision.ConvolutionGate, "_gathers", lambda self, *shapes: gathers)
    monkeypatch.setattr(vision.ConvolutionGate, "_scatters_rows", lambda self, shape: rows)
    numeric_check(make("Convolution", **options), [RNG.standard_normal(shape)])


THREADED_CASES = [
    pytest.param("Convolution", {"num_output": 4, "kernel_size": 3, "pad": 1}, (True, True, True),
                 id="conv-gathered"),
    pytest.param("Convolution", CONV_CASES[-1].values[0], (True, True, True), id="conv-scattered"),
    pytest.param("Convolution", {"num_output": 3, "kernel_size": 2}, (False, True, True),
                 id="conv-weights-only"),
    pytest.param("Pooling", {"pool": "MAX", "kernel_size": 3, "stride": 2}, (True,), id="max"),
    pytest.param("Pooling", {"pool": "AVE", "kernel_size": 3, "stride": 2, "pad": 1}, (True,),
                 id="ave"),
]


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("type_name, options, needs", THREADED_CASES)
def test_gates_split_the_batch_over_threads(monkeypatch, threads, type_name, options, needs):
    """With several threads a gate's chunks (one image each here) go to whichever thread is
    free: the same outputs and gradients as one thread, and (3 threads) centred differences."""
    x = distinct((5, 4, 7, 6))
    gate = make(type_name, **options)
    params = [RNG.standard_normal(shape) for shape, _ in gate.param_specs(x.shape).values()] \
        if type_name == "Convolution" else []
    dout = RNG.standard_normal(gate.infer_shapes(x.shape)[0])
    results = []
    for count in (1, threads):
        monkeypatch.setattr(vision, "THREADS", count)
        monkeypatch.setattr(vision, "_CHUNK_BYTES", 1 if count > 1 else 1 << 21)
        monkeypatch.setattr(vision, "_POOL_THREADED_BYTES", 0)
        gate.needs_input_grad = needs
        results.append((gate.forward(x, *params), gate.backward(dout)))
    (out, grads), (threaded_out, threaded_grads) = results
    np.testing.assert_allclose(threaded_out, out, rtol=1e-13, atol=1e-13)
    for threaded, single in zip(threaded_grads, grads):
        assert (threaded is None) == (single is None)
        if single is not None:
            np.testing.assert_allclose(threaded, single, rtol=1e-12, atol=1e-12)
    if threads == 3:
        numeric_check(gate, [x])


SPECTRAL_CASES = [
    pytest.param({"num_output": 3, "kernel_size": 3}, (2, 2, 5, 5), id="plain"),
    pytest.param({"num_output": 4, "kernel_size": 5, "pad": 2}, (3, 3, 8, 8), id="cifar-like"),
    pytest.param({"num_output": 2, "kernel_h": 2, "kernel_w": 3, "pad": [3, 1]}, (2, 3, 5, 6),
                 id="pad-past-kernel"),
    pytest.param({"num_output": 3, "kernel_h": 3, "kernel_w": 2, "bias_term": False},
                 (2, 2, 7, 4), id="rectangular-nobias"),
    pytest.param({"num_output": 2, "kernel_size": 4, "pad": 1}, (1, 2, 6, 7), id="even-grid"),
]


@pytest.mark.parametrize("options, shape", SPECTRAL_CASES)
def test_spectral_route_matches_the_loops_and_the_differences(monkeypatch, options, shape):
    """The transform route (gates/spectral.py), forced on in float64: the direct loops to
    1e-12 of the largest output, the column route's gradients to 1e-12, and the centred
    differences."""
    gate = make("Convolution", **options)
    specs = gate.param_specs(shape)
    x, W = RNG.standard_normal(shape), RNG.standard_normal(specs["W"][0])
    b = [RNG.standard_normal(specs["b"][0])] if "b" in specs else []
    dout = RNG.standard_normal(gate.infer_shapes(shape)[0])
    results = {}
    for spectral in (False, True):
        monkeypatch.setattr(vision, "SPECTRAL", spectral)
        out = gate.forward(x, W, *b)
        assert (gate.spectral is not None) == spectral
        gate.needs_input_grad = (True,) * (2 + len(b))
        results[spectral] = (out, *gate.backward(dout))
    expected = reference_conv(x, W, *(b or [None]), gate.strides, gate.pads)
    scale = np.abs(expected).max()
    np.testing.assert_allclose(results[True][0], expected, rtol=0, atol=1e-12 * scale)
    for got, want in zip(results[True][1:], results[False][1:]):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12 * np.abs(want).max())
    numeric_check(gate, [x])


def test_spectral_route_chunks_agree(monkeypatch):
    """The transform route splits a batch whose intermediates pass spectral.CHUNK_BYTES: one
    image per chunk gives the whole batch's outputs and gradients."""
    monkeypatch.setattr(vision, "SPECTRAL", True)
    monkeypatch.setattr(vision, "THREADS", 1)
    gate = make("Convolution", num_output=3, kernel_size=3, pad=1)
    x, W, b = RNG.standard_normal((5, 2, 6, 5)), RNG.standard_normal((3, 2, 3, 3)), \
        RNG.standard_normal(3)
    dout = RNG.standard_normal((5, 3, 6, 5))
    results = []
    for budget in (1, spectral.CHUNK_BYTES):
        monkeypatch.setattr(spectral, "CHUNK_BYTES", budget)
        results.append([gate.forward(x, W, b), *gate.backward(dout)])
        assert len(gate.chunks) == (5 if budget == 1 else 1)
    for split, whole in zip(*results):
        np.testing.assert_allclose(split, whole, rtol=1e-13, atol=1e-13)


def test_spectral_weight_gradient_does_not_depend_on_thread_timing(monkeypatch):
    """With several threads the chunks go out in fixed runs, each summed in order: dW is the
    same to the bit when the runs finish in another order (simulated by running them last
    first), as it is on the column route."""
    monkeypatch.setattr(vision, "SPECTRAL", True)
    monkeypatch.setattr(vision, "THREADS", 2)
    monkeypatch.setattr(spectral, "CHUNK_BYTES", 1)             # one image per chunk
    gate = make("Convolution", num_output=4, kernel_size=3, pad=1)
    x, W = RNG.standard_normal((6, 3, 5, 5)).astype(np.float32), \
        RNG.standard_normal((4, 3, 3, 3)).astype(np.float32)
    dout = RNG.standard_normal((6, 4, 5, 5)).astype(np.float32)
    gate.forward(x, W, np.zeros(4, np.float32))
    first = gate.backward(dout)
    spread = vision._spread

    def last_first(chunks, threads, setup, task):
        return spread(chunks[::-1], 1, setup, task)[::-1]
    monkeypatch.setattr(vision, "_spread", last_first)
    for got, want in zip(gate.backward(dout), first):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("layer, batch, spectral", [
    pytest.param((32, 32, 16, 5, 2), 100, True, id="cifar10_quick-conv2"),
    pytest.param((32, 64, 8, 5, 2), 100, True, id="cifar10_quick-conv3"),
    pytest.param((20, 50, 12, 5, 0), 64, True, id="lenet-conv2"),
    pytest.param((3, 32, 32, 5, 2), 100, False, id="cifar10_quick-conv1"),
    pytest.param((1, 20, 28, 5, 0), 64, False, id="lenet-conv1"),
    pytest.param((32, 64, 8, 5, 2), 1, False, id="one-image"),
    pytest.param((128, 128, 16, 3, 1), 16, False, id="vgg-3x3"),
    pytest.param((64, 64, 16, 1, 0), 32, False, id="1x1"),
])
def test_the_route_chosen_for_float32(layer, batch, spectral):
    """By default (SPECTRAL None) float32 takes the transform route where it measured faster
    over a forward and backward pass (cifar10_quick's and LeNet's second 5x5 layers at their
    batch sizes: 3.1x and 2.2x) and the column route where that measured faster (one image, 3x3
    kernels on many channels at batch 16, 1x1 kernels); float64 always takes the column route."""
    channels, outputs, size, kernel, pad = layer
    gate = make("Convolution", num_output=outputs, kernel_size=kernel, pad=pad)
    shape = (batch, channels, size, size)
    f32, f64 = np.dtype(np.float32), np.dtype(np.float64)
    assert (gate._spectral(shape, f32, f32) is not None) == spectral
    assert gate._spectral(shape, f64, f64) is None


@pytest.mark.parametrize("needs", [(True, True, True), (False, True, True), (True, False, False),
                                   (False, False, True)])
@pytest.mark.parametrize("threads", [1, 2])
def test_spectral_route_in_float32_where_it_is_chosen(monkeypatch, needs, threads):
    """A float32 layer the default sends down the transform route agrees with the float64
    column route about as closely as float32's column route does (measured: 2e-7 of the
    largest value; 2e-6 allowed), split over threads or not, for any set of wanted gradients."""
    monkeypatch.setattr(vision, "THREADS", threads)
    x = RNG.standard_normal((32, 32, 8, 8))
    W, b = RNG.standard_normal((32, 32, 5, 5)) * 0.1, RNG.standard_normal(32)
    dout = RNG.standard_normal((32, 32, 8, 8))
    gate = make("Convolution", num_output=32, kernel_size=5, pad=2)
    gate.needs_input_grad = needs
    single = [gate.forward(*(a.astype(np.float32) for a in (x, W, b)))]
    assert gate.spectral is not None
    single += gate.backward(dout.astype(np.float32))
    monkeypatch.setattr(vision, "SPECTRAL", False)
    double = [gate.forward(x, W, b)] + list(gate.backward(dout))
    assert gate.spectral is None and gate.spectra is None
    for got, want in zip(single, double):
        assert (got is None) == (want is None)
        if want is not None:
            assert got.dtype == np.float32 and got.shape == want.shape
            np.testing.assert_allclose(got, want, rtol=0, atol=2e-6 * np.abs(want).max())


def test_spectral_route_leaves_float16_to_the_columns(monkeypatch):
    """Forced on, the transform route still leaves float16 to the column route (its complex
    type would not hold two float16 values)."""
    monkeypatch.setattr(vision, "SPECTRAL", True)
    gate = make("Convolution", num_output=2, kernel_size=3, pad=1)
    x, W = RNG.standard_normal((2, 3, 6, 4)), RNG.standard_normal((2, 3, 3, 3))
    out = gate.forward(x.astype(np.float16), W.astype(np.float16), np.zeros(2, np.float16))
    assert gate.spectral is None and out.dtype == np.float16
    np.testing.assert_allclose(out, reference_conv(x, W, None, pad=(1, 1)), atol=0.05)


def test_pooling_keeps_a_small_input_on_one_thread(monkeypatch):
    """Pooling hands chunks to its threads only from _POOL_THREADED_BYTES of input on: below it
    one thread is faster (LeNet's pool1 measured 1.7x slower split over two)."""
    monkeypatch.setattr(vision, "THREADS", 2)
    gate = make("Pooling", pool="MAX", kernel_size=2, stride=2)
    x = distinct((4, 2, 6, 6))
    out = gate.forward(x)
    assert gate.threads == 1 and len(gate.chunks) == 1
    monkeypatch.setattr(vision, "_POOL_THREADED_BYTES", x.nbytes)
    np.testing.assert_array_equal(gate.forward(x), out)
    assert gate.threads == 2 and len(gate.chunks) == 4


class FakeBlas:
    """threadpoolctl's controller as the gates use it: limit() holds the BLAS to a count."""
    def __init__(self):
        self.limits = []

    def limit(self, limits):
        self.limits.append(limits)
        return limits


def test_threads_follow_the_blas_unless_it_cannot_be_held_to_one(monkeypatch):
    """Chunks that call BLAS get threads of their own only where threadpoolctl can hold the
    BLAS to one thread, which happens once and stays; pooling calls no BLAS; THREADS
    overrides, and THREADS = 1 leaves the BLAS alone."""
    monkeypatch.setattr(vision, "THREADS", None)
    monkeypatch.setattr(vision, "_BLAS", [None, 2, None])
    assert (vision._threads(calls_blas=True), vision._threads(calls_blas=False)) == (1, 2)
    blas = FakeBlas()
    monkeypatch.setattr(vision, "_BLAS", [blas, 2, None])
    assert (vision._threads(calls_blas=False), blas.limits) == (2, [])
    assert (vision._threads(calls_blas=True), vision._threads(calls_blas=True)) == (2, 2)
    assert blas.limits == [1]
    monkeypatch.setattr(vision, "_BLAS", [FakeBlas(), 2, None])
    monkeypatch.setattr(vision, "THREADS", 1)
    assert (vision._threads(calls_blas=True), vision._BLAS[0].limits) == (1, [])
    monkeypatch.setattr(vision, "THREADS", 3)
    assert vision._threads(calls_blas=True) == 3


def test_threads_take_chunks_in_turn_and_failures_wait_for_the_others():
    """Every chunk is done once, its result in chunk order, each thread with the state it set
    up; a failing chunk is reported after the other threads end, the other chunks done."""
    states = []

    def setup(slot):
        states.append(slot)
        return slot

    chunks = [(0, 2), (2, 4), (4, 6), (6, 7)]
    assert vision._spread(chunks, 3, setup, lambda state, start, stop: (start, stop)) == chunks
    assert sorted(states) == [0, 1, 2]
    done = []

    def task(state, start, stop):
        if start == 0:
            raise ValueError("chunk 0 failed")
        done.append(start)
    with pytest.raises(ValueError, match="chunk 0 failed"):
        vision._spread(chunks, 3, setup, task)
    assert sorted(done) == [2, 4, 6]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_starts_its_own_threads(monkeypatch):
    """A child forked after the gates started their threads (a data loader, a launcher) has
    none of them: it must start its own instead of waiting on the parent's forever."""
    monkeypatch.setattr(vision, "THREADS", 2)
    gate = make("Pooling", pool="MAX", kernel_size=3, stride=2)
    x = distinct((4, 3, 9, 9))
    expected = gate.forward(x)
    pid = os.fork()
    if pid == 0:                    # the child: killed if it hangs, exit 0 if it pooled right
        signal.alarm(30)
        os._exit(0 if np.array_equal(gate.forward(x), expected) else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_chunks_cover_the_batch_within_the_budget():
    budget = vision._CHUNK_BYTES
    assert vision._chunks(0, 10, budget // 3) == (3, [(0, 3), (3, 6), (6, 9), (9, 10)])
    assert vision._chunks(5, 9, 10 * budget) == (1, [(5, 6), (6, 7), (7, 8), (8, 9)])
    assert vision._chunks(3, 5, 1) == (2, [(3, 5)])


def test_convolution_padding_buffer_survives_shape_changes():
    """The zero-bordered scratch buffers are replaced, not reused, when the input's shape
    changes, even to a transposed one whose buffers hold as many values."""
    gate = make("Convolution", num_output=2, kernel_size=3, pad=1)
    W, b = RNG.standard_normal((2, 1, 3, 3)), RNG.standard_normal(2)
    for shape in [(20, 1, 8, 18), (20, 1, 18, 8), (20, 1, 8, 18), (3, 1, 4, 4)]:
        x = RNG.standard_normal(shape)
        np.testing.assert_allclose(gate.forward(x, W, b),
                                   reference_conv(x, W, b, pad=(1, 1)), atol=1e-12)


@pytest.mark.parametrize("shape", [(1, 1, 5, 5), (3, 1, 5, 5), (1, 2, 20, 20), (4, 2, 6, 6)])
def test_convolution_gradients_are_not_views_of_reused_buffers(shape):
    """Scratch buffers are reused by the next call: what a call returns must stay as it was."""
    gate = make("Convolution", num_output=2, kernel_size=3)
    x, W, b = RNG.standard_normal(shape), RNG.standard_normal((2, shape[1], 3, 3)), np.zeros(2)
    out = gate.forward(x, W, b)
    first = gate.backward(np.ones_like(out))
    kept = [g.copy() for g in first]
    out2 = gate.forward(2 * x, W, b)
    gate.backward(-np.ones_like(out))
    for g, k in zip(first, kept):
        np.testing.assert_array_equal(g, k)
    assert not np.shares_memory(out, out2)


def test_convolution_by_hand():
    """A 1x1x3x3 input, a 2x2 kernel of ones and a bias of 1: each output is its window's sum
    plus 1."""
    gate = make("Convolution", num_output=1, kernel_size=2)
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    out = gate.forward(x, np.ones((1, 1, 2, 2)), np.ones(1))
    np.testing.assert_array_equal(out, [[[[0 + 1 + 3 + 4 + 1, 1 + 2 + 4 + 5 + 1],
                                          [3 + 4 + 6 + 7 + 1, 4 + 5 + 7 + 8 + 1]]]])
    dx, dW, db = gate.backward(np.ones_like(out))
    np.testing.assert_array_equal(dx, [[[[1, 2, 1], [2, 4, 2], [1, 2, 1]]]])  # windows covering
    np.testing.assert_array_equal(dW, [[[[8, 12], [20, 24]]]])
    np.testing.assert_array_equal(db, [4])


def test_convolution_weight_shape_and_dtype():
    gate = make("Convolution", num_output=6, kernel_size=[3, 2], group=2)
    assert gate.param_specs((None, 4, 9, 9))["W"][0] == (6, 2, 3, 2)
    x = RNG.standard_normal((2, 4, 5, 5)).astype(np.float32)
    W = RNG.standard_normal((6, 2, 3, 2)).astype(np.float32)
    out = gate.forward(x, W, np.zeros(6, np.float32))
    assert out.dtype == np.float32 and out.shape == (2, 6, 3, 4)
    assert all(g.dtype == np.float32 for g in gate.backward(np.ones_like(out)))


def test_convolution_skips_input_gradient_when_not_needed():
    gate = make("Convolution", num_output=2, kernel_size=3)
    x = RNG.standard_normal((2, 1, 5, 5))
    out = gate.forward(x, RNG.standard_normal((2, 1, 3, 3)), np.zeros(2))
    gate.needs_input_grad = (False, True, True)
    dx, dW, db = gate.backward(np.ones_like(out))
    assert dx is None and dW.shape == (2, 1, 3, 3) and db.shape == (2,)


@pytest.mark.parametrize("options, message", [
    ({"num_output": 2}, "kernel_size"),
    ({"num_output": 3, "kernel_size": 3, "group": 2}, "divisible"),
    ({"num_output": 2, "kernel_size": 0}, "positive"),
    ({"num_output": 2, "kernel_size": 3, "pad": -1}, "non-negative"),
    ({"num_output": 2, "kernel_size": [1, 2, 3]}, "one or two"),
    ({"num_output": 2, "kernel_size": 3, "kernel_h": 3, "kernel_w": 3}, "not both"),
])
def test_convolution_rejects_bad_options(options, message):
    with pytest.raises(ValueError, match=message):
        make("Convolution", **options)


def assert_buffers_kept_and_no_growth(gate, step):
    """After a warm-up, ten more steps reuse the gate's scratch buffers (the same arrays) and
    allocate less than 4 KiB that they keep."""
    for _ in range(30):         # bounded caches (numpy's, threadpoolctl's) fill up first
        step()
    buffers = {name: kept[1] for name, kept in gate._buffers.kept.items()}
    tracemalloc.start()
    step()
    first = tracemalloc.get_traced_memory()[0]
    for _ in range(10):
        step()
    grown = tracemalloc.get_traced_memory()[0] - first
    tracemalloc.stop()
    assert buffers and all(gate._buffers.kept[n][1] is a for n, a in buffers.items())
    assert grown < 4096


def test_convolution_buffers_do_not_grow():
    gate = make("Convolution", num_output=4, kernel_size=3, pad=1)
    x = RNG.standard_normal((8, 3, 12, 12)).astype(np.float32)
    W = RNG.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = np.zeros(4, np.float32)

    def step():
        out = gate.forward(x, W, b)
        gate.backward(np.ones_like(out))

    assert_buffers_kept_and_no_growth(gate, step)


# -- Pooling ---------------------------------------------------------------------------------------
def reference_pool(x, pool, kernel, stride, pad, out_size):
    """Caffe's pooling loops (pooling_layer.cpp), window by window."""
    n, c, height, width = x.shape
    (kh, kw), (sh, sw), (ph, pw), (oh, ow) = kernel, stride, pad, out_size
    out = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            h0, w0 = i * sh - ph, j * sw - pw
            h1, w1 = min(h0 + kh, height + ph), min(w0 + kw, width + pw)
            size = (h1 - h0) * (w1 - w0)
            h0, w0, h1, w1 = max(h0, 0), max(w0, 0), min(h1, height), min(w1, width)
            window = x[:, :, h0:h1, w0:w1]
            out[:, :, i, j] = window.max(axis=(2, 3)) if pool == "MAX" else \
                window.sum(axis=(2, 3)) / size
    return out


POOL_CASES = [
    pytest.param({"kernel_size": 2, "stride": 2}, (2, 2, 6, 6), (3, 3), id="2x2-s2"),
    pytest.param({"kernel_size": 3, "stride": 2}, (1, 2, 6, 7), (3, 3), id="overlap-ceil"),
    pytest.param({"kernel_size": 3, "stride": 2, "round_mode": "FLOOR"}, (1, 2, 6, 7), (2, 3),
                 id="overlap-floor"),
    pytest.param({"kernel_size": 3, "stride": 2, "pad": 1}, (2, 1, 6, 5), (4, 3), id="pad1"),
    pytest.param({"kernel_size": 2, "stride": 2, "pad": 1}, (1, 2, 5, 4), (3, 3),
                 id="pad-last-window-dropped"),
    pytest.param({"kernel_size": 3, "stride": 1, "pad": 1}, (1, 2, 4, 4), (4, 4), id="same"),
    pytest.param({"kernel_h": 2, "kernel_w": 3, "stride": [1, 2]}, (1, 2, 4, 7), (3, 3),
                 id="rectangular"),
    pytest.param({"global_pooling": True}, (2, 3, 3, 4), (1, 1), id="global"),
    pytest.param({"kernel_size": 2, "stride": 3}, (1, 2, 6, 6), (2, 2),
                 id="stride-over-kernel-no-empty-window"),
    pytest.param({"kernel_h": 3, "kernel_w": 2, "stride": [2, 3]}, (1, 1, 6, 6), (3, 2),
                 id="rectangular-stride-over-kernel"),
    # Caffe's ceil rule keeps one window, clipped to the image, when the kernel passes the
    # input by less than a stride (OpenPose's deploy nets declare a 1x1 image)
    pytest.param({"kernel_size": 2, "stride": 2}, (1, 2, 1, 1), (1, 1), id="window-past-1x1"),
    pytest.param({"kernel_size": 3, "stride": 2}, (2, 2, 2, 7), (1, 3),
                 id="window-taller-than-input"),
    pytest.param({"kernel_size": 4, "stride": 2, "pad": 1}, (1, 2, 3, 3), (2, 2),
                 id="padded-window-past-the-padding"),
]


@pytest.mark.parametrize("pool", ["MAX", "AVE"])
@pytest.mark.parametrize("options, shape, out_size", POOL_CASES)
def test_pooling_matches_caffe_loops(pool, options, shape, out_size):
    gate = make("Pooling", pool=pool, **options)
    x = RNG.standard_normal(shape)
    out = gate.forward(x)
    assert out.shape == shape[:2] + out_size
    kernel = shape[2:] if gate.global_pooling else gate.kernel
    np.testing.assert_allclose(out, reference_pool(x, pool, kernel, gate.strides, gate.pads,
                                                   out_size), rtol=1e-12)
    assert gate.infer_shapes(shape) == (out.shape,)
    assert gate.infer_shapes((None,) + shape[1:]) == ((None,) + out.shape[1:],)


@pytest.mark.parametrize("pool", ["MAX", "AVE"])
@pytest.mark.parametrize("options, shape, out_size", POOL_CASES)
def test_pooling_gradients(pool, options, shape, out_size):
    numeric_check(make("Pooling", pool=pool, **options), [distinct(shape)])


@pytest.mark.parametrize("block", [1, 7, 64])
def test_max_pooling_in_blocks_routes_as_in_one(monkeypatch, block):
    """The max gradient is routed a block of outputs at a time: any block size, ties included
    (a plateau of ones and zeros), gives the dx of one block (up to the order of the additions
    where windows overlap)."""
    gate = make("Pooling", pool="MAX", kernel_size=3, stride=2, pad=1)
    x = np.where(RNG.random((2, 3, 9, 8)) < 0.5, 1.0, np.round(RNG.random((2, 3, 9, 8)), 1))
    dout = RNG.standard_normal(gate.infer_shapes(x.shape)[0])
    gate.forward(x)
    (expected,) = gate.backward(dout)
    monkeypatch.setattr(vision, "_POOL_BLOCK", block)
    gate.forward(x)
    (dx,) = gate.backward(dout)
    np.testing.assert_allclose(dx, expected, rtol=1e-14, atol=1e-15)
    numeric_check(gate, [distinct(x.shape)])


@pytest.mark.parametrize("pool", ["MAX", "AVE"])
def test_pooling_gradients_are_not_views_of_reused_buffers(pool):
    gate = make("Pooling", pool=pool, kernel_size=3, stride=2)
    x = RNG.standard_normal((2, 3, 7, 7))
    out = gate.forward(x)
    (first,) = gate.backward(np.ones_like(out))
    kept = first.copy()
    out2 = gate.forward(-x)
    gate.backward(-np.ones_like(out))
    np.testing.assert_array_equal(first, kept)
    assert not np.shares_memory(out, out2)


@pytest.mark.parametrize("pool", ["MAX", "AVE"])
def test_pooling_buffers_do_not_grow(pool):
    gate = make("Pooling", pool=pool, kernel_size=3, stride=2)
    x = RNG.standard_normal((8, 4, 12, 12)).astype(np.float32)

    def step():
        gate.backward(np.ones_like(gate.forward(x)))

    assert_buffers_kept_and_no_growth(gate, step)


def test_max_pooling_tie_goes_to_the_first_element():
    """All four inputs tie: the top-left one (first in row-major order) takes the gradient."""
    gate = make("Pooling", pool="MAX", kernel_size=2, stride=2)
    out = gate.forward(np.ones((1, 1, 2, 2)))
    (dx,) = gate.backward(np.full_like(out, 5.0))
    np.testing.assert_array_equal(dx, [[[[5, 0], [0, 0]]]])
    out = gate.forward(np.array([[[[0.0, 3.0], [3.0, 3.0]]]]))
    (dx,) = gate.backward(np.ones_like(out))
    np.testing.assert_array_equal(dx, [[[[0, 1], [0, 0]]]])


def test_overlapping_max_windows_add_up():
    """3 wins both overlapping windows of a 1x3 row pooled 1x2 at stride 1."""
    gate = make("Pooling", pool="MAX", kernel_h=1, kernel_w=2, stride=1)
    out = gate.forward(np.array([[[[1.0, 3.0, 2.0]]]]))
    np.testing.assert_array_equal(out, [[[[3, 3]]]])
    (dx,) = gate.backward(np.array([[[[1.0, 10.0]]]]))
    np.testing.assert_array_equal(dx, [[[[0, 11, 0]]]])


def test_average_divisor_counts_padding_as_caffe():
    """2x2 windows at stride 2 with pad 1 on a 2x2 plane of ones: each window holds one real
    element and three padded ones, so each output is 1/4, as in Caffe."""
    gate = make("Pooling", pool="AVE", kernel_size=2, stride=2, pad=1)
    out = gate.forward(np.ones((1, 1, 2, 2)))
    np.testing.assert_array_equal(out, np.full((1, 1, 2, 2), 0.25))
    # a ceil-mode window hanging past the input (no padding) is divided by its real part only
    gate = make("Pooling", pool="AVE", kernel_size=2, stride=2)
    out = gate.forward(np.ones((1, 1, 3, 3)))
    np.testing.assert_array_equal(out, np.ones((1, 1, 2, 2)))


@pytest.mark.parametrize("size, kernel, stride, pad, ceil, floor", [
    (24, 2, 2, 0, 12, 12),      # LeNet
    (6, 3, 2, 0, 3, 2),         # ceil keeps a partial window, floor drops it
    (7, 3, 2, 1, 4, 4),
    (5, 2, 2, 1, 3, 3),         # ceil's 4th window would start in the padding: dropped
    (13, 3, 2, 0, 6, 6),
    (6, 2, 3, 0, 2, 2),         # ceil's 3rd window would start past the input: dropped
])
def test_pooling_output_size_rule(size, kernel, stride, pad, ceil, floor):
    for mode, expected in (("CEIL", ceil), ("FLOOR", floor)):
        gate = make("Pooling", kernel_size=kernel, stride=stride, pad=pad, round_mode=mode)
        assert gate.infer_shapes((1, 1, size, size)) == ((1, 1, expected, expected),)


def test_a_window_past_the_input_by_less_than_a_stride_is_one_clipped_window():
    """Caffe's OH = ceil((H + 2 pad - kernel) / stride) + 1 is 1 for a 1x1 input under a 2x2
    window at stride 2 (and PyTorch's ceil_mode agrees); floor mode and a window past the
    input by a whole stride have no window left."""
    gate = make("Pooling", kernel_size=2, stride=2)
    assert gate.infer_shapes((1, 3, 1, 1)) == ((1, 3, 1, 1),)
    for options, by in (({"kernel_size": 2, "stride": 2, "round_mode": "FLOOR"}, ""),
                        ({"kernel_size": 3, "stride": 1}, r" by a stride \(1\) or more")):
        with pytest.raises(ValueError, match=r"the window \(\d\) is larger than the input "
                                             rf"\(1\) padded by 0{by}$"):
            make("Pooling", **options).infer_shapes((1, 3, 1, 1))


@pytest.mark.parametrize("options, message", [
    ({}, "kernel_size"),
    ({"kernel_size": 2, "pad": 2}, "smaller than the kernel"),
    ({"global_pooling": True, "kernel_size": 2}, "drop kernel_size"),
    ({"kernel_size": 2, "pool": "MIN"}, "MAX, AVE"),
    ({"kernel_size": 2, "round_mode": "UP"}, "CEIL, FLOOR"),
])
def test_pooling_rejects_bad_options(options, message):
    with pytest.raises(ValueError, match=message):
        make("Pooling", **options)


def test_max_pooling_kinks_measure_the_deciding_gap():
    gate = make("Pooling", pool="MAX", kernel_size=2, stride=2)
    x = np.array([[[[1.0, 0.5], [0.9, -1.0]]]])
    (distance,) = gate.kinks(x)
    np.testing.assert_allclose(distance, [[[[0.1, 0.5], [0.1, 2.0]]]])


# -- in a Net: LeNet-style composition -------------------------------------------------------------
LENET_LIKE = {
    "name": "tiny_lenet",
    "inputs": {"data": {"shape": [None, 1, 8, 8]}},
    "gates": [
        {"name": "conv1", "type": "Convolution", "bottom": "data", "top": "c1", "num_output": 4,
         "kernel_size": 3, "pad": 1},
        {"name": "pool1", "type": "Pooling", "bottom": "c1", "top": "p1", "kernel_size": 2,
         "stride": 2},
        {"name": "relu1", "type": "ReLU", "bottom": "p1", "top": "r1"},
        {"name": "conv2", "type": "Convolution", "bottom": "r1", "top": "c2", "num_output": 6,
         "kernel_size": 3},
        {"name": "flat", "type": "Flatten", "bottom": "c2", "top": "f"},
        {"name": "fc", "type": "InnerProduct", "bottom": "f", "top": "scores", "num_output": 3},
    ],
}


def test_shapes_flow_through_a_conv_net_with_an_open_batch():
    net = Net.from_config(LENET_LIKE)
    shapes = net.shapes
    assert shapes["c1"] == (None, 4, 8, 8) and shapes["p1"] == (None, 4, 4, 4)
    assert shapes["c2"] == (None, 6, 2, 2) and shapes["f"] == (None, 24)
    assert shapes["scores"] == (None, 3)
    assert net.params["conv1.W"].shape == (4, 1, 3, 3) and net.params["fc.W"].shape == (3, 24)
    assert "conv1" in net.summary()
    out = net.forward({"data": RNG.standard_normal((5, 1, 8, 8))})["scores"]
    assert out.shape == (5, 3) and out.dtype == np.float32
    grads = net.backward(wrt=["conv1.W", "conv2.W", "fc.W"])
    assert grads["conv1.W"].shape == (4, 1, 3, 3)


def test_first_convolution_gets_no_input_gradient_request():
    net = Net.from_config(LENET_LIKE)
    net.forward({"data": RNG.standard_normal((2, 1, 8, 8))})
    net.backward(wrt=list(net.params))
    assert net.gates["conv1"].needs_input_grad == (False, True, True)


def test_config_errors_name_the_gate_line():
    config = {"inputs": {"data": {"shape": [None, 1, 4, 4]}}, "gates": [
        {"name": "pool", "type": "Pooling", "bottom": "data", "top": "p", "kernel_size": 5}]}
    with pytest.raises(ConfigError, match="pool.*larger than the input"):
        Net.from_config(config)
    config["gates"][0] = {"name": "conv", "type": "Convolution", "bottom": "data", "top": "c",
                          "num_output": 2, "kernel_size": 3, "group": 2}
    with pytest.raises(ConfigError, match="conv.*not divisible by group"):
        Net.from_config(config)


# -- the LeNet configs -----------------------------------------------------------------------------
def test_lenet_configs_build():
    mnist = Net.from_yaml(CONFIGS / "lenet_mnist.yaml")
    assert mnist.shapes["pool2"] == (None, 50, 4, 4) and mnist.shapes["scores"] == (None, 10)
    assert sum(p.size for p in mnist.params.values()) == 431080       # Caffe's LeNet
    assert "conv2" in mnist.summary()
    digits = Net.from_yaml(CONFIGS / "lenet_digits.yaml", phase="test")
    assert digits.shapes["data"] == (None, 1, 8, 8) and "accuracy" in digits.outputs
