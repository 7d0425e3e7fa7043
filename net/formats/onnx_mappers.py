"""How each ONNX operator becomes Gatework gates: one mapper per operator (MAPPERS), each
reading one node through a NodeReader (its attributes, constant inputs, input shapes) and adding
gates, parameters and frozen constants to the spec being built; a node the mapping cannot
express raises Unsupported with the reason. Each mapper's docstring says how it maps.

onnx_import reads the model (onnx_values folds the constant shape arithmetic) and calls these.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..core.net import available_bytes
from .onnx_writer import fresh_name, reshape_target

#: inputs a mapper needs as constants (options of the gate), per op type and input index
STATIC_INPUTS: dict[str, tuple[int, ...]] = {
    "Clip": (1, 2), "Pow": (1,), "Reshape": (1,), "Squeeze": (1,), "Unsqueeze": (1,),
    "Split": (1,), "Slice": (1, 2, 3, 4), "Tile": (1,), "Dropout": (1, 2),
    "ReduceSum": (1,), "ReduceMean": (1,), "ReduceSumSquare": (1,), "ReduceL1": (1,),
    "ReduceL2": (1,),
}
#: inputs that must be initializers because the gate owns them as its parameters
PARAM_INPUTS: dict[str, tuple[int, ...]] = {
    "Conv": (1, 2), "ConvTranspose": (1, 2), "Gemm": (1, 2), "PRelu": (1,), "BatchNormalization": (1, 2, 3, 4),
    "Gather": (0,),
}
FLOAT_TYPES = {1: np.float32, 11: np.float64}     # TensorProto.FLOAT, DOUBLE
INT_TYPES = {6, 7, 2, 3, 4, 5, 12, 13}            # the signed and unsigned integer types


class Unsupported(Exception):
    """A node the mapping cannot express; the message says why."""


@dataclass
class Static:
    """A tensor whose value is known at import: evaluated with the batch at two sizes, so
    `fixed` tells which entries do not follow the batch."""
    low: np.ndarray
    high: np.ndarray

    @property
    def fixed(self) -> np.ndarray:
        return np.asarray(self.low == self.high) if self.low.shape == self.high.shape else \
            np.zeros(self.low.shape, bool)

    def value(self, what: str) -> np.ndarray:
        if self.low.shape != self.high.shape or not np.all(self.fixed):
            raise Unsupported(f"{what} depends on the batch size")
        return self.low


@dataclass
class ImportState:
    """What the mappers share while one model is read."""
    file: str
    opset: int
    dtype: str
    shapes: dict[str, tuple | None]
    initializers: dict[str, np.ndarray]
    statics: dict[str, Static] = field(default_factory=dict)
    inputs: dict[str, dict] = field(default_factory=dict)
    params: dict[str, dict] = field(default_factory=dict)
    gates: list[dict] = field(default_factory=list)
    initial: dict[str, np.ndarray] = field(default_factory=dict)
    names: set[str] = field(default_factory=set)          # blob names in use
    gate_names: set[str] = field(default_factory=set)
    blobs: set[str] = field(default_factory=set)


class NodeReader:
    """One node being mapped: its attributes, inputs and outputs, and the helpers that declare
    gates, parameters and constants in the spec being built."""

    def __init__(self, model: ImportState, node: Any, index: int):
        from onnx import helper
        self.model, self.node = model, node
        self.op_type = node.op_type
        self.name = fresh_name(node.name or f"{node.op_type}_{index}", model.gate_names)
        self.named = False        # whether a gate has taken the node's name yet
        self.attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        self.inputs = list(node.input)
        self.outputs = list(node.output)
        self.count = 0

    # -- what the node reads ----------------------------------------------------------------------
    def attr(self, key: str, default: Any = None) -> Any:
        """An attribute's value. ONNX keeps float attributes in float32; each is read back as
        the shortest decimal that float32 number stands for (0.7, not 0.699999988), the value
        the writer meant, so that a float64 model computes what its author did."""
        value = self.attrs.get(key, default)
        if isinstance(value, bytes):
            return value.decode()
        if isinstance(value, float):
            return intended(value)
        if isinstance(value, list) and value and isinstance(value[0], float):
            return [intended(v) for v in value]
        return value

    def has(self, index: int) -> bool:
        return index < len(self.inputs) and self.inputs[index] != ""

    def shape(self, index: int = 0) -> tuple:
        shape = self.model.shapes.get(self.inputs[index])
        if shape is None:
            raise Unsupported(f"the shape of input {self.inputs[index]!r} is unknown")
        return shape

    def known(self, index: int = 0) -> tuple:
        shape = self.shape(index)
        if None in shape[1:]:
            raise Unsupported(f"input {self.inputs[index]!r} needs a known shape past the "
                              f"batch, got {shape}")
        return shape

    def is_static(self, index: int) -> bool:
        name = self.inputs[index]
        return name in self.model.statics or name in self.model.initializers

    def static(self, index: int, what: str | None = None) -> np.ndarray:
        """The constant value of input `index` (an initializer, a Constant, a folded value)."""
        name = self.inputs[index]
        if name in self.model.initializers:
            return self.model.initializers[name]
        if name in self.model.statics:
            return self.model.statics[name].value(what or f"input {name!r}")
        raise Unsupported(f"{what or 'input ' + repr(name)} must be a constant (an "
                          f"initializer), not computed at run time")

    def scalar(self, index: int) -> float | None:
        """The value of a constant input holding one number, else None."""
        if not self.is_static(index):
            return None
        value = np.asarray(self.static(index))
        return float(value.reshape(-1)[0]) if value.size == 1 and value.dtype.kind == "f" \
            else None

    def blob(self, index: int) -> str:
        """Input `index` as a blob a gate can read: a float initializer becomes a trainable
        `params:` entry, a float constant a frozen one."""
        name = self.inputs[index]
        model = self.model
        if name in model.blobs:
            return name
        if name in model.initializers:
            self._declare(name, model.initializers[name], trainable=True)
        elif name in model.statics:
            self._declare(name, self.static(index), trainable=False)
        else:
            raise Unsupported(f"input {name!r} is not produced by any node")
        return name

    def _declare(self, name: str, value: np.ndarray, trainable: bool) -> None:
        value = np.asarray(value)
        if value.dtype.kind != "f":
            raise Unsupported(f"{name!r} holds {value.dtype} values where a float tensor is "
                              "needed")
        entry: dict[str, Any] = {"shape": list(value.shape)}
        if not trainable:
            entry.update(lr_mult=0.0, decay_mult=0.0)
        if 0 in value.shape:
            raise Unsupported(f"{name!r} is an empty tensor")
        self.model.params[name] = entry
        self.model.initial[name] = value
        self.model.blobs.add(name)

    def owned(self, index: int, shape: tuple | None = None) -> dict:
        """A `param:` rule naming an initializer a gate owns (its value kept, reshaped to the
        gate's layout when `shape` is given; Unsupported when it holds another number of
        values)."""
        name = self.inputs[index]
        if name not in self.model.initializers:
            raise Unsupported(f"input {name!r} must be an initializer (the gate learns it)")
        value = self.model.initializers[name]
        if shape is not None and value.size != math.prod(shape):
            raise Unsupported(f"{name!r} holds {value.size} values where the gate needs "
                              f"shape {shape}")
        self.model.initial[name] = value if shape is None else value.reshape(shape)
        return {"name": name}

    # -- what the node writes ---------------------------------------------------------------------
    def out(self, index: int = 0) -> str:
        return self.outputs[index]

    def temp(self) -> str:
        self.count += 1
        return fresh_name(f"{self.name}/{self.count}", self.model.names)

    def gate(self, type_name: str, bottom: list[str], top: str | list[str] | None = None,
             param: list[dict] | None = None, **options: Any) -> str:
        """Add a gate; returns its (first) top. The node's first gate takes the node's name."""
        tops = top if isinstance(top, list) else [top or self.temp()]
        name = fresh_name(f"{self.name}/{type_name}", self.model.gate_names) if self.named \
            else self.name
        self.named = True
        entry = {"name": name, "type": type_name, "bottom": list(bottom), "top": tops,
                 **options}
        if param:
            entry["param"] = param
        self.model.gates.append(entry)
        self.model.blobs.update(tops)
        return tops[0] if tops else name

    def power(self, x: str, top: str | None = None, power: float = 1.0, scale: float = 1.0,
              shift: float = 0.0) -> str:
        return self.gate("Power", [x], top, power=power, scale=scale, shift=shift)

    def reshape(self, x: str, in_shape: tuple, out_shape: tuple, top: str | None = None) -> str:
        """A Reshape gate to `out_shape` (None: open; see onnx_writer.reshape_target)."""
        target = reshape_target(in_shape, out_shape)
        if target is None:
            raise Unsupported(f"the reshape to {out_shape} moves more than one open dimension")
        return self.gate("Reshape", [x], top, shape=target)


Mapper = Callable[[NodeReader], None]
MAPPERS: dict[str, Mapper] = {}


def mapper(*op_types: str):
    """Register the function as the mapping of these ONNX operators."""
    def register(fn: Mapper) -> Mapper:
        for op_type in op_types:
            MAPPERS[op_type] = fn
        return fn
    return register


# -- elementwise ---------------------------------------------------------------------------------
_UNARY = {"Relu": "ReLU", "Abs": "AbsVal", "Softplus": "BNLL", "Sigmoid": "Sigmoid",
          "Tanh": "Tanh", "Exp": "Exp", "Log": "Log"}


@mapper(*_UNARY)
def _unary(n: NodeReader) -> None:
    """One gate of the same meaning (Softplus is Caffe's BNLL)."""
    n.gate(_UNARY[n.op_type], [n.blob(0)], n.out())


@mapper("LeakyRelu")
def _leaky_relu(n: NodeReader) -> None:
    n.gate("ReLU", [n.blob(0)], n.out(), negative_slope=float(n.attr("alpha", 0.01)))


@mapper("Elu")
def _elu(n: NodeReader) -> None:
    n.gate("ELU", [n.blob(0)], n.out(), alpha=float(n.attr("alpha", 1.0)))


@mapper("Selu")
def _selu(n: NodeReader) -> None:
    """gamma * ELU(alpha)."""
    elu = n.gate("ELU", [n.blob(0)], alpha=float(n.attr("alpha", 1.67326319217681884765625)))
    n.power(elu, n.out(), scale=float(n.attr("gamma", 1.05070102214813232421875)))


@mapper("HardSigmoid")
def _hard_sigmoid(n: NodeReader) -> None:
    """Clip(alpha x + beta, 0, 1): Power, then Clip."""
    line = n.power(n.blob(0), scale=float(n.attr("alpha", 0.2)), shift=float(n.attr("beta", 0.5)))
    n.gate("Clip", [line], n.out(), min=0.0, max=1.0)


@mapper("HardSwish")
def _hard_swish(n: NodeReader) -> None:
    """x * Clip(x / 6 + 1/2, 0, 1): Power, Clip, Multiply."""
    x = n.blob(0)
    gate = n.gate("Clip", [n.power(x, scale=1.0 / 6.0, shift=0.5)], min=0.0, max=1.0)
    n.gate("Multiply", [x, gate], n.out())


@mapper("Celu")
def _celu(n: NodeReader) -> None:
    """alpha * ELU(x / alpha) (with ELU's alpha 1): Power, ELU, Power."""
    alpha = float(n.attr("alpha", 1.0))
    inner = n.gate("ELU", [n.power(n.blob(0), scale=1.0 / alpha)], alpha=1.0)
    n.power(inner, n.out(), scale=alpha)


@mapper("Softsign")
def _softsign(n: NodeReader) -> None:
    """x / (1 + |x|): AbsVal, Power (shift 1), Divide."""
    x = n.blob(0)
    n.gate("Divide", [x, n.power(n.gate("AbsVal", [x]), shift=1.0)], n.out())


@mapper("ThresholdedRelu")
def _thresholded_relu(n: NodeReader) -> None:
    """x where x > alpha, else 0: x times Caffe's Threshold (whose step has no gradient)."""
    x = n.blob(0)
    step = n.gate("Threshold", [x], threshold=float(n.attr("alpha", 1.0)))
    n.gate("Multiply", [x, step], n.out())


@mapper("LogSoftmax")
def _log_softmax(n: NodeReader) -> None:
    """Log of Softmax along `axis` (opset 13 on, or the last axis): a probability that
    underflows to 0 gives -inf where ONNX's shifted form stays finite."""
    shape = n.shape(0)
    axis = int(n.attr("axis", -1 if n.model.opset >= 13 else 1)) % max(len(shape), 1)
    if n.model.opset < 13 and axis != len(shape) - 1:
        raise Unsupported("a 2-D view before opset 13 on an axis other than the last")
    n.gate("Log", [n.gate("Softmax", [n.blob(0)], axis=axis)], n.out())


@mapper("Neg", "Reciprocal", "Sqrt")
def _power_of(n: NodeReader) -> None:
    """Caffe's Power: -x (scale -1), 1/x (power -1), sqrt(x) (power 0.5)."""
    settings = {"Neg": {"scale": -1.0}, "Reciprocal": {"power": -1.0},
                "Sqrt": {"power": 0.5}}[n.op_type]
    n.power(n.blob(0), n.out(), **settings)


@mapper("Pow")
def _pow(n: NodeReader) -> None:
    """x ^ y with a constant scalar y: Power."""
    exponent = n.scalar(1)
    if exponent is None:
        raise Unsupported("the exponent must be one constant number")
    n.power(n.blob(0), n.out(), power=exponent)


_LARGEST = float(np.finfo(np.float64).max)


@mapper("Clip")
def _clip(n: NodeReader) -> None:
    """Clip with constant bounds (a missing one: the largest float, as good as none)."""
    low = float(n.static(1, "min")) if n.has(1) else -_LARGEST
    high = float(n.static(2, "max")) if n.has(2) else _LARGEST
    if low > high:
        raise Unsupported(f"min {low} is above max {high} (ONNX then gives max everywhere)")
    n.gate("Clip", [n.blob(0)], n.out(), min=low, max=high)


@mapper("Softmax")
def _softmax(n: NodeReader) -> None:
    """Softmax along `axis` (opset 13 on). Before opset 13 the input is taken as 2-D, axes
    before `axis` against the rest: the same unless `axis` is not the last, when a Reshape to
    that 2-D view comes before and after."""
    shape = n.shape(0)
    axis = int(n.attr("axis", -1 if n.model.opset >= 13 else 1)) % max(len(shape), 1)
    if n.model.opset >= 13 or axis == len(shape) - 1:
        n.gate("Softmax", [n.blob(0)], n.out(), axis=axis)
        return
    flat_x = n.gate("Reshape", [n.blob(0)], shape=_two_d(shape, axis))
    back = [0 if d is None and i == 0 else -1 if d is None else d for i, d in enumerate(shape)]
    if back.count(-1) > 1:
        raise Unsupported(f"the input {shape} has more than one open dimension")
    n.gate("Reshape", [n.gate("Softmax", [flat_x], axis=1)], n.out(), shape=back)


_BINARY = {"Add": "Add", "Sub": "Subtract", "Mul": "Multiply", "Div": "Divide", "Max": "Max",
           "Min": "Min", "Sum": "Add", "Mean": "Add"}


@mapper(*_BINARY)
def _binary(n: NodeReader) -> None:
    """Numpy broadcasting, as ONNX's. A constant scalar operand of Add, Sub, Mul or Div becomes
    Caffe's Power (x + c, x * c, ...); Max, Min, Sum and Mean of more than two inputs are a
    chain of two-input gates (Mean then scaled by 1 / count)."""
    if n.op_type in ("Add", "Sub", "Mul", "Div") and _with_scalar(n):
        return
    gate = _BINARY[n.op_type]
    count = len(n.inputs)
    if count == 1:
        n.gate("Split", [n.blob(0)], n.out()) if n.op_type != "Mean" else \
            n.power(n.blob(0), n.out())
        return
    result = n.blob(0)
    for index in range(1, count):
        last = index == count - 1 and n.op_type != "Mean"
        result = n.gate(gate, [result, n.blob(index)], n.out() if last else None)
    if n.op_type == "Mean":
        n.power(result, n.out(), scale=1.0 / count)


def _with_scalar(n: NodeReader) -> bool:
    """Map x op c (or c op x) with c a constant number (a Constant, not an initializer, which
    stays a trainable parameter) to Power; False when neither operand is one."""
    for index in (1, 0):
        value = None if n.inputs[index] in n.model.initializers else n.scalar(index)
        other_shape = n.model.shapes.get(n.inputs[1 - index])
        if value is None or other_shape is None or len(np.shape(n.static(index))) > len(
                other_shape):
            continue
        x = n.blob(1 - index)
        settings = {("Add", 1): dict(shift=value), ("Add", 0): dict(shift=value),
                    ("Mul", 1): dict(scale=value), ("Mul", 0): dict(scale=value),
                    ("Sub", 1): dict(shift=-value), ("Sub", 0): dict(scale=-1.0, shift=value),
                    ("Div", 1): dict(scale=1.0 / value) if value else None,
                    ("Div", 0): dict(power=-1.0, scale=1.0 / value) if value else None,
                    }[(n.op_type, index)]
        if settings is None:
            continue
        n.power(x, n.out(), **settings)
        return True
    return False


# -- matrix products -----------------------------------------------------------------------------
@mapper("MatMul")
def _matmul(n: NodeReader) -> None:
    """MatMul (numpy's rules, as ONNX's)."""
    n.gate("MatMul", [n.blob(0), n.blob(1)], n.out())


@mapper("Gemm")
def _gemm(n: NodeReader) -> None:
    """alpha A B' + beta C with 2-D A (transA 0). transB 1 (torch's Linear): InnerProduct owning
    B as its W (and C as its b when C is (N,) and alpha = beta = 1). transB 0: MatMul with B a
    parameter blob. Then alpha and beta as Power scales and C added by Add, where needed."""
    if n.attr("transA", 0):
        raise Unsupported("transA = 1 (Gatework has no transpose gate)")
    alpha, beta = float(n.attr("alpha", 1.0)), float(n.attr("beta", 1.0))
    weights = n.model.initializers.get(n.inputs[1])
    bias = n.model.initializers.get(n.inputs[2]) if n.has(2) else None
    if n.attr("transB", 0):
        if weights is None:
            raise Unsupported("B with transB = 1 must be an initializer (InnerProduct's W)")
        fused = bias is not None and bias.shape == weights.shape[:1] and alpha == beta == 1.0
        param = [n.owned(1)] + ([n.owned(2)] if fused else [])
        product = n.gate("InnerProduct", [n.blob(0)], n.out() if fused or (
            not n.has(2) and alpha == 1.0) else None, param=param,
            num_output=int(weights.shape[0]), bias_term=fused)
        if fused:
            return
    else:
        product = n.gate("MatMul", [n.blob(0), n.blob(1)],
                         n.out() if not n.has(2) and alpha == 1.0 else None)
    if alpha != 1.0:
        product = n.power(product, None if n.has(2) else n.out(), scale=alpha)
    if n.has(2):
        c = n.blob(2) if beta == 1.0 else n.power(n.blob(2), scale=beta)
        n.gate("Add", [product, c], n.out())


@mapper("Gather")
def _gather(n: NodeReader) -> None:
    """Rows of a 2-D float initializer picked by integer indices (an embedding): Embed owning
    the table as its W."""
    table = n.model.initializers.get(n.inputs[0])
    if table is None or table.ndim != 2 or int(n.attr("axis", 0)) != 0:
        raise Unsupported("only rows (axis 0) of a 2-D initializer (an embedding) are taken")
    n.gate("Embed", [n.blob(1)], n.out(), param=[n.owned(0)], num_output=int(table.shape[1]),
           input_dim=int(table.shape[0]), bias_term=False)


# -- vision --------------------------------------------------------------------------------------
def _pads(n: NodeReader, kernel: list[int], strides: list[int], dilations: list[int]
          ) -> tuple[list[int], list[int]]:
    """(begin, end) padding per spatial axis, from `pads` or `auto_pad`."""
    auto = n.attr("auto_pad", "NOTSET")
    spatial = len(kernel)
    if auto in ("NOTSET", "VALID"):
        pads = list(n.attr("pads", [0] * 2 * spatial)) if auto == "NOTSET" else [0] * 2 * spatial
        return pads[:spatial], pads[spatial:]
    sizes = n.known(0)[2:]
    begin, end = [], []
    for size, k, s, d in zip(sizes, kernel, strides, dilations):
        total = max(0, (-(-size // s) - 1) * s + (k - 1) * d + 1 - size)
        small, large = total // 2, total - total // 2
        begin.append(small if auto == "SAME_UPPER" else large)
        end.append(large if auto == "SAME_UPPER" else small)
    return begin, end


def _kernel_geometry(n: NodeReader, gate: str, what: str):
    """A (transposed) convolution's W (an initializer, 4-D), kernel, strides and dilations."""
    weights = n.model.initializers.get(n.inputs[1])
    if weights is None:
        raise Unsupported(f"W must be an initializer ({gate} learns it)")
    if weights.ndim != 4:
        raise Unsupported(f"only 2-D {what} is mapped, got {weights.ndim - 2}-D")
    return (weights, list(weights.shape[2:]), list(n.attr("strides", [1, 1])),
            list(n.attr("dilations", [1, 1])))


def _symmetric(pads: tuple[list[int], list[int]]) -> tuple[list[int], list[int]]:
    begin, end = pads
    if begin != end:
        raise Unsupported(f"asymmetric padding {begin} / {end} (Caffe pads both sides alike)")
    return begin, end


@mapper("Conv")
def _conv(n: NodeReader) -> None:
    """Convolution (2-D, symmetric padding) owning W and B."""
    weights, kernel, strides, dilations = _kernel_geometry(n, "Convolution", "convolution")
    begin, end = _symmetric(_pads(n, kernel, strides, dilations))
    param = [n.owned(1)] + ([n.owned(2)] if n.has(2) else [])
    n.gate("Convolution", [n.blob(0)], n.out(), param=param, num_output=int(weights.shape[0]),
           kernel_size=kernel, stride=strides, pad=begin, dilation=dilations,
           group=int(n.attr("group", 1)), bias_term=n.has(2))


@mapper("ConvTranspose")
def _conv_transpose(n: NodeReader) -> None:
    """Deconvolution (2-D, symmetric padding) owning W and B: ONNX's W (C, M / group, kh, kw)
    is Caffe's layout. The padding comes from `pads`, or from `output_shape` / `auto_pad` as
    ONNX derives it (the total split begin/end); output_padding has no Caffe form."""
    weights, kernel, strides, dilations = _kernel_geometry(n, "Deconvolution",
                                                           "transposed convolution")
    if any(n.attr("output_padding", [0, 0])):
        raise Unsupported(f"output_padding {list(n.attr('output_padding'))} (extra rows or "
                          "columns at the end): Caffe's Deconvolution has none")
    begin, end = _symmetric(_transposed_pads(n, kernel, strides, dilations))
    group = int(n.attr("group", 1))
    param = [n.owned(1)] + ([n.owned(2)] if n.has(2) else [])
    n.gate("Deconvolution", [n.blob(0)], n.out(), param=param,
           num_output=int(weights.shape[1]) * group, kernel_size=kernel, stride=strides,
           pad=begin, dilation=dilations, group=group, bias_term=n.has(2))


def _transposed_pads(n: NodeReader, kernel: list[int], strides: list[int],
                     dilations: list[int]) -> tuple[list[int], list[int]]:
    """ConvTranspose's (begin, end) padding per spatial axis. Given `output_shape` (or
    auto_pad SAME_*, which asks for input size times stride), the total padding is the full
    output's size minus the one asked for, split as ONNX says: an odd one more at the end for
    SAME_UPPER, at the beginning otherwise."""
    auto = n.attr("auto_pad", "NOTSET")
    wanted = n.attr("output_shape")
    if auto == "VALID" or (auto == "NOTSET" and not wanted):
        pads = [0] * 2 * len(kernel) if auto == "VALID" else \
            list(n.attr("pads", [0] * 2 * len(kernel)))
        return pads[:len(kernel)], pads[len(kernel):]
    sizes = n.known(0)[2:]
    if not wanted:
        wanted = [size * s for size, s in zip(sizes, strides)]
    begin, end = [], []
    for size, out, k, s, d in zip(sizes, list(wanted)[-len(kernel):], kernel, strides,
                                  dilations):
        full = s * (size - 1) + (k - 1) * d + 1
        if out > full:
            raise Unsupported(f"output_shape {list(wanted)} asks for more than the full output "
                              f"({full} on an axis): rows or columns added at the end, which "
                              "Caffe's Deconvolution has no form for")
        small, large = (full - out) // 2, full - out - (full - out) // 2
        begin.append(small if auto == "SAME_UPPER" else large)
        end.append(large if auto == "SAME_UPPER" else small)
    return begin, end


@mapper("MaxPool", "AveragePool")
def _pool(n: NodeReader) -> None:
    """Pooling with Caffe's windows: the padding at the start is Caffe's pad, and CEIL or
    FLOOR rounding is chosen to give ONNX's output size (the windows then coincide). AVE: where
    ONNX's divisor (count_include_pad, or the window inside the image) differs from Caffe's
    (the window inside the padded image), a frozen factor multiplies the result."""
    if n.attr("dilations") and any(d != 1 for d in n.attr("dilations")):
        raise Unsupported("dilated pooling")
    if len(n.outputs) > 1 and n.outputs[1]:
        raise Unsupported("the Indices output")
    kernel = list(n.attr("kernel_shape"))
    if len(kernel) != 2:
        raise Unsupported(f"only 2-D pooling is mapped, got {len(kernel)}-D")
    strides = list(n.attr("strides", [1, 1]))
    begin, end = _pads(n, kernel, strides, [1, 1])
    sizes = n.known(0)[2:]
    ceil = bool(n.attr("ceil_mode", 0))
    counts = [_onnx_count(size, k, s, b, e, ceil) for size, k, s, b, e in
              zip(sizes, kernel, strides, begin, end)]
    if any(b >= k for b, k in zip(begin, kernel)):
        raise Unsupported(f"padding {begin} not smaller than the kernel {kernel}")
    mode = next((m for m in ("CEIL", "FLOOR") if all(
        _caffe_count(size, k, s, b, m) == c for size, k, s, b, c in
        zip(sizes, kernel, strides, begin, counts))), None)
    if mode is None:
        raise Unsupported(f"padding {begin} / {end} gives windows Caffe's pooling cannot")
    is_max = n.op_type == "MaxPool"
    options = dict(pool="MAX" if is_max else "AVE", kernel_size=kernel, stride=strides,
                   pad=begin, round_mode=mode)
    if is_max:
        n.gate("Pooling", [n.blob(0)], n.out(), **options)
        return
    needed = 8 * (math.prod(counts) + sum(counts))      # float64 factors, as computed
    if needed > available_bytes():
        raise Unsupported(f"the divisor correction of its {' x '.join(map(str, counts))} "
                          f"outputs needs {needed / 2**30:.1f} GiB, more than the "
                          f"{available_bytes() / 2**30:.1f} GiB free")
    ratio = _divisor_ratio(sizes, kernel, strides, begin, end, counts,
                           bool(n.attr("count_include_pad", 0)))
    if ratio is None:
        n.gate("Pooling", [n.blob(0)], n.out(), **options)
        return
    pooled = n.gate("Pooling", [n.blob(0)], **options)
    factor = f"{n.name}/divisor_ratio"
    n.model.params[factor] = {"shape": list(ratio.shape), "lr_mult": 0.0, "decay_mult": 0.0}
    n.model.initial[factor] = ratio
    n.model.blobs.add(factor)
    n.gate("Multiply", [pooled, factor], n.out())


def _onnx_count(size: int, k: int, s: int, begin: int, end: int, ceil: bool) -> int:
    span = size + begin + end - k
    count = (-(-span // s) if ceil else span // s) + 1
    if ceil and (count - 1) * s >= size + begin:   # a last window starting in the end padding
        count -= 1
    return count


def _caffe_count(size: int, k: int, s: int, pad: int, mode: str) -> int:
    span = size + 2 * pad - k
    count = (-(-span // s) if mode == "CEIL" else span // s) + 1
    return count - 1 if (count - 1) * s >= size + pad else count


def _divisor_ratio(sizes, kernel, strides, begin, end, counts, include_pad: bool
                   ) -> np.ndarray | None:
    """Caffe's AVE divisor over ONNX's, per output position (None when they agree): Caffe
    clips a window to the padded image (pad both sides), ONNX to the padded image (its own end
    padding) when counting the padding, else to the image itself."""
    parts = []
    for size, k, s, b, e, count in zip(sizes, kernel, strides, begin, end, counts):
        start = np.arange(count) * s - b
        caffe = np.minimum(start + k, size + b) - start
        if include_pad:
            onnx = np.minimum(start + k, size + e) - start
        else:
            onnx = np.minimum(start + k, size) - np.maximum(start, 0)
        parts.append((caffe, onnx))
    (caffe_h, onnx_h), (caffe_w, onnx_w) = parts
    ratio = np.outer(caffe_h, caffe_w) / np.outer(onnx_h, onnx_w)
    return None if np.all(ratio == 1.0) else ratio


@mapper("GlobalMaxPool", "GlobalAveragePool")
def _global_pool(n: NodeReader) -> None:
    if len(n.shape(0)) != 4:
        raise Unsupported("only 2-D pooling is mapped")
    n.gate("Pooling", [n.blob(0)], n.out(), global_pooling=True,
           pool="MAX" if n.op_type == "GlobalMaxPool" else "AVE")


# -- normalisation -------------------------------------------------------------------------------
@mapper("BatchNormalization")
def _batch_norm(n: NodeReader) -> None:
    """BatchNorm with the moving averages in the test phase and the batch's statistics in the
    train phase (ONNX's inference and training modes); mean and var become its buffers,
    scale and B its learned gamma and beta (or, both constants 1 and 0, no affine part)."""
    if n.attr("training_mode", 0) or len(n.outputs) > 1:
        raise Unsupported("training mode (the running statistics outputs)")
    channels = n.known(0)[1]
    constants = [n.inputs[i] not in n.model.initializers for i in (1, 2)]
    if all(constants):
        if not (np.all(n.static(1) == 1) and np.all(n.static(2) == 0)):
            raise Unsupported("constant scale and B other than 1 and 0")
        param = None
    else:
        param = [n.owned(1, (channels,)), n.owned(2, (channels,))]
    mean, var = (np.asarray(n.static(i), dtype=np.float64) for i in (3, 4))
    for what, value in (("mean", mean), ("var", var)):
        if value.size != channels:
            raise Unsupported(f"{what} holds {value.size} values for {channels} channels")
    mean, var = mean.reshape(channels), var.reshape(channels)
    n.gate("BatchNorm", [n.blob(0)], n.out(), param=param, affine=param is not None,
           eps=float(n.attr("epsilon", 1e-5)),
           moving_average_fraction=float(n.attr("momentum", 0.9)))
    gate = n.model.gates[-1]["name"]
    n.model.initial.update({f"{gate}.mean": mean, f"{gate}.variance": var,
                            f"{gate}.scale_factor": np.ones(1)})


@mapper("LRN")
def _lrn(n: NodeReader) -> None:
    """Caffe's LRN across channels (the same formula for an odd size)."""
    size = int(n.attr("size"))
    if size % 2 == 0:
        raise Unsupported(f"an even size ({size}): Caffe's window is centred (odd sizes)")
    if len(n.shape(0)) != 4:
        raise Unsupported("Caffe's LRN takes NCHW input")
    n.gate("LRN", [n.blob(0)], n.out(), local_size=size, alpha=float(n.attr("alpha", 1e-4)),
           beta=float(n.attr("beta", 0.75)), k=float(n.attr("bias", 1.0)))


@mapper("PRelu")
def _prelu(n: NodeReader) -> None:
    """PReLU owning the slope: one per channel ((C,) or (C, 1, ...), kept as (C,)) or one in
    all ((1,) or a scalar, kept as Caffe's channel_shared shape ())."""
    slope = n.model.initializers.get(n.inputs[1])
    shape = n.shape(0)
    if slope is None:
        raise Unsupported("the slope must be an initializer (PReLU learns it)")
    if slope.size == 1:
        n.gate("PReLU", [n.blob(0)], n.out(), param=[n.owned(1, ())], channel_shared=True)
        return
    channels = shape[1] if len(shape) > 1 else None
    if slope.size != channels or slope.shape[1:] != (1,) * (slope.ndim - 1) or (
            slope.ndim > 1 and slope.ndim != len(shape) - 1):
        raise Unsupported(f"slope of shape {slope.shape}: Caffe's PReLU has one per channel "
                          "(axis 1) or one for all")
    n.gate("PReLU", [n.blob(0)], n.out(), param=[n.owned(1, (channels,))])


# -- reductions ----------------------------------------------------------------------------------
def _reduce_axes(n: NodeReader) -> list[int] | None:
    """The axes reduced: the `axes` input (opset 13/18 on) or attribute; None for all."""
    ndim = len(n.shape(0))
    axes = n.static(1, "axes") if n.has(1) else n.attr("axes")
    if axes is None or len(axes) == 0:
        if n.attr("noop_with_empty_axes", 0):
            return []
        return None
    return sorted(int(a) % ndim for a in np.asarray(axes).reshape(-1))


@mapper("ReduceSum", "ReduceMean", "ReduceSumSquare", "ReduceL1", "ReduceL2")
def _reduce(n: NodeReader) -> None:
    """Sum or Mean over the axes (after Multiply x x or AbsVal for the squared and L1 forms;
    ReduceL2 then takes Power 0.5)."""
    axes = _reduce_axes(n)
    keepdims = bool(n.attr("keepdims", 1))
    x = n.blob(0)
    if axes == []:
        n.gate("Split", [x], n.out())
        return
    if n.op_type in ("ReduceSumSquare", "ReduceL2"):
        x = n.gate("Multiply", [x, x])
    elif n.op_type == "ReduceL1":
        x = n.gate("AbsVal", [x])
    gate = "Mean" if n.op_type == "ReduceMean" else "Sum"
    top = None if n.op_type == "ReduceL2" else n.out()
    reduced = n.gate(gate, [x], top, axis=axes, keepdims=keepdims)
    if n.op_type == "ReduceL2":
        n.power(reduced, n.out(), power=0.5)


# -- shapes --------------------------------------------------------------------------------------
@mapper("Identity", "Dropout", "Cast")
def _identity(n: NodeReader) -> None:
    """Identity, a Cast to the net's float type and a Cast of integer input to integers: Split
    with one top. Dropout: Caffe's Dropout with the ratio (the identity in the test phase, as
    in ONNX's inference)."""
    if n.op_type == "Cast":
        target, to = FLOAT_TYPES.get(int(n.attr("to"))), int(n.attr("to"))
        integer = to in INT_TYPES and n.inputs[0] in n.model.inputs and \
            n.model.inputs[n.inputs[0]].get("dtype") == "int"
        if not integer and (target is None or np.dtype(target) != np.dtype(n.model.dtype)):
            raise Unsupported("a cast to another type than the net's float type (or of an "
                              "integer input to integers)")
    if n.op_type == "Dropout":
        if len(n.outputs) > 1 and n.outputs[1]:
            raise Unsupported("the mask output")
        training = n.has(2) and bool(np.asarray(n.static(2, "training_mode")).reshape(-1)[0])
        if training:
            raise Unsupported("training_mode true (ONNX's random mask cannot be reproduced)")
        ratio = float(n.static(1, "ratio")) if n.has(1) else float(n.attr("ratio", 0.5))
        n.gate("Dropout", [n.blob(0)], n.out(), dropout_ratio=ratio)
        return
    n.gate("Split", [n.blob(0)], n.out())


@mapper("Flatten")
def _flatten(n: NodeReader) -> None:
    """To 2-D (axes before `axis` against the rest): Caffe's Flatten for axis 1, else
    Reshape."""
    shape = n.shape(0)
    axis = int(n.attr("axis", 1))
    axis = axis + len(shape) if axis < 0 else axis
    if axis == 1 and len(shape) > 1:
        n.gate("Flatten", [n.blob(0)], n.out(), axis=1)
        return
    n.gate("Reshape", [n.blob(0)], n.out(), shape=_two_d(shape, axis))


def _two_d(shape: tuple, axis: int) -> list[int]:
    """Reshape's target for ONNX's 2-D view (axes before `axis` against the rest): the side
    with the open dimension is inferred (-1)."""
    lead, rest = shape[:axis], shape[axis:]
    if None in lead and None in rest:
        raise Unsupported(f"open dimensions on both sides of axis {axis} in {shape}")
    if None in lead:
        return [-1, math.prod(rest)]
    return [math.prod(lead), -1]


@mapper("Reshape")
def _reshape(n: NodeReader) -> None:
    """Caffe's Reshape takes ONNX's shape as it is (0 copies, -1 infers); an entry that follows
    the batch size becomes 0 where the input's open dimension sits, else -1."""
    if n.attr("allowzero", 0) and 0 in n.static(1, "shape"):
        raise Unsupported("allowzero with a 0 in the shape (an empty tensor)")
    static = n.model.statics.get(n.inputs[1])
    if static is None:
        target = [int(d) for d in n.static(1, "shape")]
    else:
        in_shape = n.shape(0)
        target = [int(d) if fixed else (0 if i < len(in_shape) and in_shape[i] is None else -1)
                  for i, (d, fixed) in enumerate(zip(static.low.reshape(-1),
                                                     static.fixed.reshape(-1)))]
    if target.count(-1) > 1:
        raise Unsupported(f"shape {target} infers more than one dimension")
    n.gate("Reshape", [n.blob(0)], n.out(), shape=target)


@mapper("Squeeze", "Unsqueeze")
def _squeeze(n: NodeReader) -> None:
    """Reshape to the squeezed or unsqueezed shape."""
    shape = n.shape(0)
    axes = n.static(1, "axes") if n.has(1) else n.attr("axes")
    if n.op_type == "Squeeze":
        if axes is None:
            axes = [i for i, d in enumerate(shape) if d == 1]
        drop = {int(a) % len(shape) for a in np.asarray(axes).reshape(-1)}
        out = tuple(d for i, d in enumerate(shape) if i not in drop)
    else:
        rank = len(shape) + len(np.asarray(axes).reshape(-1))
        insert = {int(a) % rank for a in np.asarray(axes).reshape(-1)}
        dims = iter(shape)
        out = tuple(1 if i in insert else next(dims) for i in range(rank))
    n.reshape(n.blob(0), shape, out, n.out())


@mapper("Concat")
def _concat(n: NodeReader) -> None:
    n.gate("Concat", [n.blob(i) for i in range(len(n.inputs))], n.out(),
           axis=int(n.attr("axis")))


@mapper("Split")
def _split(n: NodeReader) -> None:
    """Caffe's Slice at the running sums of the sizes (`split`, or equal parts)."""
    shape = n.shape(0)
    axis = int(n.attr("axis", 0)) % len(shape)
    size = shape[axis]
    if n.has(1):
        sizes = [int(s) for s in n.static(1, "split")]
    elif n.attr("split"):
        sizes = [int(s) for s in n.attr("split")]
    else:
        if size is None:
            raise Unsupported("equal parts of an open dimension")
        parts = len(n.outputs)
        step = -(-size // parts)
        sizes = [min(step, size - step * i) for i in range(parts)]
    points = list(np.cumsum(sizes)[:-1])
    n.gate("Slice", [n.blob(0)], list(n.outputs), axis=axis,
           slice_point=[int(p) for p in points])


@mapper("Slice")
def _slice(n: NodeReader) -> None:
    """Per sliced axis, Caffe's Slice cutting at start and end (step 1 only); the pieces
    outside go to a Silence gate."""
    shape = n.shape(0)
    starts = [int(v) for v in n.static(1, "starts")]
    ends = [int(v) for v in n.static(2, "ends")]
    axes = [int(v) for v in n.static(3, "axes")] if n.has(3) else list(range(len(starts)))
    steps = [int(v) for v in n.static(4, "steps")] if n.has(4) else [1] * len(starts)
    if any(s != 1 for s in steps):
        raise Unsupported(f"steps {steps} (Caffe's Slice cuts contiguous pieces)")
    x, cuts = n.blob(0), []
    for start, end, axis in zip(starts, ends, axes):
        axis %= len(shape)
        size = shape[axis]
        if size is None:
            raise Unsupported(f"slicing the open dimension {axis}")
        start = min(max(start + size if start < 0 else start, 0), size)
        end = min(max(end + size if end < 0 else end, 0), size)
        if end <= start:
            raise Unsupported("an empty slice")
        if (start, end) != (0, size):
            cuts.append((axis, start, end, size))
    if not cuts:
        n.gate("Split", [x], n.out())
        return
    for index, (axis, start, end, size) in enumerate(cuts):
        points = [p for p in (start, end) if 0 < p < size]
        tops = [n.temp() for _ in range(len(points) + 1)]
        keep = 1 if start > 0 else 0
        if index == len(cuts) - 1:
            tops[keep] = n.out()
        n.gate("Slice", [x], tops, axis=axis, slice_point=points)
        rest = [t for i, t in enumerate(tops) if i != keep]
        n.gate("Silence", rest, [])
        x = tops[keep]


@mapper("Tile")
def _tile(n: NodeReader) -> None:
    """Caffe's Tile once per repeated axis."""
    repeats = [int(r) for r in n.static(1, "repeats")]
    x = n.blob(0)
    axes = [i for i, r in enumerate(repeats) if r != 1]
    if any(r < 1 for r in repeats):
        raise Unsupported(f"repeats {repeats} (0 makes an empty tensor)")
    if not axes:
        n.gate("Split", [x], n.out())
        return
    for index, axis in enumerate(axes):
        x = n.gate("Tile", [x], n.out() if index == len(axes) - 1 else None, axis=axis,
                   tiles=repeats[axis])


def intended(value: float) -> float:
    """The shortest decimal that rounds to the same float32 as `value`."""
    return float(str(np.float32(value)))
