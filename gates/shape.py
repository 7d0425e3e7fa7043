"""Shape changes and copies, with Caffe's options: Reshape and Flatten (the gradient is reshaped
back), Concat and Slice (joined and cut along an axis), Split (one blob to many tops), Tile
(repeated along an axis) and Crop (cut to a reference input's shape). None of them computes new
numbers; each gradient is the values moved back where they came from (summed where they were
copied)."""
from __future__ import annotations

import numpy as np

from .base import Gate, Option, canonical_axis, format_shape, register_gate, short_repr


def _count(dims) -> int | None:
    """The product of `dims`, None when one of them is open."""
    return None if None in dims else int(np.prod(dims, dtype=np.int64))


def _int_list(value: list, what: str, low: int) -> list[int]:
    if any(isinstance(v, bool) or not isinstance(v, int) or v < low for v in value):
        raise ValueError(f"{what} must be a list of integers of at least {low}, got "
                         f"{short_repr(value)}")
    return list(value)


class _View(Gate):
    num_bottoms = 1

    def forward(self, x):
        self.in_shape = x.shape
        return x.reshape(self.out_shape(x.shape))

    def backward(self, dout):
        return (dout.reshape(self.in_shape),)

    def infer_shapes(self, shape):
        return (self.out_shape(tuple(shape)),)


@register_gate
class ReshapeGate(_View):
    """out = x with its axes axis .. axis + num_axes - 1 replaced by `shape` (Caffe's Reshape; by
    default every axis). In `shape`, 0 copies the input's dimension at that position (counted
    from `axis`) and one -1 is inferred from the element count; a negative `axis` counts from the
    end, -1 being the place after the last axis (so `axis: -1, num_axes: 0` appends axes).
    Input: x. Returns: out, the same elements in the same (row-major) order."""

    options = {
        "shape": Option(list, doc="the new dimensions; 0 copies one, -1 infers one"),
        "axis": Option(int, 0, "first input axis replaced (-1: after the last)"),
        "num_axes": Option(int, -1, "how many input axes are replaced; -1: all from axis on",
                           range="[-1, inf)"),
    }
    check_options = {"shape": [0, 2, -1]}

    def __init__(self, **options):
        super().__init__(**options)
        _int_list(self.shape, "shape", -1)
        if self.shape.count(-1) > 1:
            raise ValueError("Reshape takes at most one -1")

    def out_shape(self, shape):
        ndim = len(shape)
        start = self.axis if self.axis >= 0 else ndim + self.axis + 1
        if not 0 <= start <= ndim:
            raise ValueError(f"axis {self.axis} is out of range for an input of {ndim} "
                             f"dimensions (Reshape takes {-ndim - 1} to {ndim})")
        end = ndim if self.num_axes == -1 else start + self.num_axes
        if end > ndim:
            raise ValueError(f"num_axes {self.num_axes} from axis {start} reaches past the {ndim} "
                             f"axes of the input {format_shape(shape)}")
        target = list(self.shape)
        for i, d in enumerate(target):
            if d == 0:
                if start + i >= ndim:
                    raise ValueError(f"shape[{i}] is 0 (copy the input's dimension) but the input "
                                     f"{format_shape(shape)} has no axis {start + i}")
                target[i] = shape[start + i]
        out = list(shape[:start]) + target + list(shape[end:])
        if -1 not in target:
            if None not in shape and _count(out) != _count(shape):
                raise ValueError(f"cannot reshape {format_shape(shape)} ({_count(shape)} elements) "
                                 f"into {format_shape(out)} ({_count(out)} elements)")
            return tuple(out)
        where = start + target.index(-1)
        known = out[:where] + out[where + 1:]
        if shape.count(None) > known.count(None):   # an open dimension is folded in: stays open
            out[where] = None
            return tuple(out)
        size = _count([d for d in shape if d is not None])
        part = _count([d for d in known if d is not None])
        if part == 0 or size % part:
            raise ValueError(f"cannot reshape {format_shape(shape)} into {self.shape} "
                             f"(axis {self.axis}, num_axes {self.num_axes})")
        out[where] = size // part
        return tuple(out)


@register_gate
class FlattenGate(_View):
    """out = x with axes `axis`..`end_axis` merged into one (Caffe's Flatten; NCHW -> N x CHW by
    default). Both are counted from the end when negative and must be axes of x (an axis out of
    range is an error, as in Caffe); end_axis one before axis inserts an axis of length 1, as
    Caffe's element count of an empty range gives. Input: x. Returns: out."""

    options = {"axis": Option(int, 1, "first axis merged"),
               "end_axis": Option(int, -1, "last axis merged (inclusive)")}
    check_shapes = ((2, 3, 2),)

    def out_shape(self, shape):
        first = canonical_axis(self.axis, len(shape))
        last = canonical_axis(self.end_axis, len(shape), "end_axis")
        if last < first - 1:
            raise ValueError(f"end_axis {self.end_axis} (axis {last}) comes before axis "
                             f"{self.axis} (axis {first})")
        return tuple(shape[:first]) + (_count(shape[first:last + 1]),) + tuple(shape[last + 1:])


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


@register_gate
class SliceGate(Gate):
    """Caffe's Slice: x cut along `axis` into consecutive pieces, one per top: at the indices in
    `slice_point` (increasing, each inside the axis; len(slice_point) + 1 tops), or, without it,
    into equal parts (the axis must divide by the number of tops).
    Input: x. Returns: the pieces, in order (views of x). Local gradient: the tops' gradients
    joined back along `axis`."""

    num_bottoms = 1
    num_tops = (1, None)
    options = {"axis": Option(int, 1, "the axis cut (negative counts from the end)"),
               "slice_point": Option(list, [], "where each piece after the first starts")}
    check_options = {"slice_point": [1, 3]}
    check_shapes = ((2, 4, 3),)

    def __init__(self, **options):
        super().__init__(**options)
        points = _int_list(self.slice_point, "slice_point", 1)
        if any(b <= a for a, b in zip(points, points[1:])):
            raise ValueError(f"slice_point must increase, got {short_repr(points)}")
        if points:
            self.num_tops = len(points) + 1

    def _edges(self, size: int | None) -> list:
        """Where the pieces start and end along the axis: [0, ..., size]."""
        if self.slice_point:
            if len(self.slice_point) + 1 != self.num_tops:
                raise ValueError(f"slice_point makes {len(self.slice_point) + 1} pieces but the "
                                 f"gate has {self.num_tops} top(s)")
            if size is not None and self.slice_point[-1] >= size:
                raise ValueError(f"slice_point {self.slice_point[-1]} is not inside the axis of "
                                 f"size {size}")
            return [0] + self.slice_point + [size]
        if size is None:
            return [0] + [None] * self.num_tops
        if size % self.num_tops:
            raise ValueError(f"an axis of size {size} does not split into {self.num_tops} equal "
                             "parts; give slice_point")
        step = size // self.num_tops
        return [step * i for i in range(self.num_tops + 1)]

    def infer_shapes(self, shape):
        axis = canonical_axis(self.axis, len(shape))
        edges = self._edges(shape[axis])
        return tuple(tuple(shape[:axis]) + (None if None in (a, b) else b - a,) +
                     tuple(shape[axis + 1:]) for a, b in zip(edges, edges[1:]))

    def forward(self, x):
        self.axis_index = canonical_axis(self.axis, x.ndim)
        pieces = np.split(x, self._edges(x.shape[self.axis_index])[1:-1], axis=self.axis_index)
        return pieces[0] if self.num_tops == 1 else tuple(pieces)

    def backward(self, dout):
        if self.num_tops == 1:
            return (dout,)
        return (np.concatenate(dout, axis=self.axis_index),)


@register_gate
class SplitGate(Gate):
    """Caffe's Split: one blob handed to any number of tops. Gatework sums gradients where a blob
    feeds several gates by itself, so a config never needs Split; it exists so that Caffe files
    translate layer for layer.
    Input: x. Returns: x once per top (the same array: gates never write to their inputs).
    Local gradient: the sum of the tops' gradients."""

    num_bottoms = 1
    num_tops = (1, None)

    def infer_shapes(self, shape):
        return (tuple(shape),) * self.num_tops

    def forward(self, x):
        return x if self.num_tops == 1 else (x,) * self.num_tops

    def backward(self, dout):
        if self.num_tops == 1:
            return (dout,)
        total = dout[0] + dout[1]
        for grad in dout[2:]:
            total += grad
        return (total,)


@register_gate
class SilenceGate(Gate):
    """Caffe's Silence: consumes blobs and produces nothing, so that they are not outputs of
    the net (Caffe prints its outputs). It exists so that Caffe files translate layer for layer.
    Inputs: any number of blobs. Returns: nothing (no tops).
    Local gradient: zero for every input, as Caffe's SilenceLayer sets it."""

    num_bottoms = (1, None)
    num_tops = 0

    def infer_shapes(self, *shapes):
        return ()

    def forward(self, *inputs):
        self.inputs = inputs
        return ()

    def backward(self, dout):
        return tuple(np.zeros_like(x) if x.dtype.kind == "f" else None for x in self.inputs)


@register_gate
class TileGate(Gate):
    """Caffe's Tile: `tiles` copies of x laid end to end along `axis`: each block of x from `axis`
    on is repeated whole, so out[..., t * d + j, ...] = x[..., j, ...] with d = x.shape[axis]
    (numpy's tile and PyTorch's repeat on that one axis).
    Input: x. Returns: x's shape with the `axis` dimension times `tiles`.
    Local gradient: the `tiles` slices of dout summed."""

    num_bottoms = 1
    options = {"axis": Option(int, 1, "the axis repeated (negative counts from the end)"),
               "tiles": Option(int, doc="how many copies", range="[1, inf)")}
    check_options = {"tiles": 3}
    check_shapes = ((2, 3, 2),)

    def infer_shapes(self, shape):
        axis = canonical_axis(self.axis, len(shape))
        size = None if shape[axis] is None else shape[axis] * self.tiles
        return (tuple(shape[:axis]) + (size,) + tuple(shape[axis + 1:]),)

    def forward(self, x):
        self.axis_index = axis = canonical_axis(self.axis, x.ndim)
        self.in_shape = x.shape
        reps = [1] * x.ndim
        reps[axis] = self.tiles
        return np.tile(x, reps)

    def backward(self, dout):
        axis, shape = self.axis_index, self.in_shape
        tiled = dout.reshape(shape[:axis] + (self.tiles,) + shape[axis:])
        return (tiled.sum(axis=axis),)


@register_gate
class CropGate(Gate):
    """Caffe's Crop: x cut to the shape of a reference input on every axis from `axis` on (the
    spatial axes H, W of NCHW by default), the window starting at `offset`: one number for all
    those axes, one per axis, or none (0).
    Inputs: x; ref, with as many axes as x (only its shape is read).
    Returns: out, x's shape before `axis` and ref's from `axis` on:
    out = x[..., o_i : o_i + ref.shape[i], ...].
    Local gradients: dx is dout put back in the window, zeros elsewhere; ref gets none (its
    values do not matter)."""

    num_bottoms = 2
    options = {"axis": Option(int, 2, "first axis cropped (negative counts from the end)"),
               "offset": Option((int, list), [], "where the window starts: one value, one per "
                                                 "cropped axis, or none (0)")}
    check_options = {"axis": 1, "offset": [1, 0]}
    check_shapes = ((2, 4, 5), (2, 2, 3))

    def __init__(self, **options):
        super().__init__(**options)
        offsets = [self.offset] if isinstance(self.offset, int) else self.offset
        self.offsets = _int_list(offsets, "offset", 0)

    def window(self, x_shape, ref_shape) -> tuple[tuple, tuple]:
        """The output shape and the index of the window in x."""
        if len(x_shape) != len(ref_shape):
            raise ValueError(f"x {format_shape(x_shape)} and the reference "
                             f"{format_shape(ref_shape)} differ in their number of axes")
        axis = canonical_axis(self.axis, len(x_shape))
        cropped = len(x_shape) - axis
        if len(self.offsets) > 1 and len(self.offsets) != cropped:
            raise ValueError(f"offset gives {len(self.offsets)} values for the {cropped} axes "
                             f"cropped (from axis {axis}); give one, or one per axis")
        offsets = self.offsets * cropped if len(self.offsets) == 1 else \
            self.offsets or [0] * cropped
        shape, index = list(x_shape[:axis]), [slice(None)] * axis
        for dim, start in zip(range(axis, len(x_shape)), offsets):
            size, have = ref_shape[dim], x_shape[dim]
            if None not in (size, have) and start + size > have:
                raise ValueError(f"axis {dim}: offset {start} plus the reference's size {size} "
                                 f"passes x's size {have}")
            shape.append(size)
            index.append(slice(start, None if size is None else start + size))
        return tuple(shape), tuple(index)

    def infer_shapes(self, x_shape, ref_shape):
        return (self.window(x_shape, ref_shape)[0],)

    def forward(self, x, ref):
        self.x_shape = x.shape
        self.index = self.window(x.shape, ref.shape)[1]
        return x[self.index]

    def backward(self, dout):
        dx = None
        if self.needs_input_grad[0]:
            dx = np.zeros(self.x_shape, dtype=dout.dtype)
            dx[self.index] = dout
        return dx, None
