"""OpenCV's Caffe importer as an independent reader of what Gatework exports: each net is built
here, given random weights (and BatchNorm statistics), exported as a deploy prototxt and a
caffemodel, loaded with cv2.dnn.readNetFromCaffe, and both forwards must agree in float32 to a
relative error (max |ours - OpenCV| / max |OpenCV|) of at most 1e-4.

OpenCV 5 dropped the Caffe importer: the test extra pins opencv-python-headless below 5, and
these tests skip where cv2 cannot be imported. OpenCV ignores LRN's k (it uses 1): the LRN nets
use k = 1. OpenCV's Deconvolution leaves dilation out of its output size (Caffe's and PyTorch's
count it; tests/gates/test_vision_catalog.py checks dilated Deconvolution against PyTorch): the
Deconvolution nets here are not dilated. Nothing is downloaded; every file is written into the
test's tmp_path."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from net import Net
from net.formats.caffe_export import write_caffe
from net.formats.caffe_net import read_prototxt

cv2 = pytest.importorskip("cv2", reason="OpenCV (opencv-python-headless<5, the test extra) "
                                        "is not installed")
if not hasattr(cv2, "dnn") or not hasattr(cv2.dnn, "readNetFromCaffe"):
    pytest.skip("this OpenCV has no Caffe importer (OpenCV 5 dropped it; pin <5)",
                allow_module_level=True)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = Path(__file__).parent / "fixtures" / "caffe_examples"
TOLERANCE = 1e-4


def randomise(net: Net, seed: int = 0) -> None:
    """Weights of a useful size (normal / sqrt(fan-in)); BatchNorm statistics that are not the
    identity, with a moving-average factor that is not 1."""
    rng = np.random.default_rng(seed)
    for name, array in net.params.items():
        fan_in = int(np.prod(array.shape[1:])) if array.ndim > 1 else 1
        array[...] = rng.standard_normal(array.shape) / np.sqrt(fan_in)
    for name, array in net.buffers.items():
        if name.endswith(".scale_factor"):
            array[...] = 2.5
        elif name.endswith(".variance"):
            array[...] = rng.uniform(0.5, 2.0, array.shape)
        else:
            array[...] = rng.standard_normal(array.shape)


def opencv_agreement(net: Net, feed: dict, output: str, tmp_path: Path) -> float:
    """Export `net` (deploy), run OpenCV on `feed`, return the relative error on the blob
    `output` (OpenCV names outputs by layer: the last gate writing `output`)."""
    prototxt, caffemodel = tmp_path / "net.prototxt", tmp_path / "net.caffemodel"
    write_caffe(net, prototxt, caffemodel, deploy=True)
    reader = cv2.dnn.readNetFromCaffe(str(prototxt), str(caffemodel))
    for name, value in feed.items():
        reader.setInput(value.astype(np.float32), name)
    layer = [gate.name for gate in net.spec.gates if output in gate.top][-1]
    theirs = reader.forward(layer)
    ours = net.forward(feed, outputs=output)[output]
    assert theirs.shape == ours.shape
    return float(np.max(np.abs(ours - theirs)) / np.max(np.abs(theirs)))


def image(*shape: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def small_net(gates: list[dict], shape=(None, 4, 6, 6)) -> Net:
    return Net.from_config({"name": "n", "inputs": {"data": {"shape": list(shape)}},
                            "gates": gates}, phase="test")


def test_lenet_agrees_with_opencv(tmp_path):
    net = Net.from_yaml(ROOT / "configs" / "lenet_mnist.yaml", phase="test")
    randomise(net)
    error = opencv_agreement(net, {"data": image(3, 1, 28, 28)}, "scores", tmp_path)
    assert error <= TOLERANCE, error


def test_cifar10_quick_agrees_with_opencv(tmp_path):
    spec = read_prototxt(EXAMPLES / "cifar10_quick_train_test.prototxt", with_data=False,
                         input_shapes={"data": (3, 32, 32), "label": ()})
    net = Net(spec, phase="test")
    randomise(net)
    error = opencv_agreement(net, {"data": image(2, 3, 32, 32)}, "ip2", tmp_path)
    assert error <= TOLERANCE, error


CONV = {"type": "Convolution", "num_output": 6, "kernel_size": 3, "pad": 1}

NETS = {
    "batchnorm_scale": [
        {"name": "conv", "bottom": "data", "top": "conv", **CONV},
        {"name": "bn", "type": "BatchNorm", "bottom": "conv", "top": "conv"},
        {"name": "scale", "type": "Scale", "bottom": "conv", "top": "conv", "bias_term": True},
        {"name": "relu", "type": "ReLU", "bottom": "conv", "top": "out"}],
    "lrn": [
        {"name": "across", "type": "LRN", "bottom": "data", "top": "across", "local_size": 3,
         "alpha": 0.5, "beta": 0.75, "k": 1.0},
        {"name": "within", "type": "LRN", "bottom": "across", "top": "out", "local_size": 3,
         "alpha": 0.3, "beta": 0.6, "norm_region": "WITHIN_CHANNEL"}],
    "eltwise": [
        {"name": "a", "bottom": "data", "top": "a", **CONV},
        {"name": "b", "bottom": "data", "top": "b", **CONV},
        {"name": "sum", "type": "Eltwise", "bottom": ["a", "b"], "top": "sum",
         "coeff": [0.5, -2.0]},
        {"name": "prod", "type": "Eltwise", "bottom": ["sum", "a"], "top": "prod",
         "operation": "PROD"},
        {"name": "max", "type": "Eltwise", "bottom": ["prod", "b", "sum"], "top": "out",
         "operation": "MAX"}],
    "concat": [
        {"name": "a", "bottom": "data", "top": "a", **CONV},
        {"name": "b", "type": "ReLU", "bottom": "data", "top": "b"},
        {"name": "cat", "type": "Concat", "bottom": ["a", "b", "data"], "top": "out"}],
    "prelu": [
        {"name": "channels", "type": "PReLU", "bottom": "data", "top": "p"},
        {"name": "conv", "bottom": "p", "top": "conv", **CONV},
        {"name": "shared", "type": "PReLU", "bottom": "conv", "top": "out",
         "channel_shared": True}],
    "softmax": [
        {"name": "conv", "bottom": "data", "top": "conv", **CONV},
        {"name": "pool", "type": "Pooling", "bottom": "conv", "top": "pool", "pool": "AVE",
         "kernel_size": 3, "stride": 2, "pad": 1},
        {"name": "fc", "type": "InnerProduct", "bottom": "pool", "top": "fc",
         "num_output": 7},
        {"name": "prob", "type": "Softmax", "bottom": "fc", "top": "out"}],
    "deconvolution": [
        {"name": "conv", "bottom": "data", "top": "conv", **CONV},
        {"name": "up", "type": "Deconvolution", "bottom": "conv", "top": "out",
         "num_output": 3, "kernel_size": 4, "stride": 2, "pad": 1}],
    "deconvolution_groups_rectangular": [
        {"name": "conv", "bottom": "data", "top": "conv", **CONV},
        {"name": "up", "type": "Deconvolution", "bottom": "conv", "top": "up",
         "num_output": 4, "kernel_h": 3, "kernel_w": 2, "stride": [2, 1], "pad": [1, 0],
         "group": 2},
        {"name": "gaps", "type": "Deconvolution", "bottom": "up", "top": "out",
         "num_output": 2, "kernel_size": 2, "stride": 3, "bias_term": False}],
}


@pytest.mark.parametrize("name", sorted(NETS))
def test_layer_nets_agree_with_opencv(name, tmp_path):
    net = small_net(NETS[name])
    randomise(net, seed=len(name))
    error = opencv_agreement(net, {"data": image(2, 4, 6, 6)}, "out", tmp_path)
    assert error <= TOLERANCE, error
