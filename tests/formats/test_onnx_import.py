"""Import from ONNX: YAML -> ONNX -> Gatework round trips (same outputs and gradients, gate by
gate and for the shipped configs), what becomes what (trainable parameters under the
initializer names, frozen constants, BatchNorm buffers, inputs with an open batch), folded shape
arithmetic, the one error listing every unmappable node, the `.onnx` config and weights readers,
and the gradient checker on imported graphs."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from gates import registered_gates  # noqa: E402
from net import Net  # noqa: E402
from net.core.config import load_config  # noqa: E402
from net.core.spec import NetSpec  # noqa: E402
from net.formats import onnx_import  # noqa: E402
from net.formats.onnx_export import export_onnx  # noqa: E402
from net.formats.onnx_import import (OnnxImportError, load_onnx, load_onnx_model,  # noqa: E402
                                     spec_from_model)
from net.gradcheck import check_net, sample_feed  # noqa: E402
from tests.formats.onnx_nets import one_gate_net  # noqa: E402
from tests.helpers import CONFIGS  # noqa: E402

onnx_import.register()          # what net.formats does on import (kept here for a clear test)

#: gates whose ONNX form uses operators the importer does not map, and what the error says
NOT_BACK = {"ArgMax": "(Slice): steps [-1]", "Threshold": "(Greater): no Gatework mapping",
            "RNN": "(Transpose): no Gatework mapping", "LSTM": "(Transpose): no Gatework mapping"}
#: label readers: a deployed model leaves them out, so they make no round trip
LABEL_GATES = {t for t, cls in registered_gates().items() if cls.loss_gate()} | {"Accuracy"}


def float64(net: Net) -> Net:
    """A float64 copy of a net with the same parameters and buffers."""
    twin = Net(dataclasses.replace(net.spec, dtype="float64"), phase=net.phase)
    for name, value in net.params.items():
        twin.params[name][...] = value
    for name, gate in net.gates.items():
        twin.gates[name].buffers = {k: np.array(v, np.float64) for k, v in gate.buffers.items()}
    return twin


def round_trip(net: Net, feed: dict, grad_seed: int = 7) -> Net:
    """Export `net` (float64), import it back, and check that every output of the imported net
    and the gradients of every input and of the original's parameters agree."""
    model = export_onnx(net)
    back = load_onnx_model(model, "round trip", phase=net.phase)
    assert back.dtype == net.dtype
    sources = set(back.inputs) | set(back.params)
    common = [name for name in back.shapes if name in net.shapes and name not in sources]
    ends = [name for name in back.outputs if name in net.shapes] or [   # else the scores that
        b for step in back.runner.steps if set(step.tops) & set(back.outputs)  # prob reads
        for b in step.spec.bottom if b in net.shapes]
    assert ends, f"no output of {back.outputs} (or its input) is a blob of the original"
    outputs = back.forward({k: v for k, v in feed.items() if k in back.inputs}, outputs=common)
    ours = net.forward({k: v for k, v in feed.items() if k in net.inputs}, outputs=common)
    for name in common:
        np.testing.assert_allclose(outputs[name], ours[name], rtol=1e-10, atol=1e-12,
                                   err_msg=name)
    rng = np.random.default_rng(grad_seed)
    seeds = {name: rng.standard_normal(np.shape(ours[name])) for name in ends}
    theirs = back.backward(seeds)
    mine = net.backward(seeds)
    for name, grad in mine.items():
        if grad is None or (name not in theirs and not np.any(grad)):
            continue           # an input whose values do not matter (Crop's reference)
        assert name in theirs, f"{name} is not a source of the imported net"
        np.testing.assert_allclose(theirs[name], grad, rtol=1e-9, atol=1e-12, err_msg=name)
    return back


ROUND_TRIP = sorted(t for t in registered_gates() if t not in LABEL_GATES | set(NOT_BACK) |
                    {"Silence"})


@pytest.mark.parametrize("type_name", ROUND_TRIP)
def test_every_gate_survives_a_round_trip(type_name):
    net, feed = one_gate_net(type_name, dtype="float64")
    round_trip(net, feed)


@pytest.mark.parametrize("type_name", sorted(NOT_BACK))
def test_gates_whose_onnx_form_is_not_mapped_back_name_the_operator(type_name):
    net, _ = one_gate_net(type_name)
    with pytest.raises(OnnxImportError) as caught:
        load_onnx_model(export_onnx(net))
    assert NOT_BACK[type_name] in str(caught.value)


@pytest.mark.parametrize("type_name, options, shapes", [
    ("Pooling", {"pool": "AVE", "kernel_size": 3, "stride": 2}, [(2, 3, 16, 16)]),
    ("Pooling", {"pool": "AVE", "kernel_size": 3, "stride": 2, "pad": 1}, [(2, 3, 7, 6)]),
    ("Pooling", {"pool": "MAX", "kernel_size": 2, "stride": 2, "pad": 1}, [(2, 3, 5, 5)]),
    ("Pooling", {"pool": "AVE", "global_pooling": True}, [(2, 3, 4, 5)]),
    ("LRN", {"norm_region": "WITHIN_CHANNEL", "local_size": 3, "alpha": 0.5}, [(2, 3, 4, 5)]),
    ("LRN", {"local_size": 5, "alpha": 0.5, "k": 2.0}, [(2, 6, 3, 3)]),
    ("Scale", {"axis": 1, "num_axes": 2, "bias_term": True}, [(2, 3, 4, 5)]),
    ("BatchNorm", {"affine": False}, [(4, 3, 2, 2)]),
    ("BatchNorm", {"use_global_stats": False, "affine": True}, [(4, 3, 2, 2)]),
    ("InnerProduct", {"num_output": 3, "axis": 2}, [(2, 3, 4, 2)]),
    ("Reduction", {"operation": "ASUM", "axis": 1, "coeff": 0.5}, [(2, 3, 4)]),
    ("Eltwise", {"operation": "SUM", "coeff": [0.5, -2.0]}, [(2, 3), (2, 3)]),
    ("Crop", {"axis": 2, "offset": [1, 2]}, [(2, 3, 6, 5), (2, 3, 3, 3)]),
    ("Softmax", {"axis": 0}, [(3, 4)]),
])
def test_round_trips_where_caffe_and_onnx_differ(type_name, options, shapes):
    net, feed = one_gate_net(type_name, options, shapes, dtype="float64")
    round_trip(net, feed)


def test_batch_norm_statistics_become_buffers_again():
    net, feed = one_gate_net("BatchNorm", {"affine": True}, [(4, 3, 2, 2)], dtype="float64")
    net.phase = "train"
    rng = np.random.default_rng(0)
    for _ in range(2):
        net.forward({"in0": rng.standard_normal((4, 3, 2, 2)) + 1})
    net.phase = "test"
    back = round_trip(net, feed)
    factor = net.buffers["g.scale_factor"][0]
    np.testing.assert_allclose(back.buffers["g.mean"], net.buffers["g.mean"] / factor)
    assert back.buffers["g.scale_factor"][0] == 1.0
    assert sorted(back.params) == ["g.beta", "g.gamma"]


def test_gate_names_survive_even_where_a_top_has_the_same_name():
    spec = {"name": "bn", "dtype": "float64", "inputs": {"x": {"shape": [None, 2, 3]}},
            "gates": [{"name": "bn", "type": "BatchNorm", "bottom": "x", "top": "bn"},
                      {"name": "act", "type": "ReLU", "bottom": "bn", "top": "y"}]}
    net = Net.from_config(spec, phase="test")
    net.gates["bn"].buffers.update(mean=np.array([1.0, 2.0]), scale_factor=np.ones(1))
    back = round_trip(net, {"x": np.random.default_rng(0).standard_normal((3, 2, 3))})
    assert sorted(back.gates) == ["act", "bn"]
    np.testing.assert_array_equal(back.buffers["bn.mean"], [1.0, 2.0])


@pytest.mark.parametrize("config", sorted(p.name for p in CONFIGS.glob("*.yaml")))
def test_shipped_configs_survive_a_round_trip(config):
    net = float64(Net.from_yaml(CONFIGS / config, phase="test"))
    feed = sample_feed(net, np.random.default_rng(2), batch=2)
    back = round_trip(net, feed)
    assert sorted(p for p in back.params if back.param_rules[p].lr_mult) == sorted(net.params)


def test_imported_parameters_are_trainable_and_named_after_the_initializers():
    net = Net.from_yaml(CONFIGS / "lenet_digits.yaml", phase="test")
    back = load_onnx_model(export_onnx(net), phase="test")
    for name, value in net.params.items():
        np.testing.assert_array_equal(back.params[name], value)
        rule = back.param_rules[name]
        assert (rule.lr_mult, rule.decay_mult) == (1.0, 1.0)
    assert back.inputs["data"].shape == (None, 1, 8, 8)
    assert "label" not in back.inputs


def test_constants_become_frozen_parameters():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])
    offset = numpy_helper.from_array(np.array([1.0, 2.0, 3.0], np.float32), "offset")
    nodes = [helper.make_node("Constant", [], ["offset"], value=offset),
             helper.make_node("Add", ["x", "offset"], ["y"], name="shift")]
    model = helper.make_model(helper.make_graph(nodes, "c", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 17)])
    net = load_onnx_model(model)
    rule = net.param_rules["offset"]
    assert (rule.lr_mult, rule.decay_mult) == (0.0, 0.0)
    out = net.forward({"x": np.zeros((2, 3), np.float32)})["y"]
    np.testing.assert_array_equal(out, [[1, 2, 3], [1, 2, 3]])


def test_a_scalar_initializer_stays_a_trainable_parameter():
    """x * alpha with alpha an initializer (a learned scalar) is Multiply by a parameter; the
    same product with a Constant is Caffe's Power."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])
    alpha = numpy_helper.from_array(np.array(3.0, np.float32), "alpha")
    for constant in (False, True):
        nodes = [helper.make_node("Mul", ["x", "alpha"], ["y"], name="times")]
        if constant:
            nodes.insert(0, helper.make_node("Constant", [], ["alpha"], value=alpha))
        graph = helper.make_graph(nodes, "m", [x], [y], [] if constant else [alpha])
        spec = spec_from_model(helper.make_model(graph, opset_imports=[
            helper.make_opsetid("", 17)]))
        assert [g.type for g in spec.gates] == ["Power" if constant else "Multiply"]
        assert list(spec.params) == ([] if constant else ["alpha"])


def test_shape_arithmetic_is_folded_at_two_batch_sizes():
    """torch's x.view(x.size(0), -1) with a dynamic batch: Shape, Gather, Unsqueeze, Concat,
    Reshape; the batch entry follows the batch size, so it becomes Reshape's 0."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 6])
    ints = lambda name, values: helper.make_node(  # noqa: E731
        "Constant", [], [name], value=numpy_helper.from_array(np.asarray(values, np.int64)))
    nodes = [helper.make_node("Shape", ["x"], ["s"]), ints("zero", 0),
             helper.make_node("Gather", ["s", "zero"], ["n"], axis=0), ints("axes", [0]),
             helper.make_node("Unsqueeze", ["n", "axes"], ["n1"]), ints("rest", [-1]),
             helper.make_node("Concat", ["n1", "rest"], ["target"], axis=0),
             helper.make_node("Reshape", ["x", "target"], ["y"], name="view")]
    model = helper.make_model(helper.make_graph(nodes, "view", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 17)])
    spec = spec_from_model(model)
    (gate,) = spec.gates
    assert (gate.type, gate.options["shape"]) == ("Reshape", [0, -1])
    value = np.arange(30, dtype=np.float32).reshape(5, 2, 3)
    np.testing.assert_array_equal(load_onnx_model(model).forward({"x": value})["y"],
                                  value.reshape(5, 6))


def test_softmax_before_opset_13_takes_the_2d_view():
    """Softmax-11 on (N, 2, 3) with axis 1 normalises over the 6 values of each item."""
    x = helper.make_tensor_value_info("x", TensorProto.DOUBLE, ["N", 2, 3])
    y = helper.make_tensor_value_info("y", TensorProto.DOUBLE, ["N", 2, 3])
    model = helper.make_model(helper.make_graph(
        [helper.make_node("Softmax", ["x"], ["y"], axis=1)], "s", [x], [y]),
        opset_imports=[helper.make_opsetid("", 11)])
    value = np.random.default_rng(0).standard_normal((4, 2, 3))
    flat = np.exp(value.reshape(4, 6))
    expected = (flat / flat.sum(axis=1, keepdims=True)).reshape(4, 2, 3)
    np.testing.assert_allclose(load_onnx_model(model).forward({"x": value})["y"], expected,
                               rtol=1e-12)


def test_initializers_listed_as_inputs_are_parameters_not_inputs():
    """Older exporters (keep_initializers_as_inputs) list every initializer as an input too."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])
    w = helper.make_tensor_value_info("w", TensorProto.FLOAT, [3, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])
    weights = np.arange(6, dtype=np.float32).reshape(3, 2)
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "m", [x, w], [y],
                              [numpy_helper.from_array(weights, "w")])
    net = load_onnx_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    assert list(net.inputs) == ["x"] and list(net.params) == ["w"]
    np.testing.assert_array_equal(net.params["w"], weights)


def test_every_unmappable_node_is_named_in_one_error():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    k = helper.make_node("Constant", [], ["k"], value=numpy_helper.from_array(
        np.array([2], np.int64)))
    nodes = [k, helper.make_node("Transpose", ["x"], ["t"], name="turn", perm=[1, 0]),
             helper.make_node("Relu", ["t"], ["r"], name="fine"),
             helper.make_node("TopK", ["r", "k"], ["best", "i"], name="best"),
             helper.make_node("TopK", ["x", "k"], ["y", "j"], name="top"),
             helper.make_node("Conv", ["x", "x"], ["c"], name="conv")]
    model = helper.make_model(helper.make_graph(nodes, "bad", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(OnnxImportError) as caught:
        spec_from_model(model, "bad.onnx")
    message = str(caught.value)
    assert message.startswith("bad.onnx: 3 nodes cannot be mapped onto Gatework gates")
    assert "fine" not in message and "best" not in message   # downstream of a refused node
    assert "turn (Transpose): no Gatework mapping" in message
    assert "top (TopK): no Gatework mapping" in message
    assert "conv (Conv): W must be an initializer" in message


def test_unreadable_files_and_other_float_types_are_refused(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(OnnxImportError, match="bad.onnx: cannot read the ONNX model"):
        load_onnx(bad)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT16, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT16, [2])
    model = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "h",
                                                [x], [y]),
                              opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(OnnxImportError, match="float32 and float64 only"):
        spec_from_model(model, "half.onnx")


def test_the_onnx_config_reader(tmp_path):
    net = Net.from_yaml(CONFIGS / "two_layer.yaml", phase="test")
    path = tmp_path / "two_layer.onnx"
    export_onnx(net, path)
    spec = load_config(path)
    assert isinstance(spec, NetSpec) and spec.file == str(path)
    assert [g.type for g in spec.gates] == ["InnerProduct", "ReLU", "InnerProduct"]
    np.testing.assert_array_equal(spec.initial["fc1.W"], net.params["fc1.W"])
    rebuilt = Net.from_file(path)
    assert sorted(rebuilt.params) == sorted(net.params)


def test_net_from_file_holds_the_onnx_values(tmp_path):
    net = Net.from_yaml(CONFIGS / "two_layer.yaml", phase="test")
    path = tmp_path / "two_layer.onnx"
    export_onnx(net, path)
    rebuilt = Net.from_file(path)
    for name, value in net.params.items():
        np.testing.assert_array_equal(rebuilt.params[name], value)


def test_the_onnx_weights_reader_fills_the_original_net(tmp_path):
    trained = Net.from_yaml(CONFIGS / "lenet_digits.yaml", phase="test", seed=1)
    path = tmp_path / "lenet.onnx"
    export_onnx(trained, path)
    fresh = Net.from_yaml(CONFIGS / "lenet_digits.yaml", phase="test", seed=2)
    report = fresh.load_weights(path, strict=True)
    assert sorted(report["loaded"]) == sorted(trained.params)
    for name, value in trained.params.items():
        np.testing.assert_array_equal(fresh.params[name], value)


def test_imported_lenet_passes_the_gradient_checker():
    net = float64(Net.from_yaml(CONFIGS / "lenet_digits.yaml", phase="test"))
    back = load_onnx_model(export_onnx(net), phase="test")
    report = check_net(back, sample=15, seed=0)
    assert report.ok, report
