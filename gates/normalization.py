"""Normalisation: BatchNorm (Caffe's batch statistics, moving averages and use_global_stats), MVN
(mean and variance normalisation of each item) and LRN (local response normalisation, across
channels or within each channel).

Caffe's BatchNorm only normalises; the learnable scale and shift are a separate Scale layer
there (gates/arithmetic.py has it). Here `affine: true` also adds them (gamma and beta per
channel) to the same gate.
"""
from __future__ import annotations

import numpy as np

from numpy.lib.stride_tricks import sliding_window_view

from .base import Gate, Option, format_shape, register_gate


@register_gate
class BatchNormGate(Gate):
    """out = (x - mean) / sqrt(var + eps) per channel (axis 1), then gamma * out + beta if `affine`.

    Inputs: x (N, C, ...) (any number of trailing spatial axes, or none); parameters gamma (C,)
    and beta (C,) when `affine` is true. Returns: out, the shape of x.
    Statistics, as in Caffe: in the train phase mean and var are the batch's (over N and the
    spatial axes; var is the biased one), and the moving averages in `buffers` are updated:
    scale_factor <- f * scale_factor + 1, mean <- f * mean + batch mean,
    variance <- f * variance + m / (m - 1) * batch var (m values per channel, f =
    `moving_average_fraction`). In the test phase, or whenever `use_global_stats` is true, the
    gate uses mean / scale_factor and variance / scale_factor instead and updates nothing.
    `use_global_stats` left null means "true in the test phase only", Caffe's default.
    Local gradient with batch statistics (y the normalised x, means over N and spatial axes):
    dx = (dy - mean(dy) - y mean(dy y)) / sqrt(var + eps); with fixed statistics
    dx = dy / sqrt(var + eps). With `affine`, dy is dout * gamma, dgamma = sum(dout y),
    dbeta = sum(dout).
    The buffers (mean, variance, scale_factor) are saved in snapshots, like Caffe's three blobs.
    """

    num_bottoms = 1
    options = {
        "use_global_stats": Option((bool, type(None)), None,
                                   "normalise with the moving averages (null: in the test phase)"),
        "moving_average_fraction": Option(float, 0.999, "decay f of the moving averages",
                                          range="[0, 1]"),
        "eps": Option(float, 1e-5, "added to the variance", range="(0, inf)"),
        "affine": Option(bool, False, "learn a scale gamma and shift beta per channel"),
    }
    check_options = {"affine": True}
    check_shapes = ((4, 3, 2, 2),)
    check_tol = {"rtol": 1e-4, "atol": 1e-6}

    def param_specs(self, x_shape):
        channels = self._channels(x_shape)
        self._ensure_buffers(channels)
        if not self.affine:
            return {}
        return {"gamma": ((channels,), {"type": "constant", "value": 1.0}),
                "beta": ((channels,), {"type": "constant", "value": 0.0})}

    def infer_shapes(self, x_shape, *param_shapes):
        self._channels(x_shape)
        return (tuple(x_shape),)

    @staticmethod
    def _channels(x_shape) -> int:
        if len(x_shape) < 2 or x_shape[1] is None:
            raise ValueError(f"BatchNorm needs input (N, C, ...) with C known, got "
                             f"{tuple(x_shape)}")
        return x_shape[1]

    def _ensure_buffers(self, channels: int) -> None:
        if self.buffers.get("mean") is None or self.buffers["mean"].shape != (channels,):
            self.buffers.update(mean=np.zeros(channels), variance=np.zeros(channels),
                                scale_factor=np.zeros(1))

    def forward(self, x, gamma=None, beta=None):
        channels = x.shape[1]
        self._ensure_buffers(channels)
        axes = (0,) + tuple(range(2, x.ndim))
        shape = (1, channels) + (1,) * (x.ndim - 2)
        global_stats = (self.phase == "test" if self.use_global_stats is None
                        else self.use_global_stats)
        if global_stats:
            factor = self.buffers["scale_factor"][0]
            scale = 0.0 if factor == 0 else 1.0 / factor
            mean = (self.buffers["mean"] * scale).astype(x.dtype)
            var = (self.buffers["variance"] * scale).astype(x.dtype)
        else:
            mean = x.mean(axis=axes)
            var = np.square(x - mean.reshape(shape)).mean(axis=axes)
            count = x.size // channels
            f = self.moving_average_fraction
            self.buffers["scale_factor"] *= f
            self.buffers["scale_factor"] += 1
            self.buffers["mean"] *= f
            self.buffers["mean"] += mean
            self.buffers["variance"] *= f
            self.buffers["variance"] += var * (count / max(count - 1, 1))
        self.global_stats = global_stats
        self.inv_std = (1 / np.sqrt(var + x.dtype.type(self.eps))).reshape(shape)
        self.y = (x - mean.reshape(shape)) * self.inv_std
        self.axes, self.gamma = axes, gamma
        if gamma is None:
            return self.y
        return self.y * gamma.reshape(shape) + beta.reshape(shape)

    def backward(self, dout):
        needs = self.needs_input_grad
        shape, axes = self.inv_std.shape, self.axes
        dy = dout if self.gamma is None else dout * self.gamma.reshape(shape)
        dx = None
        if needs[0]:
            if self.global_stats:
                dx = dy * self.inv_std
            else:
                mean_dy = dy.mean(axis=axes, keepdims=True)
                mean_dy_y = (dy * self.y).mean(axis=axes, keepdims=True)
                dx = (dy - mean_dy - self.y * mean_dy_y) * self.inv_std
        if self.gamma is None:
            return (dx,)
        dgamma = (dout * self.y).sum(axis=axes) if needs[1] else None
        dbeta = dout.sum(axis=axes) if needs[2] else None
        return dx, dgamma, dbeta


@register_gate
class MVNGate(Gate):
    """Caffe's MVN: each item's mean subtracted and, with `normalize_variance`, the result divided
    by its standard deviation plus `eps` (Caffe adds eps to the std, not to the variance).

    Input: x (N, C, ...). The statistics are taken per item and channel over the axes after C,
    or per item over every axis after N with `across_channels` (the variance is the biased one).
    Returns: out, the shape of x.
    Local gradient, with y the output, D = std + eps and means over the same axes:
    dx = (dout - mean(dout) - (x - mean(x)) / std * mean(dout * y)) / D, the exact derivative
    (Caffe's backward writes y for (x - mean) / std, which differs by a factor std / D, 1 - 1e-9
    for a std near 1 and the default eps); without normalize_variance, dx = dout - mean(dout).
    """

    num_bottoms = 1
    options = {
        "normalize_variance": Option(bool, True, "also divide by the standard deviation"),
        "across_channels": Option(bool, False, "one mean (and std) per item, not per channel"),
        "eps": Option(float, 1e-9, "added to the standard deviation", range="[0, inf)"),
    }
    check_shapes = ((2, 3, 4),)

    def infer_shapes(self, shape):
        if len(shape) < 1:
            raise ValueError("MVN needs an input of at least one dimension (N, ...)")
        return (tuple(shape),)

    def forward(self, x):
        self.axes = tuple(range(1 if self.across_channels else 2, x.ndim))
        centred = x - x.mean(axis=self.axes, keepdims=True)
        if not self.normalize_variance:
            return centred
        std = np.sqrt(np.mean(centred * centred, axis=self.axes, keepdims=True))
        self.inv_d = 1 / (std + x.dtype.type(self.eps))
        self.out = centred * self.inv_d
        self.ratio = np.divide(centred, std, out=np.zeros_like(centred), where=std > 0)
        return self.out

    def backward(self, dout):
        dx = dout - dout.mean(axis=self.axes, keepdims=True)
        if self.normalize_variance:
            dx -= self.ratio * np.mean(dout * self.out, axis=self.axes, keepdims=True)
            dx *= self.inv_d
        return (dx,)


def _window_sum(values: np.ndarray, size: int, axes: tuple[int, ...]) -> np.ndarray:
    """Sum over a centred window of `size` along each of `axes`, zeros padded outside (size is
    odd, so (size - 1) / 2 on either side)."""
    half = (size - 1) // 2
    pad = [(half, half) if axis in axes else (0, 0) for axis in range(values.ndim)]
    windows = sliding_window_view(np.pad(values, pad), (size,) * len(axes), axis=axes)
    return windows.sum(axis=tuple(range(-len(axes), 0)))


@register_gate
class LRNGate(Gate):
    """Local response normalisation (Caffe's LRN) of NCHW input:
    out = x * (shift + a * S)^-beta, S the sum of x^2 over a window of `local_size` around each
    element, zeros beyond the edges:
    - ACROSS_CHANNELS: the window runs over local_size neighbouring channels; shift = k and
      a = alpha / local_size (PyTorch's local_response_norm with the same numbers).
    - WITHIN_CHANNEL: a local_size x local_size square in the same channel; a = alpha /
      local_size^2, and shift = 1: Caffe builds this one from its Power layer with shift 1, so
      `k` is not used. (Caffe pools the squares with a padded AVE pooling whose divisor is always
      local_size^2.)
    Input: x (N, C, H, W). Returns: out, the same shape.
    Local gradient, with s = shift + a S and W the same (symmetric) window sum:
    dx = dout * s^-beta - 2 a beta x W(dout * out / s).
    """

    num_bottoms = 1
    options = {
        "local_size": Option(int, 5, "window side (odd)", range="[1, inf)"),
        "alpha": Option(float, 1.0, "scale of the sum of squares (divided by the window size)"),
        "beta": Option(float, 0.75, "the exponent"),
        "norm_region": Option(str, "ACROSS_CHANNELS", "ACROSS_CHANNELS or WITHIN_CHANNEL",
                              choices=("ACROSS_CHANNELS", "WITHIN_CHANNEL")),
        "k": Option(float, 1.0, "ACROSS_CHANNELS: added to the scaled sum"),
    }
    check_options = {"local_size": 3}
    check_shapes = ((2, 4, 3, 3),)

    def __init__(self, **options):
        super().__init__(**options)
        if self.local_size % 2 == 0:
            raise ValueError(f"local_size must be odd (Caffe's LRN), got {self.local_size}")
        if self.norm_region == "ACROSS_CHANNELS":
            self.window_axes, self.shift = (1,), self.k
            self.factor = self.alpha / self.local_size
        else:
            self.window_axes, self.shift = (2, 3), 1.0
            self.factor = self.alpha / self.local_size ** 2

    def infer_shapes(self, shape):
        if len(shape) != 4:
            raise ValueError(f"LRN expects NCHW input (4 dimensions), got shape "
                             f"{format_shape(shape)}")
        return (tuple(shape),)

    def forward(self, x):
        self.x = x
        self.scale = self.shift + self.factor * _window_sum(x * x, self.local_size,
                                                            self.window_axes)
        self.scale_pow = self.scale ** -self.beta
        self.out = x * self.scale_pow
        return self.out

    def backward(self, dout):
        spread = _window_sum(dout * self.out / self.scale, self.local_size, self.window_axes)
        return (dout * self.scale_pow - (2 * self.factor * self.beta) * self.x * spread,)
