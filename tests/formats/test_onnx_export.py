"""Export to ONNX, checked by onnxruntime: every gate type (from its gradient-check settings and
in the variants where Caffe and ONNX differ: pooling windows and divisors, LRN regions, Scale
axes, ArgMax, BatchNorm statistics, the losses) and every shipped config give onnxruntime's
output equal to Gatework's forward (float32, error at most 1e-5 of the output's largest
magnitude); the model's structure (symbolic batch, named initializers, no labels when
deployed); the errors; scripts/export_onnx.py."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from gates import Gate, gate_class, register_gate, registered_gates  # noqa: E402
from net import Net  # noqa: E402
from net.formats.onnx_export import EXPORTERS, OnnxExportError, export_onnx  # noqa: E402
from net.formats.onnx_exporters import caffe_divisor  # noqa: E402
from net.gradcheck import sample_feed  # noqa: E402
from tests.formats.onnx_nets import one_gate_net  # noqa: E402
from tests.helpers import CONFIGS, ROOT  # noqa: E402

REL_TOL = 1e-5


def relative_error(ours: np.ndarray, theirs: np.ndarray) -> float:
    """max |ours - theirs| over the largest magnitude of ours (a float32 computation done in
    another order differs by a few units in the last place of the output's scale)."""
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    assert ours.shape == theirs.shape
    if ours.size == 0:
        return 0.0
    return float(np.max(np.abs(ours - theirs)) / max(np.max(np.abs(ours)), 1e-30))


def run_onnxruntime(model, feed: dict) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    types = {i.name: i.type for i in session.get_inputs()}
    given = {name: np.asarray(feed[name], dtype=np.int64 if types[name] == "tensor(int64)"
                              else np.float32 if types[name] == "tensor(float)" else np.float64)
             for name in types}
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, given)))


def assert_agrees(net: Net, feed: dict, **export_options) -> dict[str, float]:
    """Export the net, run it in onnxruntime and in Gatework, compare every output."""
    model = export_onnx(net, **export_options)
    theirs = run_onnxruntime(model, feed)
    ours = net.forward({k: v for k, v in feed.items() if k in net.inputs}, outputs=[
        name for name in theirs if name in net.shapes])
    errors = {name: relative_error(ours[name], value) for name, value in theirs.items()
              if name in ours}
    assert errors and all(err <= REL_TOL for err in errors.values()), errors
    return errors


SHIPPED = sorted(registered_gates())


def test_every_shipped_gate_type_has_an_exporter():
    assert set(SHIPPED) - set(EXPORTERS) == set()


@pytest.mark.parametrize("type_name", [t for t in SHIPPED if t != "Silence"])
def test_every_gate_exports_and_onnxruntime_agrees(type_name):
    net, feed = one_gate_net(type_name)
    assert_agrees(net, feed, losses=True)


def test_silence_leaves_its_input_out_of_the_outputs():
    spec = {"name": "s", "inputs": {"x": {"shape": [None, 3]}}, "gates": [
        {"name": "relu", "type": "ReLU", "bottom": "x", "top": "y"},
        {"name": "tanh", "type": "Tanh", "bottom": "x", "top": "z"},
        {"name": "quiet", "type": "Silence", "bottom": "z", "top": []}]}
    model = export_onnx(Net.from_config(spec, phase="test"))
    assert [o.name for o in model.graph.output] == ["y"]


# -- where Caffe's layer and ONNX's operator differ -----------------------------------------------
POOLINGS = [
    # pool, kernel, stride, pad, H, W: ceil-mode windows hanging past the padding, clipped AVE
    # divisors, windows tiling the plane, a last window dropped because it starts in the padding
    ("MAX", 3, 2, 0, 16, 16), ("AVE", 3, 2, 0, 16, 16), ("AVE", 3, 2, 1, 7, 6),
    ("MAX", 3, 2, 1, 7, 6), ("AVE", 2, 2, 1, 5, 5), ("MAX", 2, 2, 1, 5, 5),
    ("AVE", 2, 2, 0, 8, 8), ("AVE", 3, 3, 2, 4, 5), ("MAX", 3, 1, 1, 5, 4),
    ("AVE", [3, 2], [2, 1], [1, 0], 6, 7),
]


@pytest.mark.parametrize("pool, kernel, stride, pad, height, width", POOLINGS)
def test_pooling_keeps_caffes_windows_and_divisors(pool, kernel, stride, pad, height, width):
    options = {"pool": pool, "kernel_size": kernel, "stride": stride, "pad": pad}
    net, feed = one_gate_net("Pooling", options, [(2, 3, height, width)])
    assert_agrees(net, feed)


@pytest.mark.parametrize("pool", ["MAX", "AVE"])
def test_global_pooling(pool):
    net, feed = one_gate_net("Pooling", {"pool": pool, "global_pooling": True}, [(2, 3, 5, 4)])
    assert_agrees(net, feed)


def test_caffes_divisor_counts_padding_but_not_the_overhang():
    # AVE 3x3 at stride 2 over 16 rows, no pad: 8 windows, the last covers rows 14..16, one row
    # past the image, so Caffe divides it by 2 x 3 (and by 2 x 2 at the corner)
    gate = gate_class("Pooling")(pool="AVE", kernel_size=3, stride=2)
    divisor = caffe_divisor(gate, 16, 16, 8, 8)
    assert divisor[0, 0] == 9 and divisor[7, 0] == 6 and divisor[7, 7] == 4


@pytest.mark.parametrize("options", [
    {"norm_region": "ACROSS_CHANNELS", "local_size": 5, "alpha": 0.3, "beta": 0.75, "k": 2.0},
    {"norm_region": "ACROSS_CHANNELS", "local_size": 3},
    {"norm_region": "WITHIN_CHANNEL", "local_size": 3, "alpha": 0.5, "beta": 0.75},
    {"norm_region": "WITHIN_CHANNEL", "local_size": 5, "alpha": 2.0, "beta": 0.5},
])
def test_lrn_both_regions(options):
    net, feed = one_gate_net("LRN", options, [(2, 6, 5, 4)])
    assert_agrees(net, feed)


@pytest.mark.parametrize("options, shapes", [
    ({"axis": 1, "num_axes": 2, "bias_term": True}, [(2, 3, 4, 5)]),
    ({"axis": 0, "num_axes": -1}, [(2, 3, 4)]),
    ({"axis": -1}, [(2, 3, 4)]),
    ({"num_axes": 0, "bias_term": True}, [(2, 3, 4)]),
    ({"axis": 1}, [(2, 3, 4), (3, 4)]),
    ({"axis": 2}, [(2, 3, 4, 5), (4,)]),
])
def test_scale_along_any_axes(options, shapes):
    net, feed = one_gate_net("Scale", options, shapes, open_batch=options.get("axis") != 0,
                             open_inputs=1)
    assert_agrees(net, feed)


@pytest.mark.parametrize("options, shapes", [
    ({"axis": 1, "num_axes": 2}, [(2, 3, 4)]), ({"axis": 2}, [(2, 3, 4, 5), (4, 5)])])
def test_bias_along_axes(options, shapes):
    net, feed = one_gate_net("Bias", options, shapes, open_inputs=1)
    assert_agrees(net, feed)


@pytest.mark.parametrize("options, shape", [
    ({"top_k": 1}, (3, 5)), ({"top_k": 2, "out_max_val": True}, (3, 2, 3, 2)),
    ({"axis": 1, "top_k": 2, "out_max_val": True}, (3, 4, 2)), ({"axis": -1}, (3, 4, 5))])
def test_argmax(options, shape):
    net, feed = one_gate_net("ArgMax", options, [shape])
    assert_agrees(net, feed)


def test_argmax_ties_go_to_the_larger_index_as_in_caffe():
    net, _ = one_gate_net("ArgMax", {"axis": 1, "top_k": 2}, [(2, 4)])
    feed = {"in0": np.array([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0]], np.float32)}
    theirs = run_onnxruntime(export_onnx(net), feed)["out0"]
    np.testing.assert_array_equal(theirs, [[2, 1], [3, 2]])
    np.testing.assert_array_equal(net.forward(feed)["out0"], theirs)


@pytest.mark.parametrize("options", [
    {"affine": True}, {"affine": False}, {"use_global_stats": False, "affine": True},
    {"use_global_stats": False}, {"eps": 0.1}])
def test_batch_norm_with_trained_statistics(options):
    net, feed = one_gate_net("BatchNorm", options, [(4, 3, 2, 2)])
    rng = np.random.default_rng(1)
    net.phase = "train"
    for _ in range(3):                      # moving averages with a scale factor other than 1
        net.forward({"in0": rng.standard_normal((4, 3, 2, 2)) * 2 + 1})
    net.phase = "test"
    for name in [p for p in net.params]:
        net.params[name][...] = rng.standard_normal(net.params[name].shape)
    assert net.buffers["g.scale_factor"][0] != 1.0
    assert_agrees(net, feed)


@pytest.mark.parametrize("type_name, options, shapes", [
    ("Reshape", {"shape": [0, -1]}, [(2, 3, 4)]),
    ("Reshape", {"shape": [2, 2], "axis": 1, "num_axes": 1}, [(2, 4, 3)]),
    ("Reshape", {"shape": [1], "axis": -1, "num_axes": 0}, [(2, 3)]),
    ("Flatten", {"axis": 2}, [(2, 3, 4, 5)]),
    ("Flatten", {"axis": 0}, [(2, 3)]),
    ("Reshape", {"shape": [-1]}, [(2, 3)]),
    ("Flatten", {"axis": 1, "end_axis": 2}, [(2, 3, 4, 5)]),
    ("Softmax", {"axis": 0}, [(3, 4)]),
    ("Softmax", {"axis": -1}, [(2, 3, 4)]),
    ("InnerProduct", {"num_output": 3, "axis": 2}, [(2, 3, 4, 2)]),
    ("InnerProduct", {"num_output": 3, "bias_term": False}, [(2, 3, 4)]),
    ("Convolution", {"num_output": 2, "kernel_h": 3, "kernel_w": 1, "stride": [2, 1],
                     "pad": [1, 0], "bias_term": False}, [(2, 3, 6, 5)]),
    ("Slice", {"axis": -1, "slice_point": [1]}, [(2, 3)]),
    ("Concat", {"axis": -1}, [(2, 3), (2, 2)]),
    ("Eltwise", {"operation": "SUM", "coeff": [0.5, -2.0]}, [(2, 3), (2, 3)]),
    ("Eltwise", {"operation": "MAX"}, [(2, 3), (2, 3), (2, 3)]),
    ("Reduction", {"operation": "SUMSQ", "axis": 0}, [(2, 3)]),
    ("Reduction", {"operation": "MEAN", "axis": 1}, [(2, 3, 4)]),
    ("Reduction", {"operation": "SUM", "axis": -1, "coeff": 2.0}, [(2, 3, 4)]),
    ("Sum", {"axis": [1, 2], "keepdims": True}, [(2, 3, 4)]),
    ("Mean", {}, [(2, 3)]),
    ("Power", {"power": 2.0}, [(2, 3)]),
    ("Power", {"scale": -3.0, "shift": 1.0}, [(2, 3)]),
    ("Exp", {}, [(2, 3)]),
    ("ReLU", {"negative_slope": 0.1}, [(2, 3)]),
    ("PReLU", {"channel_shared": True}, [(2, 3, 4)]),
    ("Crop", {"axis": 2, "offset": 1}, [(2, 3, 6, 5), (2, 3, 3, 3)]),
    ("MVN", {"across_channels": True, "normalize_variance": False}, [(2, 3, 4)]),
])
def test_gate_variants(type_name, options, shapes):
    net, feed = one_gate_net(type_name, options, shapes)
    assert_agrees(net, feed)


@pytest.mark.parametrize("options", [
    {"normalization": "FULL"}, {"normalization": "BATCH_SIZE", "axis": -1},
    {"normalization": "NONE", "ignore_label": 1}, {"normalize": False}])
def test_softmax_with_loss_normalisations(options):
    cls = gate_class("SoftmaxWithLoss")
    net, feed = one_gate_net("SoftmaxWithLoss", options)
    rng = np.random.default_rng(2)
    axis = options.get("axis", 1) % 3
    shape = list(cls.check_shapes[0])
    classes = shape.pop(axis)
    feed["in1"] = rng.integers(0, classes, shape)
    assert_agrees(net, feed, losses=True)


def test_accuracy_top_k_and_ignored_labels():
    net, feed = one_gate_net("Accuracy", {"top_k": 2, "ignore_label": 0})
    assert_agrees(net, feed, losses=True)


def test_float64_nets_export_as_double():
    net, feed = one_gate_net("InnerProduct", {"num_output": 2}, [(3, 4)], dtype="float64")
    model = export_onnx(net)
    assert model.graph.initializer[0].data_type == onnx.TensorProto.DOUBLE
    theirs = run_onnxruntime(model, feed)["out0"]
    np.testing.assert_allclose(theirs, net.forward(feed)["out0"], rtol=1e-12)


# -- the shipped configs -------------------------------------------------------------------------
CONFIG_FILES = sorted(p.name for p in CONFIGS.glob("*.yaml"))


def _feed(net: Net, batch: int = 3) -> dict:
    return sample_feed(net, np.random.default_rng(5), batch=batch)


@pytest.mark.parametrize("config", CONFIG_FILES)
def test_shipped_configs_deployed(config):
    """The deployed model: outputs agree; SoftmaxWithLoss gave its probabilities."""
    net = Net.from_yaml(CONFIGS / config, phase="test")
    feed = _feed(net)
    model = export_onnx(net)
    theirs = run_onnxruntime(model, feed)
    for name, value in theirs.items():
        if name in net.shapes:
            ours = net.forward(feed, outputs=[name])[name]
        else:                                   # the probabilities of a SoftmaxWithLoss
            loss = next(s for s in net.runner.steps if s.spec.type == "SoftmaxWithLoss")
            scores = net.forward(feed, outputs=[loss.inputs[0]])[loss.inputs[0]]
            ours = gate_class("Softmax")(axis=loss.gate.axis).forward(scores)
        assert relative_error(ours, value) <= REL_TOL, name


@pytest.mark.parametrize("config", CONFIG_FILES)
def test_shipped_configs_with_losses(config):
    net = Net.from_yaml(CONFIGS / config, phase="test")
    assert_agrees(net, _feed(net), losses=True)


def test_a_deployed_model_has_a_symbolic_batch_named_initializers_and_no_labels(tmp_path):
    net = Net.from_yaml(CONFIGS / "lenet_digits.yaml", phase="test")
    path = tmp_path / "lenet.onnx"
    export_onnx(net, path)
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    (data,) = model.graph.input
    dims = data.type.tensor_type.shape.dim
    assert data.name == "data" and dims[0].dim_param == "N"
    assert [d.dim_value for d in dims[1:]] == [1, 8, 8]
    assert sorted(t.name for t in model.graph.initializer) == sorted(net.params)
    assert [o.name for o in model.graph.output] == ["prob"]
    for tensor in model.graph.initializer:
        np.testing.assert_array_equal(onnx.numpy_helper.to_array(tensor), net.params[tensor.name])


def test_batch_norm_statistics_are_initializers():
    net, _ = one_gate_net("BatchNorm", {"affine": True}, [(4, 3, 2, 2)])
    names = {t.name for t in export_onnx(net).graph.initializer}
    assert names == {"g.gamma", "g.beta", "g.mean", "g.variance"}


@pytest.mark.parametrize("opset", [13, 17, 21])
def test_opsets(opset):
    net = Net.from_yaml(CONFIGS / "cifar10_full.yaml", phase="test")
    model = export_onnx(net, opset=opset)
    assert model.opset_import[0].version == opset
    theirs = run_onnxruntime(model, _feed(net, 2))
    assert set(theirs) == {"prob"}


def test_outputs_chosen_export_only_what_they_need():
    net = Net.from_yaml(CONFIGS / "lenet_digits.yaml", phase="test")
    model = export_onnx(net, outputs=["pool1"])
    assert {n.op_type for n in model.graph.node} <= {"Conv", "MaxPool", "Relu", "Constant"}
    assert {t.name for t in model.graph.initializer} == {"conv1.W", "conv1.b"}


def test_a_deployed_model_leaves_out_what_reads_a_loss():
    spec = {"name": "l", "inputs": {"x": {"shape": [None, 3]}, "y": {"shape": [None],
                                                                    "dtype": "int"}},
            "gates": [{"name": "loss", "type": "SoftmaxWithLoss", "bottom": ["x", "y"],
                       "top": "loss"},
                      {"name": "double", "type": "Power", "bottom": "loss", "top": "twice",
                       "scale": 2.0}]}
    model = export_onnx(Net.from_config(spec, phase="test"))
    assert [o.name for o in model.graph.output] == ["prob"]
    assert [i.name for i in model.graph.input] == ["x"]


def test_with_losses_the_labels_are_int64_inputs():
    net = Net.from_yaml(CONFIGS / "digits_mlp.yaml", phase="test")
    model = export_onnx(net, losses=True)
    types = {i.name: i.type.tensor_type.elem_type for i in model.graph.input}
    assert types == {"data": onnx.TensorProto.FLOAT, "label": onnx.TensorProto.INT64}
    assert {o.name for o in model.graph.output} == {"loss", "accuracy"}


# -- errors --------------------------------------------------------------------------------------
def test_a_gate_without_an_onnx_form_is_named(clean_registry):
    @register_gate
    class SquareItGate(Gate):
        def forward(self, x):
            return x * x

    spec = {"name": "custom", "inputs": {"x": {"shape": [None, 2]}}, "gates": [
        {"name": "sq", "type": "SquareIt", "bottom": "x", "top": "y"},
        {"name": "act", "type": "ReLU", "bottom": "y", "top": "z"}]}
    with pytest.raises(OnnxExportError, match=r"no ONNX form for gate 'sq' \(SquareIt\)"):
        export_onnx(Net.from_config(spec))


def test_unknown_outputs_and_opsets_are_refused():
    net = Net.from_yaml(CONFIGS / "two_layer.yaml")
    with pytest.raises(OnnxExportError, match="no blob 'nope'"):
        export_onnx(net, outputs=["nope"])
    with pytest.raises(OnnxExportError, match="opset 9 is not supported"):
        export_onnx(net, opset=9)
    assert net.phase == "train"                # the phase is put back after the export


def test_recurrent_gates_need_a_known_number_of_steps():
    spec = {"name": "rnn", "inputs": {"x": {"shape": [None, 2, 3]}, "cont": {
        "shape": [None, 2]}}, "gates": [{"name": "rnn", "type": "RNN", "bottom": ["x", "cont"],
                                         "top": "h", "num_output": 2}]}
    with pytest.raises(OnnxExportError, match="the number of timesteps T must be known"):
        export_onnx(Net.from_config(spec))


# -- the script ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_export_script_writes_a_model_onnxruntime_runs(tmp_path):
    net = Net.from_yaml(CONFIGS / "two_layer.yaml", phase="test")
    weights = tmp_path / "w.npz"
    rng = np.random.default_rng(3)
    np.savez(weights, **{name: rng.standard_normal(p.shape) for name, p in net.params.items()})
    out = tmp_path / "two_layer.onnx"
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "export_onnx.py"),
                           str(CONFIGS / "two_layer.yaml"), "--weights", str(weights), "-o",
                           str(out), "--opset", "15"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "two_layer.onnx" in done.stdout
    net.load_weights(weights)
    feed = {"x": np.asarray(net.inputs["x"].value, np.float32)}
    theirs = run_onnxruntime(onnx.load(str(out)), feed)["scores"]
    assert relative_error(net.forward(feed)["scores"], theirs) <= REL_TOL


@pytest.mark.slow
def test_export_script_reports_a_gate_it_cannot_write(tmp_path):
    config = tmp_path / "plugin.yaml"
    (tmp_path / "square.py").write_text(
        "from gates import Gate, register_gate\n\n\n@register_gate\nclass SquareGate(Gate):\n"
        "    def forward(self, x):\n        return x * x\n\n    def backward(self, dout):\n"
        "        return (dout,)\n")
    config.write_text("name: p\nplugins: square.py\ninputs:\n  x: {shape: [null, 2]}\ngates:\n"
                      "  - {name: sq, type: Square, bottom: x, top: y}\n")
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "export_onnx.py"), str(config),
                           "-o", str(tmp_path / "p.onnx")], capture_output=True, text=True,
                          cwd=ROOT)
    assert done.returncode == 2
    assert "no ONNX form for gate 'sq' (Square)" in done.stderr
    assert "Traceback" not in done.stderr
