"""Old Caffe nets and solvers upgraded to the current form, compared with the current-form text
written out by hand, and the upgrades' refusals with file:line."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from net.errors import ConfigError
from net.formats.caffe_files import read_net_binary, read_net_text, read_text, write_caffemodel
from net.formats.caffe_messages import array_to_blob, blob_to_array, typed_from_text
from net.formats.caffe_upgrade import net_needs_upgrade, upgrade_net, upgrade_solver
from net.formats.prototext import format_text, parse_text

FIXTURES = Path(__file__).parent / "fixtures"
V1_NET = FIXTURES / "v1_small_net.prototxt"

V1_NET_UPGRADED = """
name: "SmallV1"
layer {
  name: "input" type: "Input" top: "data"
  input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } }
}
layer {
  name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  param { lr_mult: 1 decay_mult: 1 }
  param { lr_mult: 2 decay_mult: 0 }
  convolution_param {
    num_output: 4 kernel_size: 3 pad: 1
    weight_filler { type: "gaussian" std: 0.01 }
  }
}
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer {
  name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
  pooling_param { pool: AVE kernel_size: 2 stride: 2 }
}
layer {
  name: "fc" type: "InnerProduct" bottom: "pool1" top: "fc"
  param { name: "fc_w" lr_mult: 1 }
  param { name: "fc_b" lr_mult: 2 }
  inner_product_param { num_output: 10 }
}
layer { name: "prob" type: "Softmax" bottom: "fc" top: "prob" }
"""


def typed(text: str, type_name: str = "NetParameter", file: str = "net.prototxt"):
    return typed_from_text(parse_text(text, file), type_name, file)


def test_v1_net_becomes_the_current_form():
    upgraded = read_net_text(V1_NET)
    assert upgraded == typed(V1_NET_UPGRADED)
    assert not net_needs_upgrade(upgraded)
    assert net_needs_upgrade(read_net_text(V1_NET, upgrade=False))


def test_upgraded_fields_keep_their_lines():
    net = read_net_text(V1_NET)
    input_layer, conv = net.layer[:2]
    assert input_layer.line_of("top") == 4 and input_layer.input_param.shape[0].line == 5
    assert conv.line == 9 and conv.line_of("name") == 10 and conv.line_of("type") == 11
    assert [param.line_of("lr_mult") for param in conv.param] == [14, 15]
    assert conv.convolution_param.line_of("num_output") == 19
    assert conv.file == str(V1_NET)


def test_upgraded_text_is_printed_in_caffes_field_order():
    text = format_text(read_net_text(V1_NET))
    conv = text[text.index('  name: "conv1"'):text.index('  name: "relu1"')]
    assert conv.index("type:") < conv.index("bottom:") < conv.index("top:") < conv.index(
        "param {") < conv.index("convolution_param {")
    assert "    lr_mult: 2\n    decay_mult: 0\n" in conv


def test_v1_caffemodel_blobs_survive_the_upgrade(tmp_path):
    weights = np.arange(12, dtype=np.float32).reshape(3, 4)
    net = typed('layers { name: "fc" type: INNER_PRODUCT blobs_lr: 1 }')
    net.layers[0].add("blobs", array_to_blob(weights, legacy=True))
    path = tmp_path / "old.caffemodel"
    write_caffemodel(path, net)
    layer = read_net_binary(path).layer[0]
    assert layer.type == "InnerProduct" and layer.param[0].lr_mult == 1.0
    np.testing.assert_array_equal(blob_to_array(layer.blobs[0]), weights.reshape(1, 1, 3, 4))


def test_every_v1_type_has_a_name():
    from net.formats.caffe_schema import V1_LAYER_TYPES
    from net.formats.caffe_upgrade import V1_TYPE_NAMES
    assert set(V1_TYPE_NAMES) == set(V1_LAYER_TYPES)
    net = typed("layers { type: SOFTMAX_LOSS } layers { type: DECONVOLUTION } layers { }")
    assert [layer.get("type") for layer in upgrade_net(net).layer] == [
        "SoftmaxWithLoss", "Deconvolution", None]


def test_input_shape_becomes_an_input_layer_placed_first():
    net = typed('input: "a" input_shape { dim: 2 dim: 5 } input: "b" input_shape { dim: 7 } '
                'layer { name: "sum" type: "Eltwise" bottom: "a" bottom: "b" top: "c" }')
    upgraded = upgrade_net(net)
    assert upgraded == typed('layer { name: "input" type: "Input" top: "a" top: "b" '
                             'input_param { shape { dim: 2 dim: 5 } shape { dim: 7 } } } '
                             'layer { name: "sum" type: "Eltwise" bottom: "a" bottom: "b" '
                             'top: "c" }')


def test_a_bare_input_of_an_old_caffemodel_is_dropped():
    upgraded = upgrade_net(typed('input: "data" layer { name: "x" }'))
    assert upgraded == typed('layer { name: "x" }')


def test_data_layer_transform_fields_move_to_transform_param():
    net = typed('layers { name: "d" type: DATA top: "data" '
                'data_param { source: "db" batch_size: 4 scale: 0.5 mirror: true } }')
    assert upgrade_net(net) == typed(
        'layer { name: "d" type: "Data" top: "data" transform_param { scale: 0.5 mirror: true } '
        'data_param { source: "db" batch_size: 4 } }')


def test_old_batch_norm_params_are_frozen():
    net = typed('layer { name: "bn" type: "BatchNorm" param { lr_mult: 1 } param { } '
                'param { name: "s" } }')
    params = upgrade_net(net).layer[0].param
    assert [(param.lr_mult, param.decay_mult) for param in params] == [(0.0, 0.0)] * 3
    assert params[2].name == "s"


@pytest.mark.parametrize("text, line, fragment", [
    ('layer { name: "a" }\nlayers { name: "b" }', 2, "both 'layer' and the deprecated 'layers'"),
    ('\nlayers {\n  name: "old"\n  layer { type: "conv" }\n}', 2,
     "layer 'old': V0 layers (layers { layer { ... } }) are not supported"),
    ('input: "a"\ninput_dim: 1\ninput_dim: 2', 2,
     "1 input(s) need 4 input_dim values (num, channels, height, width each), got 2"),
    ('input: "a"\ninput: "b"\ninput_shape { dim: 1 }', 3, "2 input(s) but 1 input_shape(s)"),
    ('\ninput_shape { dim: 1 }', 2, "input_shape/input_dim given without any 'input'"),
    ('input: "a" input_shape { dim: 1 }\ninput_dim: 1', 2, "with input_shape or input_dim, not"),
    ('layer {\n  name: "d"\n  transform_param { scale: 2 }\n  data_param {\n    scale: 3 }\n}',
     5, "layer 'd': data_param.scale and transform_param.scale disagree"),
])
def test_refusals_name_file_and_line(text, line, fragment):
    with pytest.raises(ConfigError) as err:
        upgrade_net(typed(text))
    assert str(err.value).startswith(f"net.prototxt:{line}: "), str(err.value)
    assert fragment in str(err.value)


def test_solver_type_enum_becomes_the_type_string():
    solver = typed('base_lr: 0.1\nsolver_type: ADAM\n'
                   'net_param { layers { name: "x" type: RELU } }', "SolverParameter")
    upgraded = upgrade_solver(solver)
    assert upgraded.type == "Adam" and not upgraded.has("solver_type")
    assert upgraded.line_of("type") == 2
    assert upgraded.net_param.layer[0].type == "ReLU"
    assert upgrade_solver(typed("solver_type: NESTEROV", "SolverParameter")).type == "Nesterov"


def test_solver_with_both_types_is_refused():
    with pytest.raises(ConfigError, match=r"^solver.prototxt:2: give the solver's 'type'"):
        upgrade_solver(typed('type: "SGD"\nsolver_type: SGD', "SolverParameter",
                             "solver.prototxt"))


def test_the_current_form_is_left_alone():
    net = read_text(FIXTURES / "lenet_train_test.prototxt", "NetParameter")
    assert upgrade_net(net) == net and upgrade_net(net) is not net
