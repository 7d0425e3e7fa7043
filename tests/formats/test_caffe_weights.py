""".caffemodel weights in and out: blobs matched to gates by layer name in Caffe's order,
BatchNorm's three blobs as its buffers, V1 caffemodels with legacy 4-D blobs and unpacked
floats, float64 in double_data, and Caffe's CopyTrainedLayersFrom rules (layers matching no gate
passed over and reported; a wrong blob count or shape is an error naming the layer)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from net import Net
from net.errors import ConfigError, DataError
from net.formats.caffe_export import export_net, with_blobs, write_caffe   # registers the readers
from net.formats.caffe_files import write_caffemodel
from net.formats.caffe_messages import array_to_blob, typed_from_text
from net.formats.caffe_schema import new_message
from net.formats.caffe_weights import read_caffemodel, weight_names
from net.train.sources.protowire import WireWriter
from net.formats.prototext import parse_text
from net.formats.prototree import Identifier

ROOT = Path(__file__).resolve().parents[2]

SMALL = {"name": "small", "inputs": {"data": {"shape": [None, 2, 5, 5]}},
         "gates": [
             {"name": "conv", "type": "Convolution", "bottom": "data", "top": "conv",
              "num_output": 3, "kernel_size": 3},
             {"name": "bn", "type": "BatchNorm", "bottom": "conv", "top": "conv"},
             {"name": "scale", "type": "Scale", "bottom": "conv", "top": "conv",
              "bias_term": True},
             {"name": "fc", "type": "InnerProduct", "bottom": "conv", "top": "fc",
              "num_output": 4, "param": [{"name": "shared_w"}]}]}


def small_net(dtype: str = "float32", seed: int = 0) -> Net:
    net = Net.from_config({**SMALL, "dtype": dtype}, seed=seed)
    rng = np.random.default_rng(seed + 100)
    for array in list(net.params.values()) + list(net.buffers.values()):
        array[...] = rng.uniform(0.5, 2.0, array.shape)
    return net


def test_caffe_blob_order_of_each_gate():
    assert weight_names(small_net()) == {
        "conv": ["conv.W", "conv.b"], "bn": ["bn.mean", "bn.variance", "bn.scale_factor"],
        "scale": ["scale.scale", "scale.bias"], "fc": ["shared_w", "fc.b"]}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_written_caffemodel_loads_back_exactly(tmp_path, dtype):
    source, target = small_net(dtype, seed=0), small_net(dtype, seed=1)
    write_caffe(source, tmp_path / "n.prototxt", tmp_path / "n.caffemodel")
    report = target.load_weights(tmp_path / "n.caffemodel", strict=True)
    assert sorted(report["loaded"]) == sorted({**target.params, **target.buffers})
    assert report["missing"] == report["ignored"] == []
    for name, array in {**source.params, **source.buffers}.items():
        live = {**target.params, **target.buffers}[name]
        np.testing.assert_array_equal(live, array.astype(source.dtype), err_msg=name)


def test_the_caffemodel_holds_the_whole_net_definition(tmp_path):
    source = small_net()
    exported = export_net(source.spec)
    model = with_blobs(exported.net, source)
    assert [layer.name for layer in model.layer] == ["input", "conv", "bn", "scale", "fc"]
    assert [len(layer.blobs) for layer in model.layer] == [0, 2, 3, 2, 2]
    bn = model.layer[2]
    assert [tuple(blob.shape.dim) for blob in bn.blobs] == [(3,), (3,), (1,)]


def v1_layer(name: str, kind: str, blobs: list, **fields) -> object:
    layer = new_message("V1LayerParameter", name=name, type=Identifier(kind), **fields)
    for blob in blobs:
        layer.add("blobs", blob)
    return layer


def test_a_v1_caffemodel_with_legacy_blobs_and_unmatched_layers(tmp_path):
    net = Net.from_config({"inputs": {"data": {"shape": [None, 1, 4, 4]}}, "gates": [
        {"name": "conv", "type": "Convolution", "bottom": "data", "top": "conv",
         "num_output": 2, "kernel_size": 3},
        {"name": "ip", "type": "InnerProduct", "bottom": "conv", "top": "ip",
         "num_output": 3}]})
    rng = np.random.default_rng(0)
    conv_w, conv_b = rng.standard_normal((2, 1, 3, 3)), rng.standard_normal(2)
    ip_w, ip_b = rng.standard_normal((3, 8)), rng.standard_normal(3)
    legacy = [array_to_blob(a, legacy=True) for a in (conv_w, conv_b, ip_w, ip_b)]
    model = new_message("NetParameter", name="old", layers=[
        v1_layer("data", "DATA", []),
        v1_layer("conv", "CONVOLUTION", legacy[:2]),
        v1_layer("conv_split", "SPLIT", []),
        v1_layer("ip", "INNER_PRODUCT", legacy[2:]),
        v1_layer("fc_old", "INNER_PRODUCT", [array_to_blob(np.ones((2, 2)))])])
    path = tmp_path / "old.caffemodel"
    write_caffemodel(path, model)
    report = net.load_weights(path)
    assert report == {"loaded": ["conv.W", "conv.b", "ip.W", "ip.b"], "missing": [],
                      "ignored": ["fc_old.blobs[0]"]}
    # (1, 1, 1, 2) in the file is conv.b's (2,); (1, 1, 3, 8) is ip.W's (3, 8)
    for name, array in (("conv.W", conv_w), ("conv.b", conv_b), ("ip.W", ip_w), ("ip.b", ip_b)):
        np.testing.assert_array_equal(net.params[name], array.astype(np.float32))


def caffemodel_with_unpacked_floats(values: np.ndarray, shape: tuple) -> bytes:
    """A NetParameter with one layer "ip" whose blob's floats are written one field each (the
    unpacked encoding old writers used), built from wire fields by hand."""
    dims = WireWriter()
    dims.packed_varints(1, list(shape))
    blob = WireWriter()
    blob.message_field(7, dims)
    blob.unpacked_array(5, values.astype("<f4"), "<f4")
    layer = WireWriter()
    layer.bytes_field(1, b"ip")
    layer.bytes_field(2, b"InnerProduct")
    layer.message_field(7, blob)
    model = WireWriter()
    model.message_field(100, layer)
    return model.getvalue()


def test_unpacked_float_blobs_are_read(tmp_path):
    net = Net.from_config({"inputs": {"x": {"shape": [None, 3]}}, "gates": [
        {"name": "ip", "type": "InnerProduct", "bottom": "x", "top": "y", "num_output": 2,
         "bias_term": False}]})
    values = np.arange(6, dtype=np.float32) - 2.5
    path = tmp_path / "unpacked.caffemodel"
    path.write_bytes(caffemodel_with_unpacked_floats(values, (2, 3)))
    assert net.load_weights(path)["loaded"] == ["ip.W"]
    np.testing.assert_array_equal(net.params["ip.W"], values.reshape(2, 3))


def model_with(tmp_path: Path, *layers) -> Path:
    path = tmp_path / "m.caffemodel"
    write_caffemodel(path, new_message("NetParameter", layer=list(layers)))
    return path


def layer(name: str, *arrays: np.ndarray):
    message = new_message("LayerParameter", name=name, type="InnerProduct")
    for array in arrays:
        message.add("blobs", array_to_blob(array))
    return message


def test_shape_and_blob_count_mismatches_name_the_layer(tmp_path):
    net = small_net()
    path = model_with(tmp_path, layer("fc", np.zeros((4, 7)), np.zeros(4)))
    with pytest.raises(DataError, match=r"layer 'fc' blob 0 \(shared_w\): shape \(4, 7\) in "
                                        r"the file but \(4, 27\) in the net"):
        read_caffemodel(path, net)
    path = model_with(tmp_path, layer("conv", np.zeros((3, 2, 3, 3))))
    with pytest.raises(DataError, match=r"layer 'conv' has 1 blob\(s\) but the gate has 2 "
                                        r"array\(s\) \(conv.W, conv.b\)"):
        read_caffemodel(path, net)


def test_a_legacy_blob_must_still_match_after_padding(tmp_path):
    net = small_net()
    blob = array_to_blob(np.zeros((4, 27)), legacy=True)     # (1, 1, 4, 27): fits (4, 27)
    message = new_message("LayerParameter", name="fc", type="InnerProduct")
    message.add("blobs", blob)
    message.add("blobs", array_to_blob(np.zeros((1, 4)), legacy=True))   # (1, 1, 1, 4): (4,)
    arrays = read_caffemodel(model_with(tmp_path, message), net)
    assert arrays["shared_w"].shape == (4, 27) and arrays["fc.b"].shape == (4,)
    message.set("blobs", [blob, array_to_blob(np.zeros((2, 2)), legacy=True)])
    with pytest.raises(DataError, match=r"\(1, 1, 2, 2\) in the file but \(4,\)"):
        read_caffemodel(model_with(tmp_path, message), net)


def wire_model(name: str, *blobs: tuple[list[int], int]) -> bytes:
    """A caffemodel of one layer, written field by field: each blob a shape and that many
    float32 zeros."""
    layer = WireWriter()
    layer.bytes_field(1, name.encode())
    for dims, count in blobs:
        shape, blob = WireWriter(), WireWriter()
        for dim in dims:
            shape.varint_field(1, dim)
        blob.message_field(7, shape)
        blob.packed_array(5, np.zeros(count), "<f4")
        layer.message_field(7, blob)
    model = WireWriter()
    model.message_field(100, layer)
    return model.getvalue()


@pytest.mark.parametrize("name, blob", [("fc", "blob 0 (shared_w)"), ("zzz", "blob 0")])
@pytest.mark.parametrize("dims, count", [([2**32, 2**32], 0), ([2**32, 2**32, 1], 1)])
def test_a_blob_whose_size_overflows_64_bits_names_file_layer_and_blob(tmp_path, name, blob,
                                                                       dims, count):
    path = tmp_path / "m.caffemodel"
    path.write_bytes(wire_model(name, (dims, count), ([4], 4)))
    with pytest.raises(DataError) as info:
        small_net().load_weights(path)
    assert str(info.value) == (f"{path}: layer {name!r} {blob}: blob of shape {tuple(dims)} "
                               f"needs {2**64} values but holds {count}")


def test_a_caffemodel_sharing_no_name_with_the_net_is_an_error(tmp_path):
    path = model_with(tmp_path, layer("other", np.zeros(3)))
    with pytest.raises(DataError, match="shares no parameter name"):
        small_net().load_weights(path)


@pytest.mark.parametrize("strict, fragment", [
    (False, "(file: zzz.blobs[0], zzz.blobs[1], zzz.blobs[2], zzz.blobs[3], zzz.blobs[4], "
            "zzz.blobs[5], zzz.blobs[6], zzz.blobs[7] and 992 more; net: conv.W, "),
    (True, "has arrays the net 'small' does not: zzz.blobs[0], "),
])
def test_an_error_lists_a_few_of_the_files_arrays_and_counts_the_rest(tmp_path, strict,
                                                                      fragment):
    # one layer of 2 million empty blobs used to give a 39 MB line naming every one
    layer = WireWriter()
    layer.bytes_field(1, b"zzz")
    layer.raw(bytes.fromhex("3a00") * 1000)     # blobs {}: legacy shape (0, 0, 0, 0), no values
    model = WireWriter()
    model.message_field(100, layer)
    path = tmp_path / "m.caffemodel"
    path.write_bytes(model.getvalue())
    with pytest.raises(DataError) as info:
        small_net().load_weights(path, strict=strict)
    message = str(info.value)
    assert fragment in message and "and 992 more" in message and len(message) < 500


def test_a_layer_name_of_any_length_is_cut_in_messages(tmp_path):
    path = tmp_path / "m.caffemodel"
    path.write_bytes(wire_model("z" * 100_000, ([2**32, 2**32], 0)))
    with pytest.raises(DataError, match=r"layer 'zzz+\.\.\.z+' blob 0: blob of shape") as info:
        small_net().load_weights(path)
    assert len(str(info.value)) < 300
    with pytest.raises(ConfigError, match=r"^net.prototxt:1: layer 'z+\.\.\.z+': unk") as info:
        typed_from_text(parse_text(f"layer {{ name: '{'z' * 100_000}' typo: 1 }}",
                                   "net.prototxt"), "NetParameter")
    assert len(str(info.value)) < 300


def test_a_truncated_caffemodel_is_a_data_error_naming_the_file(tmp_path):
    source = small_net()
    write_caffe(source, tmp_path / "n.prototxt", tmp_path / "n.caffemodel")
    data = (tmp_path / "n.caffemodel").read_bytes()
    (tmp_path / "cut.caffemodel").write_bytes(data[:len(data) // 2])
    with pytest.raises(DataError, match="cut.caffemodel"):
        small_net().load_weights(tmp_path / "cut.caffemodel")


def test_lenet_weights_from_a_caffemodel_give_the_same_scores(tmp_path):
    trained = Net.from_yaml(ROOT / "configs" / "lenet_mnist.yaml", phase="test", seed=3)
    write_caffe(trained, tmp_path / "lenet.prototxt", tmp_path / "lenet.caffemodel",
                deploy=True)
    fresh = Net.from_file(tmp_path / "lenet.prototxt", phase="test")
    fresh.load_weights(tmp_path / "lenet.caffemodel", strict=True)
    x = np.random.default_rng(0).random((2, 1, 28, 28)).astype(np.float32)
    np.testing.assert_array_equal(fresh.forward({"data": x}, outputs="scores")["scores"],
                                  trained.forward({"data": x}, outputs="scores")["scores"])
