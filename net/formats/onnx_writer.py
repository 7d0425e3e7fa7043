"""What an ONNX exporter writes with: the graph being built (nodes, initializers, fresh names)
and, per gate, a GateWriter holding the gate's input and top names and shapes, with helpers that
add nodes named after the gate (`conv1/Mul`), constants (Constant nodes, so only learned arrays
are initializers), reshapes and reductions in the form the opset wants.

The gate-by-gate exporters are in onnx_exporters; onnx_export assembles and checks the model.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.runner import Step
from ..errors import GateworkError


class OnnxExportError(GateworkError):
    """A net that cannot be written as ONNX; the message names every gate in the way."""


def require_onnx():
    """The `onnx` module, or an error saying how to install it."""
    try:
        import onnx
    except ImportError:
        raise GateworkError("ONNX export and import need the onnx package (the onnx extra: "
                            "pip install -e '.[onnx]')") from None
    return onnx


@dataclass
class OnnxGraph:
    """The ONNX graph being written: nodes, initializers, and the names in use."""
    opset: int
    dtype: np.dtype
    nodes: list = field(default_factory=list)
    initializers: dict[str, np.ndarray] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)
    nodes_named: set[str] = field(default_factory=set)
    layouts: dict[str, tuple] = field(default_factory=dict)   # parameter -> shape written

    def fresh(self, hint: str) -> str:
        return fresh_name(hint, self.used)

    def fresh_node(self, hint: str) -> str:
        return fresh_name(hint, self.nodes_named)


def fresh_name(hint: str, used: set[str]) -> str:
    """A name not in `used` (now added to it): `hint`, else `hint_1`, `hint_2`, ..."""
    name, count = hint, 1
    while name in used:
        name, count = f"{hint}_{count}", count + 1
    used.add(name)
    return name


class GateWriter:
    """What one gate's exporter works with: its input and top names and shapes, and helpers
    that add nodes named after the gate (`conv1/Conv`) with fresh output names."""

    def __init__(self, graph: OnnxGraph, step: Step, shapes: dict[str, tuple]):
        self.graph, self.step, self.gate = graph, step, step.gate
        self.inputs = list(step.inputs)
        self.tops = list(step.tops)
        self.in_shapes = [shapes[name] for name in step.inputs]
        self.out_shapes = [shapes[name] for name in step.tops]
        self.name = step.spec.name

    @property
    def x(self) -> str:
        return self.inputs[0]

    @property
    def ndim(self) -> int:
        return len(self.in_shapes[0])

    def op(self, op_type: str, inputs: list[str], out: str | list[str] | None = None,
           outputs: int = 1, **attrs: Any) -> Any:
        """Add a node; returns its output name (a list when `outputs` > 1 or `out` is a list).
        Without `out`, outputs get fresh names `<gate>/<op>`."""
        from onnx import helper
        names = out if isinstance(out, list) else [out] if out else [
            self.graph.fresh(f"{self.name}/{op_type}") for _ in range(outputs)]
        main = bool(self.tops) and self.tops[0] in names and \
            self.name not in self.graph.nodes_named
        node_name = self.name if main else self.graph.fresh_node(f"{self.name}/{op_type}")
        self.graph.nodes_named.add(node_name)
        self.graph.nodes.append(helper.make_node(op_type, inputs, names, name=node_name,
                                                 **attrs))
        return names if isinstance(out, list) or outputs > 1 else names[0]

    def const(self, value: Any, dtype: Any = None, hint: str = "const") -> str:
        """A Constant node holding `value` (the net's float type unless `dtype` is given)."""
        from onnx import numpy_helper
        array = np.asarray(value, dtype=dtype or self.graph.dtype)
        name = self.graph.fresh(f"{self.name}/{hint}")
        self.op("Constant", [], name, value=numpy_helper.from_array(array, name))
        return name

    def ints(self, values: Any) -> str:
        return self.const(np.asarray(values, dtype=np.int64), np.int64, "ints")

    def unsqueeze(self, x: str, axes: list[int]) -> str:
        return self.op("Unsqueeze", [x, self.ints(axes)]) if axes else x

    def reduce(self, op_type: str, x: str, axes: list[int] | None, keepdims: bool,
               out: str | None = None) -> str:
        """A Reduce* node over `axes` (None: all): axes are an attribute before opset 18 (13
        for ReduceSum) and an input from then on."""
        takes_input = self.graph.opset >= (13 if op_type == "ReduceSum" else 18)
        if axes is None:
            return self.op(op_type, [x], out, keepdims=int(keepdims))
        if takes_input:
            return self.op(op_type, [x, self.ints(axes)], out, keepdims=int(keepdims))
        return self.op(op_type, [x], out, axes=list(axes), keepdims=int(keepdims))

    def scaled(self, x: str, scale: float, shift: float = 0.0, out: str | None = None) -> str:
        """scale * x + shift, skipping a factor of 1 and a shift of 0."""
        if scale == 1.0 and shift == 0.0:
            return self.op("Identity", [x], out) if out else x
        if scale != 1.0:
            x = self.op("Mul", [x, self.const(scale)], None if shift else out)
        if shift != 0.0:
            x = self.op("Add", [x, self.const(shift)], out)
        return x

    def reshape_to(self, x: str, shape: tuple, out: str | None = None) -> str:
        """Reshape to a shape known but for open dimensions (see `reshape_target`)."""
        target = reshape_target(self.in_shapes[0], shape)
        if target is None:
            raise OnnxExportError(f"gate {self.name!r}: cannot write the reshape of "
                                  f"{self.in_shapes[0]} to {shape}: more than one open "
                                  "dimension moves")
        return self.op("Reshape", [x, self.ints(target)], out)

    def known(self, value: Any, what: str) -> int:
        if value is None:
            raise OnnxExportError(f"gate {self.name!r} ({self.step.spec.type}): {what} must be "
                                  "known to export it (it is an open dimension)")
        return int(value)


def reshape_target(in_shape: tuple, out_shape: tuple) -> list[int] | None:
    """ONNX's (and Caffe's) Reshape target for `out_shape`, whose open dimensions (None) are
    only known at run time: a lone one is inferred (-1); with several, one whose leading
    dimensions are the input's own (the batch, in place) copies it (0) and one other is
    inferred. None when that cannot say it."""
    opens = [i for i, d in enumerate(out_shape) if d is None]
    target = [-1 if d is None else int(d) for d in out_shape]
    if len(opens) > 1:
        for i in opens:
            if tuple(in_shape[:i + 1]) == tuple(out_shape[:i + 1]):
                target[i] = 0
    return target if target.count(-1) <= 1 else None


def float_type(dtype: np.dtype) -> int:
    """ONNX's element type for the net's float dtype."""
    from onnx import TensorProto
    return TensorProto.DOUBLE if np.dtype(dtype) == np.float64 else TensorProto.FLOAT


def int_type() -> int:
    from onnx import TensorProto
    return TensorProto.INT64
