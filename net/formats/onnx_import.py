"""Reading an ONNX model as a Gatework net: the graph mapped onto gates, the initializers kept.

    from net.formats.onnx_import import load_onnx, read_onnx
    net = load_onnx("model.onnx")        # a Net holding the model's weights, ready to train
    spec = read_onnx("model.onnx")       # the validated NetSpec (what Net.from_file reads)

What becomes what:
- graph inputs (those that are not initializers) become `inputs:`, an unnamed dimension (the
  batch) an open one (null); integer inputs are declared `dtype: int`;
- a float initializer becomes a trainable parameter under its ONNX name: one a gate owns
  (Conv's W and B, Gemm's B and C, PRelu's slope, BatchNormalization's scale and B, Gather's
  table) through the gate's `param: [{name: ...}]`, any other one a `params:` entry read as a
  blob. Its value is in `spec.initial` and `load_onnx` (and Net.from_file, once the Net copies
  a spec's initial values) puts it in place. BatchNormalization's mean and var become the
  BatchNorm gate's buffers `<gate>.mean`, `<gate>.variance` (scale factor 1);
- a float Constant node used as a tensor becomes a frozen parameter (lr_mult and decay_mult 0);
- integer tensors computed from constants and from shapes (Shape, Gather, Concat, ... as
  exporters write a reshape) are folded at import, evaluated by onnx's reference runtime; a value
  that depends on the batch size is evaluated at two sizes to find which entries follow it
  (onnx_values.Folder: which operators, and how many values a model may fold);
- every initializer and Constant is checked against the data it holds before it is read
  (onnx_values.tensor_array), so a file cannot declare more than it carries;
- each node becomes one gate or a few (onnx_mappers.MAPPERS; each mapper's docstring says how),
  named after the node (`<node>/<step>` for the helpers of a composition).
Every node that cannot be mapped is listed in one error, with its name and the reason.
Imported gates are Caffe's, so an ONNX feature without a Caffe counterpart is refused by name
(asymmetric convolution padding, a transposed Gemm input, ...); the README's table of
differences lists what the ONNX node tests found.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..core.config import parse_config
from ..core.net import Net
from ..core.spec import NetSpec
from .onnx_mappers import (FLOAT_TYPES, INT_TYPES, MAPPERS, PARAM_INPUTS, STATIC_INPUTS,
                           ImportState, NodeReader, Unsupported)
from .onnx_values import Folder, OnnxImportError, tensor_array
from .onnx_writer import require_onnx


def read_onnx(path: str | Path) -> NetSpec:
    """The model at `path` as a validated NetSpec; the initializers' values (and
    BatchNormalization's statistics) are in `spec.initial`, by the net's names."""
    onnx = require_onnx()
    file = str(path)
    try:
        model = onnx.load(file)
    except (OSError, Exception) as err:          # a protobuf DecodeError has no common base
        raise OnnxImportError(f"cannot read the ONNX model: {err}", file) from None
    return spec_from_model(model, file, Path(path).parent)


def spec_from_model(model: Any, file: str = "<onnx>", base_dir: Path | None = None) -> NetSpec:
    """An `onnx.ModelProto` as a validated NetSpec (see `read_onnx`)."""
    onnx = require_onnx()
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    graph = model.graph
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception as err:                     # the inference raises several kinds
        raise OnnxImportError(f"the model does not pass ONNX shape inference: {err}",
                              file) from None
    shapes, types = _shapes(inferred.graph)
    initializers = _initializers(graph, file)
    dtype = _float_type(graph, initializers, types, file)
    state = ImportState(file, opset, dtype, shapes, initializers)
    folder = Folder(state, types, model.ByteSize())
    state.names.update(shapes)
    state.names.update(initializers)
    for value in graph.input:
        if value.name in initializers:
            continue
        elem = types.get(value.name)
        if elem not in FLOAT_TYPES and elem not in INT_TYPES:
            raise OnnxImportError(f"input {value.name!r} has an element type Gatework cannot "
                                  "feed (floats and integers only)", file)
        entry: dict[str, Any] = {"shape": list(shapes.get(value.name) or [])}
        if elem in INT_TYPES:
            entry["dtype"] = "int"
        state.inputs[value.name] = entry
        state.blobs.add(value.name)
    refused, blocked = [], set()
    for index, node in enumerate(graph.node):
        if blocked.intersection(node.input):       # downstream of a refused node: not listed
            blocked.update(node.output)
            continue
        refused_before = len(refused)
        _read_node(state, folder, node, index, refused)
        if len(refused) > refused_before:
            blocked.update(node.output)
    if refused:
        raise OnnxImportError(f"{len(refused)} node{'s' if len(refused) > 1 else ''} cannot be "
                              f"mapped onto Gatework gates: " + "; ".join(refused), file)
    missing = [o.name for o in graph.output if o.name not in state.blobs]
    if missing:
        raise OnnxImportError(f"output {', '.join(map(repr, missing))} is not computed by a "
                              "gate (a constant or an input as an output)", file)
    if not state.gates:
        raise OnnxImportError("the model has no node Gatework can run", file)
    config = {"name": graph.name or Path(file).stem, "dtype": dtype, "inputs": state.inputs,
              "params": state.params, "gates": state.gates}
    spec = parse_config(config, file=file, base_dir=base_dir)
    spec.initial = state.initial
    return spec


def _read_node(state: ImportState, folder: Folder, node: Any, index: int,
               refused: list[str]) -> None:
    """Fold the node, or map it onto gates; a node that cannot be is added to `refused`."""
    if node.domain not in ("", "ai.onnx"):
        refused.append(f"{node.name or node.op_type} ({node.domain}.{node.op_type}): not an "
                       "ai.onnx operator")
        return
    if folder.fold(node, index):
        return
    mapping = MAPPERS.get(node.op_type)
    mapped = NodeReader(state, node, index)
    if mapping is None:
        refused.append(f"{mapped.name} ({node.op_type}): no Gatework mapping")
        return
    try:
        mapping(mapped)
    except Unsupported as err:
        refused.append(f"{mapped.name} ({node.op_type}): {err}")


def _initializers(graph: Any, file: str) -> dict[str, np.ndarray]:
    """The graph's initializers by name, each checked against its data (tensor_array)."""
    return {t.name: tensor_array(t, f"initializer {t.name!r}", file) for t in graph.initializer}


def _shapes(graph: Any) -> tuple[dict[str, tuple | None], dict[str, int]]:
    """Shape (None for a symbolic or unknown dimension) and element type of every value the
    graph (after shape inference) describes."""
    shapes, types = {}, {}
    for value in list(graph.input) + list(graph.value_info) + list(graph.output):
        tensor = value.type.tensor_type
        types[value.name] = tensor.elem_type
        if tensor.HasField("shape"):
            shapes[value.name] = tuple(d.dim_value if d.HasField("dim_value") else None
                                       for d in tensor.shape.dim)
    for tensor in graph.initializer:
        shapes[tensor.name] = tuple(tensor.dims)
        types[tensor.name] = tensor.data_type
    return shapes, types


def _float_type(graph: Any, initializers: dict, types: dict, file: str) -> str:
    """float64 when the model computes in double, float32 when in float; anything else (float16,
    bfloat16) is refused."""
    floats = {types.get(v.name) for v in list(graph.input) + list(graph.output)}
    floats |= {types.get(name) for name in initializers}
    floats = {t for t in floats if t is not None and t not in INT_TYPES and t != 9}
    if floats - set(FLOAT_TYPES):
        raise OnnxImportError("the model computes in a float type Gatework does not (float32 "
                              "and float64 only)", file)
    return "float64" if 11 in floats else "float32"


def load_onnx(path: str | Path, phase: str = "train", seed: int | None = None) -> Net:
    """A Net built from the model at `path`, holding its initializers' values (the Net copies
    `spec.initial` in)."""
    return Net(read_onnx(path), phase, seed)


def load_onnx_model(model: Any, file: str = "<onnx>", phase: str = "train",
                    seed: int | None = None) -> Net:
    """A Net built from an `onnx.ModelProto`, holding its initializers' values."""
    return Net(spec_from_model(model, file), phase, seed)


def read_onnx_weights(path: Path, net: Net) -> dict[str, np.ndarray]:
    """The weights reader for `Net.load_weights("model.onnx")`: the model's initializers by
    name (an exported model's are the net's own parameter names), except BatchNormalization's
    mean and var, which go to the buffers `<node>.mean` and `<node>.variance` of the gate the
    importer names after the node (with `<node>.scale_factor` 1)."""
    onnx = require_onnx()
    try:
        model = onnx.load(str(path))
    except (OSError, Exception) as err:
        raise OnnxImportError(f"cannot read the ONNX model: {err}", str(path)) from None
    arrays = _initializers(model.graph, str(path))
    weights = dict(arrays)
    for index, node in enumerate(model.graph.node):
        if node.op_type != "BatchNormalization" or len(node.input) != 5:
            continue
        gate = node.name or f"BatchNormalization_{index}"
        for key, source in (("mean", node.input[3]), ("variance", node.input[4])):
            if source in arrays:
                weights.pop(source, None)
                weights[f"{gate}.{key}"] = arrays[source]
        weights[f"{gate}.scale_factor"] = np.ones(1)
    return weights


def register() -> None:
    """Let load_config, Net.from_file and the scripts read `.onnx` configs, and
    Net.load_weights read `.onnx` weights."""
    from ..core.config import register_reader
    from ..core.state import register_weights_reader
    register_reader(".onnx", read_onnx)
    register_weights_reader(".onnx", read_onnx_weights)


__all__ = ["read_onnx", "load_onnx", "load_onnx_model", "spec_from_model", "read_onnx_weights",
           "register", "MAPPERS", "STATIC_INPUTS", "PARAM_INPUTS", "OnnxImportError"]
