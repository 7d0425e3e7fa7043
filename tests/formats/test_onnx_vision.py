"""Deconvolution, Pooling's mask top and STOCHASTIC pooling in ONNX: exported and run by
onnxruntime (float32, within 1e-5 of the output's largest magnitude, as every export test),
Deconvolution imported from ConvTranspose (every way ONNX can give its padding) and round trips
YAML -> ONNX -> Gatework with the same outputs and gradients."""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from net import Net  # noqa: E402
from net.formats.onnx_export import export_onnx  # noqa: E402
from net.formats.onnx_import import OnnxImportError, load_onnx_model  # noqa: E402
from tests.formats.onnx_nets import one_gate_net  # noqa: E402
from tests.formats.test_onnx_export import assert_agrees, run_onnxruntime  # noqa: E402
from tests.formats.test_onnx_import import round_trip  # noqa: E402

DECONVOLUTIONS = [
    ({"num_output": 3, "kernel_size": 4, "stride": 2, "pad": 1}, (2, 4, 5, 6)),
    ({"num_output": 6, "kernel_h": 3, "kernel_w": 2, "stride": [2, 1], "pad": [1, 0],
      "group": 2, "bias_term": False}, (2, 4, 4, 3)),
    ({"num_output": 2, "kernel_size": 3, "dilation": 2, "pad": 2}, (1, 3, 4, 4)),
    ({"num_output": 2, "kernel_size": 2, "stride": 3}, (2, 2, 3, 3)),
    ({"num_output": 4, "kernel_size": 3, "stride": 2, "pad": 1, "dilation": 2, "group": 2},
     (2, 4, 3, 4)),
]


@pytest.mark.parametrize("options, shape", DECONVOLUTIONS)
def test_deconvolution_exports_as_conv_transpose(options, shape):
    net, feed = one_gate_net("Deconvolution", options, [shape])
    assert_agrees(net, feed)
    assert [node.op_type for node in export_onnx(net).graph.node] == ["ConvTranspose"]


@pytest.mark.parametrize("options, shape", DECONVOLUTIONS)
def test_deconvolution_round_trips(options, shape):
    net, feed = one_gate_net("Deconvolution", options, [shape], dtype="float64")
    back = round_trip(net, feed)
    assert [g.type for g in back.spec.gates] == ["Deconvolution"]


def mask_net(options: dict, shape: tuple) -> tuple[Net, dict]:
    spec = {"name": "mask", "inputs": {"x": {"shape": [None, *shape[1:]]}}, "gates": [
        {"name": "pool", "type": "Pooling", "bottom": "x", "top": ["pooled", "mask"],
         "pool": "MAX", **options}]}
    x = np.random.default_rng(3).permutation(np.linspace(-1, 1, int(np.prod(shape))))
    return Net.from_config(spec, phase="test"), {"x": x.reshape(shape).astype(np.float32)}


@pytest.mark.parametrize("options, shape", [
    ({"kernel_size": 3, "stride": 2}, (2, 3, 16, 16)),
    ({"kernel_size": 3, "stride": 2, "pad": 1}, (2, 3, 7, 6)),
    ({"kernel_size": 2, "stride": 2, "pad": 1}, (2, 3, 5, 5)),
    ({"kernel_h": 3, "kernel_w": 2, "stride": [2, 3]}, (1, 2, 6, 6)),
    ({"global_pooling": True}, (2, 3, 5, 4)),
])
def test_mask_top_exports_as_maxpool_indices_within_each_plane(options, shape):
    net, feed = mask_net(options, shape)
    errors = assert_agrees(net, feed)
    assert set(errors) == {"pooled", "mask"}


def test_mask_ties_in_onnxruntime_go_to_the_first_maximum_as_in_caffe():
    net, _ = mask_net({"kernel_size": 2, "stride": 1}, (1, 1, 2, 3))
    feed = {"x": np.array([[[[0.0, 3.0, 3.0], [3.0, 3.0, 1.0]]]], np.float32)}
    theirs = run_onnxruntime(export_onnx(net), feed)["mask"]
    np.testing.assert_array_equal(theirs, [[[[1, 1]]]])
    np.testing.assert_array_equal(net.forward(feed, outputs=["mask"])["mask"], theirs)


@pytest.mark.parametrize("options, shape", [
    ({"kernel_size": 3, "stride": 2}, (2, 3, 6, 5)),          # Caffe's test: clipped windows
    ({"kernel_size": 2, "stride": 2}, (2, 2, 8, 8)),
    ({"kernel_h": 3, "kernel_w": 2, "stride": [1, 3]}, (1, 2, 5, 7)),
    ({"global_pooling": True}, (2, 3, 4, 5)),
])
def test_stochastic_pooling_exports_its_test_phase(options, shape):
    net, feed = one_gate_net("Pooling", {"pool": "STOCHASTIC", **options}, [shape])
    feed = {"in0": np.random.default_rng(4).uniform(0.1, 1.0, shape).astype(np.float32)}
    assert_agrees(net, feed)


def test_stochastic_pooling_of_zeros_stays_zero_in_onnxruntime():
    net, _ = one_gate_net("Pooling", {"pool": "STOCHASTIC", "kernel_size": 2, "stride": 2},
                          [(1, 1, 2, 4)])
    feed = {"in0": np.array([[[[0, 0, 1, 0], [0, 0, 0, 2]]]], np.float32)}
    theirs = run_onnxruntime(export_onnx(net), feed)["out0"]
    np.testing.assert_allclose(theirs, [[[[0.0, 5 / 3]]]], rtol=1e-6)


def test_stochastic_pooling_imports_back_as_its_test_phase_composed():
    """Back from ONNX, STOCHASTIC pooling is its test-phase formula made of gates (AVE pools,
    Multiply, Divide): the same outputs, and its gradient is the exact derivative that
    Gatework's test phase gives."""
    net, _ = one_gate_net("Pooling", {"pool": "STOCHASTIC", "kernel_size": 3, "stride": 2},
                          [(2, 3, 6, 5)], dtype="float64")
    feed = {"in0": np.random.default_rng(7).uniform(0.1, 1.0, (2, 3, 6, 5))}
    back = round_trip(net, feed)
    assert "Pooling" in {g.type for g in back.spec.gates}
    assert all(g.options.get("pool", "AVE") == "AVE" for g in back.spec.gates
               if g.type == "Pooling")


def test_the_mask_top_does_not_map_back():
    """Its ONNX form reads MaxPool's Indices, which the importer does not map: the error says
    so."""
    net, _ = mask_net({"kernel_size": 2, "stride": 2}, (1, 1, 4, 4))
    with pytest.raises(OnnxImportError, match="Indices"):
        load_onnx_model(export_onnx(net))


# -- ConvTranspose from other writers ---------------------------------------------------------
def conv_transpose_model(x_shape, w_shape, **attrs):
    rng = np.random.default_rng(5)
    weights = numpy_helper.from_array(rng.standard_normal(w_shape).astype(np.float32), "W")
    node = helper.make_node("ConvTranspose", ["x", "W"], ["y"], **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, list(x_shape))], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, None)], [weights])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("attrs, options", [
    ({"strides": [2, 2], "pads": [1, 1, 1, 1]}, {"stride": [2, 2], "pad": [1, 1]}),
    ({"strides": [2, 2], "output_shape": [10, 12]}, {"stride": [2, 2], "pad": [1, 1]}),
    ({"strides": [2, 2], "auto_pad": "SAME_UPPER", "kernel_shape": [4, 4]},
     {"stride": [2, 2], "pad": [1, 1]}),
    ({"auto_pad": "VALID"}, {"pad": [0, 0]}),
])
def test_conv_transpose_imports_as_deconvolution(attrs, options):
    model = conv_transpose_model((2, 3, 5, 6), (3, 2, 4, 4), **attrs)
    net = load_onnx_model(model, "ct", phase="test")
    (gate,) = net.spec.gates
    assert gate.type == "Deconvolution"
    assert {k: gate.options[k] for k in options} == options
    x = np.random.default_rng(6).standard_normal((2, 3, 5, 6)).astype(np.float32)
    theirs = run_onnxruntime(model, {"x": x})["y"]
    ours = net.forward({"x": x})["y"]
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("attrs, words", [
    ({"strides": [2, 2], "output_padding": [1, 1]}, "output_padding"),
    ({"pads": [1, 0, 0, 0]}, "asymmetric padding"),
    ({"strides": [2, 2], "output_shape": [11, 12]}, "asymmetric padding"),
])
def test_conv_transpose_refusals_say_why(attrs, words):
    with pytest.raises(OnnxImportError, match=words):
        load_onnx_model(conv_transpose_model((2, 3, 5, 6), (3, 2, 4, 4), **attrs))
