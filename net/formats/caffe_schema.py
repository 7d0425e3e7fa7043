"""Caffe's protobuf messages and enums as tables: field name -> number, type, label, default.

The facts (names, numbers, types, defaults) are those of BVLC Caffe's src/caffe/proto/caffe.proto
(master, with SwishParameter and ClipParameter). Covered: every message of upstream caffe.proto,
i.e. the net, solver and solver state, blobs, Datum, fillers, net state rules, ParamSpec, the
transformation and loss parameters, every layer-specific *Parameter of LayerParameter, and the
deprecated V1LayerParameter (with its LayerType enum) and V0LayerParameter. Forks' additions
(SSD's detection layers, ...) are not here: their fields read as unknown.

    message_spec("ConvolutionParameter").field("kernel_size")  # FieldSpec: number 4, uint32
    enum_spec("PoolingParameter.PoolMethod").values             # {'MAX': 0, 'AVE': 1, ...}

A FieldSpec also converts values (`coerce`): from Python values or text-format tokens to the
canonical tree value, raising ValueError with a one-line reason. Canonical values: ints for the
integer types (range-checked), bool, str (string), bytes, Identifier (enum value name), float
(double), and for `float` fields the double nearest the shortest decimal that rounds to the same
32-bit float, so `lr_mult: 0.1` reads back as 0.1 and round-trips exactly through both
encodings. Fields marked `array` (blob data, Datum float_data) hold one 1-D numpy array.
"""
from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field as dataclass_field
from typing import Any

import numpy as np

from .prototree import Identifier, Message

INT_RANGES = {
    "int32": (-2**31, 2**31 - 1), "sint32": (-2**31, 2**31 - 1), "sfixed32": (-2**31, 2**31 - 1),
    "int64": (-2**63, 2**63 - 1), "sint64": (-2**63, 2**63 - 1), "sfixed64": (-2**63, 2**63 - 1),
    "uint32": (0, 2**32 - 1), "fixed32": (0, 2**32 - 1),
    "uint64": (0, 2**64 - 1), "fixed64": (0, 2**64 - 1),
}
FLOAT_TYPES = {"float": np.float32, "double": np.float64}
SCALAR_TYPES = set(INT_RANGES) | set(FLOAT_TYPES) | {"bool", "string", "bytes"}
_TRUE, _FALSE = {"true", "True", "t"}, {"false", "False", "f"}
_FLOAT_WORDS = {"inf": math.inf, "infinity": math.inf, "nan": math.nan}
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def float32_canonical(value: float) -> float:
    """The double nearest the shortest decimal that rounds to the same float32 as `value`."""
    if not math.isfinite(value):
        return value
    return float(str(np.float32(value)))


def closest(name: str, choices) -> str:
    """" (did you mean 'x'?)" for the closest of `choices`, or ""."""
    match = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


@dataclass(eq=False)
class EnumSpec:
    name: str
    values: dict[str, int]
    names: dict[int, str] = dataclass_field(init=False)

    def __post_init__(self):
        self.names = {}
        for value_name, number in self.values.items():
            self.names.setdefault(number, value_name)


@dataclass(eq=False)
class FieldSpec:
    """One field. `kind` is 'scalar', 'enum' or 'message' once the schema is linked."""
    name: str
    number: int
    type: str
    label: str = "optional"
    declared_default: Any = None
    packed: bool = False
    array: bool = False
    kind: str = ""
    enum: EnumSpec | None = None
    message_spec: MessageSpec | None = None
    default: Any = None

    @property
    def repeated(self) -> bool:
        return self.label == "repeated"

    @property
    def required(self) -> bool:
        return self.label == "required"

    @property
    def dtype(self) -> type:
        """The numpy dtype of an array field."""
        return FLOAT_TYPES[self.type]

    def coerce(self, value: Any) -> Any:
        """The canonical tree value for `value`; ValueError with the reason if it does not fit."""
        if self.array:
            array = np.asarray(value)
            if array.dtype.kind not in "fiu":
                raise ValueError(f"expects numbers, got {array.dtype}")
            return np.ascontiguousarray(array, dtype=self.dtype).reshape(-1)
        return self.coerce_scalar(value)

    def coerce_scalar(self, value: Any) -> Any:
        if self.kind == "message":
            if not isinstance(value, Message) or value.type_name != self.message_spec.name:
                raise ValueError(f"expects a {self.message_spec.name} message")
            return value
        if self.kind == "enum":
            return self._coerce_enum(value)
        if self.type == "bool":
            return _coerce_bool(value)
        if self.type in INT_RANGES:
            return _coerce_int(value, self.type)
        if self.type in FLOAT_TYPES:
            return _coerce_float(value, self.type)
        if self.type == "string":
            if isinstance(value, Identifier) or not isinstance(value, (str, bytes)):
                raise ValueError(f"expects a quoted string, got {_shown(value)}")
            if isinstance(value, bytes):
                try:
                    return value.decode("utf-8")
                except UnicodeDecodeError:
                    raise ValueError("expects UTF-8 text, got other bytes") from None
            return str(value)
        if isinstance(value, Identifier) or not isinstance(value, (str, bytes)):
            raise ValueError(f"expects a quoted byte string, got {_shown(value)}")
        return value.encode("utf-8") if isinstance(value, str) else bytes(value)

    def _coerce_enum(self, value: Any) -> Identifier:
        enum = self.enum
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            if int(value) in enum.names:
                return Identifier(enum.names[int(value)])
        elif isinstance(value, str) and not isinstance(value, bytes):
            if value in enum.values and (isinstance(value, Identifier) or value.isidentifier()):
                return Identifier(value)
        choices = ", ".join(enum.values)
        hint = closest(str(value), enum.values) if isinstance(value, str) else ""
        raise ValueError(f"{_shown(value)} is not a {enum.name} value (one of {choices}){hint}")


def _shown(value: Any) -> str:
    if isinstance(value, Identifier):
        return str(value)
    if isinstance(value, Message):
        return "a message block"
    return repr(value)


def _coerce_bool(value: Any) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, Identifier) and value in _TRUE | _FALSE:
        return value in _TRUE
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value in (0, 1):
        return bool(value)
    raise ValueError(f"expects true or false, got {_shown(value)}")


def _coerce_int(value: Any, type_name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"expects an integer ({type_name}), got {_shown(value)}")
    low, high = INT_RANGES[type_name]
    if not low <= int(value) <= high:
        raise ValueError(f"{int(value)} is out of range for {type_name} [{low}, {high}]")
    return int(value)


def _coerce_float(value: Any, type_name: str) -> float:
    if isinstance(value, Identifier):
        word = value[1:] if value.startswith("-") else value
        if word.lower() not in _FLOAT_WORDS:
            raise ValueError(f"expects a number, got {value}")
        number = _FLOAT_WORDS[word.lower()]
        number = -number if value.startswith("-") else number
    elif isinstance(value, (bool, np.bool_)) or not isinstance(
            value, (int, float, np.integer, np.floating)):
        raise ValueError(f"expects a number ({type_name}), got {_shown(value)}")
    else:
        number = float(value)
    if type_name == "double":
        return number
    if math.isfinite(number) and abs(number) > _FLOAT32_MAX:
        raise ValueError(f"{value} is out of range for a float (largest {_FLOAT32_MAX:g})")
    return float32_canonical(number)


@dataclass(eq=False)
class MessageSpec:
    name: str
    fields: dict[str, FieldSpec]
    by_number: dict[int, FieldSpec]

    def field(self, name: str) -> FieldSpec:
        """The field called `name`; KeyError with a suggestion when there is none."""
        try:
            return self.fields[name]
        except KeyError:
            raise KeyError(f"{self.name} has no field '{name}'"
                           f"{closest(name, self.fields)}") from None

    def __reduce__(self):
        """Pickled by name, so an unpickled tree shares the module's specs."""
        return message_spec, (self.name,)

    def new(self, line: int = 0, file: str | None = None, **values: Any) -> Message:
        """A typed message of this type with the given fields set."""
        message = Message(self, line, file)
        for name, value in values.items():
            message.set(name, value, line)
        return message


MESSAGES: dict[str, MessageSpec] = {}
ENUMS: dict[str, EnumSpec] = {}


def message_spec(name: str) -> MessageSpec:
    try:
        return MESSAGES[name]
    except KeyError:
        raise KeyError(f"no Caffe message '{name}'{closest(name, MESSAGES)}") from None


def enum_spec(name: str) -> EnumSpec:
    return ENUMS[name]


def new_message(type_name: str, line: int = 0, file: str | None = None, **values: Any) -> Message:
    """A typed message: new_message("BlobShape", dim=[2, 3])."""
    return message_spec(type_name).new(line, file, **values)


# -- the tables ---------------------------------------------------------------------------------
def opt(name: str, number: int, type_name: str, default: Any = None) -> FieldSpec:
    return FieldSpec(name, number, type_name, "optional", default)


def req(name: str, number: int, type_name: str) -> FieldSpec:
    return FieldSpec(name, number, type_name, "required")


def rep(name: str, number: int, type_name: str, packed: bool = False,
        array: bool = False) -> FieldSpec:
    return FieldSpec(name, number, type_name, "repeated", None, packed, array)


def _message(name: str, *fields: FieldSpec, enums: dict[str, dict[str, int]] | None = None):
    MESSAGES[name] = MessageSpec(name, {f.name: f for f in fields}, {f.number: f for f in fields})
    for enum_name, values in (enums or {}).items():
        ENUMS[f"{name}.{enum_name}"] = EnumSpec(f"{name}.{enum_name}", values)


ENGINE = {"DEFAULT": 0, "CAFFE": 1, "CUDNN": 2}
POOL_METHOD = {"MAX": 0, "AVE": 1, "STOCHASTIC": 2}
ENUMS["Phase"] = EnumSpec("Phase", {"TRAIN": 0, "TEST": 1})

_message("BlobShape", rep("dim", 1, "int64", packed=True))
_message(
    "BlobProto",
    opt("shape", 7, "BlobShape"),
    rep("data", 5, "float", packed=True, array=True),
    rep("diff", 6, "float", packed=True, array=True),
    rep("double_data", 8, "double", packed=True, array=True),
    rep("double_diff", 9, "double", packed=True, array=True),
    opt("num", 1, "int32", 0), opt("channels", 2, "int32", 0),
    opt("height", 3, "int32", 0), opt("width", 4, "int32", 0))
_message("BlobProtoVector", rep("blobs", 1, "BlobProto"))
_message(
    "Datum",
    opt("channels", 1, "int32"), opt("height", 2, "int32"), opt("width", 3, "int32"),
    opt("data", 4, "bytes"), opt("label", 5, "int32"),
    rep("float_data", 6, "float", array=True),
    opt("encoded", 7, "bool", False))
_message(
    "FillerParameter",
    opt("type", 1, "string", "constant"), opt("value", 2, "float", 0.0),
    opt("min", 3, "float", 0.0), opt("max", 4, "float", 1.0),
    opt("mean", 5, "float", 0.0), opt("std", 6, "float", 1.0),
    opt("sparse", 7, "int32", -1), opt("variance_norm", 8, "VarianceNorm", "FAN_IN"),
    enums={"VarianceNorm": {"FAN_IN": 0, "FAN_OUT": 1, "AVERAGE": 2}})
_message(
    "NetParameter",
    opt("name", 1, "string"), rep("input", 3, "string"), rep("input_shape", 8, "BlobShape"),
    rep("input_dim", 4, "int32"), opt("force_backward", 5, "bool", False),
    opt("state", 6, "NetState"), opt("debug_info", 7, "bool", False),
    rep("layer", 100, "LayerParameter"), rep("layers", 2, "V1LayerParameter"))
_message(
    "SolverParameter",
    opt("net", 24, "string"), opt("net_param", 25, "NetParameter"),
    opt("train_net", 1, "string"), rep("test_net", 2, "string"),
    opt("train_net_param", 21, "NetParameter"), rep("test_net_param", 22, "NetParameter"),
    opt("train_state", 26, "NetState"), rep("test_state", 27, "NetState"),
    rep("test_iter", 3, "int32"), opt("test_interval", 4, "int32", 0),
    opt("test_compute_loss", 19, "bool", False), opt("test_initialization", 32, "bool", True),
    opt("base_lr", 5, "float"), opt("display", 6, "int32"),
    opt("average_loss", 33, "int32", 1), opt("max_iter", 7, "int32"),
    opt("iter_size", 36, "int32", 1), opt("lr_policy", 8, "string"),
    opt("gamma", 9, "float"), opt("power", 10, "float"), opt("momentum", 11, "float"),
    opt("weight_decay", 12, "float"), opt("regularization_type", 29, "string", "L2"),
    opt("stepsize", 13, "int32"), rep("stepvalue", 34, "int32"),
    opt("clip_gradients", 35, "float", -1.0), opt("snapshot", 14, "int32", 0),
    opt("snapshot_prefix", 15, "string"), opt("snapshot_diff", 16, "bool", False),
    opt("snapshot_format", 37, "SnapshotFormat", "BINARYPROTO"),
    opt("solver_mode", 17, "SolverMode", "GPU"), opt("device_id", 18, "int32", 0),
    opt("random_seed", 20, "int64", -1), opt("type", 40, "string", "SGD"),
    opt("delta", 31, "float", 1e-8), opt("momentum2", 39, "float", 0.999),
    opt("rms_decay", 38, "float", 0.99), opt("debug_info", 23, "bool", False),
    opt("snapshot_after_train", 28, "bool", True), opt("solver_type", 30, "SolverType", "SGD"),
    opt("layer_wise_reduce", 41, "bool", True), rep("weights", 42, "string"),
    enums={"SnapshotFormat": {"HDF5": 0, "BINARYPROTO": 1},
           "SolverMode": {"CPU": 0, "GPU": 1},
           "SolverType": {"SGD": 0, "NESTEROV": 1, "ADAGRAD": 2, "RMSPROP": 3, "ADADELTA": 4,
                          "ADAM": 5}})
_message(
    "SolverState",
    opt("iter", 1, "int32"), opt("learned_net", 2, "string"), rep("history", 3, "BlobProto"),
    opt("current_step", 4, "int32", 0))
_message(
    "NetState",
    opt("phase", 1, "Phase", "TEST"), opt("level", 2, "int32", 0), rep("stage", 3, "string"))
_message(
    "NetStateRule",
    opt("phase", 1, "Phase"), opt("min_level", 2, "int32"), opt("max_level", 3, "int32"),
    rep("stage", 4, "string"), rep("not_stage", 5, "string"))
_message(
    "ParamSpec",
    opt("name", 1, "string"), opt("share_mode", 2, "DimCheckMode"),
    opt("lr_mult", 3, "float", 1.0), opt("decay_mult", 4, "float", 1.0),
    enums={"DimCheckMode": {"STRICT": 0, "PERMISSIVE": 1}})

# LayerParameter: the common fields, then one *_param per layer type (field numbers 100+).
LAYER_PARAMS = {
    "transform_param": (100, "TransformationParameter"), "loss_param": (101, "LossParameter"),
    "accuracy_param": (102, "AccuracyParameter"), "argmax_param": (103, "ArgMaxParameter"),
    "batch_norm_param": (139, "BatchNormParameter"), "bias_param": (141, "BiasParameter"),
    "clip_param": (148, "ClipParameter"), "concat_param": (104, "ConcatParameter"),
    "contrastive_loss_param": (105, "ContrastiveLossParameter"),
    "convolution_param": (106, "ConvolutionParameter"), "crop_param": (144, "CropParameter"),
    "data_param": (107, "DataParameter"), "dropout_param": (108, "DropoutParameter"),
    "dummy_data_param": (109, "DummyDataParameter"), "eltwise_param": (110, "EltwiseParameter"),
    "elu_param": (140, "ELUParameter"), "embed_param": (137, "EmbedParameter"),
    "exp_param": (111, "ExpParameter"), "flatten_param": (135, "FlattenParameter"),
    "hdf5_data_param": (112, "HDF5DataParameter"),
    "hdf5_output_param": (113, "HDF5OutputParameter"),
    "hinge_loss_param": (114, "HingeLossParameter"),
    "image_data_param": (115, "ImageDataParameter"),
    "infogain_loss_param": (116, "InfogainLossParameter"),
    "inner_product_param": (117, "InnerProductParameter"), "input_param": (143, "InputParameter"),
    "log_param": (134, "LogParameter"), "lrn_param": (118, "LRNParameter"),
    "memory_data_param": (119, "MemoryDataParameter"), "mvn_param": (120, "MVNParameter"),
    "parameter_param": (145, "ParameterParameter"), "pooling_param": (121, "PoolingParameter"),
    "power_param": (122, "PowerParameter"), "prelu_param": (131, "PReLUParameter"),
    "python_param": (130, "PythonParameter"), "recurrent_param": (146, "RecurrentParameter"),
    "reduction_param": (136, "ReductionParameter"), "relu_param": (123, "ReLUParameter"),
    "reshape_param": (133, "ReshapeParameter"), "scale_param": (142, "ScaleParameter"),
    "sigmoid_param": (124, "SigmoidParameter"), "softmax_param": (125, "SoftmaxParameter"),
    "spp_param": (132, "SPPParameter"), "slice_param": (126, "SliceParameter"),
    "swish_param": (147, "SwishParameter"), "tanh_param": (127, "TanHParameter"),
    "threshold_param": (128, "ThresholdParameter"), "tile_param": (138, "TileParameter"),
    "window_data_param": (129, "WindowDataParameter"),
}
_message(
    "LayerParameter",
    opt("name", 1, "string"), opt("type", 2, "string"),
    rep("bottom", 3, "string"), rep("top", 4, "string"), opt("phase", 10, "Phase"),
    rep("loss_weight", 5, "float"), rep("param", 6, "ParamSpec"), rep("blobs", 7, "BlobProto"),
    rep("propagate_down", 11, "bool"),
    rep("include", 8, "NetStateRule"), rep("exclude", 9, "NetStateRule"),
    *(opt(name, number, type_name) for name, (number, type_name) in LAYER_PARAMS.items()))
_message(
    "TransformationParameter",
    opt("scale", 1, "float", 1.0), opt("mirror", 2, "bool", False),
    opt("crop_size", 3, "uint32", 0), opt("mean_file", 4, "string"),
    rep("mean_value", 5, "float"), opt("force_color", 6, "bool", False),
    opt("force_gray", 7, "bool", False))
_message(
    "LossParameter",
    opt("ignore_label", 1, "int32"), opt("normalization", 3, "NormalizationMode", "VALID"),
    opt("normalize", 2, "bool"),
    enums={"NormalizationMode": {"FULL": 0, "VALID": 1, "BATCH_SIZE": 2, "NONE": 3}})

# The layer-specific parameters, in caffe.proto's (alphabetical) order.
_message(
    "AccuracyParameter",
    opt("top_k", 1, "uint32", 1), opt("axis", 2, "int32", 1), opt("ignore_label", 3, "int32"))
_message(
    "ArgMaxParameter",
    opt("out_max_val", 1, "bool", False), opt("top_k", 2, "uint32", 1), opt("axis", 3, "int32"))
_message("ClipParameter", req("min", 1, "float"), req("max", 2, "float"))
_message("ConcatParameter", opt("axis", 2, "int32", 1), opt("concat_dim", 1, "uint32", 1))
_message(
    "BatchNormParameter",
    opt("use_global_stats", 1, "bool"), opt("moving_average_fraction", 2, "float", 0.999),
    opt("eps", 3, "float", 1e-5))
_message(
    "BiasParameter",
    opt("axis", 1, "int32", 1), opt("num_axes", 2, "int32", 1),
    opt("filler", 3, "FillerParameter"))
_message(
    "ContrastiveLossParameter",
    opt("margin", 1, "float", 1.0), opt("legacy_version", 2, "bool", False))
_message(
    "ConvolutionParameter",
    opt("num_output", 1, "uint32"), opt("bias_term", 2, "bool", True),
    rep("pad", 3, "uint32"), rep("kernel_size", 4, "uint32"), rep("stride", 6, "uint32"),
    rep("dilation", 18, "uint32"),
    opt("pad_h", 9, "uint32", 0), opt("pad_w", 10, "uint32", 0),
    opt("kernel_h", 11, "uint32"), opt("kernel_w", 12, "uint32"),
    opt("stride_h", 13, "uint32"), opt("stride_w", 14, "uint32"),
    opt("group", 5, "uint32", 1),
    opt("weight_filler", 7, "FillerParameter"), opt("bias_filler", 8, "FillerParameter"),
    opt("engine", 15, "Engine", "DEFAULT"), opt("axis", 16, "int32", 1),
    opt("force_nd_im2col", 17, "bool", False),
    enums={"Engine": ENGINE})
_message("CropParameter", opt("axis", 1, "int32", 2), rep("offset", 2, "uint32"))
_message(
    "DataParameter",
    opt("source", 1, "string"), opt("batch_size", 4, "uint32"),
    opt("rand_skip", 7, "uint32", 0), opt("backend", 8, "DB", "LEVELDB"),
    opt("scale", 2, "float", 1.0), opt("mean_file", 3, "string"),
    opt("crop_size", 5, "uint32", 0), opt("mirror", 6, "bool", False),
    opt("force_encoded_color", 9, "bool", False), opt("prefetch", 10, "uint32", 4),
    enums={"DB": {"LEVELDB": 0, "LMDB": 1}})
_message("DropoutParameter", opt("dropout_ratio", 1, "float", 0.5))
_message(
    "DummyDataParameter",
    rep("data_filler", 1, "FillerParameter"), rep("shape", 6, "BlobShape"),
    rep("num", 2, "uint32"), rep("channels", 3, "uint32"),
    rep("height", 4, "uint32"), rep("width", 5, "uint32"))
_message(
    "EltwiseParameter",
    opt("operation", 1, "EltwiseOp", "SUM"), rep("coeff", 2, "float"),
    opt("stable_prod_grad", 3, "bool", True),
    enums={"EltwiseOp": {"PROD": 0, "SUM": 1, "MAX": 2}})
_message("ELUParameter", opt("alpha", 1, "float", 1.0))
_message(
    "EmbedParameter",
    opt("num_output", 1, "uint32"), opt("input_dim", 2, "uint32"),
    opt("bias_term", 3, "bool", True),
    opt("weight_filler", 4, "FillerParameter"), opt("bias_filler", 5, "FillerParameter"))
_message(
    "ExpParameter",
    opt("base", 1, "float", -1.0), opt("scale", 2, "float", 1.0), opt("shift", 3, "float", 0.0))
_message("FlattenParameter", opt("axis", 1, "int32", 1), opt("end_axis", 2, "int32", -1))
_message(
    "HDF5DataParameter",
    opt("source", 1, "string"), opt("batch_size", 2, "uint32"),
    opt("shuffle", 3, "bool", False))
_message("HDF5OutputParameter", opt("file_name", 1, "string"))
_message(
    "HingeLossParameter", opt("norm", 1, "Norm", "L1"), enums={"Norm": {"L1": 1, "L2": 2}})
_message(
    "ImageDataParameter",
    opt("source", 1, "string"), opt("batch_size", 4, "uint32", 1),
    opt("rand_skip", 7, "uint32", 0), opt("shuffle", 8, "bool", False),
    opt("new_height", 9, "uint32", 0), opt("new_width", 10, "uint32", 0),
    opt("is_color", 11, "bool", True), opt("scale", 2, "float", 1.0),
    opt("mean_file", 3, "string"), opt("crop_size", 5, "uint32", 0),
    opt("mirror", 6, "bool", False), opt("root_folder", 12, "string", ""))
_message("InfogainLossParameter", opt("source", 1, "string"), opt("axis", 2, "int32", 1))
_message(
    "InnerProductParameter",
    opt("num_output", 1, "uint32"), opt("bias_term", 2, "bool", True),
    opt("weight_filler", 3, "FillerParameter"), opt("bias_filler", 4, "FillerParameter"),
    opt("axis", 5, "int32", 1), opt("transpose", 6, "bool", False))
_message("InputParameter", rep("shape", 1, "BlobShape"))
_message(
    "LogParameter",
    opt("base", 1, "float", -1.0), opt("scale", 2, "float", 1.0), opt("shift", 3, "float", 0.0))
_message(
    "LRNParameter",
    opt("local_size", 1, "uint32", 5), opt("alpha", 2, "float", 1.0),
    opt("beta", 3, "float", 0.75), opt("norm_region", 4, "NormRegion", "ACROSS_CHANNELS"),
    opt("k", 5, "float", 1.0), opt("engine", 6, "Engine", "DEFAULT"),
    enums={"NormRegion": {"ACROSS_CHANNELS": 0, "WITHIN_CHANNEL": 1}, "Engine": ENGINE})
_message(
    "MemoryDataParameter",
    opt("batch_size", 1, "uint32"), opt("channels", 2, "uint32"),
    opt("height", 3, "uint32"), opt("width", 4, "uint32"))
_message(
    "MVNParameter",
    opt("normalize_variance", 1, "bool", True), opt("across_channels", 2, "bool", False),
    opt("eps", 3, "float", 1e-9))
_message("ParameterParameter", opt("shape", 1, "BlobShape"))
_message(
    "PoolingParameter",
    opt("pool", 1, "PoolMethod", "MAX"),
    opt("pad", 4, "uint32", 0), opt("pad_h", 9, "uint32", 0), opt("pad_w", 10, "uint32", 0),
    opt("kernel_size", 2, "uint32"), opt("kernel_h", 5, "uint32"), opt("kernel_w", 6, "uint32"),
    opt("stride", 3, "uint32", 1), opt("stride_h", 7, "uint32"), opt("stride_w", 8, "uint32"),
    opt("engine", 11, "Engine", "DEFAULT"), opt("global_pooling", 12, "bool", False),
    opt("round_mode", 13, "RoundMode", "CEIL"),
    enums={"PoolMethod": POOL_METHOD, "Engine": ENGINE, "RoundMode": {"CEIL": 0, "FLOOR": 1}})
_message(
    "PowerParameter",
    opt("power", 1, "float", 1.0), opt("scale", 2, "float", 1.0), opt("shift", 3, "float", 0.0))
_message(
    "PythonParameter",
    opt("module", 1, "string"), opt("layer", 2, "string"), opt("param_str", 3, "string", ""),
    opt("share_in_parallel", 4, "bool", False))
_message(
    "RecurrentParameter",
    opt("num_output", 1, "uint32", 0),
    opt("weight_filler", 2, "FillerParameter"), opt("bias_filler", 3, "FillerParameter"),
    opt("debug_info", 4, "bool", False), opt("expose_hidden", 5, "bool", False))
_message(
    "ReductionParameter",
    opt("operation", 1, "ReductionOp", "SUM"), opt("axis", 2, "int32", 0),
    opt("coeff", 3, "float", 1.0),
    enums={"ReductionOp": {"SUM": 1, "ASUM": 2, "SUMSQ": 3, "MEAN": 4}})
_message(
    "ReLUParameter",
    opt("negative_slope", 1, "float", 0.0), opt("engine", 2, "Engine", "DEFAULT"),
    enums={"Engine": ENGINE})
_message(
    "ReshapeParameter",
    opt("shape", 1, "BlobShape"), opt("axis", 2, "int32", 0), opt("num_axes", 3, "int32", -1))
_message(
    "ScaleParameter",
    opt("axis", 1, "int32", 1), opt("num_axes", 2, "int32", 1),
    opt("filler", 3, "FillerParameter"), opt("bias_term", 4, "bool", False),
    opt("bias_filler", 5, "FillerParameter"))
_message("SigmoidParameter", opt("engine", 1, "Engine", "DEFAULT"), enums={"Engine": ENGINE})
_message(
    "SliceParameter",
    opt("axis", 3, "int32", 1), rep("slice_point", 2, "uint32"),
    opt("slice_dim", 1, "uint32", 1))
_message(
    "SoftmaxParameter",
    opt("engine", 1, "Engine", "DEFAULT"), opt("axis", 2, "int32", 1), enums={"Engine": ENGINE})
_message("SwishParameter", opt("beta", 1, "float", 1.0))
_message("TanHParameter", opt("engine", 1, "Engine", "DEFAULT"), enums={"Engine": ENGINE})
_message("TileParameter", opt("axis", 1, "int32", 1), opt("tiles", 2, "int32"))
_message("ThresholdParameter", opt("threshold", 1, "float", 0.0))
_message(
    "WindowDataParameter",
    opt("source", 1, "string"), opt("scale", 2, "float", 1.0), opt("mean_file", 3, "string"),
    opt("batch_size", 4, "uint32"), opt("crop_size", 5, "uint32", 0),
    opt("mirror", 6, "bool", False), opt("fg_threshold", 7, "float", 0.5),
    opt("bg_threshold", 8, "float", 0.5), opt("fg_fraction", 9, "float", 0.25),
    opt("context_pad", 10, "uint32", 0), opt("crop_mode", 11, "string", "warp"),
    opt("cache_images", 12, "bool", False), opt("root_folder", 13, "string", ""))
_message(
    "SPPParameter",
    opt("pyramid_height", 1, "uint32"), opt("pool", 2, "PoolMethod", "MAX"),
    opt("engine", 6, "Engine", "DEFAULT"),
    enums={"PoolMethod": POOL_METHOD, "Engine": ENGINE})
_message(
    "PReLUParameter",
    opt("filler", 1, "FillerParameter"), opt("channel_shared", 2, "bool", False))

# The deprecated layer formats, kept so old nets and caffemodels can be read and upgraded.
V1_LAYER_TYPES = {
    "NONE": 0, "ABSVAL": 35, "ACCURACY": 1, "ARGMAX": 30, "BNLL": 2, "CONCAT": 3,
    "CONTRASTIVE_LOSS": 37, "CONVOLUTION": 4, "DATA": 5, "DECONVOLUTION": 39, "DROPOUT": 6,
    "DUMMY_DATA": 32, "EUCLIDEAN_LOSS": 7, "ELTWISE": 25, "EXP": 38, "FLATTEN": 8,
    "HDF5_DATA": 9, "HDF5_OUTPUT": 10, "HINGE_LOSS": 28, "IM2COL": 11, "IMAGE_DATA": 12,
    "INFOGAIN_LOSS": 13, "INNER_PRODUCT": 14, "LRN": 15, "MEMORY_DATA": 29,
    "MULTINOMIAL_LOGISTIC_LOSS": 16, "MVN": 34, "POOLING": 17, "POWER": 26, "RELU": 18,
    "SIGMOID": 19, "SIGMOID_CROSS_ENTROPY_LOSS": 27, "SILENCE": 36, "SOFTMAX": 20,
    "SOFTMAX_LOSS": 21, "SPLIT": 22, "SLICE": 33, "TANH": 23, "WINDOW_DATA": 24, "THRESHOLD": 31,
}
V1_LAYER_PARAMS = {
    "accuracy_param": 27, "argmax_param": 23, "concat_param": 9, "contrastive_loss_param": 40,
    "convolution_param": 10, "data_param": 11, "dropout_param": 12, "dummy_data_param": 26,
    "eltwise_param": 24, "exp_param": 41, "hdf5_data_param": 13, "hdf5_output_param": 14,
    "hinge_loss_param": 29, "image_data_param": 15, "infogain_loss_param": 16,
    "inner_product_param": 17, "lrn_param": 18, "memory_data_param": 22, "mvn_param": 34,
    "pooling_param": 19, "power_param": 21, "relu_param": 30, "sigmoid_param": 38,
    "softmax_param": 39, "slice_param": 31, "tanh_param": 37, "threshold_param": 25,
    "window_data_param": 20, "transform_param": 36, "loss_param": 42,
}
_message(
    "V1LayerParameter",
    rep("bottom", 2, "string"), rep("top", 3, "string"), opt("name", 4, "string"),
    rep("include", 32, "NetStateRule"), rep("exclude", 33, "NetStateRule"),
    opt("type", 5, "LayerType"), rep("blobs", 6, "BlobProto"),
    rep("param", 1001, "string"), rep("blob_share_mode", 1002, "DimCheckMode"),
    rep("blobs_lr", 7, "float"), rep("weight_decay", 8, "float"),
    rep("loss_weight", 35, "float"),
    *(opt(name, number, LAYER_PARAMS[name][1]) for name, number in V1_LAYER_PARAMS.items()),
    opt("layer", 1, "V0LayerParameter"),
    enums={"LayerType": V1_LAYER_TYPES, "DimCheckMode": {"STRICT": 0, "PERMISSIVE": 1}})
_message(
    "V0LayerParameter",
    opt("name", 1, "string"), opt("type", 2, "string"), opt("num_output", 3, "uint32"),
    opt("biasterm", 4, "bool", True),
    opt("weight_filler", 5, "FillerParameter"), opt("bias_filler", 6, "FillerParameter"),
    opt("pad", 7, "uint32", 0), opt("kernelsize", 8, "uint32"), opt("group", 9, "uint32", 1),
    opt("stride", 10, "uint32", 1), opt("pool", 11, "PoolMethod", "MAX"),
    opt("dropout_ratio", 12, "float", 0.5), opt("local_size", 13, "uint32", 5),
    opt("alpha", 14, "float", 1.0), opt("beta", 15, "float", 0.75), opt("k", 22, "float", 1.0),
    opt("source", 16, "string"), opt("scale", 17, "float", 1.0), opt("meanfile", 18, "string"),
    opt("batchsize", 19, "uint32"), opt("cropsize", 20, "uint32", 0),
    opt("mirror", 21, "bool", False), rep("blobs", 50, "BlobProto"),
    rep("blobs_lr", 51, "float"), rep("weight_decay", 52, "float"),
    opt("rand_skip", 53, "uint32", 0), opt("det_fg_threshold", 54, "float", 0.5),
    opt("det_bg_threshold", 55, "float", 0.5), opt("det_fg_fraction", 56, "float", 0.25),
    opt("det_context_pad", 58, "uint32", 0), opt("det_crop_mode", 59, "string", "warp"),
    opt("new_num", 60, "int32", 0), opt("new_channels", 61, "int32", 0),
    opt("new_height", 62, "int32", 0), opt("new_width", 63, "int32", 0),
    opt("shuffle_images", 64, "bool", False), opt("concat_dim", 65, "uint32", 1),
    opt("hdf5_output_param", 1001, "HDF5OutputParameter"),
    enums={"PoolMethod": POOL_METHOD})


def _proto2_default(field: FieldSpec) -> Any:
    """The value a field reads as when absent and caffe.proto declares no default."""
    if field.kind == "enum":
        return Identifier(next(iter(field.enum.values)))
    if field.type == "bool":
        return False
    if field.type in FLOAT_TYPES:
        return 0.0
    return {"string": "", "bytes": b""}.get(field.type, 0)


def _link() -> None:
    """Resolve each field's type to a scalar, an enum or a message, and check every default."""
    for spec in MESSAGES.values():
        for field in spec.fields.values():
            scoped = f"{spec.name}.{field.type}"
            if field.type in SCALAR_TYPES:
                field.kind = "scalar"
            elif scoped in ENUMS or field.type in ENUMS:
                field.kind, field.enum = "enum", ENUMS.get(scoped) or ENUMS[field.type]
            else:
                field.kind, field.message_spec = "message", MESSAGES[field.type]
                field.type = field.message_spec.name
            if field.kind == "enum":
                field.type = field.enum.name
            if field.declared_default is not None:
                field.default = field.coerce_scalar(
                    Identifier(field.declared_default) if field.kind == "enum"
                    else field.declared_default)
            elif not field.repeated and field.kind != "message":
                field.default = _proto2_default(field)


_link()
