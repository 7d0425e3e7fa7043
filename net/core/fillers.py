"""Parameter initialisation with Caffe's filler types: constant, gaussian (with Caffe's `sparse`:
each weight kept with probability sparse / shape[0]), uniform, xavier, msra, bilinear.

Fan-in and fan-out follow Caffe: for a weight of shape (out, in, ...), fan_in = count / out and
fan_out = count / in.

The Net's parameters and the solver's history and scratch start on an ALIGNMENT-byte boundary
(`fill(..., aligned=True)`, `aligned_empty`, `aligned_zeros`), and so do the arrays packed into
one buffer for iter_size's accumulation and for an allreduce (`aligned_pack`).
"""
from __future__ import annotations

import math
from typing import Mapping

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

#: The byte boundary the Net's parameters and the solver's history and scratch start on: the
#: cache line, and a multiple of every vector width numpy's loops and the BLAS use (PyTorch's CPU
#: allocator aligns to 64 too). numpy's arrays start where malloc puts them, on a 16-byte
#: boundary: at a cache line's start only by chance. With those arrays 16 bytes off a cache line,
#: the 784-256-256-10 MLP's training step measured 1-2% slower at two BLAS threads (one of its
#: matrix products with a misaligned output: 1-3%; the SGD update of its largest weight with all
#: four operands misaligned: about 15%); the step at one thread, no measurable difference.
ALIGNMENT = 64


def aligned_empty(shape: tuple, dtype: np.dtype) -> np.ndarray:
    """An uninitialised C-contiguous array whose data starts on an ALIGNMENT-byte boundary."""
    return _aligned(shape, dtype, np.empty)


def aligned_zeros(shape: tuple, dtype: np.dtype) -> np.ndarray:
    """`aligned_empty`, but zeros (from calloc, as np.zeros: pages are mapped as they are used)."""
    return _aligned(shape, dtype, np.zeros)


def aligned_pack(shapes: Mapping[str, tuple], dtype: np.dtype, extra: int = 0
                 ) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """One zeroed buffer holding an array of each of `shapes` (by name), each starting on an
    ALIGNMENT-byte boundary (zeros fill the gaps, at most ALIGNMENT bytes each: harmless in a sum
    or an allreduce), then `extra` elements. Returns the buffer, name -> its array (a view), and
    the extra elements (a view)."""
    dtype = np.dtype(dtype)
    step = math.lcm(ALIGNMENT, dtype.itemsize) // dtype.itemsize    # elements between boundaries
    offsets, end = {}, 0
    for name, shape in shapes.items():
        offsets[name] = end
        end += -(-math.prod(shape) // step) * step      # the next boundary after the array
    flat = aligned_zeros((end + extra,), dtype)
    views = {name: flat[offsets[name]:offsets[name] + math.prod(shape)].reshape(shape)
             for name, shape in shapes.items()}
    return flat, views, flat[end:]


def _aligned(shape: tuple, dtype: np.dtype, allocate) -> np.ndarray:
    """A view of `shape` and `dtype` into bytes from `allocate` (np.empty or np.zeros), at the
    first ALIGNMENT-byte boundary among them."""
    dtype = np.dtype(dtype)
    size = math.prod(shape) * dtype.itemsize
    raw = allocate(size + ALIGNMENT, dtype=np.uint8)
    start = -raw.ctypes.data % ALIGNMENT
    return raw[start:start + size].view(dtype).reshape(shape)


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


def fill(shape: tuple, filler: dict, rng: np.random.Generator, dtype: np.dtype,
         aligned: bool = False) -> np.ndarray:
    """A new array of `shape` and `dtype`, drawn as `filler` says; with `aligned`, one whose data
    start on an ALIGNMENT-byte boundary (the Net's parameters)."""
    values = _draw(tuple(shape), filler, rng)
    if aligned:
        out = aligned_empty(shape, dtype)
        np.copyto(out, values, casting="unsafe")     # the rounding of np.asarray(values, dtype)
        return out
    return np.full(shape, values, dtype) if np.ndim(values) == 0 else np.asarray(values, dtype)


def fill_bytes(shape: tuple, filler: dict, dtype: np.dtype) -> int:
    """The most memory `fill` holds at once for a valid `filler`: the array, and the float64 values
    it is drawn from (twice that for a sparse gaussian, which draws which weights to keep too)."""
    kind = filler["type"]
    drawn = 0 if kind == "constant" else 16 if filler.get("sparse", -1) >= 0 else 8
    return math.prod(shape) * (np.dtype(dtype).itemsize + drawn)


def _draw(shape: tuple, filler: dict, rng: np.random.Generator) -> np.ndarray | float:
    """The values `filler` gives an array of `shape`: float64, or one number (constant)."""
    check_filler(filler)
    kind = filler["type"]
    count = int(np.prod(shape))
    if kind == "bilinear":
        return bilinear(shape, np.float64)
    if kind == "constant" or count == 0:
        return filler.get("value", 0.0)
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
    return values


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
