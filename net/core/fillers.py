"""Parameter initialisation with Caffe's filler types: constant, gaussian (with Caffe's `sparse`:
each weight kept with probability sparse / shape[0]), uniform, xavier, msra, bilinear.

Fan-in and fan-out follow Caffe: for a weight of shape (out, in, ...), fan_in = count / out and
fan_out = count / in.

Every array made here starts on an ALIGNMENT-byte boundary, as do the solver's (`aligned_empty`).
"""
from __future__ import annotations

import math

import numpy as np

from gates import short_repr

FILLER_KEYS = {
    "constant": ("value",),
    "gaussian": ("mean", "std", "sparse"),
    "uniform": ("min", "max"),
    "xavier": ("variance_norm",),
    "msra": ("variance_norm",),
    "bilinear": (),
}
VARIANCE_NORMS = ("FAN_IN", "FAN_OUT", "AVERAGE")

#: The byte boundary the arrays a Net keeps from step to step (parameters, the solver's history
#: and scratch) start on: the cache line, and a multiple of every vector width numpy's loops and
#: the BLAS use (PyTorch's CPU allocator aligns to 64 too). numpy gets 16 from malloc; with 16
#: the matrix products of an MLP step measured 1-3% slower at two BLAS threads, and the update's
#: elementwise loops up to 15% slower.
ALIGNMENT = 64


def aligned_empty(shape: tuple, dtype: np.dtype) -> np.ndarray:
    """An uninitialised C-contiguous array whose data starts on an ALIGNMENT-byte boundary."""
    dtype = np.dtype(dtype)
    size = math.prod(shape) * dtype.itemsize
    raw = np.empty(size + ALIGNMENT, dtype=np.uint8)
    start = -raw.ctypes.data % ALIGNMENT
    return raw[start:start + size].view(dtype).reshape(shape)


def aligned_zeros(shape: tuple, dtype: np.dtype) -> np.ndarray:
    """`aligned_empty`, filled with zeros."""
    out = aligned_empty(shape, dtype)
    out.fill(0)
    return out


def check_filler(filler: dict) -> None:
    """Raise ValueError saying what is wrong with a filler mapping."""
    kind = filler.get("type")
    if not isinstance(kind, str) or kind not in FILLER_KEYS:
        raise ValueError(f"filler type must be one of {', '.join(FILLER_KEYS)}, got {kind!r}")
    for key, value in filler.items():
        if key == "type":
            continue
        if key not in FILLER_KEYS[kind]:
            raise ValueError(f"unknown key {key!r} for a {kind} filler "
                             f"(known: {', '.join(FILLER_KEYS[kind])})")
        if key == "variance_norm":
            if value not in VARIANCE_NORMS:
                raise ValueError(f"variance_norm must be one of {', '.join(VARIANCE_NORMS)}")
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or \
                not math.isfinite(value):
            raise ValueError(f"filler {key!r} must be a finite number, got {short_repr(value)}")
    if kind == "gaussian" and "sparse" in filler and (
            filler["sparse"] != int(filler["sparse"]) or filler["sparse"] < -1):
        raise ValueError(f"a gaussian filler's sparse must be an integer (-1: dense), got "
                         f"{filler['sparse']}")
    if kind == "gaussian" and filler.get("std", 1.0) < 0:
        raise ValueError("a gaussian filler's std must not be negative")


def fill(shape: tuple, filler: dict, rng: np.random.Generator, dtype: np.dtype) -> np.ndarray:
    """A new aligned array of `shape` and `dtype`, drawn as `filler` says."""
    out = aligned_empty(shape, dtype)
    out[...] = _values(shape, filler, rng, dtype)
    return out


def _values(shape: tuple, filler: dict, rng: np.random.Generator, dtype: np.dtype) -> np.ndarray:
    check_filler(filler)
    kind = filler["type"]
    count = int(np.prod(shape))
    if kind == "bilinear":
        return bilinear(shape, dtype)
    if kind == "constant" or count == 0:
        return np.full(shape, filler.get("value", 0.0), dtype=dtype)
    if kind == "gaussian":
        values = rng.normal(filler.get("mean", 0.0), filler.get("std", 1.0), shape)
        sparse = filler.get("sparse", -1)
        if sparse >= 0 and shape:    # Caffe: keep a weight with probability sparse / shape[0]
            values *= rng.random(shape) < sparse / shape[0]
    elif kind == "uniform":
        values = rng.uniform(filler.get("min", 0.0), filler.get("max", 1.0), shape)
    else:
        fan_in = count / shape[0] if shape and shape[0] else 1
        fan_out = count / shape[1] if len(shape) > 1 and shape[1] else 1
        norm = filler.get("variance_norm", "FAN_IN")
        n = {"FAN_IN": fan_in, "FAN_OUT": fan_out, "AVERAGE": (fan_in + fan_out) / 2}[norm]
        if kind == "xavier":
            scale = np.sqrt(3.0 / n)
            values = rng.uniform(-scale, scale, shape)
        else:
            values = rng.normal(0.0, np.sqrt(2.0 / n), shape)
    return np.asarray(values, dtype=dtype)


def bilinear(shape: tuple, dtype: np.dtype) -> np.ndarray:
    """Caffe's bilinear filler: every (kh, kw) kernel of a 4-D weight is the bilinear
    interpolation kernel of an upsampling by ceil(kw / 2), for a Deconvolution that upsamples
    (FCN's). With f = ceil(kw / 2) and c = (2f - 1 - f % 2) / 2f,
    w[y, x] = (1 - |x / f - c|) (1 - |y / f - c|)."""
    if len(shape) != 4 or shape[2] != shape[3]:
        raise ValueError(f"a bilinear filler fills square 4-D kernels, got shape {shape}")
    f = math.ceil(shape[3] / 2)
    c = (2 * f - 1 - f % 2) / (2 * f)
    axis = 1 - np.abs(np.arange(shape[3]) / f - c)
    return np.broadcast_to(np.outer(axis, axis), shape).astype(dtype)
