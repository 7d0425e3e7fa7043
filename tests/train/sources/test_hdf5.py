"""Caffe's HDF5Data: the list of .h5 files, datasets named like the feeds, rows across files in
any order, and missing datasets, mismatched shapes and corrupt files refused naming the file."""
from __future__ import annotations

import numpy as np
import pytest

from net.errors import DataError
from net.train.sources.hdf5 import Hdf5Source

h5py = pytest.importorskip("h5py")


def write_h5(path, **datasets):
    with h5py.File(path, "w") as handle:
        for name, values in datasets.items():
            handle.create_dataset(name, data=values)
    return path


def test_rows_across_files_in_any_order(tmp_path):
    data = np.arange(7 * 2 * 3, dtype=np.float32).reshape(7, 2, 3)
    label = np.arange(7, dtype=np.float32)
    write_h5(tmp_path / "a.h5", data=data[:4], label=label[:4])
    write_h5(tmp_path / "b.h5", data=data[4:], label=label[4:], extra=np.zeros(1))
    (tmp_path / "files.txt").write_text("a.h5\n\nb.h5\n")
    source = Hdf5Source(tmp_path / "files.txt", ["data", "label"])
    index = np.array([6, 1, 4, 1, 0])
    batch = source.read(index)
    np.testing.assert_array_equal(batch["data"], data[index])
    np.testing.assert_array_equal(batch["label"], label[index])
    assert len(source) == 7 and source.shapes() == {"data": (2, 3), "label": ()}
    assert source.record(5) == f"row 1 of {tmp_path / 'b.h5'}"


@pytest.mark.parametrize("second, fragment", [
    ({"data": np.zeros((2, 3)), "label": np.zeros(2)}, r"per-sample shapes \[\(3,\), \(\)\] "
                                                        r"differ"),
    ({"data": np.zeros((2, 4))}, "no dataset named 'label'"),
    ({"data": np.zeros((2, 4)), "label": np.zeros(3)}, "different row counts"),
    ({"data": np.array([b"a", b"b"]), "label": np.zeros(2)}, "a feed needs numbers"),
])
def test_files_that_do_not_fit_are_named(tmp_path, second, fragment):
    write_h5(tmp_path / "a.h5", data=np.zeros((2, 4)), label=np.zeros(2))
    write_h5(tmp_path / "b.h5", **second)
    (tmp_path / "files.txt").write_text("a.h5\nb.h5\n")
    with pytest.raises(DataError, match=f"{tmp_path / 'b.h5'}: .*{fragment}"):
        Hdf5Source(tmp_path / "files.txt", ["data", "label"])


def test_truncated_and_missing_files_are_named(tmp_path):
    good = write_h5(tmp_path / "a.h5", data=np.ones((100, 50)), label=np.zeros(100))
    (tmp_path / "cut.h5").write_bytes(good.read_bytes()[:3000])
    for name in ("cut.h5", "gone.h5"):
        (tmp_path / "files.txt").write_text(f"a.h5\n{name}\n")
        with pytest.raises(DataError, match=f"{tmp_path / name}: (not a readable|no such) HDF5 "
                                            "file.*listed in"):
            Hdf5Source(tmp_path / "files.txt", ["data", "label"])
