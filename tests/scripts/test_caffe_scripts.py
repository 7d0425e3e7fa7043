"""scripts/export_caffe.py and scripts/convert_caffe.py end to end (a config out to Caffe's three
files and back to YAML with its weights), their one-line errors, and the other scripts reading
a .prototxt and a .caffemodel (once `import net` registers the readers)."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from functools import lru_cache

import numpy as np
import pytest

from net import Net
from net.core.config import load_config

from tests.helpers import CONFIGS, ROOT

DEPLOY = ROOT / "tests" / "formats" / "fixtures" / "caffe_examples" / "lenet_deploy.prototxt"


def script(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


@lru_cache(maxsize=1)
def import_net_registers_caffe() -> bool:
    """Whether `import net` alone lets load_config read a .prototxt (net/__init__ importing
    net.formats)."""
    return script("-c", f"import net; net.load_config({str(DEPLOY)!r})").returncode == 0


needs_registration = pytest.mark.skipif(
    "not import_net_registers_caffe()",
    reason="net/__init__.py does not import net.formats yet, so `import net` registers no "
           ".prototxt/.caffemodel readers")


def test_export_then_convert_gives_back_the_config_and_its_weights(tmp_path):
    result = script("scripts/export_caffe.py", CONFIGS / "lenet_mnist.yaml", "-o",
                    tmp_path / "lenet.prototxt", tmp_path / "lenet.caffemodel",
                    "--solver", tmp_path / "solver.prototxt", "--seed", "4")
    assert result.returncode == 0, result.stderr
    assert "note: data.train: source 'mnist' has no Caffe data layer" in \
        result.stdout
    result = script("scripts/convert_caffe.py", tmp_path / "solver.prototxt",
                    tmp_path / "lenet.caffemodel", "-o", tmp_path / "lenet.yaml")
    assert result.returncode == 0, result.stderr
    assert "weights: 8 arrays loaded" in result.stdout
    back = Net(load_config(tmp_path / "lenet.yaml"), phase="test")
    back.load_weights(tmp_path / "lenet.weights.npz", strict=True)
    original = Net.from_yaml(CONFIGS / "lenet_mnist.yaml", phase="test", seed=4)
    x = np.random.default_rng(0).random((2, 1, 28, 28))
    np.testing.assert_array_equal(back.forward({"data": x}, outputs="scores")["scores"],
                                  original.forward({"data": x}, outputs="scores")["scores"])
    assert back.spec.solver == original.spec.solver


def test_convert_reads_a_train_test_net_without_its_data(tmp_path):
    result = script("scripts/convert_caffe.py",
                    ROOT / "tests/formats/fixtures/lenet_train_test.prototxt", "-o",
                    tmp_path / "lenet.yaml", "--no-data", "--input-shape", "data=1,28,28",
                    "--input-shape", "label=")
    assert result.returncode == 0, result.stderr
    spec = load_config(tmp_path / "lenet.yaml")
    assert spec.inputs["data"].shape == (None, 1, 28, 28) and spec.data is None


@pytest.mark.parametrize("args, message", [
    (["scripts/export_caffe.py", CONFIGS / "seed_example.yaml", "-o", "{tmp}/n.prototxt"],
     "gate 'add' (Add): Caffe has no layer for the Add gate"),
    (["scripts/convert_caffe.py", "{tmp}/bad.prototxt", "-o", "{tmp}/n.yaml"],
     "bad.prototxt:2: layer 'spp' (SPP): Gatework has no SPP gate"),
])
def test_errors_are_one_line_without_a_traceback(tmp_path, args, message):
    (tmp_path / "bad.prototxt").write_text(
        'input: "x" input_dim: 1 input_dim: 1 input_dim: 4 input_dim: 4\n'
        'layer { name: "spp" type: "SPP" bottom: "x" top: "y" }\n')
    result = script(*(str(arg).replace("{tmp}", str(tmp_path)) for arg in args))
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@needs_registration
def test_time_net_and_gradcheck_read_a_prototxt():
    result = script("scripts/time_net.py", DEPLOY, "--iterations", "1")
    assert result.returncode == 0, result.stderr
    result = script("scripts/gradcheck.py", ROOT / "tests/formats/fixtures/v1_small_net.prototxt")
    assert result.returncode == 0, result.stderr


@needs_registration
@pytest.mark.skipif("--weights" not in (ROOT / "scripts" / "run.py").read_text(),
                    reason="scripts/run.py has no --weights option yet")
def test_run_takes_a_deploy_prototxt_and_a_caffemodel(tmp_path):
    net = Net.from_file(DEPLOY, phase="test")
    from net.formats.caffe_export import write_caffe
    write_caffe(net, tmp_path / "lenet.prototxt", tmp_path / "lenet.caffemodel")
    result = script("scripts/run.py", DEPLOY, "--weights", tmp_path / "lenet.caffemodel",
                    "--phase", "test", "--summary")
    assert result.returncode == 0, result.stderr


def data_sources_merged() -> bool:
    spec = importlib.util.find_spec("net.train.data")
    return spec is not None and "def source_shapes" in open(spec.origin).read()


@needs_registration
@pytest.mark.skipif("not data_sources_merged()",
                    reason="the data sources (issue 15: net.train.data.source_shapes, DummyData)"
                           " are not merged yet")
def test_train_takes_a_solver_prototxt(tmp_path):
    (tmp_path / "net.prototxt").write_text("""
        layer { name: "d" type: "DummyData" top: "data" top: "label"
                dummy_data_param { shape { dim: 8 dim: 4 } shape { dim: 8 }
                                   data_filler { type: "gaussian" }
                                   data_filler { type: "constant" value: 1 } } }
        layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc"
                inner_product_param { num_output: 3 weight_filler { type: "xavier" } } }
        layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }
    """)
    (tmp_path / "solver.prototxt").write_text('net: "net.prototxt"\nbase_lr: 0.1\n'
                                              'lr_policy: "fixed"\nmax_iter: 3\ndisplay: 1\n')
    result = script("scripts/train.py", tmp_path / "solver.prototxt", "--output-dir",
                    tmp_path / "run", "--no-progress")
    assert result.returncode == 0, result.stderr
