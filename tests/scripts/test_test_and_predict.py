"""scripts/test.py, scripts/predict.py, convert_imageset.py and compute_image_mean.py as a user
runs them: a classifier with hand-set weights (every figure known), and Caffe's image pipeline
from a folder of PNGs to an LMDB, a mean file, training, testing and prediction."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from net import Net, load_config
from net.train.snapshot import save_weights
from tests.helpers import ROOT, needs_matplotlib
from tests.train.test_evaluate import CLASSIFIER, classifier


def run(script: str, *args, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, f"scripts/{script}", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def trained(tmp_path):
    net = classifier(tmp_path)
    return tmp_path, save_weights(net, tmp_path / "argmax.weights.npz")


@needs_matplotlib
def test_test_prints_figures_per_class_and_writes_the_confusion_png(trained):
    folder, weights = trained
    (folder / "names.txt").write_text("zero\none\ntwo\n")
    done = run("test.py", folder / "net.yaml", "--weights", weights, "--labels",
               folder / "names.txt")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[2] == "loss = 2.85723, accuracy = 0.714286 (7 samples)"
    assert ["2", "two", "1", "1.0000"] in [line.split() for line in lines]
    assert (folder / "argmax.confusion.png").read_bytes()[:4] == b"\x89PNG"
    report = json.loads(run("test.py", folder / "net.yaml", "--weights", weights, "--json",
                            "--iterations", 1, "--no-plot").stdout)
    assert report["samples"] == 4 and report["confusion"] == [[1, 0, 0], [1, 1, 0], [0, 0, 1]]


def test_predict_reads_npy_and_csv_and_prints_the_top_classes(trained):
    folder, weights = trained
    np.save(folder / "x.npy", np.array([[0, 3, 1], [2, 0, 0]], np.float32))
    (folder / "x.csv").write_text("0,0,1\n")
    done = run("predict.py", folder / "net.yaml", "--weights", weights, folder / "x.npy",
               folder / "x.csv", "--top", 2)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"{folder / 'x.npy'}[0]: 1 1.0000  2 0.0000",
                                        f"{folder / 'x.npy'}[1]: 0 1.0000  1 0.0000",
                                        f"{folder / 'x.csv'}: 2 0.9999  0 0.0000"]
    payload = json.loads(run("predict.py", folder / "net.yaml", "--weights", weights,
                             folder / "x.csv", "--json", "--output", "scores",
                             "--no-softmax").stdout)
    assert payload["predictions"][0]["top"][0] == {"class": 2, "name": "2", "score": 10.0}


def test_predict_refuses_what_it_cannot_read_in_one_line(trained):
    folder, weights = trained
    (folder / "x.txt").write_text("1 2 3")
    done = run("predict.py", folder / "net.yaml", "--weights", weights, folder / "x.txt")
    assert done.returncode == 2 and done.stderr.startswith("error: ") and \
        "unknown input type '.txt'" in done.stderr and "Traceback" not in done.stderr


LMDB_NET = """\
name: pictures
inputs:
  data:  {shape: [null, 3, 4, 4]}
  label: {shape: [null], dtype: int}
gates:
  - {name: fc, type: InnerProduct, bottom: data, top: scores, num_output: 2,
     weight_filler: {type: xavier}}
  - {name: loss, type: SoftmaxWithLoss, bottom: [scores, label], top: loss}
  - {name: accuracy, type: Accuracy, bottom: [scores, label], top: accuracy, phase: test}
data:
  train: {source: lmdb, path: db, batch_size: 4,
          transform: {crop_size: 4, mirror: true, mean_file: mean.binaryproto, scale: 0.02}}
  test:  {source: lmdb, path: db, batch_size: 4,
          transform: {crop_size: 4, mean_file: mean.binaryproto, scale: 0.02}}
solver: {base_lr: 0.05, max_iter: 30, display: 0, snapshot_after_train: true}
"""


@pytest.mark.slow
@needs_matplotlib
def test_caffes_image_pipeline_from_pngs_to_predictions(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    pytest.importorskip("lmdb")
    rng = np.random.default_rng(0)
    lines = []
    for index in range(8):                 # class 1: reddish, class 0: bluish
        picture = rng.integers(0, 60, (6, 6, 3), dtype=np.uint8)
        picture[:, :, 0 if index % 2 else 2] += 150
        Image.fromarray(picture).save(tmp_path / f"p{index}.png")
        lines.append(f"p{index}.png {index % 2}\n")
    (tmp_path / "list.txt").write_text("".join(lines))
    done = run("convert_imageset.py", tmp_path, tmp_path / "list.txt", tmp_path / "db",
               "--shuffle")
    assert done.returncode == 0 and "wrote 8 records" in done.stdout, done.stderr
    done = run("compute_image_mean.py", tmp_path / "db", tmp_path / "mean.binaryproto")
    assert done.returncode == 0 and "mean of shape (1, 3, 6, 6)" in done.stdout, done.stderr
    (tmp_path / "net.yaml").write_text(LMDB_NET)
    done = subprocess.run([sys.executable, "scripts/train.py", tmp_path / "net.yaml",
                           "--output-dir", tmp_path / "run", "--no-progress"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    weights = tmp_path / "run" / "pictures_iter_30.weights.npz"
    done = run("test.py", tmp_path / "net.yaml", "--weights", weights)
    assert done.returncode == 0 and "accuracy = 1 (8 samples)" in done.stdout, done.stdout
    done = run("predict.py", tmp_path / "net.yaml", "--weights", weights, tmp_path / "p3.png",
               "--json")
    assert json.loads(done.stdout)["predictions"][0]["top"][0]["class"] == 1, done.stderr
