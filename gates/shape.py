"""Shape changes that move no numbers: Reshape and Flatten (the gradient is reshaped back), and
Concat (the gradient is split back)."""
from __future__ import annotations

import numpy as np

from .base import Gate, Option, register_gate


class _View(Gate):
    def forward(self, x):
        self.in_shape = x.shape
        return x.reshape(self.out_shape(x.shape))

    def backward(self, dout):
        return (dout.reshape(self.in_shape),)

    def infer_shapes(self, shape):
        return (self.out_shape(shape),)


@register_gate
class ReshapeGate(_View):
    """out = x reshaped to `shape`, with Caffe's conventions: 0 copies the input's dimension at
    that position, -1 is inferred (at most one). Input: x. Returns: out, same number of elements."""

    options = {"shape": Option(list, doc="target shape; 0 copies a dimension, -1 infers one")}
    check_options = {"shape": [0, 2, -1]}

    def out_shape(self, shape):
        target = [shape[i] if d == 0 else d for i, d in enumerate(self.shape)]
        if target.count(-1) > 1:
            raise ValueError("Reshape takes at most one -1")
        size = int(np.prod([d for d in shape if d is not None]))
        if -1 in target:
            rest = [d for d in target if d != -1]
            if shape.count(None) > rest.count(None):   # an open dimension is folded in: stays open
                target[target.index(-1)] = None
                return tuple(target)
            part = int(np.prod([d for d in rest if d is not None]))
            if part == 0 or size % part:
                raise ValueError(f"cannot reshape {shape} into {self.shape}")
            target[target.index(-1)] = size // part
        elif None not in shape and np.prod(target) != size:
            raise ValueError(f"cannot reshape {shape} ({size} elements) into {tuple(target)} "
                             f"({int(np.prod(target))} elements)")
        return tuple(target)


@register_gate
class FlattenGate(_View):
    """out = x with axes `axis`..`end_axis` merged into one (Caffe's Flatten; NCHW -> N x CHW by
    default). Input: x. Returns: out."""

    options = {"axis": Option(int, 1, "first axis merged"),
               "end_axis": Option(int, -1, "last axis merged (inclusive)")}
    check_shapes = ((2, 3, 2),)

    def out_shape(self, shape):
        ndim = len(shape)
        first, last = self.axis % max(ndim, 1), self.end_axis % max(ndim, 1)
        if ndim == 0 or first > last:
            raise ValueError(f"cannot flatten axes {self.axis}..{self.end_axis} of shape {shape}")
        merged = shape[first:last + 1]
        size = None if None in merged else int(np.prod(merged))
        return tuple(shape[:first]) + (size,) + tuple(shape[last + 1:])


@register_gate
class ConcatGate(Gate):
    """out = the inputs joined along `axis` (Caffe's Concat; axis 1 joins NCHW channels).
    Inputs: x1, x2, ... (one or more), equal in every dimension but `axis`.
    Returns: out, whose `axis` dimension is the sum of theirs.
    Local gradient: dout split back along `axis` into pieces the size of each input."""

    num_bottoms = (1, None)
    options = {"axis": Option(int, 1, "the axis to join along (negative counts from the end)")}
    check_shapes = ((2, 3, 2), (2, 1, 2), (2, 2, 2))

    def forward(self, *xs):
        axis = self.axis % xs[0].ndim
        self.ends = np.cumsum([x.shape[axis] for x in xs])[:-1]
        self.axis_index = axis
        return np.concatenate(xs, axis=axis)

    def backward(self, dout):
        return tuple(np.split(dout, self.ends, axis=self.axis_index))

    def infer_shapes(self, *shapes):
        ndim = len(shapes[0])
        if not -ndim <= self.axis < ndim:
            raise ValueError(f"axis {self.axis} is out of range for inputs of {ndim} dimensions")
        axis = self.axis % ndim
        out = list(shapes[0])
        for index, shape in enumerate(shapes[1:], 2):
            if len(shape) != ndim:
                raise ValueError(f"input {index} has {len(shape)} dimensions, the first has {ndim}")
            for dim, (a, b) in enumerate(zip(out, shape)):
                if dim == axis:
                    out[dim] = None if None in (a, b) else a + b
                elif a is None or b is None:
                    out[dim] = a if b is None else b
                elif a != b:
                    raise ValueError(f"input {index} has size {b} on axis {dim}, the first has "
                                     f"{a}: only axis {axis} may differ")
        return (tuple(out),)
