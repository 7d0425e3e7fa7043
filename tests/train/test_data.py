"""The data section: validation with lines, sources (npz, csv, built-ins), checks against the
net, and batching from one global order."""
from __future__ import annotations

import numpy as np
import pytest

from net import ConfigError, DataError, Net, load_config
from net.train.data import Batches, Dataset, load_data
from tests.helpers import needs_sklearn

NET = """\
name: tiny
inputs:
  data:  {shape: [null, 4]}
  label: {shape: [null], dtype: int}
gates:
  - {name: fc, type: InnerProduct, bottom: data, top: scores, num_output: 3}
  - {name: loss, type: SoftmaxWithLoss, bottom: [scores, label], top: loss}
"""


def make_net(tmp_path, data_section: str, net: str = NET) -> Net:
    path = tmp_path / "net.yaml"
    path.write_text(net + data_section)
    return Net(load_config(path))


def write_npz(path, data, label):
    np.savez(path, data=data, label=label)
    return path


# -- the section ----------------------------------------------------------------------------------
@pytest.mark.parametrize("section, line, fragment", [
    ("data:\n  train: {source: a.npz}\n  validation: {source: b.npz}\n", 10,
     "unknown key 'validation'"),
    ("data:\n  train:\n    source: a.npz\n    batch_size: -4\n", 11,
     "data.train.batch_size must be a positive integer"),
    ("data:\n  train:\n    source: a.npz\n    batchsize: 4\n", 11, "unknown key 'batchsize'"),
    ("data:\n  train:\n    source: a.npz\n    shuffle: maybe\n", 11,
     "data.train.shuffle must be true or false"),
    ("data:\n  train:\n    source: 12\n", 10, "data.train.source must be text, got 12"),
    ("data:\n  train:\n    source: missing.npz\n", 10, "no file 'missing.npz'"),
])
def test_data_section_errors_name_the_line(tmp_path, section, line, fragment):
    with pytest.raises(ConfigError, match=fragment) as info:   # at build, or at load
        load_data(make_net(tmp_path, section))
    assert str(info.value).startswith(f"{tmp_path / 'net.yaml'}:{line}:")


# -- sources --------------------------------------------------------------------------------------
def test_npz_source_relative_to_the_config_and_cast(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "sub").mkdir()
    write_npz(tmp_path / "sub" / "train.npz", rng.standard_normal((10, 2, 2)), np.arange(10) % 3)
    net = make_net(tmp_path, "data:\n  train: {source: sub/train.npz, batch_size: 4}\n")
    data = load_data(net)
    arrays = data.train.dataset.arrays
    assert arrays["data"].shape == (10, 4) and arrays["data"].dtype == np.float32
    assert arrays["label"].dtype == np.int64
    assert str(tmp_path / "sub" / "train.npz") in data.describe()[0]


@pytest.mark.parametrize("preamble", [[], ["# made by hand", ""]])
def test_csv_source_with_header(tmp_path, preamble):
    rows = preamble + ["a,b,c,d,label"] + [f"{i},{i + 1},{i + 2},{i + 3},{i % 3}" for i in range(6)]
    (tmp_path / "train.csv").write_text("\n".join(rows) + "\n")
    net = make_net(tmp_path, "data:\n  train: {source: train.csv, batch_size: 2}\n")
    arrays = load_data(net).train.dataset.arrays
    np.testing.assert_array_equal(arrays["label"], [0, 1, 2, 0, 1, 2])
    np.testing.assert_array_equal(arrays["data"][1], [1, 2, 3, 4])


@pytest.mark.parametrize("data, label, fragment", [
    (np.zeros((5, 4)), np.array([0, 1, 2, 3, 0]),
     r"label 3 \(entry 3\) is out of range: the net has 3 classes"),
    (np.zeros((5, 4)), np.array([0, 1, 2, 1.5, 0]), "labels must be whole numbers"),
    (np.where(np.eye(5, 4) > 0, np.nan, 0), np.zeros(5, int), "NaN or Inf .first in sample 0"),
    (np.zeros((5, 3)), np.zeros(5, int),
     r"samples have shape \(3,\), but the net's `data` input takes \(N, 4\)"),
    (np.zeros((5, 4)), np.zeros(4, int), "one entry per sample"),
])
def test_bad_files_are_rejected_naming_the_file(tmp_path, data, label, fragment):
    write_npz(tmp_path / "bad.npz", data, label)
    net = make_net(tmp_path, "data:\n  train: {source: bad.npz}\n")
    with pytest.raises(DataError, match=fragment) as info:
        load_data(net)
    assert str(tmp_path / "bad.npz") in str(info.value)


def test_pickled_and_truncated_files_are_rejected(tmp_path):
    np.savez(tmp_path / "objects.npz", data=np.array([{"a": 1}], dtype=object), label=[0])
    good = write_npz(tmp_path / "good.npz", np.zeros((50, 4)), np.zeros(50, int))
    (tmp_path / "cut.npz").write_bytes(good.read_bytes()[:300])
    for name, fragment in (("objects.npz", "pickled"), ("cut.npz", "corrupt or truncated data file")):
        net = make_net(tmp_path, f"data:\n  train: {{source: {name}}}\n")
        with pytest.raises(DataError, match=fragment):
            load_data(net)


@needs_sklearn
def test_builtin_digits_parts_and_reshape(tmp_path):
    net = make_net(tmp_path, "data:\n  train: {source: digits}\n  test: {source: digits}\n",
                   NET.replace("[null, 4]", "[null, 1, 8, 8]").replace("num_output: 3",
                                                                      "num_output: 10"))
    data = load_data(net)
    train, test = data.train.dataset.arrays, data.test.dataset.arrays
    assert train["data"].shape == (1437, 1, 8, 8) and test["data"].shape == (360, 1, 8, 8)
    assert 0.0 <= train["data"].min() and train["data"].max() <= 1.0
    assert set(np.unique(test["label"])) == set(range(10))


@needs_sklearn
def test_too_few_classes_in_the_net_is_caught_at_load(tmp_path):
    net = make_net(tmp_path, "data:\n  train: {source: iris}\n",
                   NET.replace("num_output: 3", "num_output: 2"))
    with pytest.raises(DataError, match="iris .* label 2 .* the net has 2 classes"):
        load_data(net)


# -- batching -------------------------------------------------------------------------------------
def dataset(n: int) -> Dataset:
    return Dataset("toy", {"data": np.arange(n, dtype=np.float32)[:, None],
                           "label": np.arange(n)})


def labels(batches: Batches, count: int) -> list[list[int]]:
    return [batches.next()["label"].tolist() for _ in range(count)]


def test_file_order_wraps_around():
    assert labels(Batches(dataset(5), 2), 4) == [[0, 1], [2, 3], [4, 0], [1, 2]]


def test_shuffled_epochs_are_permutations_from_the_seed():
    drawn = sum(labels(Batches(dataset(12), 4, shuffle=True, seed=3), 6), [])
    first, second = drawn[:12], drawn[12:]
    assert sorted(first) == sorted(second) == list(range(12)) and first != second
    again = sum(labels(Batches(dataset(12), 4, shuffle=True, seed=3), 6), [])
    other = sum(labels(Batches(dataset(12), 4, shuffle=True, seed=4), 6), [])
    assert drawn == again and drawn != other


def test_state_resumes_the_same_sequence():
    a = Batches(dataset(7), 3, shuffle=True, seed=1)
    labels(a, 5)
    b = Batches(dataset(7), 3, shuffle=True, seed=1)
    b.set_state(**a.state())
    assert labels(a, 6) == labels(b, 6)


def test_ranks_take_slices_of_the_global_batch():
    single = labels(Batches(dataset(10), 4, shuffle=True, seed=2), 7)
    ranks = [labels(Batches(dataset(10), 2, shuffle=True, seed=2, rank=r, world=2), 7)
             for r in range(2)]
    assert [a + b for a, b in zip(*ranks)] == single


@pytest.mark.parametrize("world", [1, 2])
def test_one_pass_sees_every_sample_once(world):
    seen = []
    for rank in range(world):
        batches = Batches(dataset(11), 3, rank=rank, world=world)
        for feed, count in batches.one_pass():
            assert len(feed["label"]) == count
            seen += feed["label"].tolist()
    assert sorted(seen) == list(range(11))


def test_a_text_file_named_npz_is_not_called_pickled(tmp_path):
    (tmp_path / "notes.npz").write_text("these are not arrays\n")
    net = make_net(tmp_path, "data:\n  train: {source: notes.npz}\n")
    with pytest.raises(DataError, match="notes.npz: not an .npz data file: not a zip archive"):
        load_data(net)
