"""Caffe's fillers beyond the plain ones: gaussian's `sparse` and the bilinear kernel."""
from __future__ import annotations

import numpy as np
import pytest

from net.core.fillers import (ALIGNMENT, aligned_empty, aligned_pack, aligned_zeros, fill,
                              fill_bytes)

RNG = np.random.default_rng(0)


def test_sparse_gaussian_keeps_each_weight_with_probability_sparse_over_outputs():
    weights = fill((1000, 40), {"type": "gaussian", "std": 1.0, "sparse": 100}, RNG,
                   np.dtype(np.float64))
    assert abs(np.count_nonzero(weights) / weights.size - 0.1) < 0.01
    dense = fill((50, 4), {"type": "gaussian", "sparse": -1}, RNG, np.dtype(np.float64))
    assert np.count_nonzero(dense) == dense.size


def test_bilinear_is_caffes_upsampling_kernel():
    # Caffe's BilinearFiller for a 4x4 kernel (upsampling by 2): f = 2, c = 0.75, so each axis
    # is 1 - |x / 2 - 0.75| = [0.25, 0.75, 0.75, 0.25], and the kernel their outer product
    kernel = fill((3, 1, 4, 4), {"type": "bilinear"}, RNG, np.dtype(np.float32))
    axis = np.array([0.25, 0.75, 0.75, 0.25])
    np.testing.assert_array_equal(kernel[2, 0], np.outer(axis, axis).astype(np.float32))
    odd = fill((1, 1, 3, 3), {"type": "bilinear"}, RNG, np.dtype(np.float64))[0, 0]
    np.testing.assert_allclose(odd[0], [0.0625, 0.1875, 0.1875])           # f = 2, c = 0.75
    with pytest.raises(ValueError, match="square 4-D kernels"):
        fill((3, 4), {"type": "bilinear"}, RNG, np.dtype(np.float64))


@pytest.mark.parametrize("shape", [(), (0,), (3,), (7, 5), (2, 3, 4, 5)])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_filled_arrays_start_on_the_alignment_boundary(shape, dtype):
    for filler in ({"type": "constant", "value": 2.0}, {"type": "gaussian", "std": 1.0}):
        values = fill(shape, filler, RNG, np.dtype(dtype), aligned=True)
        assert values.shape == shape and values.dtype == dtype
        assert values.flags.c_contiguous and values.flags.writeable
        assert values.size == 0 or values.ctypes.data % ALIGNMENT == 0   # (empty: no data)


def test_aligned_arrays_are_aligned_whatever_malloc_returns():
    # the offset malloc happens to give changes from call to call: ask many times
    for size in range(1, 40):
        assert aligned_empty((size,), np.float32).ctypes.data % ALIGNMENT == 0
        zeros = aligned_zeros((size, 3), np.float64)
        assert zeros.ctypes.data % ALIGNMENT == 0 and not zeros.any() and zeros.shape == (size, 3)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_packed_arrays_each_start_on_the_boundary_and_share_one_zeroed_buffer(dtype):
    shapes = {"w": (3, 5), "b": (1,), "v": (17,), "empty": (0, 4), "s": ()}
    flat, views, extra = aligned_pack(shapes, dtype, extra=2)
    assert flat.dtype == dtype and not flat.any() and flat.ctypes.data % ALIGNMENT == 0
    assert {name: view.shape for name, view in views.items()} == shapes
    for name, view in views.items():
        assert view.base is flat.base and view.flags.c_contiguous
        assert view.size == 0 or view.ctypes.data % ALIGNMENT == 0, name
    filled = [view for view in views.values() if view.size]
    places = [view.ctypes.data for view in filled]
    # in the order given, none overlapping, with less than ALIGNMENT bytes between them
    assert all(a + v.nbytes <= b < a + v.nbytes + ALIGNMENT
               for a, b, v in zip(places, places[1:], filled))
    assert extra.shape == (2,) and np.shares_memory(extra, flat)
    # w (15), b (1), v (17) and s (1) rounded up to 64 bytes (32, 16, 8 elements), then 2
    assert flat.size == {"float16": 32 + 32 + 32 + 32, "float32": 16 + 16 + 32 + 16,
                         "float64": 16 + 8 + 24 + 8}[dtype] + 2
    for value, view in enumerate(views.values(), start=1):
        view[...] = value
    extra[...] = -1
    assert flat.sum() == sum(v * views[n].size for v, n in enumerate(views, start=1)) - 2


@pytest.mark.parametrize("dtype", ["S3", "V12", "complex128"])
def test_packed_arrays_are_aligned_whatever_the_item_size(dtype):
    _, views, _ = aligned_pack({"a": (5,), "b": (7, 2), "c": (1,)}, dtype)
    assert all(view.ctypes.data % ALIGNMENT == 0 for view in views.values())


def test_fill_bytes_counts_the_array_and_the_values_drawn_for_it():
    shape = (10, 20)
    assert fill_bytes(shape, {"type": "constant", "value": 1.0}, np.float32) == 200 * 4
    assert fill_bytes(shape, {"type": "xavier"}, np.float32) == 200 * (4 + 8)
    assert fill_bytes(shape, {"type": "gaussian", "std": 0.1}, np.float64) == 200 * (8 + 8)
    assert fill_bytes(shape, {"type": "gaussian", "sparse": 3}, np.float16) == 200 * (2 + 16)


@pytest.mark.parametrize("filler", [{"type": "constant", "value": 0.5}, {"type": "uniform"},
                                    {"type": "gaussian", "sparse": 2}, {"type": "msra"},
                                    {"type": "bilinear"}])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_aligned_filling_draws_the_same_values(filler, dtype):
    shape = (3, 2, 4, 4)
    plain = fill(shape, filler, np.random.default_rng(5), np.dtype(dtype))
    aligned = fill(shape, filler, np.random.default_rng(5), np.dtype(dtype), aligned=True)
    assert aligned.dtype == plain.dtype and aligned.ctypes.data % ALIGNMENT == 0
    np.testing.assert_array_equal(aligned, plain)
