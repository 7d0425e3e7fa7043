"""Caffe's layer types as Gatework gates: one table, read both ways.

    LAYERS["Convolution"]         # LayerMap(gate="Convolution", params=("convolution_param",))
    gate_options(layer, where)    # a typed LayerParameter -> {option: value} (+ lines)
    fill_layer(layer, spec)       # a GateSpec's options -> the layer's *_param messages

Every gate of Caffe's catalog takes caffe.proto's option names, so most of the table is the list
of `*_param` messages a layer reads: a field whose name is an option of the gate is that option.
What the table says besides:
  caffe_defaults  what Caffe uses when a field is absent, where the gate's own default differs
                  (Caffe fills a weight without a filler with zeros; Gatework's default is xavier)
  legacy          old spellings of an option, read when the option's own field is absent
                  (ConcatParameter.concat_dim for axis; LossParameter.normalize for
                  normalization where the gate has no `normalize`)
  ignored         fields without a meaning here (engine: which implementation Caffe picks)
A field that is neither an option nor ignored is refused, naming the layer and the line, when
it is given a value other than its caffe.proto default (InnerProduct's transpose, Convolution's
axis); a gate option without a Caffe field is refused on export unless it has its default.

Values convert field by field: enums to their names, FillerParameter to a filler mapping (only
the keys that filler type reads, as Caffe reads only those), BlobShape to a list of dims, a
repeated field to a list (one value to a plain value where the option takes one).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gates import Gate, UnknownGateType, gate_class
from net.core.fillers import FILLER_KEYS

from ..errors import ConfigError
from .caffe_schema import FieldSpec, message_spec, new_message
from .prototree import Identifier, Message

#: what Caffe's FillerParameter reads when a key is absent (Gatework's fill() agrees)
FILLER_DEFAULTS = {"value": 0.0, "min": 0.0, "max": 1.0, "mean": 0.0, "std": 1.0,
                   "variance_norm": "FAN_IN", "sparse": -1}
#: Caffe fills a weight without a filler with zeros (FillerParameter's default type)
ZERO_FILLER = {"type": "constant"}


@dataclass(frozen=True)
class LayerMap:
    """How one Caffe layer type is a Gatework gate (see the module docstring)."""
    gate: str
    params: tuple[str, ...] = ()
    caffe_defaults: dict[str, Any] = field(default_factory=dict)
    legacy: dict[str, tuple[str, Any]] = field(default_factory=dict)
    ignored: tuple[str, ...] = ("engine",)

    def gate_class(self) -> type[Gate] | None:
        """The gate class, or None where this Gatework has no such gate (yet)."""
        try:
            return gate_class(self.gate)
        except UnknownGateType:
            return None


_CONV = LayerMap("Convolution", ("convolution_param",),
                 caffe_defaults={"weight_filler": ZERO_FILLER},
                 ignored=("engine", "force_nd_im2col"))
_LOSS = ("loss_param",)
_SAME = None                    # a legacy field whose value carries over unchanged


def _normalization(normalize: bool) -> str:
    """LossParameter's deprecated `normalize` as the normalization it stands for."""
    return "VALID" if normalize else "BATCH_SIZE"


_WEIGHTED = {"weight_filler": ZERO_FILLER}

#: Caffe type -> the gate; the data and input layers (Input, Data, ...) are read by caffe_net
LAYERS: dict[str, LayerMap] = {
    "AbsVal": LayerMap("AbsVal"),
    "Accuracy": LayerMap("Accuracy", ("accuracy_param",)),
    "ArgMax": LayerMap("ArgMax", ("argmax_param",)),
    "BatchNorm": LayerMap("BatchNorm", ("batch_norm_param",)),
    "Bias": LayerMap("Bias", ("bias_param",)),
    "BNLL": LayerMap("BNLL"),
    "Clip": LayerMap("Clip", ("clip_param",)),
    "Concat": LayerMap("Concat", ("concat_param",), legacy={"concat_dim": ("axis", _SAME)}),
    "ContrastiveLoss": LayerMap("ContrastiveLoss", ("contrastive_loss_param",)),
    "Convolution": _CONV,
    "Crop": LayerMap("Crop", ("crop_param",)),
    "Deconvolution": LayerMap("Deconvolution", _CONV.params, _CONV.caffe_defaults,
                              ignored=_CONV.ignored),
    "Dropout": LayerMap("Dropout", ("dropout_param",)),
    "ELU": LayerMap("ELU", ("elu_param",)),
    "Eltwise": LayerMap("Eltwise", ("eltwise_param",)),
    "Embed": LayerMap("Embed", ("embed_param",), caffe_defaults=_WEIGHTED),
    "EuclideanLoss": LayerMap("EuclideanLoss"),
    "Exp": LayerMap("Exp", ("exp_param",)),
    "Flatten": LayerMap("Flatten", ("flatten_param",)),
    "HingeLoss": LayerMap("HingeLoss", ("hinge_loss_param",)),
    "InfogainLoss": LayerMap("InfogainLoss", ("infogain_loss_param",) + _LOSS,
                             legacy={"normalize": ("normalization", _normalization)}),
    "InnerProduct": LayerMap("InnerProduct", ("inner_product_param",),
                             caffe_defaults=_WEIGHTED),
    "Log": LayerMap("Log", ("log_param",)),
    "LRN": LayerMap("LRN", ("lrn_param",)),
    "LSTM": LayerMap("LSTM", ("recurrent_param",), caffe_defaults=_WEIGHTED,
                     ignored=("debug_info",)),
    "LSTMUnit": LayerMap("LSTMUnit"),
    "MultinomialLogisticLoss": LayerMap("MultinomialLogisticLoss"),
    "MVN": LayerMap("MVN", ("mvn_param",)),
    "Pooling": LayerMap("Pooling", ("pooling_param",)),
    "Power": LayerMap("Power", ("power_param",)),
    "PReLU": LayerMap("PReLU", ("prelu_param",)),
    "Reduction": LayerMap("Reduction", ("reduction_param",)),
    "ReLU": LayerMap("ReLU", ("relu_param",)),
    "Reshape": LayerMap("Reshape", ("reshape_param",)),
    "RNN": LayerMap("RNN", ("recurrent_param",), caffe_defaults=_WEIGHTED,
                    ignored=("debug_info",)),
    "Scale": LayerMap("Scale", ("scale_param",)),
    "Sigmoid": LayerMap("Sigmoid", ("sigmoid_param",)),
    "SigmoidCrossEntropyLoss": LayerMap("SigmoidCrossEntropyLoss", _LOSS),
    "Silence": LayerMap("Silence"),
    "Slice": LayerMap("Slice", ("slice_param",), legacy={"slice_dim": ("axis", _SAME)}),
    "Softmax": LayerMap("Softmax", ("softmax_param",)),
    "SoftmaxWithLoss": LayerMap("SoftmaxWithLoss", ("softmax_param",) + _LOSS),
    "Split": LayerMap("Split"),
    "Swish": LayerMap("Swish", ("swish_param",)),
    "TanH": LayerMap("Tanh", ("tanh_param",)),
    "Threshold": LayerMap("Threshold", ("threshold_param",)),
    "Tile": LayerMap("Tile", ("tile_param",)),
}
_SSD = "a layer of the SSD fork of Caffe (weiliu89/caffe), not of BVLC Caffe"
#: layer types of Caffe's forks (and BVLC's Python layer) that prototxt files in the wild use:
#: what each is, for the message that refuses it
FOREIGN_LAYERS: dict[str, str] = {
    "Normalize": _SSD, "Permute": _SSD, "PriorBox": _SSD, "DetectionOutput": _SSD,
    "MultiBoxLoss": _SSD, "AnnotatedData": _SSD,
    "Python": "it runs Python code that the prototxt names (python_param) but does not hold; "
              "write that code as a Gatework gate",
    "Upsample": "a layer of Caffe's forks (SegNet's max unpooling, the YOLO ports' nearest "
                "upsampling), not of BVLC Caffe",
    "BN": "a layer of SegNet's and ENet's fork of Caffe; BVLC Caffe writes it as BatchNorm "
          "then Scale",
    "DenseImageData": "a data layer of SegNet's fork of Caffe, not of BVLC Caffe",
    "Interp": "a layer of DeepLab's and PSPNet's forks of Caffe (bilinear resizing), not of "
              "BVLC Caffe",
    "Axpy": "a layer of SENet's fork of Caffe (a * x + y, a: one scale per channel), not of "
            "BVLC Caffe; BVLC Caffe writes it as Flatten of a, Scale of x by it (axis: 0), "
            "then Eltwise SUM with y",
    "ROIPooling": "a layer of Fast R-CNN's fork of Caffe, not of BVLC Caffe",
    "ReLU6": "not a layer of BVLC Caffe; BVLC Caffe writes it as Clip { min: 0 max: 6 }",
    "ConvolutionDepthwise": "not a layer of BVLC Caffe; BVLC Caffe writes a depthwise "
                            "convolution as Convolution with group equal to the channels",
    "DepthwiseConvolution": "not a layer of BVLC Caffe; BVLC Caffe writes a depthwise "
                            "convolution as Convolution with group equal to the channels",
}
#: gate type -> the Caffe type it is written as
CAFFE_TYPES = {layer_map.gate: caffe_type for caffe_type, layer_map in LAYERS.items()}
#: the bottoms Caffe's layers read as integers (static_cast<int>: class labels, Embed's
#: indices, ContrastiveLoss's similarity): gate type -> bottom index
INDEX_BOTTOMS = {"SoftmaxWithLoss": 1, "Accuracy": 1, "MultinomialLogisticLoss": 1,
                 "InfogainLoss": 1, "HingeLoss": 1, "ContrastiveLoss": 2, "Embed": 0}


def known_layer(caffe_type: str) -> LayerMap | None:
    """The table entry of a Caffe type, or None where Gatework has no gate for it."""
    layer_map = LAYERS.get(caffe_type)
    return layer_map if layer_map is not None and layer_map.gate_class() is not None else None


def layer_type_list() -> str:
    """The Caffe layer types this Gatework reads as gates, for error messages."""
    return ", ".join(sorted(name for name in LAYERS if known_layer(name)))


# -- Caffe -> Gatework --------------------------------------------------------------------------
def gate_options(layer: Message, layer_map: LayerMap, where: str
                 ) -> tuple[dict[str, Any], dict[str, int]]:
    """The gate options a typed LayerParameter sets, and the line of each. Options whose value
    is the gate's default are left out, so a converted config shows only what matters.
    `where` starts error messages ("layer 'conv1' (Convolution)")."""
    cls = layer_map.gate_class()
    options: dict[str, Any] = {}
    lines: dict[str, int] = {}
    for param_name in layer_map.params:
        if not layer.has(param_name):
            continue
        params = layer.get(param_name)
        for name, values, field_lines in params.items():
            spec = params.spec.field(name)
            option, convert = layer_map.legacy.get(name, (name, _SAME))
            if name in layer_map.legacy and params.has(option):
                continue                # the option's own field wins over its old spelling
            if option in cls.options:
                value = _option_value(spec, values, cls.options[option].kinds, where,
                                      params.file, field_lines[0])
                options[option] = value if convert is _SAME else convert(value)
                lines[option] = field_lines[0]
            elif name not in layer_map.ignored:
                _refuse_unless_default(spec, values, f"{param_name}.{name}", where,
                                       params.file, field_lines[0])
    for option, value in layer_map.caffe_defaults.items():
        options.setdefault(option, value)
    defaults = {name: option.default for name, option in cls.options.items()}
    kept = {name: value for name, value in options.items()
            if not same_option(value, defaults[name])}
    return kept, {name: lines.get(name, layer.line) for name in kept}


def _option_value(spec: FieldSpec, values: list, kinds: tuple, where: str, file: str | None,
                  line: int) -> Any:
    converted = [_value_from_caffe(spec, value, where, file, line) for value in values]
    if not spec.repeated:
        return converted[-1]
    if len(converted) == 1 and any(kind in (int, float) for kind in kinds):
        return converted[0]
    return converted


def _value_from_caffe(spec: FieldSpec, value: Any, where: str, file: str | None,
                      line: int) -> Any:
    if spec.kind == "enum":
        return str(value)
    if spec.kind != "message":
        return value
    if spec.message_spec.name == "FillerParameter":
        return filler_from_caffe(value, where, file, line)
    if spec.message_spec.name == "BlobShape":
        return list(value.dim)
    raise ConfigError(f"{where}: {spec.name} ({spec.message_spec.name}) is not read by "
                      "Gatework", file, line)


def _refuse_unless_default(spec: FieldSpec, values: list, label: str, where: str,
                           file: str | None, line: int) -> None:
    if not spec.repeated and spec.kind != "message" and values[-1] == spec.default:
        return
    shown = ", ".join(str(value) for value in values) if spec.kind != "message" else "{...}"
    default = f" (only its default {spec.default})" if spec.default not in (None, "") else ""
    raise ConfigError(f"{where}: {label}: {shown} is not supported by Gatework{default}",
                      file, line)


def filler_from_caffe(filler: Message, where: str, file: str | None, line: int) -> dict:
    """A FillerParameter as a filler mapping: its type and the keys that type reads."""
    kind = filler.type
    if kind not in FILLER_KEYS:
        raise ConfigError(f"{where}: filler type {kind!r} is not one of Gatework's "
                          f"({', '.join(FILLER_KEYS)})", file, filler.line_of("type") or line)
    result = {"type": kind}
    for key in FILLER_KEYS[kind]:
        if filler.has(key):
            value = filler.get(key)
            result[key] = str(value) if isinstance(value, Identifier) else value
    return result


def canonical_filler(filler: dict | None) -> dict | None:
    """A filler with every key its type reads, absent ones at Caffe's defaults, for comparing."""
    kind = filler.get("type", "constant") if isinstance(filler, dict) else None
    if kind not in FILLER_KEYS:
        return filler
    full = {"type": kind, **{key: filler.get(key, FILLER_DEFAULTS[key])
                             for key in FILLER_KEYS[kind]}}
    if full.get("sparse") == -1:          # dense, the usual case: said by leaving it out
        del full["sparse"]
    return full


def same_option(left: Any, right: Any) -> bool:
    """Whether two option values mean the same (fillers compared with defaults filled in; a
    bool never equals a number)."""
    if isinstance(left, dict) or isinstance(right, dict):
        return canonical_filler(left) == canonical_filler(right)
    if isinstance(left, bool) or isinstance(right, bool):
        return left is right
    return left == right


# -- Gatework -> Caffe --------------------------------------------------------------------------
class ExportError(ConfigError):
    """A gate, an option or a setting that Caffe's files cannot express."""


def fill_layer(layer: Message, layer_map: LayerMap, cls: type[Gate], options: dict[str, Any],
               where: str, file: str | None = None, line: int = 0) -> None:
    """Write a gate's options into the typed LayerParameter `layer`'s *_param messages: each
    option whose value differs from what Caffe reads when its field is absent."""
    placed: set[str] = set()
    for param_name in layer_map.params:
        spec = message_spec(layer.spec.field(param_name).type)
        params = spec.new()
        for name, field_spec in spec.fields.items():
            if name in cls.options and name not in layer_map.legacy:
                placed.add(name)
                value = options.get(name, cls.options[name].default)
                absent = layer_map.caffe_defaults.get(name, cls.options[name].default)
                if value is not None and not same_option(value, absent):
                    params.set(name, _value_to_caffe(field_spec, value, f"{where}: option "
                                                     f"{name!r}", file, line))
        if params.names():
            layer.set(param_name, params)
    for name, option in cls.options.items():
        value = options.get(name, option.default)
        if name not in placed and not same_option(value, option.default):
            raise ExportError(f"{where}: option {name}: {value!r} has no Caffe equivalent "
                              f"(Caffe's {CAFFE_TYPES.get(cls.type_name, cls.type_name)} "
                              "layer has no such setting)", file, line)


def _value_to_caffe(spec: FieldSpec, value: Any, where: str, file: str | None,
                    line: int) -> Any:
    if spec.kind == "message":
        if spec.message_spec.name == "FillerParameter":
            return filler_to_caffe(value)
        return new_message("BlobShape", dim=list(value))
    if spec.repeated:
        items = value if isinstance(value, list) else [value]
        return [Identifier(item) if spec.kind == "enum" else item for item in items]
    if isinstance(value, list):
        if len(set(value)) != 1:
            raise ExportError(f"{where}: {value!r} has no Caffe spelling (caffe.proto takes "
                              f"one {spec.name}; give {spec.name}_h and {spec.name}_w)",
                              file, line)
        value = value[0]
    return Identifier(value) if spec.kind == "enum" else value


def filler_to_caffe(filler: dict) -> Message:
    """A filler mapping as a FillerParameter, writing only the keys that differ from Caffe's
    defaults (type always; a mapping without one is Caffe's default, constant)."""
    kind = filler.get("type", "constant")
    message = new_message("FillerParameter", type=kind)
    for key in FILLER_KEYS.get(kind, ()):
        if key in filler and filler[key] != FILLER_DEFAULTS[key]:
            message.set(key, Identifier(filler[key]) if key == "variance_norm" else filler[key])
    return message
