"""A small CNN exported by torch.onnx.export, imported into Gatework: PyTorch's float64 output,
gradients (input and every parameter, under the ONNX initializer names) and three SGD steps,
against Gatework's. The model and PyTorch's values are fixtures
(tests/formats/fixtures/make_onnx_torch_fixture.py made them); where PyTorch is importable the
live test rebuilds them first."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnx")

from net.formats import onnx_import  # noqa: E402
from net.formats.onnx_import import load_onnx, load_onnx_model  # noqa: E402
from net.gradcheck import check_net  # noqa: E402
from tests.helpers import ROOT  # noqa: E402

FIXTURES = ROOT / "tests" / "formats" / "fixtures"
onnx_import.register()          # what net.formats does on import (Net.load_weights reads .onnx)


def softmax_cross_entropy(scores: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """The mean cross-entropy of softmax(scores) and its gradient (PyTorch's cross_entropy)."""
    shifted = scores - scores.max(axis=1, keepdims=True)
    prob = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    rows = np.arange(len(labels))
    grad = prob.copy()
    grad[rows, labels] -= 1
    return float(-np.log(prob[rows, labels]).mean()), grad / len(labels)


#: float64 on both sides (the model's float attributes are exact in float32, as ONNX stores
#: them; BatchNorm's eps 1e-5 moves the result by about 1e-13)
RTOL = 1e-9


def check_against(net, values: dict[str, np.ndarray]) -> None:
    """Forward, gradients and SGD steps of the imported net against PyTorch's values."""
    x, g = values["x"], values["g"]
    net.phase = "test"
    np.testing.assert_allclose(net.forward({"x": x})["y"], values["y"], rtol=RTOL, atol=1e-12)
    grads = net.backward({"y": g})
    np.testing.assert_allclose(grads["x"], values["grad:x"], rtol=RTOL, atol=1e-12)
    names = [key.removeprefix("grad:") for key in values if key.startswith("grad:")
             and key != "grad:x"]
    assert sorted(names) == sorted(net.params)
    for name in names:
        np.testing.assert_allclose(grads[name], values[f"grad:{name}"], rtol=RTOL, atol=1e-12,
                                   err_msg=name)
    net.phase = "train"                       # BatchNorm on the batch's statistics
    losses = []
    for _ in range(len(values["losses"])):
        loss, dscores = softmax_cross_entropy(net.forward({"x": x})["y"], values["labels"])
        losses.append(loss)
        grads = net.backward({"y": dscores})
        for name in net.params:
            net.params[name] -= float(values["lr"]) * grads[name]
    np.testing.assert_allclose(losses, values["losses"], rtol=RTOL)
    assert losses[-1] < losses[0]
    for name in names:
        np.testing.assert_allclose(net.params[name], values[f"trained:{name}"], rtol=RTOL,
                                   atol=1e-12, err_msg=name)


def test_torch_cnn_fixture_matches_pytorch():
    values = dict(np.load(FIXTURES / "torch_cnn.npz"))
    net = load_onnx(FIXTURES / "torch_cnn.onnx")
    assert net.dtype == np.float64
    assert net.inputs["x"].shape == (None, 2, 10, 10)
    check_against(net, values)


def test_torch_cnn_keeps_torchs_names_and_batch_norm_statistics():
    net = load_onnx(FIXTURES / "torch_cnn.onnx", phase="test")
    assert sorted(net.params) == sorted(["conv1.weight", "conv1.bias", "bn1.weight", "bn1.bias",
                                         "conv2.weight", "conv2.bias", "fc1.weight", "fc1.bias",
                                         "fc2.weight", "fc2.bias"])
    import onnx
    model = onnx.load(str(FIXTURES / "torch_cnn.onnx"))
    stored = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    for name, value in net.params.items():
        np.testing.assert_array_equal(value, stored[name])
    np.testing.assert_array_equal(net.buffers["/bn1/BatchNormalization.mean"],
                                  stored["bn1.running_mean"])
    np.testing.assert_array_equal(net.buffers["/bn1/BatchNormalization.variance"],
                                  stored["bn1.running_var"])


def test_torch_cnn_weights_load_by_name_into_a_fresh_import():
    net = load_onnx(FIXTURES / "torch_cnn.onnx", phase="test")
    reference = {name: value.copy() for name, value in net.params.items()}
    statistics = net.buffers["/bn1/BatchNormalization.variance"].copy()
    for value in list(net.params.values()) + list(net.buffers.values()):
        value[...] = 0
    net.load_weights(FIXTURES / "torch_cnn.onnx", strict=True)
    for name, value in reference.items():
        np.testing.assert_array_equal(net.params[name], value)
    np.testing.assert_array_equal(net.buffers["/bn1/BatchNormalization.variance"], statistics)
    assert net.buffers["/bn1/BatchNormalization.scale_factor"][0] == 1.0


def test_torch_cnn_passes_the_gradient_checker():
    net = load_onnx(FIXTURES / "torch_cnn.onnx", phase="test")
    values = np.load(FIXTURES / "torch_cnn.npz")
    report = check_net(net, {"x": values["x"][:2]}, sample=30, seed=0)
    assert report.ok, report


def test_torch_cnn_live():
    """Rebuild the model and PyTorch's values now (where PyTorch and onnx are installed)."""
    pytest.importorskip("torch")
    import onnx

    from tests.formats.fixtures import make_onnx_torch_fixture as maker
    model = maker.make_model()
    imported = load_onnx_model(onnx.load_from_string(maker.export(model)), "live torch export")
    check_against(imported, maker.expected(model))
