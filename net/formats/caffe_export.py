"""A Gatework config (and a Net's weights) written as Caffe's files: net prototxt, caffemodel,
solver prototxt.

    exported = export_net(spec)                  # NetParameter + notes on what did not carry
    exported = export_net(spec, deploy=True)     # the test phase, no loss or accuracy gates
    model = with_blobs(exported.net, net)        # the same layers, with the net's arrays
    notes = write_caffe(net, "net.prototxt", "net.caffemodel", solver="solver.prototxt")

What is written: the inputs as one `Input` layer (an open dimension as 0, which the reader
reads back as open), `params:` as `Parameter` layers, every gate as the layer of its Caffe type
with the options that differ from Caffe's defaults (caffe_layers), `phase:` as an include rule,
`param:` and `loss_weight`. A data source Caffe has a layer for (lmdb, images, hdf5, dummy)
becomes that data layer, for its phase, with absolute paths; the others (npz, csv, scikit-learn sets) have none, so their inputs
are written in the Input layer and a note says so. The caffemodel is the same NetParameter
with each gate's arrays as blobs (caffe_weights' order), in the net's dtype (float64 in
double_data); a scalar array (PReLU's shared slope) in the legacy 1x1x1x1 form.

Refused, naming the gate: a gate type Caffe has no layer for, an option without a Caffe
setting (BatchNorm's affine), an lr_policy Caffe lacks. Left out with a note: the net's dtype
float64 (the caffemodel keeps float64 values), an input's `value:` and its `dtype: int` where
Caffe's layers do not read it as integers, a `params:` filler (Caffe's Parameter layer starts
at zero; the caffemodel holds the values).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from net.core.net import Net
from net.core.spec import GateSpec, NetSpec, ParamRule, SourceSpec

from .caffe_files import atomic_write_bytes, write_caffemodel, write_text
from .caffe_layers import (CAFFE_TYPES, INDEX_BOTTOMS, LAYERS, ZERO_FILLER, ExportError,
                           canonical_filler, fill_layer, filler_to_caffe)
from .caffe_messages import array_to_blob
from .caffe_schema import new_message
from .caffe_solver import solver_parameter
from .caffe_weights import gate_blobs
from .prototext import format_text
from .prototree import Identifier, Message

CAFFE_PHASES = {"train": "TRAIN", "test": "TEST"}
#: data source kinds that have a Caffe data layer
DATA_LAYER_OF = {"lmdb": "Data", "images": "ImageData", "hdf5": "HDF5Data", "dummy": "DummyData"}


@dataclass
class Exported:
    """An exported net and what did not carry over (one line each)."""
    net: Message
    notes: list[str] = field(default_factory=list)


def export_net(spec: NetSpec, deploy: bool = False) -> Exported:
    """A typed NetParameter for `spec`. deploy: only the test phase, without loss gates and
    Accuracy, and only the inputs the remaining gates read (what OpenCV and Caffe's deploy
    files hold)."""
    writer = _Writer(spec, deploy)
    return Exported(writer.net(), writer.notes)


def with_blobs(exported: Message, net: Net) -> Message:
    """A copy of `exported` whose layers carry the net's arrays as blobs (a caffemodel)."""
    model = exported.copy()
    blobs = gate_blobs(net)
    for layer in model.layer:
        arrays = blobs.get(layer.name)
        if layer.type == "Parameter":
            arrays = [np.asarray(net.params[layer.top[0]], dtype=net.dtype)]
        for array in arrays or ():
            # a scalar (PReLU's shared slope) in the legacy 1x1x1x1 form: Caffe's ShapeEquals
            # takes it for its 0-axis blob, and OpenCV cannot make a 0-axis blob from `shape {}`
            layer.add("blobs", array_to_blob(array, legacy=array.ndim == 0))
    return model


def write_caffe(net: Net, prototxt: str | Path, caffemodel: str | Path | None = None, *,
                solver: str | Path | None = None, deploy: bool = False) -> list[str]:
    """Write the net prototxt, and the caffemodel and solver prototxt when asked; returns the
    notes. The solver names the prototxt by its file name (put them side by side)."""
    exported = export_net(net.spec, deploy)
    write_text(prototxt, exported.net)
    if caffemodel is not None:
        write_caffemodel(caffemodel, with_blobs(exported.net, net))
    if solver is not None:
        if net.spec.solver is None:
            raise ExportError("the config has no solver section to write", net.spec.file)
        text = format_text(solver_parameter(net.spec.solver, Path(prototxt).name,
                                            net.spec.file))
        atomic_write_bytes(solver, text.encode("utf-8"))
    return exported.notes


class _Writer:
    def __init__(self, spec: NetSpec, deploy: bool):
        self.spec, self.deploy = spec, deploy
        self.notes: list[str] = []
        self.gates = [g for g in spec.gates if self._kept(g)]
        self.taken = {g.name for g in self.gates}

    def _kept(self, gate: GateSpec) -> bool:
        if not self.deploy:
            return True
        return gate.phase in (None, "test") and not gate.cls.loss_gate() \
            and gate.type != "Accuracy"

    def error(self, text: str, line: int = 0) -> ExportError:
        return ExportError(text, self.spec.file, line)

    def net(self) -> Message:
        net = new_message("NetParameter", name=self.spec.name)
        if self.spec.dtype != "float32":
            self.notes.append(f"dtype {self.spec.dtype} is not written (Caffe's nets have "
                              "none); the caffemodel keeps the values in double_data")
        read = {bottom for g in self.gates for bottom in g.bottom}
        inputs = [name for name in self.spec.inputs if not self.deploy or name in read]
        fed = self._data_layers(net, inputs)
        self._input_layer(net, [name for name in inputs if name not in fed])
        for name, param in self.spec.params.items():
            if not self.deploy or name in read:
                net.add("layer", self._parameter_layer(name, param))
        for gate in self.gates:
            net.add("layer", self._gate_layer(gate))
        return net

    # -- inputs ---------------------------------------------------------------------------
    def _input_layer(self, net: Message, names: list[str]) -> None:
        if not names:
            return
        integer = {g.bottom[index] for g in self.gates if (index := INDEX_BOTTOMS.get(g.type))
                   is not None and index < len(g.bottom)}
        layer = new_message("LayerParameter", name=_free("input", self.taken), type="Input")
        params = new_message("InputParameter")
        for name in names:
            spec = self.spec.inputs[name]
            if spec.value is not None:
                self.notes.append(f"input {name!r}: its value is not written (Caffe's Input "
                                  "layer holds none; feed it)")
            if spec.dtype == "int" and name not in integer:
                self.notes.append(f"input {name!r}: dtype int is not written (Caffe's blobs "
                                  "are float; no layer here reads it as integers)")
            layer.add("top", name)
            params.add("shape", new_message("BlobShape",
                                            dim=[0 if d is None else d for d in spec.shape]))
        layer.set("input_param", params)
        net.add("layer", layer)

    def _parameter_layer(self, name: str, param) -> Message:
        if name in self.taken:
            raise self.error(f"param {name!r} has the name of a gate; Caffe's layer names are "
                             "unique", param.line)
        layer = new_message("LayerParameter", name=name, type="Parameter", top=[name])
        layer.set("parameter_param", new_message(
            "ParameterParameter", shape=new_message("BlobShape", dim=list(param.shape))))
        rule = _param_spec(param.rule)
        if rule is not None:
            layer.add("param", rule)
        if canonical_filler(param.filler) != canonical_filler(ZERO_FILLER):
            self.notes.append(f"param {name!r}: its filler is not written (Caffe's Parameter "
                              "layer starts at zero; the caffemodel holds the values)")
        return layer

    def _data_layers(self, net: Message, inputs: list[str]) -> set[str]:
        """The data layers of the data section's Caffe-kind sources; the inputs they feed."""
        if self.deploy or self.spec.data is None:
            return set()
        fed: set[str] = set()
        sources = self.spec.data.sources()
        for phase, source in sources.items():
            kind = DATA_LAYER_OF.get(source.source)
            if kind is None:
                self.notes.append(f"data.{phase}: source {source.source!r} has no Caffe data "
                                  "layer; its inputs are written in the Input layer")
                continue
            feeds = list(getattr(source, "feeds", None) or ["data", "label"])
            if kind == "Data" and source.shuffled:
                self.notes.append(f"data.{phase}: Caffe's Data layer reads in order; shuffle "
                                  "is not written")
            net.add("layer", _data_layer(source, self.spec.base_dir, kind, feeds, self.taken))
            fed.update(feeds)
        return fed & set(inputs)

    # -- gates -----------------------------------------------------------------------------
    def _gate_layer(self, gate: GateSpec) -> Message:
        where = gate.where()
        caffe_type = CAFFE_TYPES.get(gate.type) or CAFFE_TYPES.get(gate.cls.type_name)
        if caffe_type is None:
            raise self.error(f"{where}: Caffe has no layer for the {gate.cls.type_name} gate "
                             f"(Caffe's layers here: {', '.join(sorted(LAYERS))})", gate.line)
        layer = new_message("LayerParameter", name=gate.name, type=caffe_type,
                            bottom=list(gate.bottom), top=list(gate.top))
        if gate.phase is not None and not self.deploy:
            layer.add("include", new_message("NetStateRule",
                                             phase=Identifier(CAFFE_PHASES[gate.phase])))
        if gate.loss_weight is not None:
            layer.set("loss_weight", list(gate.loss_weight))
        rules = [_param_spec(rule) for rule in gate.param]
        while rules and rules[-1] is None:
            rules.pop()
        for rule in rules:
            layer.add("param", rule if rule is not None else new_message("ParamSpec"))
        fill_layer(layer, LAYERS[caffe_type], gate.cls, gate.options, where, self.spec.file,
                   gate.line)
        return layer


def _param_spec(rule: ParamRule) -> Message | None:
    """A ParamSpec for a `param:` entry, or None where it says nothing (all defaults)."""
    spec = new_message("ParamSpec")
    if rule.name is not None:
        spec.set("name", rule.name)
    for key in ("lr_mult", "decay_mult"):
        if getattr(rule, key) != 1.0:
            spec.set(key, getattr(rule, key))
    return spec if spec.names() else None


def _data_layer(source: SourceSpec, base_dir: Path, kind: str, feeds: list[str],
                taken: set[str]) -> Message:
    """A data layer for a source of kind lmdb, images, hdf5 or dummy. The settings are those of
    the data section's contract (issue 15), read by name; paths are written absolute."""
    layer = new_message("LayerParameter", name=_free(f"data_{source.phase}", taken), type=kind,
                        top=feeds)
    layer.add("include", new_message("NetStateRule",
                                     phase=Identifier(CAFFE_PHASES[source.phase])))
    if kind == "DummyData":
        params = new_message("DummyDataParameter")
        for feed in feeds:
            entry = (getattr(source, "dummy", None) or {}).get(feed, {})
            params.add("shape", new_message("BlobShape", dim=[source.batch_size]
                                            + list(entry.get("shape", []))))
            params.add("data_filler", filler_to_caffe(entry.get("filler", ZERO_FILLER)))
        layer.set("dummy_data_param", params)
        return layer
    name = {"Data": "data_param", "ImageData": "image_data_param",
            "HDF5Data": "hdf5_data_param"}[kind]
    params = new_message(layer.spec.field(name).type, batch_size=source.batch_size,
                         source=_absolute(getattr(source, "path", ""), base_dir))
    if kind == "Data":
        params.set("backend", Identifier("LMDB"))
    else:
        params.set("shuffle", bool(source.shuffled))
    for key in ("new_height", "new_width", "is_color", "root_folder"):
        value = getattr(source, key, None)
        if kind == "ImageData" and value is not None:
            params.set(key, _absolute(value, base_dir) if key == "root_folder" else value)
    layer.set(name, params)
    transform = getattr(source, "transform", None)
    if transform and kind != "HDF5Data":            # Caffe's HDF5Data transforms nothing
        layer.set("transform_param", _transform_param(transform, base_dir))
    return layer


def _transform_param(transform: Any, base_dir: Path) -> Message:
    """A TransformationParameter from the data section's transform (a mapping or an object)."""
    message = new_message("TransformationParameter")
    for key in ("scale", "mirror", "crop_size", "mean_file", "mean_value"):
        value = transform.get(key) if isinstance(transform, dict) else \
            getattr(transform, key, None)
        if value is None:
            continue
        if key == "mean_file":
            value = _absolute(value, base_dir)
        elif key == "mean_value" and not isinstance(value, list):
            value = [value]
        message.set(key, value)
    return message


def _absolute(path: str | Path, base_dir: Path) -> str:
    return str((Path(base_dir) / path).resolve())


def _free(base: str, taken: set[str]) -> str:
    """`base`, or `base_1`, `base_2`, ... : a layer name no other layer has; reserved."""
    name, index = base, 0
    while name in taken:
        index += 1
        name = f"{base}_{index}"
    taken.add(name)
    return name
