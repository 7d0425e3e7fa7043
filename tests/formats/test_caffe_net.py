"""Caffe net prototxt read as Gatework configs: Caffe's example nets build with the blob shapes
Caffe computes (the figures in Caffe's logs and papers: LeNet's 50x4x4 before ip1, CaffeNet's
256x6x6 pool5 and 60,965,224 parameters, GoogLeNet's 1024x7x7 inception_5b), every layer form
(V1, deploy headers, Input, Parameter, include/exclude with stages), and each refusal naming
the file, line, layer and type."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from net import Net
from net.errors import ConfigError
from net.formats.caffe_net import read_caffe_config, read_prototxt

FIXTURES = Path(__file__).parent / "fixtures"
EXAMPLES = FIXTURES / "caffe_examples"
MNIST = {"data": (1, 28, 28), "label": ()}
CIFAR = {"data": (3, 32, 32), "label": ()}


def write(tmp_path: Path, text: str, name: str = "net.prototxt") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def shapes(net: Net, *blobs: str) -> dict[str, tuple]:
    return {blob: net.shapes[blob] for blob in blobs}


# -- Caffe's example nets -------------------------------------------------------------------------
def test_lenet_train_test_builds_with_caffes_shapes_in_both_phases():
    spec = read_prototxt(FIXTURES / "lenet_train_test.prototxt", with_data=False,
                         input_shapes=MNIST)
    net = Net(spec)
    assert shapes(net, "conv1", "pool1", "conv2", "pool2", "ip2") == {
        "conv1": (None, 20, 24, 24), "pool1": (None, 20, 12, 12), "conv2": (None, 50, 8, 8),
        "pool2": (None, 50, 4, 4), "ip2": (None, 10)}
    assert [g.name for g in spec.gates if g.phase == "test"] == ["accuracy"]
    assert spec.inputs["label"].dtype == "int"          # SoftmaxWithLoss reads class indices
    assert net.param_rules["conv1.b"].lr_mult == 2.0
    assert sum(p.size for p in net.params.values()) == 431080


def test_lenet_deploy_keeps_the_declared_batch_and_its_in_place_relu():
    net = Net(read_prototxt(EXAMPLES / "lenet_deploy.prototxt"), phase="test")
    assert net.inputs["data"].shape == (64, 1, 28, 28)
    out = net.forward({"data": np.zeros((64, 1, 28, 28), np.float32)})
    assert out["prob"].shape == (64, 10)
    relu = next(g for g in net.spec.gates if g.name == "relu1")
    assert relu.bottom == relu.top == ["ip1"]


@pytest.mark.parametrize("name, last, count", [
    ("cifar10_quick_train_test", {"pool1": (None, 32, 16, 16), "pool2": (None, 32, 8, 8),
                                  "pool3": (None, 64, 4, 4), "ip2": (None, 10)}, 145578),
    ("cifar10_full_train_test", {"norm1": (None, 32, 16, 16), "norm2": (None, 32, 8, 8),
                                 "pool3": (None, 64, 4, 4), "ip1": (None, 10)}, 89578),
])
def test_cifar10_nets_build_with_caffes_shapes(name, last, count):
    spec = read_prototxt(EXAMPLES / f"{name}.prototxt", with_data=False, input_shapes=CIFAR)
    net = Net(spec, phase="test")
    assert shapes(net, *last) == last
    assert sum(p.size for p in net.params.values()) == count


def test_cifar10_full_keeps_decay_mult_and_lrn_within_channel():
    spec = read_prototxt(EXAMPLES / "cifar10_full_train_test.prototxt", with_data=False,
                         input_shapes=CIFAR)
    gates = {g.name: g for g in spec.gates}
    assert gates["norm1"].options == {"local_size": 3, "alpha": 5e-05,
                                      "norm_region": "WITHIN_CHANNEL"}
    assert [(r.lr_mult, r.decay_mult) for r in gates["ip1"].param] == [(1.0, 250.0),
                                                                        (2.0, 0.0)]


def test_siamese_towers_share_their_weights_by_param_name():
    spec = read_prototxt(EXAMPLES / "mnist_siamese_train_test.prototxt", with_data=False,
                         input_shapes={"pair_data": (2, 28, 28), "sim": ()})
    net = Net(spec)
    assert shapes(net, "data", "data_p", "feat", "feat_p") == {
        "data": (None, 1, 28, 28), "data_p": (None, 1, 28, 28), "feat": (None, 2),
        "feat_p": (None, 2)}
    assert sorted(net.params) == sorted(f"{layer}_{kind}" for layer in
                                        ("conv1", "conv2", "ip1", "ip2", "feat")
                                        for kind in "wb")
    assert spec.inputs["sim"].dtype == "int"            # ContrastiveLoss casts the similarity
    rng = np.random.default_rng(0)
    out = net.forward({"pair_data": rng.random((4, 2, 28, 28)),
                       "sim": np.array([0, 1, 1, 0])})
    assert np.isfinite(out["loss"])


def test_mnist_autoencoder_builds_with_the_test_on_test_stage():
    spec = read_prototxt(EXAMPLES / "mnist_autoencoder.prototxt", with_data=False,
                         input_shapes={"data": (1, 28, 28)}, stages=("test-on-test",))
    net = Net(spec, phase="test")
    assert shapes(net, "flatdata", "encode4", "decode1") == {
        "flatdata": (None, 784), "encode4": (None, 30), "decode1": (None, 784)}
    encode1 = next(g for g in spec.gates if g.name == "encode1")
    assert encode1.options["weight_filler"]["sparse"] == 15          # Caffe's sparse: 15
    kept = np.count_nonzero(net.params["encode1.W"]) / net.params["encode1.W"].size
    assert abs(kept - 15 / 1000) < 0.005                      # kept with probability 15 / 1000


def test_mnist_autoencoder_layer_names_used_twice_get_a_suffix(tmp_path):
    text = (EXAMPLES / "mnist_autoencoder.prototxt").read_text().replace(" sparse: 15", "")
    spec = read_prototxt(write(tmp_path, text), with_data=False,
                         input_shapes={"data": (1, 28, 28)}, stages=("test-on-test",))
    losses = [(g.name, g.type, g.loss_weight) for g in spec.gates if g.type.endswith("Loss")]
    assert losses == [("loss", "SigmoidCrossEntropyLoss", [1.0]),
                      ("loss_2", "EuclideanLoss", [0.0])]


def test_caffenet_deploy_builds_with_caffes_shapes_and_parameter_count():
    net = Net(read_prototxt(EXAMPLES / "caffenet_deploy.prototxt"), phase="test")
    assert shapes(net, "conv1", "pool1", "conv2", "pool2", "conv5", "pool5", "fc6", "prob") == {
        "conv1": (10, 96, 55, 55), "pool1": (10, 96, 27, 27), "conv2": (10, 256, 27, 27),
        "pool2": (10, 256, 13, 13), "conv5": (10, 256, 13, 13), "pool5": (10, 256, 6, 6),
        "fc6": (10, 4096), "prob": (10, 1000)}
    assert net.params["conv2.W"].shape == (256, 48, 5, 5)     # two groups of 48 channels
    assert sum(p.size for p in net.params.values()) == 60965224


# bvlc_googlenet's inception modules: 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool projection
INCEPTION = {"3a": (64, 96, 128, 16, 32, 32), "3b": (128, 128, 192, 32, 96, 64),
             "4a": (192, 96, 208, 16, 48, 64), "4b": (160, 112, 224, 24, 64, 64),
             "4c": (128, 128, 256, 24, 64, 64), "4d": (112, 144, 288, 32, 64, 64),
             "4e": (256, 160, 320, 32, 128, 128), "5a": (256, 160, 320, 32, 128, 128),
             "5b": (384, 192, 384, 48, 128, 128)}


def googlenet_deploy() -> str:
    """bvlc_googlenet's deploy net (without the training-only auxiliary classifiers)."""
    layers = ['name: "GoogleNet"',
              'layer { name: "data" type: "Input" top: "data" '
              'input_param { shape: { dim: 10 dim: 3 dim: 224 dim: 224 } } }']

    def conv(name, bottom, outputs, kernel, stride=1, pad=0):
        layers.append(f'layer {{ name: "{name}" type: "Convolution" bottom: "{bottom}" '
                      f'top: "{name}" convolution_param {{ num_output: {outputs} '
                      f'kernel_size: {kernel} stride: {stride} pad: {pad} }} }}')
        layers.append(f'layer {{ name: "{name}_relu" type: "ReLU" bottom: "{name}" '
                      f'top: "{name}" }}')
        return name

    def pool(name, bottom, kernel, stride, method="MAX", pad=0):
        layers.append(f'layer {{ name: "{name}" type: "Pooling" bottom: "{bottom}" '
                      f'top: "{name}" pooling_param {{ pool: {method} kernel_size: {kernel} '
                      f'stride: {stride} pad: {pad} }} }}')
        return name

    def lrn(name, bottom):
        layers.append(f'layer {{ name: "{name}" type: "LRN" bottom: "{bottom}" top: "{name}" '
                      'lrn_param { local_size: 5 alpha: 0.0001 beta: 0.75 } }')
        return name

    top = pool("pool1/3x3_s2", conv("conv1/7x7_s2", "data", 64, 7, 2, 3), 3, 2)
    top = conv("conv2/3x3_reduce", lrn("pool1/norm1", top), 64, 1)
    top = pool("pool2/3x3_s2", lrn("conv2/norm2", conv("conv2/3x3", top, 192, 3, 1, 1)), 3, 2)
    for module, (one, reduce3, three, reduce5, five, proj) in INCEPTION.items():
        if module in ("4a", "5a"):
            top = pool(f"pool{module[0]}/3x3_s2", top, 3, 2)
        prefix = f"inception_{module}"
        branches = [conv(f"{prefix}/1x1", top, one, 1),
                    conv(f"{prefix}/3x3", conv(f"{prefix}/3x3_reduce", top, reduce3, 1),
                         three, 3, 1, 1),
                    conv(f"{prefix}/5x5", conv(f"{prefix}/5x5_reduce", top, reduce5, 1),
                         five, 5, 1, 2),
                    conv(f"{prefix}/pool_proj", pool(f"{prefix}/pool", top, 3, 1, pad=1),
                         proj, 1)]
        top = f"{prefix}/output"
        layers.append(f'layer {{ name: "{top}" type: "Concat" '
                      + " ".join(f'bottom: "{b}"' for b in branches) + f' top: "{top}" }}')
    top = pool("pool5/7x7_s1", top, 7, 1, "AVE")
    layers.append(f'layer {{ name: "pool5/drop_7x7_s1" type: "Dropout" bottom: "{top}" '
                  f'top: "{top}" dropout_param {{ dropout_ratio: 0.4 }} }}')
    layers.append(f'layer {{ name: "loss3/classifier" type: "InnerProduct" bottom: "{top}" '
                  'top: "loss3/classifier" inner_product_param { num_output: 1000 } }')
    layers.append('layer { name: "prob" type: "Softmax" bottom: "loss3/classifier" '
                  'top: "prob" }')
    return "\n".join(layers) + "\n"


def test_googlenet_deploy_builds_with_caffes_shapes(tmp_path):
    net = Net(read_prototxt(write(tmp_path, googlenet_deploy())), phase="test")
    assert shapes(net, "pool1/3x3_s2", "pool2/3x3_s2", "inception_3a/output",
                  "inception_3b/output", "inception_4e/output", "inception_5b/output",
                  "pool5/7x7_s1", "prob") == {
        "pool1/3x3_s2": (10, 64, 56, 56), "pool2/3x3_s2": (10, 192, 28, 28),
        "inception_3a/output": (10, 256, 28, 28), "inception_3b/output": (10, 480, 28, 28),
        "inception_4e/output": (10, 832, 14, 14), "inception_5b/output": (10, 1024, 7, 7),
        "pool5/7x7_s1": (10, 1024, 1, 1), "prob": (10, 1000)}


# -- layer forms ----------------------------------------------------------------------------------
def test_v1_layers_become_gates_with_their_blobs_lr_and_shared_names():
    spec = read_prototxt(FIXTURES / "v1_small_net.prototxt")
    gates = {g.name: g for g in spec.gates}
    assert [g.type for g in spec.gates] == ["Convolution", "ReLU", "Pooling", "InnerProduct",
                                            "Softmax"]
    assert [(r.lr_mult, r.decay_mult) for r in gates["conv1"].param] == [(1.0, 1.0),
                                                                          (2.0, 0.0)]
    assert [r.name for r in gates["fc"].param] == ["fc_w", "fc_b"]
    assert gates["pool1"].options == {"pool": "AVE", "kernel_size": 2, "stride": 2}
    assert spec.inputs["data"].shape == (1, 3, 8, 8)
    assert "fc_w" in Net(spec).params


def test_deploy_input_dim_header_and_zero_as_an_open_dimension(tmp_path):
    path = write(tmp_path, 'input: "x" input_dim: 0 input_dim: 3 input_dim: 4 input_dim: 4\n'
                           'input: "y" input_dim: 2 input_dim: 5 input_dim: 1 input_dim: 1\n'
                           'layer { name: "r" type: "ReLU" bottom: "x" top: "r" }\n'
                           'layer { name: "s" type: "Sigmoid" bottom: "y" top: "s" }\n')
    spec = read_prototxt(path)
    assert {n: i.shape for n, i in spec.inputs.items()} == {"x": (None, 3, 4, 4),
                                                           "y": (2, 5, 1, 1)}
    path = write(tmp_path, 'input: "y" input_shape { dim: 0 dim: 5 }\n'
                           'layer { name: "s" type: "Sigmoid" bottom: "y" top: "s" }\n')
    assert read_prototxt(path).inputs["y"].shape == (None, 5)


def test_an_input_layer_gives_one_shape_to_all_its_tops(tmp_path):
    path = write(tmp_path, 'layer { name: "in" type: "Input" top: "a" top: "b"\n'
                           '        input_param { shape { dim: 2 dim: 3 } } }\n'
                           'layer { name: "sum" type: "Eltwise" bottom: "a" bottom: "b" '
                           'top: "c" eltwise_param { operation: SUM coeff: 1 coeff: -1 } }\n')
    spec = read_prototxt(path)
    assert {n: i.shape for n, i in spec.inputs.items()} == {"a": (2, 3), "b": (2, 3)}
    assert spec.gates[0].options == {"coeff": [1.0, -1.0]}


def test_parameter_layer_becomes_a_learned_source(tmp_path):
    path = write(tmp_path, 'layer { name: "w" type: "Parameter" top: "w" param { lr_mult: 0.5 }\n'
                           '        parameter_param { shape { dim: 3 } } }\n'
                           'layer { name: "in" type: "Input" top: "x" '
                           'input_param { shape { dim: 2 dim: 3 } } }\n'
                           'layer { name: "s" type: "Bias" bottom: "x" bottom: "w" top: "y" }\n')
    net = Net(read_prototxt(path))
    assert net.params["w"].shape == (3,) and not net.params["w"].any()
    assert net.param_rules["w"].lr_mult == 0.5


def test_include_exclude_rules_with_phases_levels_and_stages(tmp_path):
    path = write(tmp_path, """
        layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 } } }
        layer { name: "both" type: "ReLU" bottom: "x" top: "a" }
        layer { name: "train" type: "ReLU" bottom: "x" top: "b" include { phase: TRAIN } }
        layer { name: "not_test" type: "ReLU" bottom: "x" top: "c" exclude { phase: TEST } }
        layer { name: "deep" type: "ReLU" bottom: "x" top: "d" include { min_level: 2 } }
        layer { name: "staged" type: "ReLU" bottom: "x" top: "e"
                include { phase: TEST stage: "deploy" } }
        layer { name: "unstaged" type: "ReLU" bottom: "x" top: "f"
                include { not_stage: "deploy" } }
    """)
    phases = {g.name: g.phase for g in read_prototxt(path).gates}
    assert phases == {"both": None, "train": "train", "not_test": "train", "unstaged": None}
    phases = {g.name: g.phase for g in read_prototxt(path, level=2, stages=("deploy",)).gates}
    assert phases == {"both": None, "train": "train", "not_test": "train", "deep": None,
                      "staged": "test"}


def test_options_map_with_caffes_defaults_and_legacy_spellings(tmp_path):
    path = write(tmp_path, """
        layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 4 } } }
        layer { name: "in2" type: "Input" top: "t" input_param { shape { dim: 2 } } }
        layer { name: "fc" type: "InnerProduct" bottom: "x" top: "y"
                inner_product_param { num_output: 3 } }
        layer { name: "cat" type: "Concat" bottom: "y" bottom: "y" top: "z"
                concat_param { concat_dim: 0 } }
        layer { name: "loss" type: "InfogainLoss" bottom: "y" bottom: "t" bottom: "h"
                top: "l" loss_param { normalize: false } }
        layer { name: "hin" type: "Input" top: "h" input_param { shape { dim: 3 dim: 3 } } }
        layer { name: "sl" type: "SoftmaxWithLoss" bottom: "y" bottom: "t" top: "l2"
                softmax_param { engine: CAFFE } loss_param { ignore_label: -1 normalize: true } }
    """)
    gates = {g.name: g for g in read_prototxt(path).gates}
    # Caffe fills a weight without a filler with zeros (Gatework's own default is xavier)
    assert gates["fc"].options == {"num_output": 3, "weight_filler": {"type": "constant"}}
    assert gates["cat"].options == {"axis": 0}
    assert gates["loss"].options == {"normalization": "BATCH_SIZE"}
    assert gates["sl"].options == {"ignore_label": -1, "normalize": True}


@pytest.mark.parametrize("body, line, words", [
    ('layer { name: "spp" type: "SPP" bottom: "x" top: "y" }', 2,
     ["layer 'spp' (SPP)", "Gatework has no SPP gate (the Caffe layers it reads: AbsVal,"]),
    ('layer { name: "r" type: "ReLu" bottom: "x" top: "y" }', 2,
     ["layer 'r' (ReLu)", "Gatework has no ReLu gate; did you mean 'ReLU'?", "Input, Parameter"]),
    ('layer { name: "fc" type: "InnerProduct" bottom: "x" top: "y"\n'
     '        inner_product_param { num_output: 2 transpose: true } }', 3,
     ["layer 'fc' (InnerProduct)", "inner_product_param.transpose: True is not supported"]),
    ('layer { name: "fc" type: "InnerProduct" bottom: "x" top: "y"\n'
     '        inner_product_param { num_output: 2 weight_filler { type: "positive_unitball" } } }',
     3, ["layer 'fc' (InnerProduct)", "filler type 'positive_unitball'"]),
    ('layer { name: "c" type: "Convolution" bottom: "x" top: "y"\n'
     '        convolution_param { num_output: 2 kernel_size: 3 group: 0 } }', 3,
     ["gate 'c' (Convolution)", "'group' must be a positive integer, got 0"]),
    ('layer { name: "r" type: "ReLU" bottom: "x" top: "y" propagate_down: false }', 2,
     ["layer 'r' (ReLU)", "propagate_down"]),
    ('layer { name: "r" type: "ReLU" bottom: "x" top: "y"\n'
     '        include { phase: TRAIN } exclude { phase: TEST } }', 3,
     ["layer 'r'", "not both"]),
    ('layer { name: "d" type: "Data" top: "d" top: "l"\n'
     '        data_param { source: "db" batch_size: 4 } }', 3,
     ["layer 'd' (Data)", "backend LEVELDB is not supported"]),
    # a fork's layer with its own *_param (SSD's Normalize): refused by its type, not its field
    ('layer { name: "n"\n type: "Normalize" bottom: "x" top: "y"\n'
     '        norm_param { across_spatial: false } }', 3,
     ["layer 'n' (Normalize): Gatework has no Normalize gate", "SSD fork of Caffe",
      "its norm_param is not in BVLC Caffe's LayerParameter"]),
    ('layer { name: "p" type: "Permute" bottom: "x" top: "y"\n'
     '        permute_param { order: 0 order: 2 order: 3 order: 1 } }', 2,
     ["layer 'p' (Permute): Gatework has no Permute gate", "SSD fork of Caffe"]),
    ('layer { name: "py" type: "Python" bottom: "x" top: "y"\n'
     '        python_param { module: "m" layer: "L" } }', 2,
     ["layer 'py' (Python): Gatework has no Python gate", "runs Python code"]),
    ('layer { name: "r6" type: "ReLU6" bottom: "x" top: "y" }', 2,
     ["layer 'r6' (ReLU6): Gatework has no ReLU6 gate", "Clip { min: 0 max: 6 }"]),
    ('layer: "foo"', 2, ["'layer' is a LayerParameter message: write layer { ... }"]),
])
def test_refusals_name_the_file_line_layer_and_type(tmp_path, body, line, words):
    path = write(tmp_path, 'layer { name: "in" type: "Input" top: "x" '
                           'input_param { shape { dim: 2 dim: 1 dim: 4 dim: 4 } } }\n' + body)
    with pytest.raises(ConfigError) as caught:
        read_prototxt(path)
    assert caught.value.file == str(path) and caught.value.line == line
    for word in words:
        assert word in str(caught.value)


def test_a_forks_layer_is_refused_naming_the_forks_other_layers_too(tmp_path):
    path = write(tmp_path, 'input: "x" input_shape { dim: 1 dim: 2 dim: 3 dim: 3 }\n'
                           'layer { name: "n" type: "Normalize" bottom: "x" top: "n"\n'
                           '        norm_param { across_spatial: false } }\n'
                           'layer { name: "p" type: "Permute" bottom: "n" top: "p" }\n'
                           'layer { name: "b" type: "PriorBox" bottom: "n" bottom: "x"\n'
                           '        top: "b" }\n')
    with pytest.raises(ConfigError, match=r"layer 'n' \(Normalize\): .* \(the net also has "
                                          r"Permute, PriorBox layers\)$") as caught:
        read_prototxt(path)
    assert caught.value.line == 2


def test_a_misspelt_param_of_a_known_layer_is_still_named_as_a_field(tmp_path):
    path = write(tmp_path, 'input: "x" input_shape { dim: 1 dim: 2 }\n'
                           'layer { name: "fc" type: "InnerProduct" bottom: "x" top: "y"\n'
                           '        inner_prodcut_param { num_output: 2 } }\n')
    with pytest.raises(ConfigError, match=r"layer 'fc': unknown field 'inner_prodcut_param' "
                                          r"in LayerParameter \(did you mean "
                                          r"'inner_product_param'\?\)") as caught:
        read_prototxt(path)
    assert caught.value.line == 3


def test_a_loss_layer_without_a_top_gets_one_named_after_it(tmp_path):
    """Caffe gives a loss layer without tops an anonymous one (AutoTopBlobs), and its loss
    counts with weight 1: BVLC's V1 finetune_flickr_style train_val writes its loss so. A name
    already taken by a blob gets the first free suffix."""
    path = write(tmp_path, 'layer { name: "in" type: "Input" top: "x" top: "label"\n'
                           '  input_param { shape { dim: 2 dim: 3 } shape { dim: 2 } } }\n'
                           'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "x" '
                           'bottom: "label" }\n'
                           'layer { name: "x" type: "EuclideanLoss" bottom: "x" bottom: "x" }\n')
    spec = read_prototxt(path)
    assert [(g.name, g.top) for g in spec.gates] == [("loss", ["loss"]), ("x", ["x_2"])]
    net = Net(spec, phase="test")
    assert net.loss_weights == {"loss": 1.0, "x_2": 1.0}
    outputs = net.forward({"x": np.zeros((2, 3)), "label": np.array([0, 2])})
    assert outputs["loss"] == pytest.approx(np.log(3)) and outputs["x_2"] == 0.0


def test_an_input_without_a_shape_is_refused_at_its_line(tmp_path):
    path = write(tmp_path, 'name: "n"\ninput: "data"\n'
                           'layer { name: "r" type: "ReLU" bottom: "data" top: "r" }\n')
    with pytest.raises(ConfigError, match="input 'data' has no shape") as caught:
        read_prototxt(path)
    assert caught.value.line == 2


def test_data_layer_shapes_must_come_from_somewhere(tmp_path):
    """The message names the command line's option, a scalar's empty form, and the Python
    argument."""
    with pytest.raises(ConfigError, match=r"shape of its top 'label' is not known; give it per "
                                          r"sample \(convert_caffe.py --input-shape "
                                          r"label=1,28,28, or label= for one number per sample; "
                                          r"from Python, input_shapes\)") as caught:
        read_prototxt(FIXTURES / "lenet_train_test.prototxt", with_data=False,
                      input_shapes={"data": (1, 28, 28)})
    assert caught.value.line == 8                    # the line of `top: "label"`


def test_a_missing_data_source_says_how_to_read_the_net_without_it(tmp_path):
    """A model zoo's train_val.prototxt comes without its ImageNet LMDB: the refusal gives the
    flags that read the net anyway, with the data shape Caffe's transform fixes (three mean
    values: three channels; crop_size: height and width)."""
    path = write(tmp_path, 'layer { name: "d" type: "Data" top: "data" top: "label"\n'
                           '  transform_param { crop_size: 5 mean_value: 104 mean_value: 117\n'
                           '                    mean_value: 123 }\n'
                           '  data_param { source: "no_such_lmdb" batch_size: 2 backend: LMDB } }\n'
                           'layer { name: "fc" type: "InnerProduct" bottom: "data" top: "y"\n'
                           '  inner_product_param { num_output: 2 } }\n')
    hint = (r"no file .*no_such_lmdb.*; to read the net without its data: convert_caffe.py "
            r"--no-data --input-shape data=3,5,5 --input-shape label= \(from Python")
    with pytest.raises(ConfigError, match=hint) as caught:
        read_prototxt(path)
    assert caught.value.line == 4
    spec = read_prototxt(path, with_data=False, input_shapes={"data": (3, 5, 5), "label": ()})
    assert spec.inputs["data"].shape == (None, 3, 5, 5)


# -- the data section ---------------------------------------------------------------------------
def caffe_data_section(path: Path) -> dict:
    """The data section read_prototxt builds for a net (before the core validates it)."""
    from net.formats.caffe_net import load_net, net_mapping, net_states, select_layers
    from net.formats.caffe_files import read_raw_text
    net = load_net(read_raw_text(path), str(path))
    mapping = net_mapping(select_layers(net, net_states(net, None, None)), net, str(path))
    return mapping["data"]


def test_data_layers_map_to_the_data_section_contract(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = caffe_data_section(EXAMPLES / "cifar10_quick_train_test.prototxt")
    assert set(data) == {"train", "test"}
    assert data["train"] == {
        "source": "lmdb", "path": str(tmp_path / "examples/cifar10/cifar10_train_lmdb"),
        "batch_size": 100, "transform": {
            "mean_file": str(tmp_path / "examples/cifar10/mean.binaryproto")},
        "shuffle": False}
    assert data["test"]["path"].endswith("cifar10_test_lmdb")


def test_image_hdf5_and_dummy_data_layers_map_too(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, """
        layer { name: "img" type: "ImageData" top: "data" top: "label" include { phase: TRAIN }
                transform_param { crop_size: 227 mirror: true mean_value: 104 mean_value: 117
                                  mean_value: 123 }
                image_data_param { source: "train.txt" batch_size: 32 shuffle: true
                                   new_height: 256 new_width: 256 root_folder: "images/" } }
        layer { name: "h5" type: "HDF5Data" top: "data" top: "label" include { phase: TEST }
                hdf5_data_param { source: "test_h5.txt" batch_size: 10 } }
        layer { name: "r" type: "ReLU" bottom: "data" top: "r" }
    """)
    data = caffe_data_section(path)
    assert data["train"] == {
        "source": "images", "path": str(tmp_path / "train.txt"), "batch_size": 32,
        "transform": {"mirror": True, "crop_size": 227, "mean_value": [104.0, 117.0, 123.0]},
        "shuffle": True, "new_height": 256, "new_width": 256,
        "root_folder": str(tmp_path / "images")}
    assert data["test"] == {"source": "hdf5", "path": str(tmp_path / "test_h5.txt"),
                            "batch_size": 10, "shuffle": False}
    dummy = caffe_data_section(write(tmp_path, """
        layer { name: "d" type: "DummyData" top: "x" top: "y"
                dummy_data_param { shape { dim: 8 dim: 3 } shape { dim: 8 }
                                   data_filler { type: "gaussian" std: 0.5 }
                                   data_filler { type: "constant" value: 1 } } }
        layer { name: "r" type: "ReLU" bottom: "x" top: "r" }
    """, "dummy.prototxt"))
    assert dummy["train"] is dummy["test"]
    assert dummy["train"] == {
        "source": "dummy", "batch_size": 8, "feeds": ["x", "y"], "dummy": {
            "x": {"shape": [3], "filler": {"type": "gaussian", "mean": 0.0, "std": 0.5}},
            "y": {"shape": [], "filler": {"type": "constant", "value": 1.0}}}}


def test_memory_data_tops_are_inputs(tmp_path):
    path = write(tmp_path, 'layer { name: "m" type: "MemoryData" top: "data" top: "label"\n'
                           '  memory_data_param { batch_size: 5 channels: 1 height: 3\n'
                           '                      width: 3 } }\n'
                           'layer { name: "fc" type: "InnerProduct" bottom: "data" top: "y"\n'
                           '  inner_product_param { num_output: 2 } }\n'
                           'layer { name: "l" type: "SoftmaxWithLoss" bottom: "y" '
                           'bottom: "label" top: "loss" }\n')
    spec = read_prototxt(path)
    assert {n: (i.shape, i.dtype) for n, i in spec.inputs.items()} == {
        "data": ((None, 1, 3, 3), None), "label": ((None,), "int")}


def test_the_mapping_is_what_the_spec_was_validated_from():
    mapping, spec = read_caffe_config(EXAMPLES / "lenet_deploy.prototxt")
    assert [entry["name"] for entry in mapping["gates"]] == [g.name for g in spec.gates]
    assert mapping["gates"].item_lines[0] == spec.gates[0].line == 9
