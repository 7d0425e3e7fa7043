"""The values an ONNX model holds or computes at import, read so that a file cannot make the
importer allocate what its content does not justify.

- `tensor_array`: an initializer's or a Constant's TensorProto as an array. Its declared shape
  (`dims`) is checked first against the values its data holds, the product in Python integers
  (no int64 overflow): a tensor declaring [1000000, 1000000] with no data is refused by name.
- `Folder`: the integer tensors computed from constants and shapes (Shape, Gather, Concat, ...
  as exporters write a reshape), evaluated at import by onnx's reference runtime; a value that
  depends on the batch size is evaluated at two sizes to find which entries follow it. Only the
  operators in FOLDED are evaluated, each with a rule giving the number of values its outputs
  will hold, computed from its inputs before anything is evaluated. All the values one model
  folds together hold at most `fold_budget(...)` values: 2**20, or one per 8 bytes of the
  model if that is more (so at most twice the model's size in int64 values, over the two batch
  sizes). Shape arithmetic folds a handful of values per node; a node asking for more (a
  ConstantOfShape of [15000, 15000] in a 161-byte file) is refused with its name and operator.
  A node of another operator is not evaluated (its mapper, if any, reads it): Loop, Scan and
  the like could run without end.

onnx_import reads the model with these; onnx_mappers reads the folded values (Static).
"""
from __future__ import annotations

import functools
import math
from typing import Any, Callable

import numpy as np

from ..errors import ConfigError
from .onnx_mappers import FLOAT_TYPES, ImportState, Static


class OnnxImportError(ConfigError):
    """A model that cannot be read as a Gatework net; the message names the file and nodes."""


# -- tensors a model holds -----------------------------------------------------------------------
def tensor_array(tensor: Any, what: str, file: str) -> np.ndarray:
    """The values of a TensorProto (`what`: "initializer 'W'", ...) as an array. Before
    anything is allocated, its dims must be non-negative and their product (in Python
    integers) no more than the values its data holds; then onnx converts it. OnnxImportError
    naming `file` and `what` for every problem, data kept in an external file not loaded
    (onnx.load loads it) included."""
    from onnx import external_data_helper, numpy_helper
    dims = [int(d) for d in tensor.dims]
    if any(d < 0 for d in dims):
        raise OnnxImportError(f"{what} has a negative dimension in its shape {dims}", file)
    if external_data_helper.uses_external_data(tensor):
        raise OnnxImportError(f"{what} keeps its data in an external file that was not loaded "
                              "with the model", file)
    try:
        held = _values_held(tensor)
    except (KeyError, ValueError, TypeError, AttributeError):
        raise OnnxImportError(f"{what} has element type {tensor.data_type}, which onnx does "
                              "not know", file) from None
    count = math.prod(dims)
    if count > held:
        raise OnnxImportError(f"{what} declares shape {dims} ({count} values) but its data "
                              f"holds {held}", file)
    try:
        return numpy_helper.to_array(tensor)
    except Exception as err:                    # onnx raises several kinds
        raise OnnxImportError(f"{what}: {err}", file) from None


def _values_held(tensor: Any) -> int:
    """How many values the tensor's data holds, at most: its raw bytes over the element's
    width (the 2-, 4- and 6-bit types packed), else the length of its typed field (a complex
    value in two entries, a 2- or 4-bit one packed in each entry's low byte)."""
    from onnx import TensorProto, helper
    kind = tensor.data_type
    if kind == TensorProto.STRING:
        return len(tensor.string_data)
    bits = _packed_bits().get(kind)
    if tensor.HasField("raw_data"):
        width = bits or 8 * helper.tensor_dtype_to_np_dtype(kind).itemsize
        return len(tensor.raw_data) * 8 // width
    entries = len(getattr(tensor, helper.tensor_dtype_to_field(kind)))
    if kind in (TensorProto.COMPLEX64, TensorProto.COMPLEX128):
        return entries // 2
    return entries * 8 // bits if bits in (2, 4) else entries


@functools.cache
def _packed_bits() -> dict[int, int]:
    """The bits per value of the packed element types, by TensorProto type."""
    from onnx import TensorProto
    widths = {"INT4": 4, "UINT4": 4, "FLOAT4E2M1": 4, "INT2": 2, "UINT2": 2,
              "FLOAT6E2M3": 6, "FLOAT6E3M2": 6}
    return {getattr(TensorProto, name): bits for name, bits in widths.items()
            if hasattr(TensorProto, name)}


# -- how many values a folded node makes ---------------------------------------------------------
#: the rule of an operator: (its inputs by position, None where left out; its attributes) ->
#: how many values all its outputs hold together, at most. A rule raises ValueError (or another
#: error a bad input gives) where the node cannot be evaluated.
SizeRule = Callable[[list, dict], int]


def _broadcast(shapes: list[tuple]) -> tuple[int, ...]:
    """Numpy's broadcast of `shapes`, in Python integers."""
    rank = max((len(s) for s in shapes), default=0)
    result = []
    for axis in range(rank):
        dims = {int(s[axis - rank + len(s)]) for s in shapes if axis - rank + len(s) >= 0}
        if len(dims - {1}) > 1:
            raise ValueError(f"shapes {shapes} do not broadcast")
        result.append(max(dims - {1}, default=1))
    return tuple(result)


def _elementwise(inputs: list, attrs: dict) -> int:
    """The broadcast of all inputs (Add, Where, Cast, ...)."""
    return math.prod(_broadcast([v.shape for v in inputs if v is not None]))


def _rearranged(inputs: list, attrs: dict) -> int:
    """No more than the first input (Reshape, Slice, ReduceSum, Shape, ...): its dims' product
    with an empty one counted as 1 (a reduction over an empty axis gives the others) plus its
    rank (Shape) and 1 (Size)."""
    first = inputs[0]
    return math.prod(max(int(d), 1) for d in first.shape) + first.ndim + 1


def _nonzero(inputs: list, attrs: dict) -> int:
    return inputs[0].ndim * _rearranged(inputs, attrs)


def _concat(inputs: list, attrs: dict) -> int:
    return sum(v.size for v in inputs if v is not None)


def _gather(inputs: list, attrs: dict) -> int:
    """An index's worth of the data's other axes per index."""
    data, indices = inputs[0], inputs[1]
    axis = int(attrs.get("axis", 0)) % data.ndim
    return indices.size * math.prod(int(d) for i, d in enumerate(data.shape) if i != axis)


def _dims(value: np.ndarray) -> list[int]:
    dims = [int(d) for d in value.reshape(-1)]
    if any(d < 0 for d in dims):
        raise ValueError(f"negative sizes {dims}")
    return dims


def _constant_of_shape(inputs: list, attrs: dict) -> int:
    return math.prod(_dims(inputs[0]))


def _range(inputs: list, attrs: dict) -> int:
    start, limit, delta = (v.reshape(-1)[0].item() for v in inputs[:3])
    if delta == 0:
        raise ValueError("a Range with delta 0")
    if isinstance(start + limit + delta, float):
        return max(math.ceil((limit - start) / delta), 0)
    return max(-((start - limit) // delta), 0)


def _tile(inputs: list, attrs: dict) -> int:
    return inputs[0].size * math.prod(_dims(inputs[1]))


def _expand(inputs: list, attrs: dict) -> int:
    return math.prod(_broadcast([inputs[0].shape, tuple(_dims(inputs[1]))]))


_ELEMENTWISE = ("Identity", "Cast", "Clip", "Neg", "Abs", "Sign", "Floor", "Ceil", "Round",
                "Sqrt", "Reciprocal", "Relu", "Not", "IsNaN", "IsInf", "BitwiseNot", "Add",
                "Sub", "Mul", "Div", "Mod", "Pow", "Max", "Min", "Sum", "Mean", "Equal", "Less",
                "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor", "Where",
                "BitShift", "BitwiseAnd", "BitwiseOr", "BitwiseXor")
_REARRANGED = ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Slice", "Split",
               "Shape", "Size", "CastLike", "EyeLike", "CumSum", "Trilu", "ArgMax", "ArgMin",
               "ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
               "ReduceL2", "ReduceSumSquare", "ScatterND", "ScatterElements")
#: the operators folded at import, with the rule giving how many values they make
FOLDED: dict[str, SizeRule] = {
    **dict.fromkeys(_ELEMENTWISE, _elementwise), **dict.fromkeys(_REARRANGED, _rearranged),
    "NonZero": _nonzero, "Concat": _concat, "Gather": _gather,
    "ConstantOfShape": _constant_of_shape, "Range": _range, "Tile": _tile, "Expand": _expand,
}
_RULE_ERRORS = (ValueError, TypeError, IndexError, AttributeError, OverflowError,
                ZeroDivisionError)

#: values a model may fold however small it is (see fold_budget)
FOLD_FLOOR = 1 << 20
#: batch sizes at which a value that follows the batch is evaluated
_BATCHES = (2, 3)


def fold_budget(model_bytes: int) -> int:
    """How many values the nodes folded at import may hold together, for a model of
    `model_bytes` bytes (serialized, external data loaded included): 2**20, or one per 8 bytes
    if that is more."""
    return max(FOLD_FLOOR, model_bytes // 8)


# -- folding -------------------------------------------------------------------------------------
class Folder:
    """Folds the constant nodes of one model of `model_bytes` bytes into `state.statics`,
    within `fold_budget(model_bytes)` values."""

    def __init__(self, state: ImportState, types: dict, model_bytes: int):
        self.state, self.types, self.model_bytes = state, types, model_bytes
        self.budget = self.left = fold_budget(model_bytes)

    def fold(self, node: Any, index: int) -> bool:
        """Evaluate a node at import when it is a Constant, a Shape of a known shape, or an
        operator of FOLDED whose inputs are all known and whose outputs are not float tensors;
        keep the values in `state.statics` and return True. False leaves the node to its
        mapper. OnnxImportError (naming the file, node and operator) for a Constant that is not
        one, or a node that would make more values than the budget has left: nothing is
        evaluated then."""
        state = self.state
        label = f"node {node.name or f'{node.op_type}_{index}'!r} ({node.op_type})"
        if node.op_type == "Constant":
            array = self._constant(node, label)
            state.statics[node.output[0]] = Static(array, array)
            return True
        present = [name for name in node.input if name]
        if node.op_type == "Shape" and present and present[0] in state.shapes:
            runs = [np.asarray([_BATCHES[k] if d is None else d
                                for d in state.shapes[present[0]]], dtype=np.int64)
                    for k in range(2)]
            start, end = _shape_range(node, len(runs[0]))
            state.statics[node.output[0]] = Static(runs[0][start:end], runs[1][start:end])
            return True
        known = all(name in state.statics or (name in state.initializers and
                                              state.initializers[name].dtype.kind != "f")
                    for name in present)
        if node.op_type not in FOLDED or not known or not present or \
                any(self.types.get(o) in FLOAT_TYPES for o in node.output):
            return False
        results = [self._evaluate(node, label, run) for run in range(2)]
        if None in results:                      # not computable here: let a mapper try
            return False
        for name, low, high in zip(node.output, *results):
            state.statics[name] = Static(np.asarray(low), np.asarray(high))
            self.left -= max(state.statics[name].low.size, state.statics[name].high.size)
        return True

    def _evaluate(self, node: Any, label: str, run: int) -> list | None:
        """The node's outputs in evaluation `run` (0 or 1: the two batch sizes), once its
        operator's rule has said they fit what the budget has left; None where the rule or
        the evaluation fails."""
        from onnx import helper
        from onnx.reference import ReferenceEvaluator
        inputs = [self._value(name, run) if name else None for name in node.input]
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        try:
            count = FOLDED[node.op_type](inputs, attrs)
        except _RULE_ERRORS:
            return None
        if count > self.left:
            left = f"{self.left} left of the " if self.left < self.budget else ""
            raise OnnxImportError(
                f"{label} would compute {count} values at import, more than the {left}"
                f"{self.budget} a model of {self.model_bytes} bytes may fold (2**20, or one "
                "per 8 bytes of the model if more)", self.state.file)
        feeds = {name: value for name, value in zip(node.input, inputs) if name}
        try:
            return ReferenceEvaluator(node).run(None, feeds)
        except Exception:                       # the reference runtime raises several kinds
            return None

    def _value(self, name: str, run: int) -> np.ndarray:
        """A known input's value in evaluation `run` (0 or 1: the two batch sizes)."""
        if name in self.state.statics:
            static = self.state.statics[name]
            return static.low if run == 0 else static.high
        return self.state.initializers[name]

    def _constant(self, node: Any, label: str) -> np.ndarray:
        """A Constant node's value, read with `tensor_array`; a sparse one is refused."""
        from onnx import helper
        if len(node.attribute) != 1:
            raise OnnxImportError(f"{label} has {len(node.attribute)} attributes, where a "
                                  "Constant has one (its value)", self.state.file)
        attribute = node.attribute[0]
        if attribute.name == "sparse_value":
            raise OnnxImportError(f"{label} holds a sparse tensor (Gatework has none)",
                                  self.state.file)
        if attribute.name == "value":
            return tensor_array(attribute.t, f"the value of {label}", self.state.file)
        return np.asarray(helper.get_attribute_value(attribute))


def _shape_range(node: Any, rank: int) -> tuple[int, int]:
    """Shape's `start` and `end` (opset 15) as slice bounds within `rank`."""
    from onnx import helper
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    start, end = attrs.get("start", 0), attrs.get("end", rank)
    return max(0, start + rank if start < 0 else start), min(rank, end + rank if end < 0 else end)
