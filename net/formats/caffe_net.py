"""Caffe's net prototxt read as a Gatework config: the same validated NetSpec a YAML file gives.

    spec = read_prototxt("lenet_train_test.prototxt")     # train and test phases, data section
    spec = read_prototxt("deploy.prototxt")               # Input layer or `input:` header
    spec = read_prototxt("lenet_train_test.prototxt", with_data=False,
                         input_shapes={"data": (1, 28, 28), "label": ()})

The file is read as Caffe reads it (caffe_upgrade first: V1 `layers {}`, `input_dim` headers),
then turned into the mapping a YAML config would hold, with each value at its prototxt line, and
validated by net.core.config.parse_config: every later error names the prototxt's file and line.
A solver prototxt given here is read by caffe_solver (the net it names, with its solver section).

How Caffe's net becomes a config:
  - each layer a gate of the same name (caffe_layers has the table); a type Gatework lacks is
    an error naming the layer, its type and line (and, for a fork's type such as SSD's
    Normalize, what it is, before its fork-only *_param field is read as a misspelling)
  - a loss layer written without a top gets one named after the layer (Caffe gives it an
    anonymous top whose loss counts with weight 1)
  - include/exclude rules are evaluated as Caffe does for each phase (TRAIN, TEST) at level 0
    with no stages, or the `state` of the file, or the level and stages given: a layer in both
    phases has no `phase:`, one in a single phase gets it, one in neither is left out
  - `param { name lr_mult decay_mult }` -> `param:`; loss_weight; in-place tops as they are;
    BatchNorm's three `param {}` (its statistics, Gatework's buffers) are dropped
  - `Input` layers and deploy headers -> `inputs:`; a dimension given as 0 is left open (null),
    the form export uses for Gatework's open (batch) dimensions
  - `Parameter` layers -> `params:` (zeros, as Caffe's ParameterLayer starts)
  - `Data` (LMDB), `ImageData`, `HDF5Data`, `DummyData` -> the `data:` section (sources lmdb,
    images, hdf5, dummy) and inputs named like their tops, the batch dimension open; the other
    dimensions come from net.train.data.source_shapes (or `input_shapes`); `MemoryData` -> inputs
  - inputs that Caffe's layers read as integers (SoftmaxWithLoss's and Accuracy's labels,
    Embed's indices, ...) are declared `dtype: int`
Paths in data layers are Caffe's: relative to the working directory, else to the prototxt's
folder; the config holds them absolute.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from net.core.config import parse_config
from net.core.spec import NetSpec
from net.core.yaml import LineDict, LineList, suggest

from ..errors import ConfigError
from .caffe_layers import (FOREIGN_LAYERS, INDEX_BOTTOMS, LayerMap, canonical_filler,
                           filler_from_caffe, gate_options, known_layer, layer_type_list)
from .caffe_messages import typed_from_text
from .caffe_files import read_raw_text
from .caffe_schema import message_spec
from .caffe_upgrade import upgrade_net
from .prototree import Message

PHASES = {"train": "TRAIN", "test": "TEST"}
DATA_LAYERS = ("Data", "ImageData", "HDF5Data", "DummyData")
#: fields only a SolverParameter has at its top level (a prototxt with one is a solver)
SOLVER_MARKS = frozenset(message_spec("SolverParameter").fields) - frozenset(
    message_spec("NetParameter").fields)


@dataclass(frozen=True)
class NetState:
    """Caffe's NetState: what include/exclude rules are evaluated against."""
    phase: str                      # "train" or "test"
    level: int = 0
    stages: tuple[str, ...] = ()


@dataclass
class Selected:
    """A layer and the phases it takes part in."""
    layer: Message
    phases: set[str] = field(default_factory=set)


# -- reading ------------------------------------------------------------------------------------
def read_prototxt(path: str | Path, *, input_shapes: Mapping[str, tuple] | None = None,
                  with_data: bool = True, level: int | None = None,
                  stages: tuple[str, ...] | None = None) -> NetSpec:
    """A Caffe net (or solver) prototxt as a validated NetSpec (see the module docstring).

    input_shapes: the per-sample shape of each data layer top (`{"data": (1, 28, 28), "label":
        ()}`), instead of asking the data source. with_data=False: data layers become plain
        inputs (no `data:` section; their shapes from `input_shapes`). level, stages: Caffe's
        NetState for the include/exclude rules (default: the file's `state`, else 0 and none).
    """
    return read_caffe_config(path, input_shapes=input_shapes, with_data=with_data, level=level,
                             stages=stages)[1]


def read_caffe_config(path: str | Path, *, input_shapes: Mapping[str, tuple] | None = None,
                      with_data: bool = True, level: int | None = None,
                      stages: tuple[str, ...] | None = None) -> tuple[LineDict, NetSpec]:
    """What read_prototxt reads (same options), with the config mapping it validated (the
    YAML convert_caffe writes)."""
    path = Path(path)
    raw = read_raw_text(path)
    if SOLVER_MARKS.intersection(raw.names()):
        from .caffe_solver import solver_config      # the solver reader reads nets with this one
        return solver_config(path, raw, input_shapes=input_shapes, with_data=with_data,
                             level=level, stages=stages)
    net = load_net(raw, str(path))
    layers = select_layers(net, net_states(net, level, stages))
    mapping = net_mapping(layers, net, str(path), with_data)
    return mapping, finish(mapping, path, input_shapes, with_data)


def load_net(raw: Message, file: str) -> Message:
    """An untyped net tree typed as NetParameter and upgraded; a deploy `input:` without a
    shape is refused here (the upgrade would drop it, as it does for old caffemodels)."""
    refuse_foreign_layers(raw, file)
    net = typed_from_text(raw, "NetParameter", file)
    if net.has("input") and not (net.has("input_shape") or net.has("input_dim")):
        raise ConfigError(f"input {net.input[0]!r} has no shape: add input_shape {{ dim: ... }} "
                          "(or four input_dim values) per input", file, net.line_of("input"))
    return upgrade_net(net)


def refuse_foreign_layers(raw: Message, file: str) -> None:
    """A layer of a type Gatework does not read, written with a field BVLC's LayerParameter
    lacks (SSD's Normalize and its norm_param), is refused by its type: the type, not the
    field, is what the user has to change. A known layer's misspelt field is left to the
    schema check, which suggests the closest field."""
    fields, readable = message_spec("LayerParameter").fields, readable_types()
    # a `layer:` that is not a message is left to typed_from_text, which says so at its line
    layers = [layer for layer in raw.all("layer") if isinstance(layer, Message)]
    for layer in layers:
        kind = layer.get("type")
        foreign = [name for name in layer.names() if name not in fields]
        if foreign and isinstance(kind, str) and kind not in readable:
            others = sorted({other.get("type") for other in layers
                             if isinstance(other.get("type"), str)} - set(readable) - {kind})
            also = f" (the net also has {', '.join(others)} layers)" if others else ""
            raise ConfigError(f"layer {layer.get('name', '')!r} ({kind}): "
                              f"{unknown_type_text(kind)}; its {foreign[0]} is not in BVLC "
                              f"Caffe's LayerParameter{also}", file, layer.line_of("type"))


def readable_types() -> list[str]:
    """The Caffe layer types Gatework reads: those with a gate, then the input and data
    layers."""
    return [*layer_type_list().split(", "), "Input", "Parameter", *DATA_LAYERS, "MemoryData"]


def unknown_type_text(kind: str) -> str:
    """Why a layer of type `kind` is refused: what the type is, for a fork's type Gatework
    knows of, else the closest type it reads and the list of them."""
    readable = readable_types()
    if kind in FOREIGN_LAYERS:
        return f"Gatework has no {kind} gate: {FOREIGN_LAYERS[kind]}"
    return (f"Gatework has no {kind or '(untyped)'} gate{suggest(kind, readable)} (the Caffe "
            f"layers it reads: {', '.join(readable)})")


def net_states(net: Message, level: int | None, stages: tuple[str, ...] | None
               ) -> dict[str, NetState]:
    """The NetState of each phase: the given level and stages, else the file's `state`."""
    state = net.get("state")
    level = level if level is not None else (state.level if state is not None else 0)
    stages = tuple(stages) if stages is not None else tuple(state.stage if state else ())
    return {phase: NetState(phase, level, stages) for phase in PHASES}


def select_layers(net: Message, states: Mapping[str, NetState]) -> list[Selected]:
    """The layers of `net` with the phases (of `states`) whose rules include them."""
    chosen = []
    for layer in net.all("layer"):
        phases = {phase for phase, state in states.items() if included(layer, state)}
        if phases:
            chosen.append(Selected(layer, phases))
    return chosen


def included(layer: Message, state: NetState) -> bool:
    """Caffe's StateMeetsRule over a layer's include (any) or exclude (none) rules."""
    include, exclude = layer.all("include"), layer.all("exclude")
    if include and exclude:
        raise ConfigError(f"layer {layer.get('name', '')!r}: give include rules or exclude "
                          "rules, not both", layer.file, layer.line_of("exclude"))
    if include:
        return any(_meets(rule, state) for rule in include)
    return not any(_meets(rule, state) for rule in exclude)


def _meets(rule: Message, state: NetState) -> bool:
    if rule.has("phase") and rule.phase != PHASES[state.phase]:
        return False
    if rule.has("min_level") and state.level < rule.min_level:
        return False
    if rule.has("max_level") and state.level > rule.max_level:
        return False
    return (all(stage in state.stages for stage in rule.stage)
            and not any(stage in state.stages for stage in rule.not_stage))


# -- the mapping --------------------------------------------------------------------------------
def net_mapping(layers: list[Selected], net: Message, file: str, with_data: bool = True
                ) -> LineDict:
    """The config mapping (LineDict, prototxt lines) of the selected layers; with_data=False
    leaves out the data section (data layers' tops are inputs all the same)."""
    blobs = {blob for selected in layers for field in ("bottom", "top")
             for blob in selected.layer.all(field)}
    builder = _Builder(file, with_data, blobs)
    for selected in layers:
        builder.add(selected)
    return builder.mapping(net.get("name") or Path(file).stem, net.line)


def finish(mapping: LineDict, path: Path, input_shapes: Mapping[str, tuple] | None,
           with_data: bool) -> NetSpec:
    """Fill in the shapes of the data layers' tops (in `mapping`: the inputs without a shape)
    and validate the mapping into a NetSpec."""
    file, base_dir = str(path), path.parent
    tops = {name: entry for name, entry in mapping.get("inputs", {}).items()
            if isinstance(entry, _DataTop)}
    if not tops:
        return parse_config(mapping, file=file, base_dir=base_dir)
    for entry in tops.values():
        entry["shape"] = [None]                          # a placeholder until known
    shapes = dict(input_shapes) if input_shapes is not None else None
    if shapes is None and with_data:
        shapes = _source_shapes(mapping, file, base_dir, tops)
    for name, entry in tops.items():
        if shapes is None or name not in shapes:
            raise ConfigError(f"layer {entry.layer_name!r} ({entry.layer_type}): the shape of "
                              f"its top {name!r} is not known; give it per sample (convert_caffe"
                              f".py --input-shape {name}=1,28,28, or {name}= for one number per "
                              "sample; from Python, input_shapes)", file, entry.line)
        entry["shape"] = [None] + list(shapes[name])
    return parse_config(mapping, file=file, base_dir=base_dir)


def _source_shapes(mapping: LineDict, file: str, base_dir: Path, tops: dict[str, _DataTop]
                   ) -> dict[str, tuple]:
    """The per-sample shapes the data sources produce (net.train.data.source_shapes); a
    source that cannot be read (a train_val.prototxt without its ImageNet LMDB) is refused
    with how to read the net without it."""
    from net.train import data as train_data
    source_shapes = getattr(train_data, "source_shapes", None)
    top = next(iter(tops.values()))
    if source_shapes is None:
        raise ConfigError(f"layer {top.layer_name!r} ({top.layer_type}): this Gatework cannot "
                          "read Caffe's data sources (net.train.data.source_shapes is missing); "
                          "give input_shapes, or read the net with_data=False", file, top.line)
    spec = parse_config(mapping, file=file, base_dir=base_dir)   # placeholders: shapes unread
    shapes: dict[str, tuple] = {}
    for phase, source in spec.data.sources().items():
        try:
            found = source_shapes(source, base_dir, file)
        except ConfigError as err:
            raise ConfigError(f"{err.message}; {_without_data(mapping, tops)}", err.file,
                              err.line) from None
        for feed, shape in found.items():
            if shapes.setdefault(feed, tuple(shape)) != tuple(shape):
                raise ConfigError(f"the {phase} data gives {feed!r} the shape {tuple(shape)}, "
                                  f"the other phase {shapes[feed]}", file, source.line)
    return shapes


def _without_data(mapping: LineDict, tops: dict[str, _DataTop]) -> str:
    """How to read the net without its data sources, with each data top's per-sample shape
    as far as Caffe's transform fixes it: as many channels as mean values (Caffe checks one
    per channel, or one for all), crop_size high and wide; a Data or ImageData label is one
    number per sample."""
    transform = next(iter(mapping["data"].values())).get("transform", {})
    means, crop = transform.get("mean_value"), transform.get("crop_size")
    image = ",".join(str(dim) for dim in (len(means) if isinstance(means, list) else "C",
                                          crop or "H", crop or "W"))
    flags = []
    for index, (name, top) in enumerate(tops.items()):
        labelled = top.layer_type in ("Data", "ImageData")
        shape = (image, "")[index] if labelled and index < 2 else "D1,D2,..."
        flags.append(f"--input-shape {name}={shape}")
    return (f"to read the net without its data: convert_caffe.py --no-data {' '.join(flags)} "
            "(from Python, read_prototxt(path, with_data=False, input_shapes=...))")


class _DataTop(LineDict):
    """The input entry of a data layer's top: its shape comes from the source (see finish)."""
    layer_name: str = ""
    layer_type: str = ""


class _Builder:
    """Collects inputs, params, gates and data entries while walking the layers."""

    def __init__(self, file: str, with_data: bool, blobs: set[str]):
        self.file, self.with_data = file, with_data
        self.blobs = set(blobs)                 # every blob the layers name, to name new ones
        self.inputs, self.params, self.data = LineDict(), LineDict(), LineDict()
        self.gates = LineList()
        self.names: set[str] = set()

    def error(self, layer: Message, text: str, key: str | None = None) -> ConfigError:
        where = f"layer {layer.get('name', '')!r} ({layer.get('type', '')})"
        return ConfigError(f"{where}: {text}", layer.file or self.file,
                           layer.line_of(key) if key else layer.line)

    def add(self, selected: Selected) -> None:
        layer = selected.layer
        kind = layer.get("type", "")
        handler = _STRUCTURAL.get(kind)
        if handler is not None:
            handler(self, layer, selected.phases)
            return
        layer_map = known_layer(kind)
        if layer_map is None:
            raise self.error(layer, unknown_type_text(kind), "type")
        self.gates.append(self.gate_entry(layer, layer_map, selected.phases))
        self.gates.item_lines.append(layer.line)

    def gate_name(self, name: str) -> str:
        """The layer's name, or, for a name used again (Caffe allows it; Gatework names each
        gate once), the name with the first free suffix _2, _3, ..."""
        unique, count = name, 1
        while unique in self.names:
            count += 1
            unique = f"{name}_{count}"
        self.names.add(unique)
        return unique

    # -- gates -------------------------------------------------------------------------------
    def gate_entry(self, layer: Message, layer_map: LayerMap, phases: set[str]) -> LineDict:
        where = f"layer {layer.name!r} ({layer.type})"
        if not all(layer.propagate_down):
            raise self.error(layer, "propagate_down: false is not supported (Gatework "
                                    "computes every gradient)", "propagate_down")
        entry = _line_dict(layer.line, [
            ("name", self.gate_name(layer.name), layer.line_of("name")),
            ("type", layer_map.gate, layer.line_of("type")),
            ("bottom", _names(layer.bottom), layer.line_of("bottom")),
            ("top", _names(layer.top or self.auto_top(layer, layer_map)),
             layer.line_of("top"))])
        options, lines = gate_options(layer, layer_map, where)
        for key, value in options.items():
            _put(entry, key, value, lines[key])
        rules = [] if layer.type == "BatchNorm" else [_param_rule(spec) for spec in layer.param]
        if rules:
            _put(entry, "param", _line_list(rules, [s.line for s in layer.param]),
                 layer.line_of("param"))
        if layer.loss_weight:
            _put(entry, "loss_weight", list(layer.loss_weight), layer.line_of("loss_weight"))
        if len(phases) == 1:
            _put(entry, "phase", next(iter(phases)),
                 layer.line_of("include" if layer.has("include") else "exclude"))
        return entry

    def auto_top(self, layer: Message, layer_map: LayerMap) -> list[str]:
        """The top Caffe gives a loss layer written without one (LossLayer's AutoTopBlobs: an
        anonymous blob whose loss counts with weight 1): here named after the layer, with the
        first free suffix where a blob has that name. Other layers keep no tops."""
        if not layer_map.gate_class().loss_gate():
            return []
        name, count = layer.name, 1
        while name in self.blobs:
            count += 1
            name = f"{layer.name}_{count}"
        self.blobs.add(name)
        return [name]

    # -- inputs, parameters, data --------------------------------------------------------------
    def input_layer(self, layer: Message, phases: set[str]) -> None:
        shapes = layer.input_param.shape
        if len(shapes) not in (1, len(layer.top)):
            raise self.error(layer, f"{len(layer.top)} top(s) but {len(shapes)} shape(s): give "
                                    "one shape, or one per top", "input_param")
        for index, top in enumerate(layer.top):
            shape = shapes[index if len(shapes) > 1 else 0]
            self.add_input(top, [dim if dim > 0 else None for dim in shape.dim],
                           layer.line_of("top", index))

    def add_input(self, name: str, shape: list | None, line: int, layer: Message | None = None
                  ) -> None:
        """An input of this shape; a data layer's top (`layer` given) has its shape filled in
        by finish."""
        if name in self.inputs:
            return
        entry = _line_dict(line, [("shape", shape, line)], _DataTop if layer else LineDict)
        if layer is not None:
            entry.layer_name, entry.layer_type = layer.name, layer.type
        _put(self.inputs, name, entry, line)

    def parameter_layer(self, layer: Message, phases: set[str]) -> None:
        if len(layer.top) != 1:
            raise self.error(layer, f"a Parameter layer has one top, got {len(layer.top)}",
                             "top")
        entry = _line_dict(layer.line, [
            ("shape", list(layer.parameter_param.shape.dim), layer.line_of("parameter_param")),
            ("filler", {"type": "constant"}, layer.line)])
        if layer.param:
            rule = layer.param[0]
            if rule.has("name"):
                raise self.error(layer, "a shared Parameter blob (param { name }) is not "
                                        "supported", "param")
            for key in ("lr_mult", "decay_mult"):
                if rule.has(key):
                    _put(entry, key, rule.get(key), rule.line_of(key))
        _put(self.params, layer.top[0], entry, layer.line_of("top"))

    def memory_data_layer(self, layer: Message, phases: set[str]) -> None:
        params = layer.memory_data_param
        shapes = [[None, params.channels, params.height, params.width], [None]]
        if len(layer.top) > 2:
            raise self.error(layer, "MemoryData has a data top and an optional label top",
                             "top")
        for index, top in enumerate(layer.top):
            self.add_input(top, shapes[index], layer.line_of("top", index))

    def data_layer(self, layer: Message, phases: set[str]) -> None:
        for index, top in enumerate(layer.top):
            self.add_input(top, None, layer.line_of("top", index), layer)
        if not self.with_data:
            return
        entry = _DATA_ENTRIES[layer.type](self, layer)
        if list(layer.top) != ["data", "label"]:
            _put(entry, "feeds", list(layer.top), layer.line_of("top"))
        for phase in sorted(phases):
            if phase in self.data:
                raise self.error(layer, f"the {phase} phase already reads a data layer (line "
                                        f"{self.data[phase].line}); Gatework's data section has "
                                        "one source per phase")
            _put(self.data, phase, entry, layer.line)

    def mapping(self, name: str, line: int) -> LineDict:
        for entry in self.gates:
            position = INDEX_BOTTOMS.get(entry["type"])
            bottoms = _as_list(entry["bottom"])
            if position is not None and position < len(bottoms) and bottoms[position] in \
                    self.inputs:
                self.inputs[bottoms[position]]["dtype"] = "int"
        if not self.gates:
            raise ConfigError("the net has no layers Gatework runs as gates", self.file, line)
        mapping = _line_dict(line, [("name", name, line)])
        for key, value in (("inputs", self.inputs), ("params", self.params),
                           ("gates", self.gates), ("data", self.data)):
            if value:
                _put(mapping, key, value, value.line)
        return mapping


# -- data layers --------------------------------------------------------------------------------
def _data_entry(builder: _Builder, layer: Message) -> LineDict:
    params = layer.data_param
    if params.backend != "LMDB":
        raise builder.error(layer, f"backend {params.backend} is not supported: Gatework reads "
                                   "LMDB (convert with Caffe's convert_imageset --backend lmdb)",
                            "data_param")
    entry = _source(layer, "lmdb", params)
    _put(entry, "shuffle", False, layer.line)      # Caffe's Data layer reads in order
    if params.has("prefetch"):
        _put(entry, "prefetch", params.prefetch, params.line_of("prefetch"))
    return entry


def _image_data_entry(builder: _Builder, layer: Message) -> LineDict:
    params = layer.image_data_param
    entry = _source(layer, "images", params)
    _put(entry, "shuffle", params.shuffle, params.line_of("shuffle"))
    for key in ("new_height", "new_width", "is_color"):
        if params.has(key):
            _put(entry, key, params.get(key), params.line_of(key))
    if params.root_folder:
        _put(entry, "root_folder", _caffe_path(params.root_folder, layer.file),
             params.line_of("root_folder"))
    return entry


def _hdf5_data_entry(builder: _Builder, layer: Message) -> LineDict:
    params = layer.hdf5_data_param
    entry = _source(layer, "hdf5", params, transform=False)     # Caffe transforms nothing here
    _put(entry, "shuffle", params.shuffle, params.line_of("shuffle"))
    return entry


def _dummy_data_entry(builder: _Builder, layer: Message) -> LineDict:
    params = layer.dummy_data_param
    tops = list(layer.top)
    shapes = _dummy_shapes(builder, layer, params)
    fillers = params.data_filler
    if len(fillers) not in (0, 1, len(tops)):
        raise builder.error(layer, f"{len(tops)} top(s) but {len(fillers)} data_filler(s): give "
                                   "none, one, or one per top", "dummy_data_param")
    batches = {shape[0] for shape in shapes}
    if len(batches) != 1:
        raise builder.error(layer, f"the tops' first dimensions differ ({sorted(batches)}): "
                                   "Gatework batches every feed alike", "dummy_data_param")
    where = f"layer {layer.name!r} (DummyData)"
    dummy = LineDict()
    for index, top in enumerate(tops):
        filler = {"type": "constant"} if not fillers else filler_from_caffe(
            fillers[index if len(fillers) > 1 else 0], where, layer.file, params.line)
        _put(dummy, top, _line_dict(params.line, [("shape", list(shapes[index][1:]), params.line),
                                                  ("filler", canonical_filler(filler),
                                                   params.line)]), params.line)
    return _line_dict(layer.line, [("source", "dummy", layer.line_of("type")),
                                   ("batch_size", batches.pop(), params.line),
                                   ("dummy", dummy, params.line)])


def _dummy_shapes(builder: _Builder, layer: Message, params: Message) -> list[list[int]]:
    tops = len(layer.top)
    if params.shape:
        shapes = [list(shape.dim) for shape in params.shape]
    else:
        legacy = [params.num, params.channels, params.height, params.width]
        shapes = [[axis[index if len(axis) > 1 else 0] for axis in legacy]
                  for index in range(max(len(axis) for axis in legacy))] if all(legacy) else []
    if len(shapes) == 1:
        shapes *= tops
    if len(shapes) != tops or any(not shape for shape in shapes):
        raise builder.error(layer, f"{tops} top(s) need one shape, or one per top",
                            "dummy_data_param")
    return shapes


def _source(layer: Message, kind: str, params: Message, transform: bool = True) -> LineDict:
    entry = _line_dict(layer.line, [
        ("source", kind, layer.line_of("type")),
        ("path", _caffe_path(params.source, layer.file), params.line_of("source")),
        ("batch_size", params.batch_size, params.line_of("batch_size"))])
    if transform and layer.has("transform_param"):
        _put(entry, "transform", _transform(layer), layer.line_of("transform_param"))
    return entry


def _transform(layer: Message) -> LineDict:
    params = layer.transform_param
    where = f"layer {layer.name!r} ({layer.type})"
    for key in ("force_color", "force_gray"):
        if params.get(key):
            raise ConfigError(f"{where}: transform_param.{key} is not supported", layer.file,
                              params.line_of(key))
    transform = LineDict()
    transform.line = params.line
    for key in ("scale", "mirror", "crop_size", "mean_file", "mean_value"):
        if params.has(key):
            value = params.get(key) if key != "mean_value" else params.mean_value
            if key == "mean_file":
                value = _caffe_path(value, layer.file)
            elif key == "mean_value" and len(value) == 1:
                value = value[0]
            _put(transform, key, value, params.line_of(key))
    return transform


def _caffe_path(text: str, file: str | None) -> str:
    """A path from a Caffe file, as Caffe finds it: from the working directory, else beside
    the prototxt; absolute."""
    path = Path(text)
    if path.is_absolute():
        return str(path)
    beside = Path(file).parent / path if file else path
    found = path if path.exists() or not beside.exists() else beside
    return os.path.abspath(found)


_DATA_ENTRIES = {"Data": _data_entry, "ImageData": _image_data_entry,
                 "HDF5Data": _hdf5_data_entry, "DummyData": _dummy_data_entry}
_STRUCTURAL = {"Input": _Builder.input_layer, "Parameter": _Builder.parameter_layer,
               "MemoryData": _Builder.memory_data_layer,
               **{kind: _Builder.data_layer for kind in DATA_LAYERS}}


# -- small helpers ------------------------------------------------------------------------------
def _param_rule(spec: Message) -> dict[str, Any]:
    rule = _line_dict(spec.line, [])
    for key in ("name", "lr_mult", "decay_mult"):
        if spec.has(key):
            _put(rule, key, spec.get(key), spec.line_of(key))
    return rule


def _names(values: list[str]) -> str | list[str]:
    """One name as itself (as configs write it), any other count as a list."""
    return values[0] if len(values) == 1 else list(values)


def _as_list(value: str | list) -> list:
    return [value] if isinstance(value, str) else list(value)


def _line_dict(line: int, items: list[tuple[str, Any, int]], cls: type = LineDict
               ) -> LineDict:
    mapping = cls()
    mapping.line = line
    for key, value, key_line in items:
        _put(mapping, key, value, key_line)
    return mapping


def _line_list(items: list, lines: list[int]) -> LineList:
    values = LineList(items)
    values.line = lines[0] if lines else 0
    values.item_lines = list(lines)
    return values


def _put(mapping: LineDict, key: str, value: Any, line: int) -> None:
    mapping[key] = value
    mapping.key_lines[key] = line
    if not mapping.line:
        mapping.line = line
