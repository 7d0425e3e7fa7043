"""Convolution through the discrete Fourier transform, for Convolution's stride-1 layers with
many channels (cifar10_quick's 5x5 layers): the same sums as the column-matrix route, in about
a quarter of the arithmetic.

A stride-1 convolution of an image with a kernel is a product in the frequency domain: with the
image's plane at the origin of an Fh x Fw grid of zeros and the kernel flipped and shifted by
the padding (its tap (i, j) at ((pad_h - i) mod Fh, (pad_w - j) mod Fw)), the circular
convolution of the two is the layer's output on the first OH x OW cells, as long as nothing
wraps round onto them: Fh >= H + pad_h, whatever the output size. Channels then mix bin by bin,
one (images x C) @ (C x O) complex product per frequency, which is where a convolution's
kh kw fold of arithmetic disappears. The gradients are the same two relations read backwards:
dX = dOut conj(K) and dK = sum over images conj(X) dOut, bin by bin.

numpy's FFT transforms each plane in its own call, too slow for planes of 16 x 16. Here the
transforms are matrix products instead (a DFT is one): along the rows with a real matrix whose
columns interleave the cosine and sine parts, so that its output is already complex numbers,
and along the columns with one complex product over a whole chunk of planes. Only half the
frequencies of a real plane are kept along its rows (the rest are their conjugates), and the
inverse weighs them to match. float32 results agree with the float64 convolution about as
closely as the column route's do (measured: 2.5e-7 against 7e-7 of the largest output).
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np


def grid(height: int, width: int, pads: tuple[int, int]) -> tuple[int, int]:
    """The Fh x Fw grid on which nothing wraps round: every input index a window reads,
    -pad .. H + pad - 1, lands on the plane or on zeros, whatever the output size."""
    return height + pads[0], width + pads[1]


def cost(images: int, channels: int, outputs: int, size: tuple[int, int],
         out: tuple[int, int], kernel: tuple[int, int], pads: tuple[int, int]
         ) -> tuple[float, float]:
    """Estimated work of one forward pass over a batch, in multiply-adds (real ones; a complex
    one counts four): (the column route's, this route's). Each adds what it copies, at 32 a
    value: the column route its window matrix, this route its spectra in and out. This route
    also has a part per batch, the kernels' spectra, copied and transposed at about 120 a value.
    The weights were fitted to forward and backward times of 5x5, 7x7, 3x3 and 1x1 layers, 4 to
    256 channels, batches of 1 to 100 (the backward's work is about twice the forward's on
    either route)."""
    (height, width), (oh, ow), (kh, kw) = size, out, kernel
    fh, fw = grid(height, width, pads)
    half = fw // 2 + 1
    bins = fh * half
    rows = channels * (height * width * 2 * half + 4 * fh * height * half)
    mix = 4 * bins * channels * outputs
    back = outputs * (4 * oh * fh * half + oh * 2 * half * ow)
    windows = oh * ow * kh * kw * channels
    columns = images * (windows * outputs + 32 * windows)
    transforms = images * (rows + mix + back + 32 * (channels + outputs) * bins)
    return columns, transforms + 120 * bins * channels * outputs


@lru_cache(maxsize=64)
def _forward_matrices(size: tuple[int, int], shape: tuple[int, int], dtype: str):
    """The transform of planes of `size` placed at the origin of the `shape` grid: (the real
    matrix along the rows, W x 2 half, its columns the interleaved real and imaginary parts;
    the complex matrix along the columns, Fh x H)."""
    (height, width), (fh, fw) = size, shape
    half = fw // 2 + 1
    rows = np.exp(-2j * np.pi * np.outer(np.arange(width), np.arange(half)) / fw)
    real = np.stack([rows.real, rows.imag], axis=-1).reshape(width, 2 * half)
    cols = np.exp(-2j * np.pi * np.outer(np.arange(fh), np.arange(height)) / fh)
    return _frozen(real.astype(dtype)), _frozen(cols.astype(_complex(dtype)))


@lru_cache(maxsize=64)
def _inverse_matrices(size: tuple[int, int], shape: tuple[int, int], dtype: str):
    """The inverse transform onto the first `size` cells of the `shape` grid: (the complex
    matrix along the columns, R x Fh; the real matrix along the rows, 2 half x Q, which weighs
    each kept frequency for its conjugate and keeps the real part)."""
    (height, width), (fh, fw) = size, shape
    half = fw // 2 + 1
    cols = np.exp(2j * np.pi * np.outer(np.arange(height), np.arange(fh)) / fh) / fh
    rows = np.exp(2j * np.pi * np.outer(np.arange(half), np.arange(width)) / fw)
    rows *= _half_weights(fw)[:, None]
    real = np.stack([rows.real, -rows.imag], axis=1).reshape(2 * half, width)
    return _frozen(cols.astype(_complex(dtype))), _frozen(real.astype(dtype))


@lru_cache(maxsize=64)
def _kernel_matrices(kernel: tuple[int, int], pads: tuple[int, int], shape: tuple[int, int],
                     dtype: str):
    """The transform of a kernel flipped and shifted onto the grid, tap (i, j) at
    (pad_h - i, pad_w - j): (along its columns, Fh x kh; along its rows, kw x half)."""
    (kh, kw), (ph, pw), (fh, fw) = kernel, pads, shape
    cols = np.exp(-2j * np.pi * np.outer(np.arange(fh), ph - np.arange(kh)) / fh)
    rows = np.exp(-2j * np.pi * np.outer(pw - np.arange(kw), np.arange(fw // 2 + 1)) / fw)
    return _frozen(cols.astype(_complex(dtype))), _frozen(rows.astype(_complex(dtype)))


def _half_weights(fw: int) -> np.ndarray:
    """What each kept frequency along the rows stands for in an inverse transform, over Fw:
    itself and its conjugate (2), or only itself (the zero frequency, and the Nyquist
    frequency of an even Fw, each its own conjugate)."""
    weight = np.full(fw // 2 + 1, 2.0)
    weight[0] = 1.0
    if fw % 2 == 0:
        weight[-1] = 1.0
    return weight / fw


def _frozen(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


def _complex(dtype: str) -> np.dtype:
    return np.result_type(np.dtype(dtype), np.complex64)


class Spectral:
    """One stride-1, ungrouped convolution geometry: input planes H x W, kernel, padding; its
    grid and transforms. Spectra are laid out bin-major, (Fh half, images, channels), so that
    the channel mixing is one batched product over the bins."""

    def __init__(self, size: tuple[int, int], kernel: tuple[int, int], pads: tuple[int, int],
                 dtype: np.dtype):
        self.size, self.kernel, self.pads = size, kernel, pads
        self.out = tuple(s + 2 * p - k + 1 for s, p, k in zip(size, pads, kernel))
        self.shape = grid(*size, pads)
        self.half = self.shape[1] // 2 + 1
        self.bins = self.shape[0] * self.half
        self.dtype = np.dtype(dtype)
        self.complex = _complex(self.dtype.name)

    def transform(self, planes: np.ndarray) -> np.ndarray:
        """(m, C, R, Q) planes of the input's or the output's size -> (bins, m, C) spectra."""
        m, channels, height, width = planes.shape
        real, cols = _forward_matrices((height, width), self.shape, self.dtype.name)
        rows = np.matmul(planes.reshape(-1, width), real).view(self.complex)
        rows = rows.reshape(m, channels, height, self.half).transpose(2, 3, 0, 1)
        return np.matmul(cols, np.ascontiguousarray(rows).reshape(height, -1)).reshape(
            self.bins, m, channels)

    def inverse(self, spectra: np.ndarray, size: tuple[int, int], out: np.ndarray) -> None:
        """(bins, m, C) spectra -> their planes' first `size` cells, written into `out`
        (m, C, R, Q), C-contiguous."""
        cols, real = _inverse_matrices(size, self.shape, self.dtype.name)
        _, m, channels = spectra.shape
        planes = np.matmul(cols, spectra.reshape(self.shape[0], -1))
        planes = planes.reshape(size[0], self.half, m, channels).transpose(2, 3, 0, 1)
        planes = np.ascontiguousarray(planes).view(self.dtype).reshape(-1, 2 * self.half)
        np.matmul(planes, real, out=out.reshape(-1, size[1]))

    def kernel_spectra(self, W: np.ndarray) -> np.ndarray:
        """W (O, C, kh, kw) -> (bins, C, O): each kernel's spectrum, flipped and shifted."""
        outputs, channels = W.shape[:2]
        cols, rows = _kernel_matrices(self.kernel, self.pads, self.shape, self.dtype.name)
        taps = W.transpose(2, 3, 1, 0).astype(rows.dtype)                 # (kh, kw, C, O)
        along_rows = np.tensordot(rows, taps, axes=([0], [1]))          # (half, kh, C, O)
        spectra = np.tensordot(cols, along_rows, axes=([1], [1]))       # (Fh, half, C, O)
        return spectra.reshape(self.bins, channels, outputs)

    def kernel_grad(self, spectra: np.ndarray) -> np.ndarray:
        """(bins, C, O) spectra of the kernels' gradient -> dW (O, C, kh, kw): the inverse
        transform read off at the kernel's taps."""
        cols, rows = _kernel_matrices(self.kernel, self.pads, self.shape, self.dtype.name)
        fh, fw = self.shape
        taps = np.tensordot(cols.conj().T / fh, spectra.reshape(fh, self.half, *spectra.shape[1:]),
                            axes=([1], [0]))                            # (kh, half, C, O)
        taps *= _half_weights(fw)[None, :, None, None]
        grad = np.tensordot(taps, rows.conj().T, axes=([1], [0])).real    # (kh, C, O, kw)
        return np.ascontiguousarray(grad.transpose(2, 1, 0, 3)).astype(self.dtype, copy=False)


#: bytes of complex intermediates one chunk of images may take (its spectra, their transform
#: along the rows, the mixed spectra): 4 MB ran fastest on cifar10_quick's layers (1 MB 1.9x
#: slower, 16 MB 1.25x), and the scratch memory follows the chunk, not the batch
CHUNK_BYTES = 1 << 22


def pieces(images: int, channels: int, outputs: int, plan: Spectral, threads: int) -> int:
    """How many chunks to split the batch into: at least `threads`, each with at most
    CHUNK_BYTES of intermediates, at least one image each."""
    per_image = plan.complex.itemsize * (plan.bins * (channels + outputs)
                                         + channels * plan.size[0] * plan.half)
    return max(1, min(images, max(threads, math.ceil(images * per_image / CHUNK_BYTES))))


def bias_bin(b: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """What adding b to every output adds to the zero-frequency bin: b Fh Fw."""
    return b * math.prod(shape)
