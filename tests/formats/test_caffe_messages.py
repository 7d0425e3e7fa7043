"""Caffe's messages as typed trees: the schema-checked LeNet and solver fixtures, errors with
file:line, both round trips, blobs in both shape styles, protobuf's decoding rules, and the
`protobuf` package as an outside oracle for bytes and text (also of the Datum records of
net.train.sources.caffe_records, whose own tests are in tests/train/sources)."""
from __future__ import annotations

import math
import pickle
import re
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given, settings, strategies as st

from net.core.config import load_config
from net.errors import ConfigError, DataError
from net.formats.caffe_files import (read_binary, read_blobproto, read_net_binary, read_net_text,
                                     read_solver_text, read_text, write_blobproto,
                                     write_caffemodel, write_text)
from net.train.files import atomic_write_bytes
from net.formats import caffe_messages
from net.formats.caffe_messages import (array_to_blob, blob_to_array, decode, encode,
                                        typed_from_text)
from net.formats.caffe_schema import LAYER_PARAMS, MESSAGES, enum_spec, new_message
from net.train.sources.caffe_records import encode_datum
from net.train.sources.protowire import WireWriter
from net.formats.prototext import format_text, parse_text
from net.formats.prototree import Identifier, Message
from tests.helpers import examples, fifo

FIXTURES = Path(__file__).parent / "fixtures"
LENET = FIXTURES / "lenet_train_test.prototxt"
SOLVER = FIXTURES / "lenet_solver.prototxt"


def typed(text: str, type_name: str = "NetParameter", file: str = "net.prototxt") -> Message:
    return typed_from_text(parse_text(text, file), type_name, file)


# -- the fixtures, checked against the schema ---------------------------------------------------
def test_lenet_reads_with_types_defaults_and_lines():
    net = read_net_text(LENET)
    assert net.name == "LeNet"
    assert [layer.type for layer in net.layer] == [
        "Data", "Data", "Convolution", "Pooling", "Convolution", "Pooling", "InnerProduct",
        "ReLU", "InnerProduct", "Accuracy", "SoftmaxWithLoss"]
    train, test, conv1, pool1 = net.layer[:4]
    assert train.include[0].phase == "TRAIN" and isinstance(train.include[0].phase, Identifier)
    assert test.include[0].phase == "TEST"
    assert train.transform_param.scale == 0.00390625
    assert train.data_param.backend == "LMDB" and train.data_param.batch_size == 64
    assert train.data_param.rand_skip == 0                          # a default
    conv = conv1.convolution_param
    assert conv.num_output == 20 and conv.kernel_size == [5] and conv.stride == [1]
    assert conv.pad == [] and conv.group == 1 and conv.bias_term is True   # defaults
    assert conv.weight_filler.type == "xavier" and conv.weight_filler.std == 1.0
    assert [param.lr_mult for param in conv1.param] == [1.0, 2.0]
    assert conv1.param[0].decay_mult == 1.0
    assert pool1.pooling_param.pool == "MAX" and pool1.pooling_param.round_mode == "CEIL"
    assert not pool1.has("convolution_param") and pool1.convolution_param.num_output == 0
    assert conv1.line == 38 and conv1.line_of("name") == 39 and conv.line_of("num_output") == 50
    assert net.layer[0].transform_param.line_of("scale") == 13
    assert net.line_of("layer", 2) == 38 and net.file == str(LENET)


def test_lenet_solver_reads_with_types_and_defaults():
    solver = read_solver_text(SOLVER)
    assert solver.net == "lenet_train_test.prototxt" and solver.test_iter == [100]
    assert (solver.base_lr, solver.momentum, solver.weight_decay) == (0.01, 0.9, 0.0005)
    assert (solver.lr_policy, solver.gamma, solver.power) == ("inv", 0.0001, 0.75)
    assert solver.max_iter == 10000 and solver.solver_mode == "CPU"
    assert solver.type == "SGD" and solver.delta == 1e-8 and solver.momentum2 == 0.999
    assert solver.test_initialization is True and solver.random_seed == -1
    assert solver.line_of("base_lr") == 5 and solver.line_of("solver_mode") == 15


LAYER = 'layer {{\n  name: "conv1"\n  type: "Convolution"\n{body}}}\n'


@pytest.mark.parametrize("body, line, fragment", [
    ("  convolution_param {\n    kernel_sise: 5\n  }\n", 5,
     "layer 'conv1': unknown field 'kernel_sise' in ConvolutionParameter "
     "(did you mean 'kernel_size'?)"),
    ("  botom: \"data\"\n", 4, "unknown field 'botom' in LayerParameter (did you mean 'bottom'?)"),
    ("  name: \"again\"\n", 4, "'name' is not a repeated field; it is given again (first on "
                              "line 2)"),
    ("  convolution_param: 5\n", 4, "'convolution_param' is a ConvolutionParameter message"),
    ("  bottom { }\n", 4, "'bottom' takes a value (string), not a block"),
    ("  convolution_param { num_output: \"20\" }\n", 4,
     "'num_output' expects an integer (uint32), got '20'"),
    ("  convolution_param { num_output: -1 }\n", 4, "-1 is out of range for uint32"),
    ("  convolution_param { num_output: 2.5 }\n", 4, "expects an integer (uint32), got 2.5"),
    ("  convolution_param { axis: 2147483648 }\n", 4, "out of range for int32"),
    ("  convolution_param { bias_term: yes }\n", 4, "'bias_term' expects true or false, got yes"),
    ("  convolution_param { engine: CUDA }\n", 4,
     "CUDA is not a ConvolutionParameter.Engine value (one of DEFAULT, CAFFE, CUDNN) "
     "(did you mean 'CUDNN'?)"),
    ("  convolution_param { engine: \"CAFFE\" }\n", 4, "written without quotes"),
    ("  convolution_param { engine: 7 }\n", 4, "7 is not a ConvolutionParameter.Engine value"),
    ("  param { lr_mult: fast }\n", 4, "'lr_mult' expects a number, got fast"),
    ("  param { lr_mult: 1e39 }\n", 4, "1e+39 is out of range for a float"),
    ("  param { name: shared }\n", 4, "'name' expects a quoted string, got shared"),
    ("\n  clip_param { min: 0 }\n", 5, "ClipParameter needs 'max'"),
])
def test_schema_errors_name_file_line_and_layer(body, line, fragment):
    with pytest.raises(ConfigError) as err:
        typed(LAYER.format(body=body))
    message = str(err.value)
    assert message.startswith(f"net.prototxt:{line}: "), message
    assert fragment in message
    assert "layer 'conv1'" in message or "LayerParameter" not in fragment
    assert "\n" not in message


def test_text_spellings_are_typed():
    net = typed('layer { convolution_param { bias_term: 0 engine: 2 } '
                'param { lr_mult: -inf decay_mult: NaN } param { lr_mult: 0x10 } '
                'relu_param { negative_slope: 1 } propagate_down: t propagate_down: False }')
    layer = net.layer[0]
    assert layer.convolution_param.bias_term is False
    assert layer.convolution_param.engine == "CUDNN"
    assert layer.param[0].lr_mult == -math.inf and math.isnan(layer.param[0].decay_mult)
    assert layer.param[1].lr_mult == 16.0 and isinstance(layer.param[1].lr_mult, float)
    assert layer.relu_param.negative_slope == 1.0
    assert layer.propagate_down == [True, False]


def test_typed_text_round_trips_signed_zero_and_whole_floats():
    net = typed("layer { loss_weight: -0.0 loss_weight: 3 loss_weight: -2 "
                "blobs { data: [-0.0, 2, 0.5] double_data: [-0.0, 1e20] } }")
    text = format_text(net)
    assert "loss_weight: -0.0\n" in text and "loss_weight: 3\n" in text
    assert "data: -0.0\n" in text and "data: 2\n" in text
    again = typed(text)
    assert again == net
    assert math.copysign(1, again.layer[0].loss_weight[0]) == -1
    assert np.signbit(again.layer[0].blobs[0].data[0])


def test_float_fields_keep_the_shortest_decimal_of_their_float32():
    net = typed("layer { param { lr_mult: 0.1 decay_mult: 0.123456789 } }")
    assert net.layer[0].param[0].lr_mult == 0.1
    assert net.layer[0].param[0].decay_mult == 0.12345679
    assert decode(encode(net), "NetParameter") == net


# -- round trips --------------------------------------------------------------------------------
def test_text_tree_text_tree_round_trip_is_exact():
    net = read_text(LENET, "NetParameter")
    text = format_text(net)
    again = typed(text)
    assert again == net
    assert format_text(again) == text
    assert "lr_mult: 1\n" in text and "scale: 0.00390625\n" in text and "pool: MAX\n" in text


def test_tree_binary_tree_round_trip_is_exact():
    for path, type_name in ((LENET, "NetParameter"), (SOLVER, "SolverParameter"),
                            (FIXTURES / "v1_small_net.prototxt", "NetParameter")):
        tree = read_text(path, type_name)
        data = encode(tree)
        again = decode(data, type_name, "x")
        assert again == tree
        assert encode(again) == data


def test_every_value_kind_round_trips_through_binary():
    net = typed('''
        name: "caf\u00e9" force_backward: true input_dim: -5 input_dim: 2147483647
        state { phase: TRAIN level: -2 stage: "a" stage: "b" }
        layer { name: "x" loss_weight: 0.5 loss_weight: -1e-30 propagate_down: false
                blobs { shape { dim: 2 dim: 0 dim: 3 } num: -1 } }
        layer { dummy_data_param { data_filler { value: 3.5 } num: 4294967295 } }''')
    assert decode(encode(net), "NetParameter") == net
    solver = typed("random_seed: -9223372036854775808 net_param { name: 'inner' }",
                   "SolverParameter")
    assert decode(encode(solver), "SolverParameter") == solver


# -- protobuf's decoding rules ------------------------------------------------------------------
def test_unknown_fields_and_enum_numbers_are_skipped():
    writer = WireWriter()
    writer.bytes_field(1, b"net")
    writer.varint_field(999, 12)                 # a field this schema does not have
    writer.fixed_field(998, 1.5, "<d")
    state = WireWriter()
    state.varint_field(1, 7)                     # Phase has no value 7
    state.varint_field(2, 3)
    writer.message_field(6, state)
    net = decode(writer.getvalue(), "NetParameter")
    assert net.names() == ["name", "state"]
    assert not net.state.has("phase") and net.state.level == 3


def test_singular_fields_keep_the_last_value_and_messages_merge():
    writer = WireWriter()
    writer.bytes_field(1, b"first")
    for level, stage in ((1, b"a"), (2, b"b")):
        state = WireWriter()
        state.varint_field(2, level)
        state.bytes_field(3, stage)
        writer.message_field(6, state)
    writer.bytes_field(1, b"last")
    net = decode(writer.getvalue(), "NetParameter")
    assert net.name == "last"
    assert net.state.level == 2 and net.state.stage == ["a", "b"]


def test_repeated_numbers_are_read_packed_or_not():
    packed, unpacked = WireWriter(), WireWriter()
    packed.packed_varints(4, [1, 3, 224, 224])              # input_dim, declared unpacked
    for dim in (1, 3, 224, 224):
        unpacked.varint_field(1, dim)                        # BlobShape.dim, declared packed
    assert decode(packed.getvalue(), "NetParameter").input_dim == [1, 3, 224, 224]
    assert decode(unpacked.getvalue(), "BlobShape").dim == [1, 3, 224, 224]
    floats = WireWriter()
    floats.packed_array(5, np.array([0.1, -2.0], np.float32), "<f4")   # loss_weight, unpacked
    assert decode(floats.getvalue(), "LayerParameter").loss_weight == [0.1, -2.0]


def test_wrong_wire_types_are_treated_as_unknown():
    writer = WireWriter()
    writer.varint_field(1, 5)                                # name is a string
    assert not decode(writer.getvalue(), "NetParameter").has("name")


@pytest.mark.parametrize("data, fragment", [
    (bytes.fromhex("3a05"), "byte 0: field 7 claims 5 bytes but only 0 remain"),
    (bytes.fromhex("3a052a08000000"), "byte 2: field 5 claims 8 bytes but only 3 remain"),
    (bytes.fromhex("3a022a01"), "byte 2: field 5 claims 1 bytes but only 0 remain"),
    (bytes.fromhex("3a032a0100"), "byte 2: packed field 5 holds 1 bytes, not a multiple of 4"),
])
def test_truncated_caffemodels_name_the_offset(data, fragment):
    with pytest.raises(DataError) as err:
        decode(data, "LayerParameter", "model.caffemodel")
    assert str(err.value) == f"model.caffemodel: {fragment}"


# -- counts no real net reaches ------------------------------------------------------------------
EMPTY_LAYER = bytes.fromhex("a20600")           # layer {} (field 100, length 0): three bytes


def test_more_layers_than_any_real_net_are_refused_at_the_byte_or_the_line(monkeypatch):
    # 15 MB of empty layers used to build 5 million messages (1.6 GB, 36 s) before any check
    monkeypatch.setitem(caffe_messages._COUNT_LIMITS, ("NetParameter", "layer"), (3, "layers"))
    with pytest.raises(DataError) as err:
        decode(EMPTY_LAYER * 5, "NetParameter", "m.caffemodel")
    assert str(err.value) == ("m.caffemodel: byte 9: more than 3 layers: refused (the largest "
                              "published Caffe nets have a few thousand)")
    with pytest.raises(ConfigError, match=r"^net.prototxt:4: more than 3 layers: refused"):
        typed("layer {}\n" * 5)


def test_more_blobs_than_any_caffe_layer_has_are_refused_naming_the_layer():
    layer = WireWriter()
    layer.bytes_field(1, b"zzz")
    layer.raw(bytes.fromhex("3a00") * 1001)     # blobs {} (field 7, length 0)
    with pytest.raises(DataError, match=r"^m.caffemodel: byte 2005: layer 'zzz': more than "
                                        r"1,000 blobs: refused \(a Caffe layer has at most 6\)$"):
        decode(layer.getvalue(), "LayerParameter", "m.caffemodel")
    with pytest.raises(ConfigError, match=r"^net.prototxt:1002: layer 'zzz': more than 1,000"):
        typed("layer { name: 'zzz'\n" + "blobs {}\n" * 1001 + "}")


@pytest.mark.parametrize("data", [
    bytes.fromhex("0800") * 11,                  # unknown fields, skipped
    bytes.fromhex("3a0d") + bytes.fromhex("3a0b0a09") + b"\x01" * 9,   # 9 packed dims, and 2
    bytes.fromhex("9b06") + bytes.fromhex("0800") * 10 + bytes.fromhex("9c06"),  # in a group
], ids=["unknown fields", "packed dims", "a group"])
def test_a_binary_file_holds_at_most_max_fields_fields_and_numbers(monkeypatch, data):
    monkeypatch.setattr(caffe_messages, "MAX_FIELDS", 10)
    with pytest.raises(DataError, match=r"^m.caffemodel: byte \d+: more than 10 fields and "
                                        r"packed numbers: refused"):
        decode(data, "LayerParameter", "m.caffemodel")
    monkeypatch.setattr(caffe_messages, "MAX_FIELDS", 20)
    decode(data, "LayerParameter", "m.caffemodel")


# -- blobs ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype, field", [(np.float32, "data"), (np.float64, "double_data")])
@pytest.mark.parametrize("legacy", [False, True])
def test_blobs_round_trip_in_both_shape_styles(tmp_path, dtype, field, legacy):
    array = np.random.default_rng(1).standard_normal((2, 3, 4)).astype(dtype)
    blob = array_to_blob(array, legacy=legacy)
    assert blob.has(field) and blob.has("shape") != legacy
    again = blob_to_array(decode(encode(blob), "BlobProto"))
    expected_shape = (1, 2, 3, 4) if legacy else (2, 3, 4)
    assert again.shape == expected_shape and again.dtype == dtype
    np.testing.assert_array_equal(again.reshape(array.shape), array)
    path = tmp_path / "mean.binaryproto"
    write_blobproto(path, array, legacy=legacy)
    np.testing.assert_array_equal(read_blobproto(path), again)


def test_legacy_blob_fields_read_as_caffes_four_axes():
    blob = typed("channels: 3 height: 1 width: 2 data: [1, 2, 3, 4, 5, 6] num: 1", "BlobProto")
    np.testing.assert_array_equal(blob_to_array(blob), np.arange(1, 7).reshape(1, 3, 1, 2))
    assert blob.data.dtype == np.float32


@pytest.mark.parametrize("text, fragment", [
    ("shape { dim: 2 dim: 2 } data: [1, 2, 3]", "blob of shape (2, 2) needs 4 values but holds 3"),
    ("num: 1 channels: 2 data: [1, 2]", "blob of shape (1, 2, 0, 0) needs 0 values but holds 2"),
    ("shape { dim: -2 } data: [1]", "blob shape (-2,) has a negative dimension"),
    # sizes in Python integers: 2**64 used to wrap to 0 in int64 and fail inside numpy
    ("shape { dim: 4294967296 dim: 4294967296 }",
     "blob of shape (4294967296, 4294967296) needs 18446744073709551616 values but holds 0"),
    ("shape { dim: 4294967296 dim: 4294967296 dim: 1 } data: [0]",
     "blob of shape (4294967296, 4294967296, 1) needs 18446744073709551616 values but holds 1"),
    ("shape { " + "dim: 1 " * 33 + "} data: [0]", "blob has 33 axes; Caffe allows at most 32"),
])
def test_blobs_whose_values_do_not_fit_their_shape_are_refused(text, fragment):
    with pytest.raises(DataError, match="^weights.caffemodel layer 'fc': " + re.escape(fragment)):
        blob_to_array(typed(text, "BlobProto"), "weights.caffemodel layer 'fc'")


def test_caffemodel_blobs_decode_to_arrays_quickly(tmp_path):
    weights = np.random.default_rng(2).standard_normal(4_000_000).astype(np.float32)
    net = typed('name: "big" layer { name: "fc" type: "InnerProduct" }')
    net.layer[0].add("blobs", array_to_blob(weights.reshape(2000, 2000)))
    net.layer[0].add("blobs", array_to_blob(np.zeros(2000, np.float32)))
    path = tmp_path / "big.caffemodel"
    write_caffemodel(path, net)
    started = time.perf_counter()
    loaded = read_net_binary(path)
    assert time.perf_counter() - started < 2.0
    fc_weights = blob_to_array(loaded.layer[0].blobs[0])
    assert fc_weights.shape == (2000, 2000) and fc_weights.flags.writeable
    np.testing.assert_array_equal(fc_weights.reshape(-1), weights)


# -- the typed tree's API -------------------------------------------------------------------------
def test_typed_messages_check_values_set_from_code():
    layer = new_message("LayerParameter", name="fc", bottom=["a", "b"])
    assert layer.bottom == ["a", "b"] and layer.name == "fc"
    layer.add("top", "c")
    layer.set("inner_product_param", new_message("InnerProductParameter", num_output=10))
    assert layer.inner_product_param.num_output == 10
    with pytest.raises(ValueError, match="expects an integer"):
        new_message("InnerProductParameter", num_output="ten")
    with pytest.raises(AttributeError, match="LayerParameter has no field 'botom'.*'bottom'"):
        layer.botom
    with pytest.raises(ValueError, match="expects a FillerParameter message"):
        new_message("InnerProductParameter", weight_filler=new_message("BlobShape"))


def test_trees_pickle_and_keep_the_modules_specs():
    net = read_net_text(LENET)
    again = pickle.loads(pickle.dumps(net))
    assert again == net and again.layer[2].line == 38
    assert again.layer[2].spec is MESSAGES["LayerParameter"]
    again.layer[2].set("convolution_param", new_message("ConvolutionParameter", num_output=3))


def test_no_field_is_hidden_by_a_message_attribute():
    reserved = {name for name in dir(Message) if not name.startswith("_")}
    clashes = {(spec.name, name) for spec in MESSAGES.values() for name in spec.fields
               if name in reserved}
    assert clashes == set()


def test_the_schema_covers_every_layer_parameter_of_the_brief():
    wanted = ("Accuracy ArgMax BatchNorm Bias Concat ContrastiveLoss Convolution Crop Data "
              "Dropout DummyData Eltwise ELU Embed Exp Flatten HDF5Data HDF5Output HingeLoss "
              "ImageData InfogainLoss InnerProduct Input Log LRN MemoryData MVN Parameter "
              "Pooling Power PReLU Python Recurrent Reduction ReLU Reshape Scale Sigmoid Softmax "
              "SPP Slice Swish TanH Threshold Tile WindowData Clip Transformation Loss").split()
    layer = MESSAGES["LayerParameter"]
    found = {spec.type for spec in layer.fields.values() if spec.kind == "message"}
    assert {f"{name}Parameter" for name in wanted} <= found
    assert len(LAYER_PARAMS) == len(wanted)
    for spec in MESSAGES.values():
        assert len(spec.by_number) == len(spec.fields), spec.name


def test_enums_map_names_and_numbers_both_ways():
    assert enum_spec("PoolingParameter.PoolMethod").values == {"MAX": 0, "AVE": 1,
                                                               "STOCHASTIC": 2}
    assert enum_spec("V1LayerParameter.LayerType").names[4] == "CONVOLUTION"
    assert enum_spec("Phase").names == {0: "TRAIN", 1: "TEST"}
    assert MESSAGES["NetState"].field("phase").default == "TEST"
    assert MESSAGES["NetStateRule"].field("phase").default == "TRAIN"   # proto2: the first value


# -- files ---------------------------------------------------------------------------------------
def test_files_are_written_atomically(tmp_path):
    net = read_net_text(LENET)
    write_text(tmp_path / "net.prototxt", net)
    write_caffemodel(tmp_path / "net.caffemodel", net)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["net.caffemodel", "net.prototxt"]
    assert read_net_text(tmp_path / "net.prototxt") == net
    assert read_net_binary(tmp_path / "net.caffemodel") == net
    atomic_write_bytes(tmp_path / "net.caffemodel", b"replaced")
    assert (tmp_path / "net.caffemodel").read_bytes() == b"replaced"


@pytest.mark.parametrize("read", [read_net_text, read_solver_text, load_config])
def test_a_text_file_over_16_mib_is_refused_unread(tmp_path, read):
    path = tmp_path / "huge.prototxt"
    with open(path, "wb") as file:
        file.truncate(100 << 20)                # sparse: declares 100 MiB, holds nothing
    with pytest.raises(ConfigError, match=r"^.*huge.prototxt: 100 MiB is too large for a "
                                          r"config \(at most 16 MiB\)$"):
        read(path)


def test_unreadable_files_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match=r"missing.prototxt: cannot read"):
        read_net_text(tmp_path / "missing.prototxt")
    with pytest.raises(DataError, match=r"missing.caffemodel: cannot read"):
        read_binary(tmp_path / "missing.caffemodel", "NetParameter")
    for path, kind in ((fifo(tmp_path / "pipe.caffemodel"), "a FIFO"),
                       (Path("/dev/null"), "a device")):
        with pytest.raises(DataError, match=f"^{path}: not a regular file but {kind}"):
            read_binary(path, "NetParameter")
    latin = tmp_path / "latin.prototxt"
    latin.write_bytes(b'name: "a"\nname2: "caf\xe9"\n')
    with pytest.raises(ConfigError, match=r"latin.prototxt:2: the file is not UTF-8 text"):
        read_net_text(latin)


# -- the protobuf package as an outside oracle ----------------------------------------------------
@pytest.fixture(scope="module")
def oracle():
    return pytest.importorskip("tests.formats.protobuf_oracle", reason="needs the protobuf package")


def _protobuf_parse(oracle, text: str, type_name: str):
    from google.protobuf import text_format
    return text_format.Parse(text, oracle.message_class(type_name)())


@pytest.mark.parametrize("path, type_name", [
    (LENET, "NetParameter"), (SOLVER, "SolverParameter"),
    (FIXTURES / "v1_small_net.prototxt", "NetParameter")])
def test_our_bytes_equal_protobufs_for_the_fixtures(oracle, path, type_name):
    expected = _protobuf_parse(oracle, path.read_text(), type_name).SerializeToString()
    assert encode(read_text(path, type_name)) == expected


def test_our_bytes_equal_protobufs_for_every_value_kind(oracle):
    text = ('name: "caf\\303\\251" input_dim: -5 force_backward: true '
            'state { phase: TRAIN level: -2 stage: "a\\n" } '
            'layer { name: "x" loss_weight: 0.1 loss_weight: -inf propagate_down: false '
            '  blobs { shape { dim: 2 dim: 3 } data: [1.5, -2, 1e-30, 3.4e38, 0, 7] '
            '          double_data: [0.1, 1e300] num: -1 } '
            '  pooling_param { pool: AVE round_mode: FLOOR } } ')
    expected = _protobuf_parse(oracle, text, "NetParameter").SerializeToString()
    assert encode(typed(text)) == expected
    assert decode(expected, "NetParameter") == typed(text)


def test_protobuf_reads_our_datum_and_blob_bytes(oracle):
    datum = oracle.message_class("Datum")()
    datum.ParseFromString(encode_datum(np.linspace(0, 1, 6, dtype=np.float32).reshape(1, 2, 3),
                                       label=-4))
    assert list(datum.float_data) == pytest.approx(np.linspace(0, 1, 6)) and datum.label == -4
    blob = oracle.message_class("BlobProto")()
    blob.ParseFromString(encode(array_to_blob(np.arange(6, dtype=np.float64).reshape(2, 3))))
    assert list(blob.shape.dim) == [2, 3] and list(blob.double_data) == list(range(6))


def test_protobuf_text_output_reads_back_the_same(oracle):
    from google.protobuf import text_format
    message = _protobuf_parse(oracle, LENET.read_text(), "NetParameter")
    ours = typed(text_format.MessageToString(message))
    assert ours == read_text(LENET, "NetParameter")
    theirs = _protobuf_parse(oracle, format_text(ours), "NetParameter")
    assert theirs == message


def test_protobuf_parses_every_text_construct_as_we_do(oracle):
    text = """
        name: "a" 'b'  # adjacent strings, a comment
        input: [ "data", 'lab\\x65l' ] ;
        input_shape < dim: [0x2, 017, 5] >
        layer: { name: "conv\\101" type: "Convolution"
                 convolution_param { kernel_size: 3 kernel_size: 5 pad: [1, 2]
                                     weight_filler { std: .5 mean: 5. min: -1e-3 max: 2.5f }
                                     bias_term: false engine: CUDNN } },
        layer [ { name: "x" }, < name: "y" param { lr_mult: inf decay_mult: -Infinity } > ]
        state { phase: TRAIN }
    """
    expected = _protobuf_parse(oracle, text, "NetParameter").SerializeToString()
    assert encode(typed(text)) == expected


@settings(max_examples=examples(300), deadline=None)
@given(st.binary(max_size=120), st.sampled_from(["NetParameter", "BlobProto", "Datum"]))
@example(bytes.fromhex("290000000000000000"), "BlobProto")   # float data sent as a double
def test_any_bytes_decode_or_raise_data_error(data, type_name):
    try:
        tree = decode(data, type_name, "fuzz.bin")
    except DataError as err:
        assert str(err).startswith("fuzz.bin: byte ")
        return
    assert decode(encode(tree), type_name) == tree


def test_every_truncation_of_a_caffemodel_decodes_or_names_its_offset():
    net = read_text(LENET, "NetParameter")
    net.layer[2].add("blobs", array_to_blob(np.ones((2, 3), np.float32)))
    data = encode(net)
    for end in range(len(data)):
        try:
            decode(data[:end], "NetParameter", "cut.caffemodel")
        except DataError as err:
            assert str(err).startswith("cut.caffemodel: byte ")


def test_an_odd_layer_name_stays_on_one_error_line():
    with pytest.raises(ConfigError) as err:
        typed('layer {\n  name: "two\\nlines"\n  zzz: 1\n}')
    assert str(err.value) == ("net.prototxt:3: layer 'two\\nlines': unknown field 'zzz' in "
                              "LayerParameter")
