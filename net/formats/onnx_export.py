"""Writing a Gatework net as an ONNX model: the test-phase graph, ready for onnxruntime.

    from net.formats.onnx_export import export_onnx
    model = export_onnx(net, "lenet.onnx")          # an onnx.ModelProto, also written to the file

What is written: the gates of the test phase, in execution order, each as one ONNX operator or
a few; every open dimension of an input (the batch) as the symbolic dimension "N"; every
parameter as an initializer under its Gatework name (`conv1.W`); BatchNorm's moving averages as
the initializers `<gate>.mean` and `<gate>.variance` (already divided by Caffe's scale factor);
the constants a composition needs as Constant nodes, so that only learned arrays are
initializers. `onnx.checker` checks the model before it is returned.

Losses. A deployed model has no labels, so by default the gates that read them are left out:
SoftmaxWithLoss becomes its probabilities (a Softmax along its class axis, named after its
second top if it has one, else `prob`), every other loss and Accuracy is dropped, and an input
read only by them (the label) is not an input of the model. `losses=True` writes them as well,
as the ONNX computations of Caffe's formulas, the labels becoming int64 inputs.

Where ONNX's operator differs from Caffe's layer, the export composes operators so the numbers
stay Caffe's (each exporter's docstring says how): Pooling's ceil-mode output size (explicit end
padding) and AVE divisor (a constant correction factor), LRN within each channel (an average
pool of the squares), Scale and Bias along any axes (Unsqueeze), ArgMax's tie order (a reversed
search). A gate with no exporter here (a plugin gate, RNN, LSTM) stops the export with one error
naming every such gate.

The gate-by-gate exporters are in onnx_exporters, the builder they write with in onnx_writer.
`onnx` is needed only here (the `onnx` extra); importing these modules without it is fine, the
export says what to install.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from gates.base import canonical_axis

from ..core.net import Net
from ..core.runner import Step
from .onnx_exporters import EXPORTERS
from .onnx_writer import GateWriter, OnnxExportError, OnnxGraph, float_type, int_type, require_onnx

DEFAULT_OPSET = 17
MIN_OPSET = 13
MAX_OPSET = 21
BATCH_DIM = "N"
#: the gate types that read labels: left out of a deployed model (SoftmaxWithLoss is replaced)
LABEL_READERS = ("Accuracy",)


def _deploy_steps(net: Net, steps: list[Step]) -> tuple[list[Step], set[str]]:
    """The steps of a deployed model: SoftmaxWithLoss reads only its scores and writes its
    probabilities; the other label readers, and whatever reads a loss or an accuracy, are left
    out. Returns the steps and the names of the SoftmaxWithLoss gates so replaced."""
    kept, replaced, dropped = [], set(), set()
    taken = set(net.shapes)
    for step in steps:
        cls = step.spec.cls
        if cls.type_name == "SoftmaxWithLoss" and not dropped.intersection(step.inputs):
            name = step.tops[1] if len(step.tops) == 2 else (
                "prob" if "prob" not in taken else f"{step.spec.name}_prob")
            taken.add(name)
            kept.append(Step(step.gate, step.spec, step.inputs[:1], (name,)))
            replaced.add(step.spec.name)
            dropped.update(step.tops)
        elif (dropped.intersection(step.inputs) or cls.loss_gate() or
              cls.type_name in LABEL_READERS):
            dropped.update(step.tops)
        else:
            kept.append(step)
    return kept, replaced


def _needed(steps: list[Step], wanted: list[str]) -> list[Step]:
    """The steps the `wanted` blobs depend on, in order."""
    required, kept = set(wanted), []
    for step in reversed(steps):
        if required.intersection(step.tops):
            kept.append(step)
            required.update(step.inputs)
    return kept[::-1]


def export_onnx(net: Net, path: str | Path | None = None, opset: int = DEFAULT_OPSET,
                losses: bool = False, outputs: list[str] | None = None) -> Any:
    """The net's test-phase graph as an `onnx.ModelProto`, checked by `onnx.checker`, and
    written to `path` when given (see the module docstring for what is written).

    losses: also write the loss and Accuracy gates (labels become inputs); by default a
        deployed model: SoftmaxWithLoss becomes its probabilities, other label readers go.
    outputs: the blobs the model outputs (default: those no exported gate consumes); only the
        gates they depend on are written.
    Raises OnnxExportError naming every gate that has no ONNX form."""
    onnx = require_onnx()
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise OnnxExportError(f"opset {opset} is not supported: choose {MIN_OPSET} to "
                              f"{MAX_OPSET}")
    phase = net.phase
    net.phase = "test"
    try:
        return _export(onnx, net, path, opset, losses, outputs)
    finally:
        net.phase = phase


def _export(onnx: Any, net: Net, path: str | Path | None, opset: int, losses: bool,
            outputs: list[str] | None) -> Any:
    from onnx import helper, numpy_helper
    steps, replaced = list(net.runner.steps), set()
    if not losses:
        steps, replaced = _deploy_steps(net, steps)
    shapes = net.shapes
    for step in steps:
        if step.spec.name in replaced:           # the probabilities: the scores' shape
            shapes[step.tops[0]] = shapes[step.inputs[0]]
    consumed = {name for step in steps for name in step.inputs}
    wanted = outputs or [top for step in steps for top in step.tops if top not in consumed]
    if not wanted:
        raise OnnxExportError(f"net {net.name!r}: the exported graph has no outputs")
    unknown = [name for name in wanted if name not in shapes]
    if unknown:
        raise OnnxExportError(f"no blob {', '.join(map(repr, unknown))} in the exported graph "
                              f"of net {net.name!r}")
    steps = _needed(steps, wanted)
    missing = [s for s in steps if s.spec.cls.type_name not in EXPORTERS]
    if missing:
        listed = ", ".join(f"{s.spec.name!r} ({s.spec.type})" for s in missing)
        plural = "s" if len(missing) > 1 else ""
        raise OnnxExportError(f"net {net.name!r}: no ONNX form for gate{plural} {listed} "
                              f"(exported: {', '.join(sorted(EXPORTERS))})")
    graph = OnnxGraph(opset, net.dtype)
    graph.used.update(shapes)
    for step in steps:
        writer = GateWriter(graph, step, shapes)
        if step.spec.name in replaced:
            writer.op("Softmax", writer.inputs, step.tops[0],
                      axis=canonical_axis(step.gate.axis, writer.ndim))
        else:
            EXPORTERS[step.spec.cls.type_name](writer)
    read = {name for step in steps for name in step.inputs} | set(wanted)
    inputs = [helper.make_tensor_value_info(name, _input_type(net, name), _dims(shapes[name]))
              for name in net.inputs if name in read]
    params = [numpy_helper.from_array(np.asarray(net.params[name], dtype=net.dtype).reshape(
        graph.layouts.get(name, net.params[name].shape)), name) for name in net.params
        if name in read]
    params += [numpy_helper.from_array(array, name) for name, array in
               graph.initializers.items()]
    out_info = [helper.make_tensor_value_info(name, float_type(net.dtype), _dims(shapes[name]))
                for name in wanted]
    onnx_graph = helper.make_graph(graph.nodes, net.name, inputs, out_info, params)
    model = helper.make_model(onnx_graph, producer_name="gatework",
                              opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = min(model.ir_version, _IR_VERSION.get(opset, model.ir_version))
    onnx.checker.check_model(model, full_check=True)
    if path is not None:
        _write(Path(path), model.SerializeToString())
    return model


#: the IR version each opset came with, so that older runtimes load the model
_IR_VERSION = {13: 7, 14: 7, 15: 8, 16: 8, 17: 8, 18: 8, 19: 9, 20: 9, 21: 10}


def _input_type(net: Net, name: str) -> int:
    return int_type() if net.inputs[name].dtype == "int" else float_type(net.dtype)


def _dims(shape: tuple) -> list:
    return [BATCH_DIM if d is None else d for d in shape]


def _write(path: Path, data: bytes) -> None:
    """Write through a temporary file in the same folder, so no reader sees half a model."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    temporary.replace(path)


__all__ = ["export_onnx", "OnnxExportError", "DEFAULT_OPSET", "EXPORTERS", "require_onnx"]
