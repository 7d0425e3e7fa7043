"""Normalisation: BatchNorm, with Caffe's batch statistics, moving averages and use_global_stats.

Caffe's BatchNorm only normalises; the learnable scale and shift are a separate Scale layer
there. Here `affine: true` adds them (gamma and beta per channel) to the same gate.
"""
from __future__ import annotations

import numpy as np

from .base import Gate, Option, register_gate


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
