"""Image gates on NCHW arrays: Convolution, Deconvolution and Pooling, with Caffe's options and
output sizes.

All are vectorised numpy, and built for speed where the work is (see each class's comments):
a convolution works a few images at a time, channels last, its windows copied into a column
matrix that stays in the cache and multiplied by W in one BLAS call; pooling splits its input
by the stride into phases, so that every window tap is one contiguous slice. Nothing loops over
pixels (STOCHASTIC pooling, the rare one, copies its windows out instead). Deconvolution is
Convolution run backwards on the same code. With several threads (see THREADS) a gate's chunks
of images go to a small pool of threads of its own. Scratch buffers are reused between calls
and replaced, never added to, when the shapes change, so memory does not grow with the number
of iterations; what a call returns is never one of them.
"""
from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Callable

import numpy as np
from numpy.lib.stride_tricks import as_strided, sliding_window_view

from .base import Gate, Option, register_gate
from .spectral import Spectral, bias_bin, cost as spectral_cost, pieces as spectral_pieces

try:            # optional: lets the gates' own threads call a BLAS kept single-threaded
    from threadpoolctl import ThreadpoolController
except ImportError:
    ThreadpoolController = None

_INT_OR_PAIR = (int, list)


def _pair(gate: Gate, name: str, minimum: int) -> tuple[int, int]:
    """(h, w) from Caffe's `name` (an int, or a list of one or two ints) and `name_h`/`name_w`."""
    value = getattr(gate, name)
    stem = name.removesuffix("_size")
    h = getattr(gate, f"{stem}_h", None)
    w = getattr(gate, f"{stem}_w", None)
    if (h is None) != (w is None):
        raise ValueError(f"give both {stem}_h and {stem}_w, or neither")
    if h is not None:
        if value is not None and name == "kernel_size":
            raise ValueError(f"give {name} or {stem}_h/{stem}_w, not both")
        pair = (h, w)
    elif isinstance(value, list):
        if not 1 <= len(value) <= 2:
            raise ValueError(f"{name} takes one or two values (h, w), got {value!r}")
        pair = (value[0], value[-1])
    else:
        pair = (value, value)
    if any(isinstance(v, bool) or not isinstance(v, int) or v < minimum for v in pair):
        raise ValueError(f"{name} must be {'a positive' if minimum else 'a non-negative'} "
                         f"integer (or a list of two), got {value if h is None else [h, w]!r}")
    return pair


def _spatial(shape, gate: Gate) -> tuple:
    if len(shape) != 4:
        raise ValueError(f"{type(gate).type_name} expects NCHW input (4 dimensions), got "
                         f"shape {tuple(shape)}")
    return shape[2], shape[3]


class _Buffers:
    """Scratch arrays kept between calls, by name. One is replaced (never grown) when its shape
    or dtype changes; a filled one keeps its fill where it is never written (a border of zeros,
    a column of ones)."""

    def __init__(self):
        self.kept: dict[str, tuple[tuple, np.ndarray]] = {}

    def get(self, name: str, shape: tuple, dtype, fill: float | None = None) -> np.ndarray:
        key = (shape, np.dtype(dtype))
        kept = self.kept.get(name)
        if kept is None or kept[0] != key:
            array = np.empty(shape, dtype) if fill is None else np.full(shape, fill, dtype)
            kept = self.kept[name] = (key, array)
        return kept[1]


#: Threads a Convolution or Pooling gate splits its batch over; None: as many as numpy's BLAS
#: uses (OPENBLAS_NUM_THREADS, OMP_NUM_THREADS, ..., else one per core). Where a convolution
#: runs its own threads (with threadpoolctl installed), it sets numpy's BLAS to one thread for
#: the rest of the process: BLAS threads beside the gates' own would fight them for the cores,
#: and switching the BLAS back and forth around every call measured slower still (its idle
#: threads spin). THREADS = 1 leaves the BLAS alone (and parallel).
THREADS: int | None = None
#: Convolution's route for stride-1, undilated, ungrouped layers: None picks per call (the
#: transform route, gates/spectral.py, in float32 where its estimated work is at most half the
#: column route's: kernels of 5x5 and wider over batches of more than a few images; LeNet's conv2
#: from 21 images), True takes it wherever it applies (float32 or wider), False never does.
SPECTRAL: bool | None = None
#: None's margin: the column route's estimate over the transform route's must reach it (at 2, of
#: 18 layers timed forward and backward each went the faster way or within 6% of it)
_SPECTRAL_GAIN = 2.0
_BLAS: list = []          # [threadpoolctl's view of numpy's BLAS or None, its threads, the
                          # limit holding it to one thread once set], looked up once
_EXECUTOR: list[tuple[int, ThreadPoolExecutor]] = []     # [(its threads, the executor)]
os.register_at_fork(after_in_child=_EXECUTOR.clear)     # a forked child has none of its threads


def _blas() -> tuple:
    """(threadpoolctl's controller of the BLAS numpy loaded, or None without threadpoolctl;
    the threads that BLAS uses), looked up once."""
    if not _BLAS:
        blas = (ThreadpoolController().select(user_api="blas")
                if ThreadpoolController is not None else None)
        if blas is not None and blas.lib_controllers:
            threads = max(c.num_threads for c in blas.lib_controllers)
        else:
            blas = None
            variables = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
            set_to = [os.environ[v] for v in variables if os.environ.get(v, "").isdigit()]
            threads = int(set_to[0]) if set_to else os.cpu_count() or 1
        _BLAS[:] = [blas, threads, None]
    return tuple(_BLAS[:2])


def _single_threaded_blas() -> None:
    """Hold numpy's BLAS to one thread from now on (see THREADS), where threadpoolctl can."""
    blas = _blas()[0]
    if blas is not None and _BLAS[2] is None:
        _BLAS[2] = blas.limit(limits=1)


def _threads(calls_blas: bool) -> int:
    """How many threads a gate's chunks go to. Chunks that call BLAS get threads of their own
    only where the BLAS can be held to one thread (threadpoolctl; see THREADS), which this
    then does; without it the BLAS alone goes parallel."""
    blas, threads = _blas()
    if calls_blas and blas is None and threads > 1 and THREADS is None:
        return 1
    threads = max(1, THREADS or threads)
    if calls_blas and threads > 1:
        _single_threaded_blas()
    return threads


def _spread(chunks: list[tuple[int, int]], threads: int, setup: Callable[[int], object],
            task: Callable[[object, int, int], object]) -> list:
    """task(state, start, stop) for every chunk of images, on up to `threads` threads (the
    caller's among them); returns the results in chunk order. Each thread first makes its own
    state (its buffers) with setup(its slot number), then takes the next chunk whenever it is
    free, so a thread that the machine holds up delays no one. numpy lets go of the GIL inside
    its copies, ufuncs and BLAS calls, which is where the time goes."""
    threads = max(1, min(threads, len(chunks)))
    results = [None] * len(chunks)
    queue = iter(enumerate(chunks))             # next() on it is atomic: one chunk per taker

    def drain(slot: int) -> None:
        state = setup(slot)
        for i, (start, stop) in queue:
            results[i] = task(state, start, stop)
    if threads == 1:
        drain(0)
        return results
    if not _EXECUTOR or _EXECUTOR[0][0] < threads - 1:
        _EXECUTOR[:] = [(threads - 1, ThreadPoolExecutor(threads - 1, "gatework"))]
    others = [_EXECUTOR[0][1].submit(drain, slot) for slot in range(1, threads)]
    try:
        drain(0)
    finally:
        wait(others)                # none outlives the call, not even when one task fails
    for other in others:
        other.result()
    return results


_CHUNK_BYTES = 1 << 21
_POOL_BLOCK = 1 << 17
#: the least input (bytes) pooling splits over its threads: below it handing out the chunks costs
#: more than they save. Machine-dependent: here 2.9-4.2 MB ran 1.3-1.4x slower on two threads
#: than on one, 5.2 MB and up 0.7-0.85x.
_POOL_THREADED_BYTES = 5 << 20
FLT_MIN = float(np.finfo(np.float32).tiny)     # Caffe's guard against a window summing to 0


def _runs(count: int, parts: int) -> list[tuple[int, int]]:
    """`count` items split into at most `parts` runs of consecutive ones, as even as can be:
    [(first, last + 1), ...]."""
    parts = max(1, min(count, parts))
    return [(count * i // parts, count * (i + 1) // parts) for i in range(parts)]


def _chunks(first: int, last: int, bytes_per_item: int) -> tuple[int, list[tuple[int, int]]]:
    """Split images first:last into chunks whose working buffers hold about _CHUNK_BYTES (a
    core's L2 cache or two), at least one image each: (chunk size, [(start, stop), ...])."""
    size = max(1, min(last - first, _CHUNK_BYTES // max(bytes_per_item, 1)))
    return size, [(start, min(start + size, last)) for start in range(first, last, size)]


def _windows(images: np.ndarray, start: tuple[int, int], size: tuple[int, int],
             kernel: tuple[int, int], step: tuple[int, int], dilation: tuple[int, int]
             ) -> np.ndarray:
    """The windows of channels-last `images` (N, H, W, C), without copying: a read-only view
    (N, OH, OW, kh, kw, C) whose [n, y, x, i, j] is the pixel at row start_h + y step_h +
    i dilation_h and column start_w + x step_w + j dilation_w."""
    for axis in (0, 1):
        last = start[axis] + (size[axis] - 1) * step[axis] + (kernel[axis] - 1) * dilation[axis]
        if not 0 <= start[axis] <= last < images.shape[1 + axis]:
            raise IndexError(f"windows up to {last} on axis {1 + axis} of {images.shape}")
    batch, rows, cols, channel = images.strides
    return as_strided(images[:, start[0]:, start[1]:], images.shape[:1] + size + kernel +
                      images.shape[3:], (batch, rows * step[0], cols * step[1],
                                         rows * dilation[0], cols * dilation[1], channel),
                      writeable=False)


def _kernel_geometry(gate: Gate) -> None:
    """Set a Convolution's or Deconvolution's kernel, strides, pads and dilations as (h, w)
    pairs from its options, and check them."""
    if gate.kernel_size is None and gate.kernel_h is None:
        raise ValueError("give kernel_size (or kernel_h and kernel_w)")
    gate.kernel = _pair(gate, "kernel_size", 1)
    gate.strides = _pair(gate, "stride", 1)
    gate.pads = _pair(gate, "pad", 0)
    gate.dilations = _pair(gate, "dilation", 1)
    if gate.num_output % gate.group:
        raise ValueError(f"num_output {gate.num_output} is not divisible by group {gate.group}")


def _grouped_channels(x_shape, gate) -> int:
    """A (de)convolution's input channels: known, and divisible by its group (sizes W)."""
    _spatial(x_shape, gate)
    channels = x_shape[1]
    if channels is None:
        raise ValueError("the channel dimension must be known to size W")
    if channels % gate.group:
        raise ValueError(f"{channels} input channels are not divisible by group {gate.group}")
    return channels


@register_gate
class ConvolutionGate(Gate):
    """2-D convolution (cross-correlation, as in Caffe and PyTorch) over NCHW input.

    Inputs: x (N, C, H, W); parameters W (num_output, C / group, kh, kw) and b (num_output,)
    (absent when `bias_term` is false).
    Returns: out (N, num_output, OH, OW) with OH = (H + 2 pad_h - (dilation_h (kh - 1) + 1))
    // stride_h + 1 (likewise OW): Caffe's rule, the same as PyTorch's.
    With `group` g, channels are split into g blocks; output block i sees only input block i.
    Local gradients: with cols the input's windows as a (N OH OW, kh kw C) matrix,
    out = cols W^T + b, so dW = dout^T cols and db = dout summed over N, OH, OW. dx is the
    convolution of dout (zeros inserted between its pixels at the stride, zeros around it)
    with W flipped in both spatial axes and its channel axes swapped: each input pixel
    gathers the gradient of every window it sat in, with no scatter.
    A stride-1, undilated, ungrouped layer with many channels may instead go through the
    discrete Fourier transform (see SPECTRAL and gates/spectral.py): the same sums, rounded
    differently.
    """

    num_bottoms = 1
    options = {
        "num_output": Option(int, doc="number of output channels", range="[1, inf)"),
        "kernel_size": Option((int, list, type(None)), None, "kernel side, or [kh, kw]"),
        "kernel_h": Option((int, type(None)), None, "kernel height (with kernel_w)"),
        "kernel_w": Option((int, type(None)), None, "kernel width (with kernel_h)"),
        "stride": Option(_INT_OR_PAIR, 1, "step between windows, or [sh, sw]"),
        "stride_h": Option((int, type(None)), None, "vertical stride (with stride_w)"),
        "stride_w": Option((int, type(None)), None, "horizontal stride (with stride_h)"),
        "pad": Option(_INT_OR_PAIR, 0, "zeros added on each side, or [ph, pw]"),
        "pad_h": Option((int, type(None)), None, "vertical padding (with pad_w)"),
        "pad_w": Option((int, type(None)), None, "horizontal padding (with pad_h)"),
        "dilation": Option(_INT_OR_PAIR, 1, "spacing between kernel taps, or [dh, dw]"),
        "group": Option(int, 1, "number of channel groups", range="[1, inf)"),
        "bias_term": Option(bool, True, "add a learnable bias b per output channel"),
        "weight_filler": Option(dict, {"type": "xavier"}, "how W is initialised"),
        "bias_filler": Option(dict, {"type": "constant", "value": 0.0}, "how b is initialised"),
    }
    check_options = {"num_output": 4, "kernel_size": 3, "stride": 2, "pad": 1, "dilation": 2,
                     "group": 2}
    check_shapes = ((2, 4, 7, 6),)

    def __init__(self, **options):
        super().__init__(**options)
        _kernel_geometry(self)
        self._buffers = _Buffers()
        self._geometry: Spectral | None = None      # the transform route's, kept per input
        self.spectral: Spectral | None = None       # the route of the last forward pass
        self.spectra = self.kernels = None          # what the transform route keeps for dW

    def param_specs(self, x_shape):
        channels = _grouped_channels(x_shape, self)
        specs = {"W": ((self.num_output, channels // self.group) + self.kernel, self.weight_filler)}
        if self.bias_term:
            specs["b"] = ((self.num_output,), self.bias_filler)
        return specs

    def infer_shapes(self, x_shape, *param_shapes):
        _grouped_channels(x_shape, self)
        height, width = _spatial(x_shape, self)
        return ((x_shape[0], self.num_output, self._out_size(height, 0), self._out_size(width, 1)),)

    def _out_size(self, size, axis: int):
        if size is None:
            return None
        extent = self.dilations[axis] * (self.kernel[axis] - 1) + 1
        out = (size + 2 * self.pads[axis] - extent) // self.strides[axis] + 1
        if out < 1:
            raise ValueError(f"the kernel (extent {extent} with dilation) does not fit an input "
                             f"of size {size} padded by {self.pads[axis]}")
        return out

    # Both passes work on chunks of a few images whose buffers stay in the cache, channels
    # last: the rows of the column matrix are then whole kernel rows of pixels (kw C values in
    # a row), copied in long runs, and each matrix product is one BLAS call per group. With
    # several threads, each takes chunks as it frees up, with buffers of its own.

    def _columns(self, x: np.ndarray, slot: int, size: int, oh: int, ow: int, with_ones: bool):
        """fill(start, stop), copying images start:stop (at most `size`) of x into thread
        `slot`'s (G, m OH OW, kh kw C/G) column matrix and returning it, with a last column of
        ones after the taps when `with_ones` (so that a bias row of W^T adds b)."""
        n, channels, height, width = x.shape
        (kh, kw), (ph, pw), groups = self.kernel, self.pads, self.group
        taps = kh * kw * (channels // groups)
        padded = self._buffers.get(f"padded{slot}", (size, height + 2 * ph, width + 2 * pw,
                                                     channels), x.dtype, 0)   # border stays 0
        cols = self._buffers.get(f"columns{int(with_ones)}.{slot}",
                                 (groups, size * oh * ow, taps + with_ones), x.dtype, 1)
        inside = padded[:, ph:ph + height, pw:pw + width]
        windows = _windows(padded, (0, 0), (oh, ow), self.kernel, self.strides, self.dilations)
        windows = windows.reshape(size, oh, ow, kh, kw, groups, -1).transpose(5, 0, 1, 2, 3, 4, 6)
        target = cols[..., :taps].reshape(windows.shape)

        def fill(start: int, stop: int) -> np.ndarray:
            np.copyto(inside[:stop - start], x[start:stop].transpose(0, 2, 3, 1))
            np.copyto(target[:, :stop - start], windows[:, :stop - start])
            return cols[:, :(stop - start) * oh * ow]
        return fill

    def _column_chunks(self, x: np.ndarray, oh: int, ow: int, with_ones: bool):
        """(chunk size, chunks) for column matrices of x."""
        taps = self.kernel[0] * self.kernel[1] * x.shape[1] // self.group
        return _chunks(0, len(x), self.group * oh * ow * (taps + with_ones) * x.itemsize)

    def forward(self, x, W, b=None):
        self.threads = _threads(calls_blas=True)
        self.x, self.W, self.biased = x, W, b is not None
        self.spectral = self._spectral(x.shape, x.dtype, W.dtype)
        if self.spectral is not None:
            return self._spectral_forward(x, W, b)
        self.spectra = self.kernels = None
        return self._convolve(x, W, b)

    def _spectral(self, x_shape: tuple, dtype: np.dtype, w_dtype: np.dtype) -> Spectral | None:
        """The transform route's geometry for this input, when SPECTRAL says to take it (float32
        or wider: the complex type must hold two of the real type)."""
        if SPECTRAL is False or dtype.kind != "f" or dtype.itemsize < 4 or w_dtype != dtype \
                or self.group != 1 or self.strides != (1, 1) or self.dilations != (1, 1):
            return None
        size = tuple(x_shape[2:])
        if SPECTRAL is None:
            out = (self._out_size(size[0], 0), self._out_size(size[1], 1))
            columns, transforms = spectral_cost(x_shape[0], x_shape[1], self.num_output, size,
                                                out, self.kernel, self.pads)
            if dtype != np.float32 or columns < _SPECTRAL_GAIN * transforms:
                return None
        kept = self._geometry
        if kept is None or (kept.size, kept.dtype) != (size, dtype):
            kept = self._geometry = Spectral(size, self.kernel, self.pads, dtype)
        return kept

    def _spectral_forward(self, x: np.ndarray, W: np.ndarray, b: np.ndarray | None) -> np.ndarray:
        """out through the transforms: each chunk's spectra times the kernels', bin by bin
        (b added to the zero frequency); the input's spectra are kept for dW."""
        plan = self.spectral
        kernels = self.kernels = plan.kernel_spectra(W)                 # (bins, C, O)
        out = np.empty((len(x), self.num_output) + plan.out, x.dtype)
        constant = None if b is None else bias_bin(b, plan.shape)

        def task(state, start: int, stop: int) -> np.ndarray:
            spectra = plan.transform(x[start:stop])
            mixed = np.matmul(spectra, kernels)
            if constant is not None:
                mixed[0] += constant
            plan.inverse(mixed, plan.out, out[start:stop])
            return spectra
        self.chunks = _runs(len(x), spectral_pieces(len(x), x.shape[1], self.num_output, plan,
                                                    self.threads))
        self.spectra = _spread(self.chunks, self.threads, lambda slot: None, task)
        return out

    def _spectral_backward(self, dout: np.ndarray) -> tuple:
        """dx = dout's spectra times the conjugate kernels; dW from the sum over the chunks of
        the input's conjugate spectra times dout's, read off at the kernel's taps. The chunks
        are dealt to the threads in fixed runs, each summed in order and the sums added in
        order, so dW is the same to the bit whichever thread is held up."""
        plan, x, needs = self.spectral, self.x, self.needs_input_grad
        if not (needs[0] or needs[1]):
            return self._with_bias_grad(dout, None, None)
        dx = np.empty(x.shape, x.dtype) if needs[0] else None
        conjugates = (np.ascontiguousarray(self.kernels.conj().transpose(0, 2, 1)) if needs[0]
                      else None)                                        # (bins, O, C)
        chunks, spectra = self.chunks, self.spectra
        runs = _runs(len(chunks), self.threads)     # a run of consecutive chunks per thread

        def task(scratch: np.ndarray | None, first: int, last: int) -> np.ndarray | None:
            total = np.zeros(self.kernels.shape, plan.complex) if needs[1] else None
            for (start, stop), kept in zip(chunks[first:last], spectra[first:last]):
                upstream = plan.transform(dout[start:stop])            # (bins, m, O)
                if needs[0]:
                    plan.inverse(np.matmul(upstream, conjugates), plan.size, dx[start:stop])
                if needs[1]:
                    np.matmul(kept.conj().transpose(0, 2, 1), upstream, out=scratch)
                    total += scratch
            return total
        totals = _spread(runs, self.threads,
                         lambda slot: np.empty_like(self.kernels) if needs[1] else None, task)
        dW = plan.kernel_grad(sum(totals)) if needs[1] else None
        return self._with_bias_grad(dout, dx, dW)

    def _with_bias_grad(self, dout: np.ndarray, dx: np.ndarray | None,
                        dW: np.ndarray | None) -> tuple:
        """(dx, dW), and db (dout summed over N, OH, OW) when the gate has a bias."""
        if not self.bias_term:
            return dx, dW
        return dx, dW, dout.sum(axis=(0, 2, 3)) if self.needs_input_grad[2] else None

    def _convolve(self, x: np.ndarray, W: np.ndarray, b: np.ndarray | None) -> np.ndarray:
        """The convolution of x with W (plus b): a column matrix per chunk of images, times W."""
        n, channels, height, width = x.shape
        oh, ow = self._out_size(height, 0), self._out_size(width, 1)
        groups, per_group = self.group, self.num_output // self.group
        kh, kw = self.kernel
        weights = W.reshape(groups, per_group, -1, kh, kw).transpose(0, 3, 4, 2, 1)
        weights = weights.reshape(groups, -1, per_group)               # (G, kh kw C/G, O/G)
        if b is not None:
            weights = np.concatenate([weights, b.reshape(groups, 1, per_group)], axis=1)
        out = np.empty((n, self.num_output, oh, ow), x.dtype)
        size, chunks = self._column_chunks(x, oh, ow, b is not None)

        def setup(slot: int) -> tuple:
            return (self._columns(x, slot, size, oh, ow, b is not None),
                    self._buffers.get(f"products{slot}", (groups, size * oh * ow, per_group),
                                      x.dtype))

        def task(state: tuple, start: int, stop: int) -> None:
            columns, products = state
            m = stop - start
            product = np.matmul(columns(start, stop), weights, out=products[:, :m * oh * ow])
            np.copyto(out[start:stop].reshape(m, groups, per_group, oh * ow),
                      product.reshape(groups, m, oh * ow, per_group).transpose(1, 0, 3, 2))
        _spread(chunks, self.threads, setup, task)
        return out

    def backward(self, dout):
        if self.spectral is not None:
            return self._spectral_backward(dout)
        x, W, needs = self.x, self.W, self.needs_input_grad
        if needs[0] and self._gathers(x.shape, dout.shape):
            dx, dW = self._grads_by_gathering(dout, W, x.shape, x.dtype, x if needs[1] else None)
        else:
            dx = self._input_grad(dout, W, x.shape, x.dtype) if needs[0] else None
            dW = self._weight_grad(x, dout, self.biased) if needs[1] else None
        return self._with_bias_grad(dout, dx, dW)

    def _input_grad(self, dout: np.ndarray, W: np.ndarray, x_shape: tuple, dtype) -> np.ndarray:
        """dx (of `x_shape` and `dtype`) from dout and W alone, by whichever route moves less
        data (Deconvolution's forward is this)."""
        if self._gathers(x_shape, dout.shape):
            return self._grads_by_gathering(dout, W, x_shape, dtype)[0]
        if self._scatters_rows(x_shape):
            return self._input_grad_by_scattering_rows(dout, W, x_shape, dtype)
        return self._input_grad_by_scattering(dout, W, x_shape, dtype)

    def _gathers(self, x_shape: tuple, out_shape: tuple) -> bool:
        """Whether dx is best gathered (a stride-1 convolution of dout with the flipped kernel)
        rather than scattered from dcols: it must be stride 1, and its window matrix, H W kh kw
        O/G per image, at most twice the columns' OH OW kh kw C/G (not so when C is small or
        the convolution shrinks the image a lot)."""
        return self.strides == (1, 1) and (
            x_shape[2] * x_shape[3] * out_shape[1] <= 2 * out_shape[2] * out_shape[3] * x_shape[1])

    def _scatters_rows(self, x_shape: tuple) -> bool:
        """Whether col2im adds in runs of image rows (channels first) rather than of whole
        pixels (channels last): where a pixel has few channels, a first layer's 1 or 3."""
        return x_shape[1] // self.group < 8

    def _weight_grad(self, x: np.ndarray, dout: np.ndarray, with_ones: bool) -> np.ndarray:
        """dW = dout^T cols, chunk by chunk (when x needs no gradient: the first layer); the
        column matrices have the forward's column of ones when `with_ones` (the same buffers)."""
        groups, per_group = self.group, self.num_output // self.group
        oh, ow = dout.shape[2:]
        size, chunks = self._column_chunks(x, oh, ow, with_ones)

        def task(columns, start: int, stop: int) -> np.ndarray:
            cols = columns(start, stop).reshape(groups, stop - start, oh * ow, -1)
            upstream = dout[start:stop].reshape(stop - start, groups, per_group, oh * ow)
            return np.matmul(upstream, cols.transpose(1, 0, 2, 3)).sum(axis=0)
        total = sum(_spread(chunks, self.threads, lambda slot: self._columns(
            x, slot, size, oh, ow, with_ones), task))
        taps = total[..., :total.shape[-1] - with_ones]                 # drop the ones' column
        return taps.reshape(groups, per_group, *self.kernel, -1).transpose(0, 1, 4, 2, 3) \
            .reshape((self.num_output, x.shape[1] // groups) + self.kernel)

    def _input_grad_by_scattering(self, dout: np.ndarray, W: np.ndarray, x_shape: tuple,
                                  dtype) -> np.ndarray:
        """dx by col2im: dcols = dout W (per group), each kernel tap's column block added back
        onto the pixels its windows read, chunk by chunk."""
        n, channels, height, width = x_shape
        oh, ow = dout.shape[2:]
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.kernel, self.strides, self.pads, \
            self.dilations
        groups, per_group = self.group, self.num_output // self.group
        rows = W.reshape(groups, per_group, -1, kh, kw).transpose(0, 1, 3, 4, 2)
        rows = rows.reshape(groups, per_group, -1)                    # (G, O/G, kh kw C/G)
        dx = np.empty(x_shape, dtype)
        size, chunks = _chunks(0, n, groups * oh * ow * rows.shape[2] * dx.itemsize)

        def setup(slot: int) -> tuple:
            return tuple(self._buffers.get(f"{name}{slot}", shape, dtype) for name, shape in (
                ("upstream", (groups, size * oh * ow, per_group)),
                ("dcols", (groups, size * oh * ow, rows.shape[2])),
                ("dx padded", (size, height + 2 * ph, width + 2 * pw, channels))))

        def task(state: tuple, start: int, stop: int) -> None:
            upstream, dcols, padded = state
            m = stop - start
            taps = dcols.reshape(groups, size, oh, ow, kh, kw, -1).transpose(1, 2, 3, 4, 5, 0, 6)
            np.copyto(upstream[:, :m * oh * ow].reshape(groups, m, oh * ow, per_group),
                      dout[start:stop].reshape(m, groups, per_group, oh * ow)
                      .transpose(1, 0, 3, 2))
            np.matmul(upstream[:, :m * oh * ow], rows, out=dcols[:, :m * oh * ow])
            padded[:m] = 0
            for i in range(kh):
                for j in range(kw):
                    target = padded[:m, i * dh:i * dh + (oh - 1) * sh + 1:sh,
                                    j * dw:j * dw + (ow - 1) * sw + 1:sw]
                    target = target.reshape(m, oh, ow, groups, -1)
                    target += taps[:m, :, :, i, j]
            inside = padded[:m, ph:ph + height, pw:pw + width]
            np.copyto(dx[start:stop], inside.transpose(0, 3, 1, 2))
        _spread(chunks, self.threads, setup, task)
        return dx

    def _input_grad_by_scattering_rows(self, dout: np.ndarray, W: np.ndarray, x_shape: tuple,
                                       dtype) -> np.ndarray:
        """col2im as above, channels first: dcols (C/G kh kw, OH OW) = W^T dout per image and
        group, straight from NCHW dout, and each tap's (OH, OW) planes added onto the image."""
        n, channels, height, width = x_shape
        oh, ow = dout.shape[2:]
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.kernel, self.strides, self.pads, \
            self.dilations
        groups, per_group = self.group, self.num_output // self.group
        columns = W.reshape(groups, per_group, -1).transpose(0, 2, 1)   # (G, C/G kh kw, O/G)
        dx = np.empty(x_shape, dtype)
        size, chunks = _chunks(0, n, channels * kh * kw * oh * ow * dx.itemsize)

        def setup(slot: int) -> tuple:
            return (self._buffers.get(f"dcols rows{slot}",
                                      (size, groups, columns.shape[1], oh * ow), dtype),
                    self._buffers.get(f"dx rows{slot}",
                                      (size, channels, height + 2 * ph, width + 2 * pw), dtype))

        def task(state: tuple, start: int, stop: int) -> None:
            dcols, padded = state
            m = stop - start
            taps = dcols.reshape(size, groups, -1, kh, kw, oh, ow)
            np.matmul(columns, dout[start:stop].reshape(m, groups, per_group, oh * ow),
                      out=dcols[:m])
            padded[:m] = 0
            for i in range(kh):
                for j in range(kw):
                    target = padded[:m, :, i * dh:i * dh + (oh - 1) * sh + 1:sh,
                                    j * dw:j * dw + (ow - 1) * sw + 1:sw]
                    target = target.reshape(m, groups, -1, oh, ow)
                    target += taps[:m, :, :, i, j]
            dx[start:stop] = padded[:m, :, ph:ph + height, pw:pw + width]
        _spread(chunks, self.threads, setup, task)
        return dx

    def _grads_by_gathering(self, dout: np.ndarray, W: np.ndarray, x_shape: tuple, dtype,
                            x: np.ndarray | None = None):
        """dx as the convolution of the spread-out dout with the flipped kernel, and (when the
        input x is given) dW from the same windows: dW[o, c, i, j] = sum x[c] * window tap
        (kh-1-i, kw-1-j) of channel o, a product of x^T (C, N H W) with the window matrix."""
        n, channels, height, width = x_shape
        oh, ow = dout.shape[2:]
        (kh, kw), (sh, sw), (ph, pw) = self.kernel, self.strides, self.pads
        groups, per_group = self.group, self.num_output // self.group
        eh, ew = (d * (k - 1) + 1 for d, k in zip(self.dilations, self.kernel))
        depth = kh * kw * per_group
        flipped = W.reshape(groups, per_group, -1, kh, kw)[..., ::-1, ::-1]
        flipped = flipped.transpose(0, 3, 4, 1, 2).reshape(groups, depth, -1)  # (G, kh kw O/G, C/G)
        dx = np.empty(x_shape, dtype)
        size, chunks = _chunks(0, n, groups * height * width * depth * dx.itemsize)

        def setup(slot: int) -> tuple:
            # dout placed every stride-th pixel with extent - 1 zeros around it (the rest of
            # the buffer is never written): the flipped kernel's window for pixel (y, x) starts
            # at (y + ph, x + pw)
            rows = max((oh - 1) * sh + 2 * eh - 1, height + ph + eh)
            cols = max((ow - 1) * sw + 2 * ew - 1, width + pw + ew)
            spread = self._buffers.get(f"spread{slot}", (size, rows, cols, self.num_output),
                                       dtype, 0)
            placed = spread[:, eh - 1:eh + (oh - 1) * sh:sh, ew - 1:ew + (ow - 1) * sw:sw]
            windows = _windows(spread, (ph, pw), (height, width), self.kernel, (1, 1),
                               self.dilations)
            windows = windows.reshape(size, height, width, kh, kw, groups, per_group)
            windows = windows.transpose(5, 0, 1, 2, 3, 4, 6)
            matrix = self._buffers.get(f"upstream windows{slot}",
                                       (groups, size * height * width, depth), dtype)
            products = self._buffers.get(f"dx products{slot}",
                                         (groups, size * height * width, channels // groups),
                                         dtype)
            return placed, windows, matrix, products

        def task(state: tuple, start: int, stop: int):
            placed, windows, matrix, products = state
            m, pixels = stop - start, (stop - start) * height * width
            np.copyto(placed[:m], dout[start:stop].transpose(0, 2, 3, 1))
            np.copyto(matrix.reshape(windows.shape)[:, :m], windows[:, :m])
            product = np.matmul(matrix[:, :pixels], flipped, out=products[:, :pixels])
            np.copyto(dx[start:stop].reshape(m, groups, -1, height * width),
                      product.reshape(groups, m, height * width, -1).transpose(1, 0, 3, 2))
            if x is not None:   # per image, x (C/G, H W) of each group times its windows
                images = x[start:stop].reshape(m, groups, -1, height * width)
                per_image = matrix[:, :pixels].reshape(groups, m, height * width, depth)
                return np.matmul(images, per_image.transpose(1, 0, 2, 3)).sum(axis=0)
            return None
        totals = _spread(chunks, self.threads, setup, task)
        if x is None:
            return dx, None
        dW = sum(totals).reshape(groups, -1, kh, kw, per_group)[:, :, ::-1, ::-1]
        return dx, dW.transpose(0, 4, 1, 2, 3).reshape(W.shape)


@register_gate
class DeconvolutionGate(Gate):
    """The transpose of Convolution (Caffe's Deconvolution, PyTorch's conv_transpose2d): each
    input pixel spreads its channels, weighted by the kernel, over an output window.

    Inputs: x (N, C, H, W); parameters W (C, num_output / group, kh, kw), Caffe's layout for
    Deconvolution (and PyTorch's), and b (num_output,) (absent when `bias_term` is false).
    Returns: out (N, num_output, OH, OW) with OH = (H - 1) stride_h - 2 pad_h +
    dilation_h (kh - 1) + 1 (likewise OW): the size a Convolution with the same options maps
    back to H x W. Options are Convolution's; with `group` g, input block i feeds only output
    block i.
    It is that Convolution run backwards, on the same machinery: out is the Convolution's input
    gradient for the upstream x (plus b); dx is the Convolution of dout with W, dW the
    Convolution's weight gradient with dout as its input and x as its upstream, db dout summed
    over N, OH, OW. Linear in x and in W: no kinks.
    """

    num_bottoms = 1
    options = ConvolutionGate.options
    check_options = ConvolutionGate.check_options
    check_shapes = ((2, 4, 3, 4),)

    def __init__(self, **options):
        super().__init__(**options)
        _kernel_geometry(self)
        self._convolution: ConvolutionGate | None = None

    def param_specs(self, x_shape):
        channels = _grouped_channels(x_shape, self)
        specs = {"W": ((channels, self.num_output // self.group) + self.kernel,
                       self.weight_filler)}
        if self.bias_term:
            specs["b"] = ((self.num_output,), self.bias_filler)
        return specs

    infer_shapes = ConvolutionGate.infer_shapes     # the same rule with this class's _out_size

    def _out_size(self, size, axis: int):
        if size is None:
            return None
        extent = self.dilations[axis] * (self.kernel[axis] - 1) + 1
        out = (size - 1) * self.strides[axis] - 2 * self.pads[axis] + extent
        if out < 1:
            raise ValueError(f"the output would have size {out}: padding {self.pads[axis]} on "
                             f"each side removes more than the kernel (extent {extent}) adds")
        return out

    def _transposed(self, channels: int) -> ConvolutionGate:
        """The Convolution this gate transposes: from num_output channels to `channels`, with
        the same kernel, stride, padding, dilation and groups (kept with its buffers)."""
        if self._convolution is None or self._convolution.num_output != channels:
            self._convolution = ConvolutionGate(
                num_output=channels, kernel_size=list(self.kernel), stride=list(self.strides),
                pad=list(self.pads), dilation=list(self.dilations), group=self.group,
                bias_term=False)
        return self._convolution

    def forward(self, x, W, b=None):
        n, channels, height, width = x.shape
        convolution = self._transposed(channels)
        convolution.threads = _threads(calls_blas=True)
        out_shape = (n, self.num_output, self._out_size(height, 0), self._out_size(width, 1))
        out = convolution._input_grad(x, W, out_shape, x.dtype)
        if b is not None:
            out += b.reshape(-1, 1, 1)
        self.x, self.W = x, W
        return out

    def backward(self, dout):
        x, W, needs = self.x, self.W, self.needs_input_grad
        convolution = self._transposed(x.shape[1])
        dx = convolution._convolve(dout, W, None) if needs[0] else None
        dW = convolution._weight_grad(dout, x, False) if needs[1] else None
        if not self.bias_term:
            return dx, dW
        return dx, dW, dout.sum(axis=(0, 2, 3)) if needs[2] else None


@register_gate
class PoolingGate(Gate):
    """Max, average or stochastic pooling over each channel of NCHW input (Caffe's Pooling).

    Input: x (N, C, H, W). Returns: out (N, C, OH, OW), and with MAX an optional second top,
    Caffe's argmax mask (N, C, OH, OW): for each output the index h W + w, within its H x W
    input plane, of the pixel that won its window, as a float; no gradient flows through it.
    Output size: Caffe's rule by default (`round_mode: CEIL`),
    OH = ceil((H + 2 pad - kernel) / stride) + 1, then one less if that last window would start
    in the padding (at or past H + pad); `round_mode: FLOOR` uses floor instead, which is
    PyTorch's rule. Under CEIL a window past the padded input by less than a stride is one
    window clipped to the image (a 2x2 window at stride 2 over a 1x1 input gives 1x1). With
    `global_pooling` the kernel is the whole H x W plane (out N x C x 1 x 1).
    MAX: padding never wins (it counts as -inf). Each output's gradient goes to the single input
    that won its window; at ties, the first maximal element in row-major window order (the
    top-most, then left-most) wins and gets all of it, as in Caffe. Overlapping windows add up.
    AVE: the divisor counts padded positions, as in Caffe (and PyTorch's count_include_pad), but
    not the part of a ceil-mode window that hangs past the padding; the gradient is dout / divisor
    spread over each window.
    STOCHASTIC (Caffe's; x must be non-negative, as after a ReLU; no padding): in the train
    phase each window yields one of its pixels, drawn with probability proportional to its value
    by the gate's seeded `rng` (Caffe's rule: the first pixel, in row-major order, whose running
    sum passes u times the window's sum, u uniform in [0, 1); a window of zeros yields its first
    pixel), and the gradient goes to that pixel. In the test phase each output is the
    probability-weighted average sum(x^2) / (FLT_MIN + sum(x)) of its window; Caffe has no
    backward there, Gatework gives its exact derivative (2 x sum(x) - sum(x^2)) / sum(x)^2 per
    window. Windows are clipped to the image as for MAX.
    """

    num_bottoms = 1
    num_tops = (1, 2)
    options = {
        "pool": Option(str, "MAX", "MAX, AVE or STOCHASTIC", choices=("MAX", "AVE", "STOCHASTIC")),
        "kernel_size": Option((int, list, type(None)), None, "window side, or [kh, kw]"),
        "kernel_h": Option((int, type(None)), None, "window height (with kernel_w)"),
        "kernel_w": Option((int, type(None)), None, "window width (with kernel_h)"),
        "stride": Option(_INT_OR_PAIR, 1, "step between windows, or [sh, sw]"),
        "stride_h": Option((int, type(None)), None, "vertical stride (with stride_w)"),
        "stride_w": Option((int, type(None)), None, "horizontal stride (with stride_h)"),
        "pad": Option(_INT_OR_PAIR, 0, "padding on each side, or [ph, pw]; less than the kernel"),
        "pad_h": Option((int, type(None)), None, "vertical padding (with pad_w)"),
        "pad_w": Option((int, type(None)), None, "horizontal padding (with pad_h)"),
        "global_pooling": Option(bool, False, "pool each whole H x W plane"),
        "round_mode": Option(str, "CEIL", "output-size rounding: CEIL (Caffe) or FLOOR (PyTorch)",
                             choices=("CEIL", "FLOOR")),
    }
    # overlapping 3x3 windows at stride 2, padding, and a ceil-mode last window that is clipped
    check_options = {"pool": "MAX", "kernel_size": 3, "stride": 2, "pad": 1}
    check_shapes = ((2, 2, 6, 5),)
    kink_note = ("MAX: ties in a window (the first maximal element in row-major order wins); "
                 "STOCHASTIC in train: a running sum at the drawn threshold (the pixel drawn "
                 "changes)")

    def __init__(self, **options):
        super().__init__(**options)
        self.strides = _pair(self, "stride", 1)
        self.pads = _pair(self, "pad", 0)
        if self.num_tops == 2 and self.pool != "MAX":
            raise ValueError(f"only MAX pooling has a second top (the argmax mask), not "
                             f"{self.pool}")
        if self.pool == "STOCHASTIC" and self.pads != (0, 0):
            raise ValueError("STOCHASTIC pooling takes no pad (Caffe pads only MAX and AVE)")
        if self.global_pooling:
            if self.kernel_size is not None or self.kernel_h is not None:
                raise ValueError("global_pooling sets the kernel itself: drop kernel_size")
            if self.strides != (1, 1) or self.pads != (0, 0):
                raise ValueError("global_pooling takes no stride or pad")
            self.kernel = None
        else:
            if self.kernel_size is None and self.kernel_h is None:
                raise ValueError("give kernel_size (or kernel_h and kernel_w), or global_pooling")
            self.kernel = _pair(self, "kernel_size", 1)
            if any(p >= k for p, k in zip(self.pads, self.kernel)):
                raise ValueError(f"pad {list(self.pads)} must be smaller than the kernel "
                                 f"{list(self.kernel)}")
        self._buffers = _Buffers()

    def infer_shapes(self, x_shape):
        height, width = _spatial(x_shape, self)
        kh, kw = self._kernel(height, width)
        return ((x_shape[0], x_shape[1], self._out_size(height, kh, 0),
                 self._out_size(width, kw, 1)),) * self.num_tops

    def _kernel(self, height, width) -> tuple[int, int]:
        if self.global_pooling:
            if height is None or width is None:
                raise ValueError("global_pooling needs a known H and W")
            return height, width
        return self.kernel

    def _out_size(self, size, kernel: int, axis: int):
        if size is None:
            return None
        stride, pad = self.strides[axis], self.pads[axis]
        span = size + 2 * pad - kernel
        out = (math.ceil(span / stride) if self.round_mode == "CEIL" else span // stride) + 1
        if out < 1:     # ceil keeps one clipped window while the excess is under a stride
            by = f" by a stride ({stride}) or more" if self.round_mode == "CEIL" else ""
            raise ValueError(f"the window ({kernel}) is larger than the input ({size}) padded by "
                             f"{pad}{by}")
        if (out - 1) * stride >= size + pad:   # the last window must start in the image
            out -= 1   # (Caffe checks this only when padded and emits -FLT_MAX; PyTorch always)
        return out

    def _plane(self, height: int, width: int) -> tuple[tuple[int, int], ...]:
        """(kernel, output size, padded plane size): the padded plane is big enough for every
        window and for the whole input, the input starting at (pad_h, pad_w)."""
        kh, kw = self._kernel(height, width)
        oh, ow = self._out_size(height, kh, 0), self._out_size(width, kw, 1)
        (sh, sw), (ph, pw) = self.strides, self.pads
        return (kh, kw), (oh, ow), (max((oh - 1) * sh + kh, height + ph),
                                    max((ow - 1) * sw + kw, width + pw))

    # Pooling works on the input split by the stride into phases: phase (a, b) holds the padded
    # pixels at rows a, a + sh, ... and columns b, b + sw, ..., each phase one contiguous plane
    # of HQ x WQ. Window tap (i, j) of every output is then the same phase (i % sh, j % sw)
    # shifted by (i // sh, j // sw), and with the planes laid out flat that shift is one offset:
    # a tap for all outputs at once is a contiguous slice, and a max or a sum over the kh kw taps
    # is kh kw whole-array operations at full vector speed. The outputs come out on the HQ x WQ
    # grid; the part past OH x OW is scratch, cut off at the end (its upstream is zero).

    def _phases(self, x_shape: tuple) -> dict:
        """The split of an input of `x_shape`: kernel, output size, grid, and per phase the
        input rows and columns it holds and where they sit on the grid."""
        n, channels, height, width = x_shape
        (kh, kw), (oh, ow), _ = self._plane(height, width)
        (sh, sw), (ph, pw) = self.strides, self.pads
        grid = (oh + (kh - 1) // sh, ow + (kw - 1) // sw)

        def spans(phase: int, stride: int, pad: int, size: int, cells: int) -> tuple[slice, slice]:
            first = -((phase - pad) // stride)            # the first cell inside the input
            last = min(cells, (size - 1 + pad - phase) // stride + 1)
            first = max(first, 0)
            if last <= first:
                return slice(0, 0), slice(0, 0)
            start = first * stride + phase - pad
            return slice(first, last), slice(start, start + (last - first - 1) * stride + 1, stride)

        rows = [spans(a, sh, ph, height, grid[0]) for a in range(min(kh, sh))]
        cols = [spans(b, sw, pw, width, grid[1]) for b in range(min(kw, sw))]
        taps = [(i % sh * len(cols) + j % sw, i // sh * grid[1] + j // sw)
                for i in range(kh) for j in range(kw)]
        length = n * channels * grid[0] * grid[1] - taps[-1][1]      # the last tap shifts most
        return {"kernel": (kh, kw), "out": (oh, ow), "grid": grid, "rows": rows, "cols": cols,
                "taps": taps, "length": length}

    def forward(self, x):
        n, channels, height, width = x.shape
        (kh, kw), (oh, ow), _ = self._plane(height, width)
        self.x = x
        if self.pool == "STOCHASTIC":
            return self._stochastic(x)
        if (oh, ow) == (1, 1):
            return self._one_window(x, kh, kw)
        if self.pool == "AVE":
            self.divisor = self._divisor(height, width, kh, kw, oh, ow).astype(x.dtype)
        split = self._phases(x.shape)       # the whole batch's buffers; chunks take slices
        phases, (hq, wq) = len(split["rows"]) * len(split["cols"]), split["grid"]
        self.planes = self._buffers.get("phases", (phases, n, channels, hq, wq), x.dtype,
                                        -np.inf if self.pool == "MAX" else 0)
        self.grid = self._buffers.get("grid", (n, channels, hq, wq), x.dtype)
        out = np.empty((n, channels, oh, ow), x.dtype)
        mask = np.empty(out.shape, x.dtype) if self.num_tops == 2 else None
        self.threads = _threads(calls_blas=False) if x.nbytes >= _POOL_THREADED_BYTES else 1
        self.chunks = _runs(n, 1 if self.threads == 1 else 4 * self.threads)  # to share out
        self.splits = _spread(self.chunks, self.threads, lambda slot: None, lambda state, start,
                              stop: self._forward_chunk(x, out, mask, start, stop))
        return out if mask is None else (out, mask)

    def _forward_chunk(self, x: np.ndarray, out: np.ndarray, mask: np.ndarray | None, start: int,
                       stop: int) -> dict:
        """Pool images start:stop of x into out (and their argmax into mask), through their
        slices of the phases and the grid; returns their split."""
        split = self._phases((stop - start,) + x.shape[1:])
        (oh, ow), length = split["out"], split["length"]
        planes, grid = self.planes[:, start:stop], self.grid[start:stop]
        phase = 0
        for cells_h, rows in split["rows"]:             # the fill stays where no pixel lands
            for cells_w, cols in split["cols"]:
                planes[phase, :, :, cells_h, cells_w] = x[start:stop, :, rows, cols]
                phase += 1
        flat, result = planes.reshape(len(planes), -1), grid.reshape(-1)[:length]
        combine = np.maximum if self.pool == "MAX" else np.add
        (first, offset), *others = split["taps"]
        np.copyto(result, flat[first, offset:offset + length])
        for phase, offset in others:
            combine(result, flat[phase, offset:offset + length], out=result)
        if self.pool == "MAX":
            np.copyto(out[start:stop], grid[:, :, :oh, :ow])
        else:
            np.divide(grid[:, :, :oh, :ow], self.divisor, out=out[start:stop])
        if mask is not None:
            self._argmax_chunk(split, flat, result, x.shape[3], mask[start:stop])
        return split

    def _argmax_chunk(self, split: dict, planes: np.ndarray, maxima: np.ndarray, width: int,
                      mask: np.ndarray) -> None:
        """Caffe's mask for a chunk: per output, the tap that first equals its maximum (taps
        tried last to first, so the first such one in row-major order is written last), as the
        index h W + w of that pixel in its input plane."""
        kw, (oh, ow), (sh, sw), (ph, pw) = split["kernel"][1], split["out"], self.strides, \
            self.pads
        length = len(maxima)
        winner = np.zeros(mask.shape[:2] + split["grid"], np.intp)
        found, hit = winner.reshape(-1)[:length], np.empty(length, bool)
        for tap in reversed(range(len(split["taps"]))):
            phase, offset = split["taps"][tap]
            np.equal(planes[phase, offset:offset + length], maxima, out=hit)
            np.copyto(found, tap, where=hit)
        row, col = np.divmod(winner[:, :, :oh, :ow], kw)
        row += (np.arange(oh) * sh - ph)[:, None]
        col += np.arange(ow) * sw - pw
        np.copyto(mask, row * width + col, casting="unsafe")

    def _divisor(self, height, width, kh, kw, oh, ow) -> np.ndarray:
        """Caffe's AVE divisor per output: the window clipped to the padded input, not the image."""
        (sh, sw), (ph, pw) = self.strides, self.pads
        start_h, start_w = np.arange(oh) * sh - ph, np.arange(ow) * sw - pw
        size_h = np.minimum(start_h + kh, height + ph) - start_h
        size_w = np.minimum(start_w + kw, width + pw) - start_w
        return np.outer(size_h, size_w)

    def backward(self, dout):
        x = self.x
        if self.num_tops == 2:
            dout = dout[0]                  # the mask's upstream: no gradient flows through it
        if self.pool == "STOCHASTIC":
            return (self._stochastic_grad(dout),)
        if dout.shape[2:] == (1, 1):
            return (self._one_window_grad(dout),)
        dx = np.empty(x.shape, dout.dtype)
        self.upstream = self._buffers.get("upstream", self.grid.shape, dout.dtype, 0)
        self.grads = self._buffers.get("grads", self.planes.shape, dout.dtype)
        splits = {start: split for (start, _), split in zip(self.chunks, self.splits)}
        _spread(self.chunks, self.threads, lambda slot: None, lambda state, start, stop:
                self._backward_chunk(dout, dx, start, stop, splits[start]))
        return (dx,)

    def _backward_chunk(self, dout: np.ndarray, dx: np.ndarray, start: int, stop: int,
                        split: dict) -> None:
        """dx of images start:stop from their dout, through the phases their forward kept."""
        (oh, ow), (hq, wq), length = split["out"], split["grid"], split["length"]
        upstream = self.upstream[start:stop]        # the scratch part of the grid stays zero
        if self.pool == "MAX":
            upstream[:, :, :oh, :ow] = dout[start:stop]
        else:
            np.divide(dout[start:stop], self.divisor, out=upstream[:, :, :oh, :ow])
        upstream = upstream.reshape(-1)[:length]
        planes = self.planes[:, start:stop].reshape(len(self.planes), -1)
        grads = self.grads[:, start:stop]
        # windows that do not overlap (LeNet's 2x2 at stride 2) give each phase one tap, at
        # offset 0: its gradient is written, not added to zeros
        alone = all(offset == 0 for _, offset in split["taps"]) and \
            len({phase for phase, _ in split["taps"]}) == len(split["taps"])
        if not alone:
            grads.fill(0)
        flat = grads.reshape(len(grads), -1)
        if self.pool == "AVE":
            for phase, offset in split["taps"]:
                if alone:
                    np.copyto(flat[phase], upstream)
                else:
                    flat[phase, offset:offset + length] += upstream
        else:   # each output's upstream goes to the first tap equal to its maximum, done a
            # block of outputs at a time so that the nine taps' slices stay in the cache
            maxima = self.grid[start:stop].reshape(-1)
            block = min(length, _POOL_BLOCK)
            unclaimed, hit = np.empty(block, bool), np.empty(block, bool)
            share = np.empty(block, dout.dtype)
            for first in range(0, length, block):
                last = min(first + block, length)
                size = last - first
                unclaimed[:size] = True
                for phase, offset in split["taps"]:
                    np.equal(planes[phase, first + offset:last + offset], maxima[first:last],
                             out=hit[:size])
                    hit[:size] &= unclaimed[:size]
                    unclaimed[:size] ^= hit[:size]
                    if alone:
                        np.multiply(upstream[first:last], hit[:size], out=flat[phase, first:last])
                    else:
                        np.multiply(upstream[first:last], hit[:size], out=share[:size])
                        flat[phase, first + offset:last + offset] += share[:size]
        dx = dx[start:stop]
        if sum(cells.stop - cells.start for cells, _ in split["rows"]) < dx.shape[2] or \
                sum(cells.stop - cells.start for cells, _ in split["cols"]) < dx.shape[3]:
            dx.fill(0)                          # pixels in no window: no phase holds them
        images = max(1, _CHUNK_BYTES // 4 // (dx[0].nbytes or 1))   # the phases interleave:
        for first in range(0, len(dx), images):     # fill a few images' cache lines at a time
            phase, part = 0, slice(first, first + images)
            for cells_h, rows in split["rows"]:
                for cells_w, cols in split["cols"]:
                    dx[part, :, rows, cols] = grads[phase, part, :, cells_h, cells_w]
                    phase += 1

    def _one_window(self, x: np.ndarray, kh: int, kw: int) -> np.ndarray:
        """A single output per plane (global pooling): a reduction over the window's pixels."""
        ph, pw = self.pads
        self.window = (kh, kw)
        window = x[:, :, :kh - ph, :kw - pw]
        pixels = window.reshape(*x.shape[:2], -1)
        if self.pool == "MAX":
            out = pixels.max(axis=2)[:, :, None, None]
            if self.num_tops == 1:
                return out
            row, col = np.divmod(pixels.argmax(axis=2), window.shape[3])
            return out, (row * x.shape[3] + col).astype(x.dtype)[:, :, None, None]
        self.divisor = self._divisor(*x.shape[2:], kh, kw, 1, 1).astype(x.dtype)
        return pixels.sum(axis=2)[:, :, None, None] / self.divisor

    def _one_window_grad(self, dout: np.ndarray) -> np.ndarray:
        """The single window's gradient: all of dout to the first maximal pixel (argmax takes
        the first, in row-major order), or dout / divisor to every pixel."""
        x, (kh, kw), (ph, pw) = self.x, self.window, self.pads
        dx = np.zeros(x.shape, dout.dtype)
        window = dx[:, :, :kh - ph, :kw - pw]
        if self.pool == "AVE":
            window[...] = dout / self.divisor
            return dx
        pixels = x[:, :, :kh - ph, :kw - pw].reshape(*x.shape[:2], -1)
        first = pixels.argmax(axis=2)[:, :, None]
        grads = np.zeros(pixels.shape, dout.dtype)
        np.put_along_axis(grads, first, dout.reshape(first.shape), axis=2)
        window[...] = grads.reshape(window.shape)
        return dx

    # STOCHASTIC pooling has no padding and no fast path: it copies each window's pixels out
    # (N, C, OH, OW, kh kw), zeros past the image, and adds values back onto the input one
    # kernel tap at a time.

    def _stochastic_windows(self, x: np.ndarray) -> np.ndarray:
        """Every window's pixels in row-major order, (N, C, OH, OW, kh kw); a ceil-mode window
        hanging past the image is filled with zeros, which are never drawn and add nothing."""
        n, channels, height, width = x.shape
        (kh, kw), (oh, ow), (rows, cols) = self._plane(height, width)
        (sh, sw) = self.strides
        padded = np.zeros((n, channels, rows, cols), x.dtype)
        padded[:, :, :height, :width] = x
        windows = sliding_window_view(padded, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
        return windows[:, :, :oh, :ow].reshape(n, channels, oh, ow, kh * kw)

    def _onto_input(self, values: np.ndarray, combine=np.add, fill: float = 0.0) -> np.ndarray:
        """Per-window, per-tap values (N, C, OH, OW, kh kw) combined onto the pixels the taps
        read: the input's shape, `fill` where no window reaches."""
        n, channels, height, width = self.x.shape
        (kh, kw), (oh, ow), (rows, cols) = self._plane(height, width)
        (sh, sw) = self.strides
        total = np.full((n, channels, rows, cols), fill, values.dtype)
        for tap in range(kh * kw):
            i, j = divmod(tap, kw)
            target = total[:, :, i:i + (oh - 1) * sh + 1:sh, j:j + (ow - 1) * sw + 1:sw]
            combine(target, values[..., tap], out=target)
        return total[:, :, :height, :width]

    def _stochastic(self, x: np.ndarray) -> np.ndarray:
        if x.size and x.min() < 0:
            raise ValueError(f"STOCHASTIC pooling needs non-negative inputs (as after a ReLU), "
                             f"got {x.min():g}")
        windows = self._stochastic_windows(x)
        if self.phase != "train":                   # the probability-weighted average
            self.windows = windows
            self.total = windows.sum(axis=-1) + FLT_MIN
            self.squares = np.einsum("...k,...k->...", windows, windows)
            return self.squares / self.total
        running = np.cumsum(windows, axis=-1)
        total = running[..., -1:]
        self.window_size = windows.shape[-1]
        self.uniforms = self.rng.random(total.shape).astype(x.dtype)
        # pixel k is drawn when running[k - 1] <= u total < running[k]; the second count
        # stops at the last non-zero pixel (u total may round up to total; all zeros: pixel 0)
        self.drawn = np.minimum((running <= self.uniforms * total).sum(axis=-1),
                                (running < total).sum(axis=-1))[..., None]
        return np.take_along_axis(windows, self.drawn, axis=-1)[..., 0]

    def _stochastic_grad(self, dout: np.ndarray) -> np.ndarray:
        if self.phase != "train":
            total, squares = self.total[..., None], self.squares[..., None]
            local = (2 * self.windows * total - squares) / (total * total)
            return self._onto_input(local * dout[..., None])
        routed = np.zeros(dout.shape + (self.window_size,), dout.dtype)
        np.put_along_axis(routed, self.drawn, dout[..., None], axis=-1)
        return self._onto_input(routed)

    def _stochastic_kinks(self, x: np.ndarray) -> np.ndarray:
        running = np.cumsum(self._stochastic_windows(x), axis=-1)
        u = self.uniforms
        gap = np.abs(running - u * running[..., -1:])
        gap[..., -1] = np.inf                   # the last pixel is no boundary: nothing follows
        with np.errstate(divide="ignore"):
            later = np.minimum.accumulate(gap[..., ::-1], axis=-1)[..., ::-1] / (1 - u)
            earlier = np.minimum.accumulate(gap, axis=-1) / u
        earlier = np.concatenate([np.full(u.shape, np.inf), earlier[..., :-1]], axis=-1)
        return self._onto_input(np.minimum(later, earlier), np.minimum, np.inf)

    def sample_inputs(self, rng):
        """Distinct, well-separated values (a shuffled grid), so no max window is near a tie;
        positive ones for STOCHASTIC."""
        (shape,) = self.check_shapes
        size = int(np.prod(shape))
        low = 0.1 if self.pool == "STOCHASTIC" else -1.0
        return [rng.permutation(np.linspace(low, 1.0, size)).reshape(shape)]

    def kinks(self, x):
        """MAX: per input, the smallest gap that decides a window it belongs to (to the window's
        maximum, or for the winner to the runner-up); inputs in no window get inf.
        STOCHASTIC in train, with the last forward's draws u (the gradient checker restores the
        rng before every forward, so each evaluation draws them again): a change d of pixel j
        moves running[k] - u total by ([j <= k] - u) d, so per window j is |running[k] - u
        total| / |[j <= k] - u| from changing the pixel drawn, over the boundaries k; the
        smallest over its windows. The test phase is smooth (for a positive window sum)."""
        if self.pool == "STOCHASTIC":
            return None if self.phase != "train" else (self._stochastic_kinks(x),)
        if self.pool == "AVE":
            return None
        n, channels, height, width = x.shape
        (kh, kw), (oh, ow), (rows, cols) = self._plane(height, width)
        (sh, sw), (ph, pw) = self.strides, self.pads
        xp = np.full((n, channels, rows, cols), -np.inf)
        xp[:, :, ph:ph + height, pw:pw + width] = x
        index = np.arange(xp.size).reshape(xp.shape)
        take = (slice(None), slice(None), slice(0, (oh - 1) * sh + kh),
                slice(0, (ow - 1) * sw + kw))
        windows = sliding_window_view(xp[take], (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
        where = sliding_window_view(index[take], (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
        windows = windows.reshape(n, channels, oh, ow, -1)
        ordered = np.sort(windows, axis=-1)
        gap = ordered[..., -1:] - windows
        gap = np.where(gap == 0, ordered[..., -1:] - ordered[..., -2:-1], gap) \
            if kh * kw > 1 else np.full_like(gap, np.inf)
        distance = np.full(xp.size, np.inf)
        np.minimum.at(distance, where.reshape(-1), np.nan_to_num(gap, nan=np.inf).reshape(-1))
        return (distance.reshape(xp.shape)[:, :, ph:ph + height, pw:pw + width],)
