"""Caffe's solver prototxt read as one NetSpec (the net it names, with a solver section) and
written back: Caffe's names and meanings, Caffe's values for absent settings where Gatework's
defaults differ, train_net/test_net merged into one net with phases, and refusals at the
solver's lines."""
from __future__ import annotations

from pathlib import Path

import pytest

from net.core.config import load_config, parse_solver
from net.errors import ConfigError
from net.formats.caffe_layers import ExportError
from net.formats.caffe_net import read_prototxt
from net.formats.caffe_solver import read_solver, solver_parameter
from net.formats.prototext import format_text

FIXTURES = Path(__file__).parent / "fixtures"
MNIST = {"data": (1, 28, 28), "label": ()}
NET = """
layer { name: "in" type: "Input" top: "x" top: "label"
        input_param { shape { dim: 0 dim: 4 } shape { dim: 0 } } }
layer { name: "fc" type: "InnerProduct" bottom: "x" top: "y" inner_product_param { num_output: 3 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "y" bottom: "label" top: "loss" }
"""


def solver_file(tmp_path: Path, text: str, net: str = NET) -> Path:
    (tmp_path / "net.prototxt").write_text(net)
    path = tmp_path / "solver.prototxt"
    path.write_text(text)
    return path


def test_lenet_solver_reads_caffes_settings_and_its_net():
    spec = read_prototxt(FIXTURES / "lenet_solver.prototxt", with_data=False,
                         input_shapes=MNIST)
    solver = spec.solver
    assert (solver.type, solver.base_lr, solver.momentum, solver.weight_decay) == \
        ("SGD", 0.01, 0.9, 0.0005)
    assert (solver.lr_policy, solver.gamma, solver.power) == ("inv", 0.0001, 0.75)
    assert (solver.test_iter, solver.test_interval, solver.display, solver.max_iter) == \
        (100, 500, 100, 10000)
    assert (solver.snapshot, solver.snapshot_prefix) == (5000, "lenet")
    assert [g.name for g in spec.gates][:2] == ["conv1", "pool1"]
    assert spec.file == str(FIXTURES / "lenet_train_test.prototxt")


def test_absent_settings_take_caffes_values(tmp_path):
    path = solver_file(tmp_path, 'net: "net.prototxt"\nbase_lr: 0.1\nlr_policy: "step"\n'
                                 'stepsize: 10\ntype: "Adam"\n')
    solver = read_solver(path).solver
    # Caffe: display and max_iter 0, gamma 0 for step, momentum 0 for Adam (no beta1 of 0.9)
    assert (solver.display, solver.max_iter, solver.gamma, solver.momentum) == (0, 0, 0.0, 0.0)
    assert solver.power == 1.0          # not read by "step": Gatework's default stays
    assert solver.random_seed == 0


def test_legacy_solver_type_and_a_seed(tmp_path):
    path = solver_file(tmp_path, 'net: "net.prototxt"\nbase_lr: 0.1\nlr_policy: "fixed"\n'
                                 'solver_type: NESTEROV\nmomentum: 0.95\nrandom_seed: 7\n'
                                 'solver_mode: GPU\ndevice_id: 3\nsnapshot_format: HDF5\n')
    solver = read_solver(path).solver
    assert (solver.type, solver.momentum, solver.random_seed) == ("Nesterov", 0.95, 7)


def test_train_net_and_test_net_merge_into_one_net_with_phases(tmp_path):
    (tmp_path / "train.prototxt").write_text(NET)
    (tmp_path / "test.prototxt").write_text(NET + 'layer { name: "acc" type: "Accuracy" '
                                                  'bottom: "y" bottom: "label" top: "acc" }\n')
    path = tmp_path / "solver.prototxt"
    path.write_text('train_net: "train.prototxt"\ntest_net: "test.prototxt"\ntest_iter: 5\n'
                    'test_interval: 10\nbase_lr: 0.1\nlr_policy: "fixed"\n')
    spec = read_solver(path)
    assert [(g.name, g.phase) for g in spec.gates] == [("fc", None), ("loss", None),
                                                       ("acc", "test")]


def test_test_state_stages_choose_the_test_layers(tmp_path):
    net = NET + ('layer { name: "staged" type: "Accuracy" bottom: "y" bottom: "label" '
                 'top: "acc" include { phase: TEST stage: "val" } }\n')
    path = solver_file(tmp_path, 'net: "net.prototxt"\nbase_lr: 0.1\nlr_policy: "fixed"\n'
                                 'test_state { stage: "val" }\ntest_iter: 1\n', net)
    assert [g.name for g in read_solver(path).gates] == ["fc", "loss", "staged"]
    path = solver_file(tmp_path, 'net: "net.prototxt"\nbase_lr: 0.1\nlr_policy: "fixed"\n', net)
    assert [g.name for g in read_solver(path).gates] == ["fc", "loss"]


def test_the_net_path_is_found_beside_the_solver(tmp_path, monkeypatch):
    path = solver_file(tmp_path, 'net: "net.prototxt"\nbase_lr: 0.1\nlr_policy: "fixed"\n')
    monkeypatch.chdir(Path(__file__).parent)       # not where the net is
    assert load_config(path).solver.base_lr == 0.1


@pytest.mark.parametrize("text, line, words", [
    ('net: "net.prototxt"\nbase_lr: 0.1\n', 1, "needs lr_policy"),
    ('net: "net.prototxt"\nbase_lr: 0.1\nlr_policy: "fixed"\nweights: "a.caffemodel"\n', 4,
     "train.py --weights"),
    ('net: "missing.prototxt"\nbase_lr: 0.1\nlr_policy: "fixed"\n', 1, "is not a file"),
    ('base_lr: 0.1\nlr_policy: "fixed"\n', 1, "names no net"),
    ('net: "net.prototxt"\nbase_lr: 0.1\nlr_policy: "fixed"\ntest_iter: 1\ntest_iter: 2\n', 5,
     "Gatework tests one net"),
    ('net: "net.prototxt"\nbase_lr: 0.1\nlr_policy: "plateau"\n', 3,
     "solver.lr_policy must be one of"),
    ('net: "net.prototxt"\nbase_lr: 0.1\nlr_policy: "fixed"\nsolver_type: ADAGRAD\n'
     'momentum: 0.9\n', 5, "momentum cannot be used with AdaGrad"),
    ('net: "net.prototxt"\nbase_lr: 0.1\nlr_policy: "fixed"\nbase_lr: 0.2\n', 4,
     "'base_lr' is not a repeated field"),
    # a snapshot_prefix keeps its last part, which must make file names (hostile audit, 6)
    ('net: "net.prototxt"\nbase_lr: 0.1\nlr_policy: "fixed"\nsnapshot_prefix: "a/x\\000y"\n', 4,
     "snapshot_prefix holds the control character U+0000"),
    ('net: "net.prototxt"\nbase_lr: 0.1\nlr_policy: "fixed"\nsnapshot_prefix: "a/x\\ny"\n', 4,
     "snapshot_prefix holds the control character U+000A"),
    ('net: "net.prototxt"\nbase_lr: 0.1\nlr_policy: "fixed"\nsnapshot_prefix: "' + "a" * 300
     + '"\n', 4, "snapshot_prefix ends in a name of 300 bytes"),
])
def test_solver_refusals_name_the_solver_file_and_line(tmp_path, text, line, words):
    path = solver_file(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        read_solver(path)
    assert caught.value.file == str(path) and caught.value.line == line, str(caught.value)
    assert words in str(caught.value)


def test_an_error_in_the_net_names_the_net_file(tmp_path):
    path = solver_file(tmp_path, 'net: "net.prototxt"\nbase_lr: 0.1\nlr_policy: "fixed"\n',
                       NET + 'layer { name: "x" type: "Im2col" bottom: "x" top: "z" }\n')
    with pytest.raises(ConfigError, match="Gatework has no Im2col gate") as caught:
        read_solver(path)
    assert caught.value.file == str(tmp_path / "net.prototxt") and caught.value.line == 6


SOLVERS = [
    {"base_lr": 0.01, "momentum": 0.9, "weight_decay": 0.0005, "lr_policy": "inv",
     "gamma": 0.0001, "power": 0.75, "max_iter": 10000, "test_interval": 500, "test_iter": 100,
     "snapshot": 5000, "snapshot_prefix": "lenet", "random_seed": 1},
    {"base_lr": 0.001, "type": "Adam", "lr_policy": "multistep", "stepvalue": [10, 20],
     "clip_gradients": 5.0, "iter_size": 2, "display": 0, "average_loss": 10},
    {"base_lr": 0.1, "type": "RMSProp", "rms_decay": 0.95, "delta": 1e-6,
     "regularization_type": "L1", "weight_decay": 0.01, "lr_policy": "step", "stepsize": 7,
     "test_initialization": False, "snapshot_after_train": False, "debug_info": True},
    {"base_lr": 0.5},
]


@pytest.mark.parametrize("settings", SOLVERS)
def test_solver_settings_round_trip_through_a_solver_prototxt(tmp_path, settings):
    config = parse_solver(settings)
    path = solver_file(tmp_path, format_text(solver_parameter(config, "net.prototxt")))
    assert read_solver(path).solver == config


def test_a_policy_caffe_lacks_is_refused_on_export():
    with pytest.raises(ExportError, match="solver: lr_policy cosine has no Caffe equivalent"):
        solver_parameter(parse_solver({"base_lr": 0.1, "lr_policy": "cosine",
                                       "max_iter": 10}), "net.prototxt")


def test_a_missing_data_source_names_the_nets_file_and_line(tmp_path, monkeypatch):
    """Caffe's own LeNet solver without its LMDB: the error names lenet_train_test.prototxt and
    the line of the Data layer's source, not an anonymous config."""
    monkeypatch.chdir(tmp_path)            # Caffe reads a relative source from the working dir
    with pytest.raises(ConfigError, match=r"data.train.path: no file '.*examples/mnist/"
                                          r"mnist_train_lmdb'") as caught:
        read_prototxt(FIXTURES / "lenet_solver.prototxt")
    assert caught.value.file == str(FIXTURES / "lenet_train_test.prototxt")
    assert caught.value.line == 16


def test_a_forks_layer_in_an_inline_net_is_refused_by_its_type(tmp_path):
    path = tmp_path / "solver.prototxt"
    path.write_text('base_lr: 0.01\nnet_param {\n  input: "x" input_shape { dim: 1 dim: 2 }\n'
                    '  layer { name: "n" type: "Normalize" bottom: "x" top: "n"\n'
                    '          norm_param { across_spatial: false } }\n}\n')
    with pytest.raises(ConfigError, match=r"layer 'n' \(Normalize\): Gatework has no Normalize "
                                          r"gate: a layer of the SSD fork") as caught:
        read_solver(path)
    assert caught.value.file == str(path) and caught.value.line == 4
