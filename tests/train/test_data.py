"""The data section: validation with lines, sources (npz, csv, built-ins), checks against the
net, and batching from one global order."""
from __future__ import annotations

import gzip

import numpy as np
import pytest

from net import ConfigError, DataError, Net, load_config
from net.core.config import parse_source
from net.train.data import Batches, Dataset, load_data, source_shapes
from net.train.sources.idx import FASHION_MNIST as FASHION
from net.train.sources.caffe_records import encode_datum
from net.train.sources.database import open_environment
from tests.helpers import needs_sklearn
from tests.train.sources.test_idx import idx_bytes, write_set

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
     r"label 3 \(sample 3\) is out of range: the net has 3 classes"),
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
    if "samples have shape" in fragment:        # and where the config declares the input
        assert str(info.value).endswith(f"({net.spec.file}:{net.inputs['data'].line})")


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


# -- the source kinds, from a config ------------------------------------------------------------
IMAGE_NET = NET.replace("[null, 4]", "[null, 1, 4, 3]")


def test_an_mnist_folder_with_split_feeds_and_a_transform(tmp_path):
    (tmp_path / "mnist").mkdir()
    images, labels = write_set(tmp_path / "mnist", "test", count=6)
    labels %= 3
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(idx_bytes(labels, 0x08)))
    net = make_net(tmp_path, "data:\n  train: {source: mnist, path: mnist, split: test, "
                             "batch_size: 6, shuffle: false, transform: {scale: 0.5}}\n",
                   IMAGE_NET)
    batch = load_data(net).train.next()
    np.testing.assert_array_equal(batch["data"], images[:, None] * 0.5)
    assert batch["data"].dtype == np.float32 and batch["label"].tolist() == labels.tolist()
    assert source_shapes(net.spec.data.train, tmp_path) == {"data": (1, 4, 3), "label": ()}


def test_lmdb_images_and_hdf5_sources_from_a_config(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    h5py = pytest.importorskip("h5py")
    from net.train.sources.database import convert_imageset

    rng = np.random.default_rng(1)
    grey = rng.integers(0, 256, (5, 4, 3), dtype=np.uint8)
    for index, picture in enumerate(grey):
        Image.fromarray(picture).save(tmp_path / f"{index}.png")
    (tmp_path / "list.txt").write_text("".join(f"{i}.png {i % 3}\n" for i in range(5)))
    convert_imageset(tmp_path, tmp_path / "list.txt", tmp_path / "db", gray=True)
    with h5py.File(tmp_path / "a.h5", "w") as handle:
        handle["data"] = grey[:, None].astype(np.float32)
        handle["label"] = np.arange(5.0) % 3
    (tmp_path / "h5.txt").write_text("a.h5\n")
    sections = {"lmdb": "{source: lmdb, path: db, batch_size: 5, shuffle: false}",
                "images": "{source: images, path: list.txt, is_color: false, batch_size: 5, "
                          "shuffle: false}",
                "hdf5": "{source: hdf5, path: h5.txt, batch_size: 5, shuffle: false}"}
    for kind, section in sections.items():
        net = make_net(tmp_path, f"data:\n  train: {section}\n", IMAGE_NET)
        data = load_data(net)
        assert data.train.prefetch == 4, kind
        batch = data.train.next()
        np.testing.assert_array_equal(batch["data"][:, 0], grey, err_msg=kind)
        assert batch["label"].tolist() == [0, 1, 2, 0, 1] and batch["label"].dtype == np.int64
        assert source_shapes(net.spec.data.train, tmp_path) == {"data": (1, 4, 3), "label": ()}
        data.close()


def test_labels_out_of_range_in_a_source_on_disk_name_the_record(tmp_path):
    pytest.importorskip("lmdb")
    env = open_environment(tmp_path / "db", write=True, map_size=1 << 24)
    with env.begin(write=True) as txn:
        for i in range(5):
            txn.put(f"{i:02d}".encode(), encode_datum(np.zeros((1, 4, 3), np.uint8), i))
    env.close()
    net = make_net(tmp_path, "data:\n  train: {source: lmdb, path: db, batch_size: 5, "
                             "shuffle: false, prefetch: 0}\n", IMAGE_NET)
    with pytest.raises(DataError, match=r"label 3 \(record 3 \(key '03'\)\) is out of range"):
        load_data(net).train.next()


def test_dummy_data_with_fillers_and_integer_labels(tmp_path):
    net = make_net(tmp_path, """\
data:
  train:
    source: dummy
    batch_size: 7
    dummy:
      data:  {shape: [4], filler: {type: gaussian, std: 2}}
      label: {shape: [], filler: {type: uniform, min: 0, max: 3}}
""")
    data = load_data(net, seed=2)
    first, second = data.train.next(), data.train.next()
    assert first["data"].shape == (7, 4) and first["label"].dtype == np.int64
    assert set(first["label"].tolist()) <= {0, 1, 2}
    assert not np.array_equal(first["data"], second["data"])
    again = load_data(net, seed=2).train.next()
    np.testing.assert_array_equal(first["data"], again["data"])
    assert source_shapes(net.spec.data.train, tmp_path) == {"data": (4,), "label": ()}


def test_feeds_name_other_inputs_and_npz_arrays_by_name(tmp_path):
    net_text = NET.replace("data:  {shape: [null, 4]}", "x:  {shape: [null, 4]}").replace(
        "label: {shape", "y: {shape").replace("bottom: data", "bottom: x").replace(
        "[scores, label]", "[scores, y]")
    np.savez(tmp_path / "xy.npz", x=np.ones((3, 4)), y=np.array([0, 1, 2]), other=np.zeros(2))
    net = make_net(tmp_path, "data:\n  train: {source: xy.npz, feeds: [x, y]}\n", net_text)
    batch = load_data(net).train.next()
    assert set(batch) == {"x", "y"}
    with pytest.raises(ConfigError, match=r":9: data.train: feeds: 'z' is not an input of the "
                                          "net"):
        make_net(tmp_path, "data:\n  train: {source: xy.npz, feeds: [x, z]}\n", net_text)


@pytest.mark.parametrize("section, line, fragment", [
    ("{source: lmdb}", 9, "source lmdb needs `path`: the LMDB folder"),
    ("{source: digits, path: x}", 9, "path applies to fashion_mnist, mnist"),
    ("{source: lmdb, path: db, split: test}", 9, "split applies to digits"),
    ("{source: images, path: l.txt, new_height: 4}", 9, "new_height and new_width go together"),
    ("{source: a.npz, is_color: false}", 9, "is_color applies to source images only"),
    ("{source: dummy}", 9, "source dummy needs `dummy:`"),
    ("{source: dummy, dummy: {data: {shape: [4]}}}", 9, "no entry for the feed 'label'"),
    ("{source: dummy, dummy: {data: {shape: [4]}, label: {shape: [], filler: {type: nope}}}}",
     9, "dummy.label.filler: filler type must be one of"),
    ("{source: a.npz, transform: {scal: 2}}", 9, "unknown key 'scal' in `data.train.transform`"
                                                  ".* did you mean 'scale'"),
    ("{source: a.npz, transform: {crop_size: -1}}", 9, "crop_size must be a non-negative"),
    ("{source: a.npz, feeds: [data, data]}", 9, "feeds must name distinct inputs"),
    ("{source: a.npz, prefetch: -2}", 9, "prefetch must be a non-negative integer"),
])
def test_new_keys_are_checked_at_their_line(tmp_path, section, line, fragment):
    with pytest.raises(ConfigError, match=fragment) as info:
        load_data(make_net(tmp_path, f"data:\n  train: {section}\n"))
    assert str(info.value).startswith(f"{tmp_path / 'net.yaml'}:{line}:")


def test_source_shapes_of_files_without_loading_them(tmp_path):
    np.savez(tmp_path / "a.npz", data=np.zeros((5, 3, 8, 8), np.uint8), label=np.zeros(5))
    (tmp_path / "t.csv").write_text("a,b,c,d,label\n1,2,3,4,0\n")
    npz = parse_source({"source": "a.npz", "transform": {"crop_size": 6}})
    assert source_shapes(npz, tmp_path) == {"data": (3, 6, 6), "label": ()}
    assert source_shapes(parse_source({"source": "t.csv"}), tmp_path) == {"data": (4,),
                                                                           "label": ()}
    assert source_shapes(parse_source({"source": "iris", "feeds": ["data"]}), tmp_path) == {
        "data": (4,)}


def test_only_a_feeds_mismatch_is_reported_at_the_feeds_line(tmp_path, monkeypatch):
    # more feeds than the source gives: the config's `feeds` line; any other ValueError a
    # reader lets out is about the data, so it is reported at the line naming the data
    three = NET.replace("  label:", "  extra: {shape: [null]}\n  label:")      # 8 lines
    (tmp_path / "list.txt").write_text("a.png 0\n")
    lines = "data:\n  train:\n    source: images\n    path: list.txt\n" \
            "    feeds: [data, label, extra]\n"
    with pytest.raises(ConfigError, match=r"net.yaml:13: data.train.feeds: .* gives 2 arrays"):
        load_data(make_net(tmp_path, lines, three))
    (tmp_path / "t.csv").write_text("1,2,3,4,0\n")
    lines = "data:\n  train:\n    source: t.csv\n    feeds: [data, label, extra]\n"
    with pytest.raises(ConfigError, match=r"net.yaml:12: data.train.feeds: .*t.csv gives 2 "
                                          r"arrays \(data, label\)"):
        load_data(make_net(tmp_path, lines, three))
    np.savez(tmp_path / "a.npz", data=np.zeros((5, 4)), label=np.zeros(5, int))

    def reader_bug(*args):
        raise ValueError("a reader's own fault")
    monkeypatch.setattr("net.train.data.read_npz_source", reader_bug)
    lines = "data:\n  train:\n    source: a.npz\n    feeds: [data, label]\n"
    with pytest.raises(ConfigError, match=r"net.yaml:10: data.train.source: a reader's own fault"):
        load_data(make_net(tmp_path, lines))


@pytest.mark.skipif(not FASHION.is_dir(), reason="needs Debian's dataset-fashion-mnist")
def test_fashion_mnist_shapes_and_the_train_part(tmp_path):
    spec = parse_source({"source": "fashion_mnist", "transform": {"crop_size": 24}})
    assert source_shapes(spec, tmp_path) == {"data": (1, 24, 24), "label": ()}


# -- in-memory arrays (Solver.solve(data=...)) --------------------------------------------------------
def test_in_memory_arrays_get_the_phases_transform_and_feeds(tmp_path):
    from net.train.data import as_data

    path = tmp_path / "net.yaml"
    path.write_text("inputs:\n  x: {shape: [null, 1, 2, 2]}\n  y: {shape: [null], dtype: int}\n"
                    "gates:\n  - {name: fc, type: InnerProduct, bottom: x, top: s, num_output: 2}"
                    "\n  - {name: loss, type: SoftmaxWithLoss, bottom: [s, y], top: loss}\n"
                    "data:\n  train: {source: iris, feeds: [x, y], batch_size: 2, shuffle: false,"
                    "\n          transform: {scale: 0.5}}\n")
    net = Net.from_yaml(path)
    images, labels = np.full((4, 1, 2, 2), 8.0), np.array([0, 1, 0, 1])
    batch = as_data(net, (images, labels)).train.next()
    np.testing.assert_array_equal(batch["x"], np.full((2, 1, 2, 2), 4.0))   # scaled
    np.testing.assert_array_equal(batch["y"], [0, 1])
    with pytest.raises(ValueError, match="'z' is not an input of the net"):
        as_data(net, {"x": images, "z": labels})


def test_a_missing_file_names_where_it_was_looked_for_once(tmp_path):
    with pytest.raises(ConfigError, match=r"no file 'gone.npz' \(looked for /.*gone.npz\)"):
        load_data(make_net(tmp_path, "data:\n  train: {source: gone.npz}\n"))
    absolute = str(tmp_path / "gone.npz")
    with pytest.raises(ConfigError) as info:
        load_data(make_net(tmp_path, f"data:\n  train: {{source: '{absolute}'}}\n"))
    assert f"no file {absolute!r}; source kinds:" in str(info.value)
    assert "looked for" not in str(info.value)
