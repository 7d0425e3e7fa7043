"""Image gates on NCHW arrays: Convolution and Pooling, with Caffe's options and output sizes.

Both are vectorised numpy: a convolution copies its input's windows into one column matrix
(im2col through `sliding_window_view`) and does one matrix product per call (batched over
groups); pooling works on strided views, one pass per kernel offset. Nothing loops over batch
items or output pixels. Scratch buffers are reused between calls and replaced, never added to,
when the shapes change, so memory does not grow with the number of iterations.
"""
from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .base import Gate, Option, register_gate

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


def _at(axes: tuple[int, int], first: slice, second: slice) -> tuple[slice, ...]:
    """An index of a 4-D array taking `first` and `second` on `axes`, everything elsewhere."""
    index = [slice(None)] * 4
    index[axes[0]], index[axes[1]] = first, second
    return tuple(index)


def _padded(shape, axes: tuple[int, int], ph: int, pw: int) -> tuple[int, ...]:
    """`shape` with 2 ph added on axes[0] and 2 pw on axes[1]."""
    padded = list(shape)
    padded[axes[0]] += 2 * ph
    padded[axes[1]] += 2 * pw
    return tuple(padded)


def _window_slice(start: int, stride: int, count: int) -> slice:
    """The positions start, start + stride, ... (count of them)."""
    return slice(start, start + stride * (count - 1) + 1, stride)


@register_gate
class ConvolutionGate(Gate):
    """2-D convolution (cross-correlation, as in Caffe and PyTorch) over NCHW input.

    Inputs: x (N, C, H, W); parameters W (num_output, C / group, kh, kw) and b (num_output,)
    (absent when `bias_term` is false).
    Returns: out (N, num_output, OH, OW) with OH = (H + 2 pad_h - (dilation_h (kh - 1) + 1))
    // stride_h + 1 (likewise OW): Caffe's rule, the same as PyTorch's.
    With `group` g, channels are split into g blocks; output block i sees only input block i.
    Local gradients: with cols the input's windows as a (C kh kw, N OH OW) matrix,
    out = W cols + b, so dW = dout cols^T, db = dout summed over N, OH, OW, and dx is
    W^T dout scattered back over the windows (col2im), overlapping windows adding up.
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
        if self.kernel_size is None and self.kernel_h is None:
            raise ValueError("give kernel_size (or kernel_h and kernel_w)")
        self.kernel = _pair(self, "kernel_size", 1)
        self.strides = _pair(self, "stride", 1)
        self.pads = _pair(self, "pad", 0)
        self.dilations = _pair(self, "dilation", 1)
        if self.num_output % self.group:
            raise ValueError(f"num_output {self.num_output} is not divisible by group {self.group}")
        self._buffers: dict[str, tuple] = {}

    def param_specs(self, x_shape):
        channels = self._channels(x_shape)
        specs = {"W": ((self.num_output, channels // self.group) + self.kernel, self.weight_filler)}
        if self.bias_term:
            specs["b"] = ((self.num_output,), self.bias_filler)
        return specs

    def infer_shapes(self, x_shape, *param_shapes):
        self._channels(x_shape)
        height, width = _spatial(x_shape, self)
        return ((x_shape[0], self.num_output, self._out_size(height, 0), self._out_size(width, 1)),)

    def _channels(self, x_shape) -> int:
        _spatial(x_shape, self)
        channels = x_shape[1]
        if channels is None:
            raise ValueError("the channel dimension must be known to size W")
        if channels % self.group:
            raise ValueError(f"{channels} input channels are not divisible by group {self.group}")
        return channels

    def _out_size(self, size, axis: int):
        if size is None:
            return None
        extent = self.dilations[axis] * (self.kernel[axis] - 1) + 1
        out = (size + 2 * self.pads[axis] - extent) // self.strides[axis] + 1
        if out < 1:
            raise ValueError(f"the kernel (extent {extent} with dilation) does not fit an input "
                             f"of size {size} padded by {self.pads[axis]}")
        return out

    def _scratch(self, name: str, shape: tuple, dtype, layout: tuple, zeros: bool = False
                 ) -> np.ndarray:
        """A buffer kept between calls, replaced (never grown) when its shape, dtype or working
        layout changes; a zeroed one keeps the zeros it is never written at (a padding border)."""
        key = (shape, np.dtype(dtype), layout)
        kept = self._buffers.get(name)
        if kept is None or kept[0] != key:
            kept = self._buffers[name] = (key, (np.zeros if zeros else np.empty)(shape, dtype))
        return kept[1]

    def _layout(self, n: int, ow: int) -> tuple[tuple[int, ...], tuple[int, int]]:
        """The working layout: (permutation of NCHW, its two spatial axes). Channels lead, so a
        group's rows of the column matrix are contiguous. Small planes put the batch last
        (C, H, W, N), making the rows copied and added long runs instead of OW-long pieces."""
        if n > 1 and ow < 16:
            return (1, 2, 3, 0), (1, 2)
        return (1, 0, 2, 3), (2, 3)

    def forward(self, x, W, b=None):
        n, channels, height, width = x.shape
        (kh, kw), (sh, sw) = self.kernel, self.strides
        (ph, pw), (dh, dw) = self.pads, self.dilations
        oh, ow = self._out_size(height, 0), self._out_size(width, 1)
        perm, spatial = self._layout(n, ow)
        work = x.transpose(perm)                  # (C, N, H, W) or (C, H, W, N)
        if ph or pw:   # the border of this buffer is never written, so it stays zero
            xp = self._scratch("padded", _padded(work.shape, spatial, ph, pw), x.dtype, perm, True)
            xp[_at(spatial, slice(ph, ph + height), slice(pw, pw + width))] = work
        else:
            xp = work
        windows = sliding_window_view(xp, (dh * (kh - 1) + 1, dw * (kw - 1) + 1), axis=spatial)
        windows = windows[_at(spatial, slice(None, None, sh), slice(None, None, sw))]
        windows = windows[..., ::dh, ::dw]
        cols = self.cols = self._scratch("cols", (channels, kh, kw) + windows.shape[1:4], x.dtype,
                                         perm)
        np.copyto(cols, windows.transpose(0, 4, 5, 1, 2, 3))   # C kh kw | N OH OW or OH OW N
        self.x_shape, self.W, self.layout = x.shape, W, (perm, spatial)
        out = self._matmul(W.reshape(self.group, self.num_output // self.group, -1),
                           cols.reshape(self.group, -1, n * oh * ow))
        out = out.reshape((self.num_output,) + cols.shape[3:]).transpose(np.argsort(perm))
        result = np.empty((n, self.num_output, oh, ow), x.dtype)
        if b is not None:
            np.add(out, b[:, None, None], out=result)
        else:
            np.copyto(result, out)
        return result

    @staticmethod
    def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """a (G, m, k) @ b (G, k, n) as (G m, n); one plain 2-D product when G is 1."""
        return (a[0] @ b[0]) if a.shape[0] == 1 else np.matmul(a, b).reshape(-1, b.shape[-1])

    def backward(self, dout):
        needs = self.needs_input_grad
        n, channels, height, width = self.x_shape
        (kh, kw), (sh, sw) = self.kernel, self.strides
        (ph, pw), (dh, dw) = self.pads, self.dilations
        (perm, spatial), (oh, ow) = self.layout, dout.shape[2:]
        groups, per_group = self.group, self.num_output // self.group
        # dout in the working layout, as (G, O/G, columns): the layout of the forward product
        upstream = np.ascontiguousarray(dout.transpose(perm))
        upstream = upstream.reshape(groups, per_group, -1)
        cols = self.cols.reshape(groups, -1, n * oh * ow)
        dW = (self._matmul(upstream, cols.transpose(0, 2, 1)).reshape(self.W.shape)
              if needs[1] else None)
        grads = [None, dW]
        if self.bias_term:
            grads.append(upstream.reshape(self.num_output, -1).sum(axis=1) if needs[2] else None)
        if needs[0]:
            weights = self.W.reshape(groups, per_group, -1).transpose(0, 2, 1)
            dcols = self._matmul(weights, upstream).reshape(self.cols.shape)
            dxp = np.zeros(_padded([self.x_shape[a] for a in perm], spatial, ph, pw), dout.dtype)
            for i in range(kh):          # col2im: one strided add per kernel offset
                rows = _window_slice(i * dh, sh, oh)
                for j in range(kw):
                    dxp[_at(spatial, rows, _window_slice(j * dw, sw, ow))] += dcols[:, i, j]
            crop = dxp[_at(spatial, slice(ph, ph + height), slice(pw, pw + width))]
            grads[0] = np.ascontiguousarray(crop.transpose(np.argsort(perm)))
        return tuple(grads)


@register_gate
class PoolingGate(Gate):
    """Max or average pooling over each channel of NCHW input (Caffe's Pooling).

    Input: x (N, C, H, W). Returns: out (N, C, OH, OW).
    Output size: Caffe's rule by default (`round_mode: CEIL`),
    OH = ceil((H + 2 pad - kernel) / stride) + 1, then one less if that last window would start
    in the padding (at or past H + pad); `round_mode: FLOOR` uses floor instead, which is
    PyTorch's rule. With `global_pooling` the kernel is the whole H x W plane (out N x C x 1 x 1).
    MAX: padding never wins (it counts as -inf). Each output's gradient goes to the single input
    that won its window; at ties, the first maximal element in row-major window order (the
    top-most, then left-most) wins and gets all of it, as in Caffe. Overlapping windows add up.
    AVE: the divisor counts padded positions, as in Caffe (and PyTorch's count_include_pad), but
    not the part of a ceil-mode window that hangs past the padding; the gradient is dout / divisor
    spread over each window.
    """

    num_bottoms = 1
    options = {
        "pool": Option(str, "MAX", "MAX or AVE", choices=("MAX", "AVE")),
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
    kink_note = "ties in a max window: the first maximal element in row-major order wins"

    def __init__(self, **options):
        super().__init__(**options)
        self.strides = _pair(self, "stride", 1)
        self.pads = _pair(self, "pad", 0)
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

    def infer_shapes(self, x_shape):
        height, width = _spatial(x_shape, self)
        kh, kw = self._kernel(height, width)
        return ((x_shape[0], x_shape[1], self._out_size(height, kh, 0),
                 self._out_size(width, kw, 1)),)

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
        if span < 0:
            raise ValueError(f"the window ({kernel}) is larger than the input ({size}) padded by "
                             f"{pad}")
        out = (math.ceil(span / stride) if self.round_mode == "CEIL" else span // stride) + 1
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

    def forward(self, x):
        n, channels, height, width = x.shape
        (kh, kw), (oh, ow), (rows, cols) = self._plane(height, width)
        (sh, sw), (ph, pw) = self.strides, self.pads
        fill = -np.inf if self.pool == "MAX" else 0
        if (rows, cols) == (height, width):
            xp = x
        else:
            xp = np.full((n, channels, rows, cols), fill, x.dtype)
            xp[:, :, ph:ph + height, pw:pw + width] = x
        self.geometry = (x.shape, (kh, kw), (oh, ow), (rows, cols))
        views = [xp[:, :, _window_slice(i, sh, oh), _window_slice(j, sw, ow)]
                 for i in range(kh) for j in range(kw)]
        if self.pool == "AVE":
            out = views[0].copy()
            for view in views[1:]:
                out += view
            self.divisor = self._divisor(height, width, kh, kw, oh, ow).astype(x.dtype)
            out /= self.divisor
            return out
        out = views[0].copy()
        index_type = np.uint8 if kh * kw < 256 else np.int32
        self.argmax = np.zeros(out.shape, index_type)
        for offset, view in enumerate(views[1:], 1):
            # offsets rise, so max(argmax, better * offset) records the newest strict winner
            np.maximum(self.argmax, (view > out) * index_type(offset), out=self.argmax)
            np.maximum(out, view, out=out)
        return out

    def _divisor(self, height, width, kh, kw, oh, ow) -> np.ndarray:
        """Caffe's AVE divisor per output: the window clipped to the padded input, not the image."""
        (sh, sw), (ph, pw) = self.strides, self.pads
        start_h, start_w = np.arange(oh) * sh - ph, np.arange(ow) * sw - pw
        size_h = np.minimum(start_h + kh, height + ph) - start_h
        size_w = np.minimum(start_w + kw, width + pw) - start_w
        return np.outer(size_h, size_w)

    def backward(self, dout):
        (n, channels, height, width), (kh, kw), (oh, ow), (rows, cols) = self.geometry
        (sh, sw), (ph, pw) = self.strides, self.pads
        # windows that tile the plane exactly (LeNet's 2x2 at stride 2) are written, not added
        tiled = (sh, sw) == (kh, kw) and (oh * sh, ow * sw) == (rows, cols)
        dxp = (np.empty if tiled else np.zeros)((n, channels, rows, cols), dout.dtype)
        share = dout / self.divisor if self.pool == "AVE" else None
        for i in range(kh):
            for j in range(kw):
                window = dxp[:, :, _window_slice(i, sh, oh), _window_slice(j, sw, ow)]
                if tiled and share is None:   # this offset's winners take dout, the others 0
                    np.multiply(dout, self.argmax == i * kw + j, out=window)
                elif tiled:
                    window[...] = share
                else:
                    window += share if share is not None else dout * (self.argmax == i * kw + j)
        return (dxp[:, :, ph:ph + height, pw:pw + width],)

    def sample_inputs(self, rng):
        """Distinct, well-separated values (a shuffled grid), so no max window is near a tie."""
        (shape,) = self.check_shapes
        size = int(np.prod(shape))
        return [rng.permutation(np.linspace(-1.0, 1.0, size)).reshape(shape)]

    def kinks(self, x):
        """MAX: per input, the smallest gap that decides a window it belongs to (to the window's
        maximum, or for the winner to the runner-up); inputs in no window get inf."""
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
