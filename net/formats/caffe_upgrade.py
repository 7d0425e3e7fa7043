"""Old Caffe files brought to the current form in one place, as Caffe's upgrade_proto does, so
every later reader sees one format: `layer {}` entries with string types.

upgrade_net (a typed NetParameter -> a new, upgraded one):
  - V1 `layers {}` (enum types CONVOLUTION, RELU, ...) -> `layer {}` with Caffe's type strings;
    `blobs_lr`, `weight_decay`, `param` (names) and `blob_share_mode` -> `param { lr_mult
    decay_mult name share_mode }`; blobs, loss weights, include/exclude and every `*_param` kept
  - the deprecated transformation fields of data_param, image_data_param and window_data_param
    (scale, mean_file, crop_size, mirror) -> transform_param
  - legacy deploy inputs (`input:` with `input_shape {}` or four `input_dim:` each) -> an
    `Input` layer named "input" placed first; a bare `input:` (old caffemodels) is dropped
  - BatchNorm layers with Caffe's old three `param {}` get lr_mult and decay_mult 0
V0 nets (`layers { layer { ... } }`) and nets with both `layer` and `layers` are refused.

upgrade_solver: the deprecated `solver_type` enum -> the `type` string; inline nets upgraded.

Every upgraded field keeps the line it came from, so errors found later still point at it.
"""
from __future__ import annotations

from net.errors import ConfigError

from .caffe_schema import LAYER_PARAMS, message_spec, new_message
from .prototree import Message

V1_TYPE_NAMES = {
    "NONE": "", "ABSVAL": "AbsVal", "ACCURACY": "Accuracy", "ARGMAX": "ArgMax", "BNLL": "BNLL",
    "CONCAT": "Concat", "CONTRASTIVE_LOSS": "ContrastiveLoss", "CONVOLUTION": "Convolution",
    "DECONVOLUTION": "Deconvolution", "DATA": "Data", "DROPOUT": "Dropout",
    "DUMMY_DATA": "DummyData", "EUCLIDEAN_LOSS": "EuclideanLoss", "ELTWISE": "Eltwise",
    "EXP": "Exp", "FLATTEN": "Flatten", "HDF5_DATA": "HDF5Data", "HDF5_OUTPUT": "HDF5Output",
    "HINGE_LOSS": "HingeLoss", "IM2COL": "Im2col", "IMAGE_DATA": "ImageData",
    "INFOGAIN_LOSS": "InfogainLoss", "INNER_PRODUCT": "InnerProduct", "LRN": "LRN",
    "MEMORY_DATA": "MemoryData", "MULTINOMIAL_LOGISTIC_LOSS": "MultinomialLogisticLoss",
    "MVN": "MVN", "POOLING": "Pooling", "POWER": "Power", "RELU": "ReLU", "SIGMOID": "Sigmoid",
    "SIGMOID_CROSS_ENTROPY_LOSS": "SigmoidCrossEntropyLoss", "SILENCE": "Silence",
    "SOFTMAX": "Softmax", "SOFTMAX_LOSS": "SoftmaxWithLoss", "SPLIT": "Split", "SLICE": "Slice",
    "TANH": "TanH", "WINDOW_DATA": "WindowData", "THRESHOLD": "Threshold",
}
SOLVER_TYPE_NAMES = {"SGD": "SGD", "NESTEROV": "Nesterov", "ADAGRAD": "AdaGrad",
                     "RMSPROP": "RMSProp", "ADADELTA": "AdaDelta", "ADAM": "Adam"}
_DATA_PARAMS = ("data_param", "image_data_param", "window_data_param")
_TRANSFORM_FIELDS = ("scale", "mean_file", "crop_size", "mirror")
# V1 per-blob lists -> the ParamSpec field each fills
_V1_PARAM_FIELDS = {"param": "name", "blob_share_mode": "share_mode", "blobs_lr": "lr_mult",
                    "weight_decay": "decay_mult"}


def net_needs_upgrade(net: Message) -> bool:
    """Whether `upgrade_net` would change anything."""
    return upgrade_net(net) != net


def upgrade_net(net: Message) -> Message:
    """A copy of NetParameter `net` in the current form (see the module docstring)."""
    if net.type_name != "NetParameter":
        raise TypeError(f"upgrade_net needs a typed NetParameter, not {net.type_name}")
    net = net.copy()
    if net.has("layers"):
        _upgrade_v1_layers(net)
    if net.has("layer"):
        layers = [_upgrade_layer(layer) for layer in net.all("layer")]
        net.replace_raw("layer", layers, _lines(net, "layer"))
    _upgrade_inputs(net)
    return net


def _lines(message: Message, name: str) -> list[int]:
    return [message.line_of(name, index) for index in range(len(message.all(name)))]


def _error(message: Message, text: str, line: int | None = None) -> ConfigError:
    return ConfigError(text, message.file, line if line is not None else message.line)


def _upgrade_v1_layers(net: Message) -> None:
    if net.has("layer"):
        raise _error(net, "the net has both 'layer' and the deprecated 'layers' entries; "
                          "use one form", net.line_of("layers"))
    layers, lines = [_upgrade_v1_layer(old) for old in net.all("layers")], _lines(net, "layers")
    net.remove("layers")
    net.replace_raw("layer", layers, lines)


def _upgrade_v1_layer(old: Message) -> Message:
    name = old.get("name", "")
    if old.has("layer"):
        raise _error(old, f"layer {name!r}: V0 layers (layers {{ layer {{ ... }} }}) are not "
                          "supported; upgrade the file with Caffe's upgrade_net_proto_text")
    layer = Message(message_spec("LayerParameter"), old.line, old.file)
    for field in ("name", "type", "bottom", "top", "loss_weight", "param", "blobs", "include",
                  "exclude", *sorted(LAYER_PARAMS, key=lambda key: LAYER_PARAMS[key][0])):
        if field == "param":
            _add_param_specs(old, layer)
        elif old.has(field):
            values = old.all(field)
            if field == "type":
                values = [V1_TYPE_NAMES[old.type]]
            layer.replace_raw(field, values, _lines(old, field))
    return layer


def _add_param_specs(old: Message, layer: Message) -> None:
    """V1's per-blob lists (names, share modes, lr and decay multipliers) -> one `param {}` per
    blob position, as many as the longest list; each at the line of its first value."""
    count = max(len(old.all(key)) for key in _V1_PARAM_FIELDS)
    for index in range(count):
        given = [key for key in _V1_PARAM_FIELDS if index < len(old.all(key))]
        line = old.line_of(given[0], index)
        spec = Message(message_spec("ParamSpec"), line, old.file)
        for key in given:
            spec.append_raw(_V1_PARAM_FIELDS[key], old.all(key)[index], old.line_of(key, index))
        layer.append_raw("param", _ordered(spec), line)


def _ordered(message: Message) -> Message:
    """The same message with its fields in field-number order (the order Caffe prints)."""
    ordered = Message(message.spec, message.line, message.file)
    for name, values, lines in sorted(message.items(),
                                      key=lambda item: message.spec.fields[item[0]].number):
        ordered.replace_raw(name, values, lines)
    return ordered


def _upgrade_layer(layer: Message) -> Message:
    """A current-form layer with the deprecated data-layer transform fields moved and old
    BatchNorm params frozen."""
    moved = False
    for param_name in _DATA_PARAMS:
        moved = _move_transform_fields(layer, param_name) or moved
    _fix_batch_norm_params(layer)
    return _ordered(layer) if moved else layer


def _move_transform_fields(layer: Message, param_name: str) -> bool:
    """scale, mean_file, crop_size, mirror from a data layer's own parameters -> transform_param
    (Caffe's DataTransformer reads only transform_param). Whether anything moved."""
    params = layer.get(param_name)
    if params is None or not any(params.has(key) for key in _TRANSFORM_FIELDS):
        return False
    if not layer.has("transform_param"):
        layer.append_raw("transform_param", Message(message_spec("TransformationParameter"),
                                                    params.line, params.file), params.line)
    transform = layer.get("transform_param")
    for key in _TRANSFORM_FIELDS:
        if not params.has(key):
            continue
        if transform.has(key) and transform.get(key) != params.get(key):
            raise _error(params, f"layer {layer.get('name', '')!r}: {param_name}.{key} and "
                                 f"transform_param.{key} disagree; keep transform_param",
                         params.line_of(key))
        if not transform.has(key):
            transform.append_raw(key, params.get(key), params.line_of(key))
        params.remove(key)
    layer.replace_raw("transform_param", [_ordered(transform)], [transform.line])
    return True


def _fix_batch_norm_params(layer: Message) -> None:
    """Caffe's old BatchNorm declared three `param {}` (its statistics); they must not learn."""
    if layer.get("type") != "BatchNorm" or len(layer.all("param")) != 3:
        return
    for spec in layer.all("param"):
        spec.set("lr_mult", 0.0, spec.line_of("lr_mult"))
        spec.set("decay_mult", 0.0, spec.line_of("decay_mult"))


def _upgrade_inputs(net: Message) -> None:
    """`input` + `input_shape`/`input_dim` -> a first layer of type Input named "input"."""
    inputs = net.all("input")
    shapes = net.all("input_shape")
    dims = net.all("input_dim")
    if (shapes or dims) and not inputs:
        raise _error(net, "input_shape/input_dim given without any 'input'",
                     net.line_of("input_shape" if shapes else "input_dim"))
    if shapes and dims:
        raise _error(net, "give the inputs' shapes with input_shape or input_dim, not both",
                     net.line_of("input_dim"))
    if shapes and len(shapes) != len(inputs):
        raise _error(net, f"{len(inputs)} input(s) but {len(shapes)} input_shape(s)",
                     net.line_of("input_shape"))
    if dims and len(dims) != 4 * len(inputs):
        raise _error(net, f"{len(inputs)} input(s) need {4 * len(inputs)} input_dim values "
                          f"(num, channels, height, width each), got {len(dims)}",
                     net.line_of("input_dim"))
    if shapes or dims:
        line = net.line_of("input")
        layer = new_message("LayerParameter", line, net.file, name="input", type="Input")
        for index, blob in enumerate(inputs):
            layer.append_raw("top", blob, net.line_of("input", index))
        params = Message(message_spec("InputParameter"), line, net.file)
        for index in range(len(inputs)):
            shape = shapes[index] if shapes else new_message(
                "BlobShape", net.line_of("input_dim", 4 * index), net.file,
                dim=dims[4 * index:4 * index + 4])
            params.append_raw("shape", shape, shape.line)
        layer.append_raw("input_param", params, line)
        net.replace_raw("layer", [layer] + net.all("layer"), [line] + _lines(net, "layer"))
    for key in ("input", "input_shape", "input_dim"):
        net.remove(key)


def upgrade_solver(solver: Message) -> Message:
    """A copy of SolverParameter `solver` with `solver_type` turned into `type` and its inline
    nets upgraded."""
    if solver.type_name != "SolverParameter":
        raise TypeError(f"upgrade_solver needs a typed SolverParameter, not {solver.type_name}")
    solver = solver.copy()
    if solver.has("solver_type"):
        if solver.has("type"):
            raise _error(solver, "give the solver's 'type' or the deprecated 'solver_type', "
                                 "not both", solver.line_of("solver_type"))
        line = solver.line_of("solver_type")
        solver.append_raw("type", SOLVER_TYPE_NAMES[solver.solver_type], line)
        solver.remove("solver_type")
    for key in ("net_param", "train_net_param", "test_net_param"):
        if solver.has(key):
            solver.replace_raw(key, [upgrade_net(net) for net in solver.all(key)],
                               _lines(solver, key))
    return solver
