"""IDX files (MNIST's format), raw and gzip-compressed: values and shapes, the four-file sets,
the Fashion-MNIST package's location and its install hint, and bad files refused before any
allocation."""
from __future__ import annotations

import gzip

import numpy as np
import pytest

from net.errors import DataError
from net.train.sources import idx

LIMIT = 1 << 30


def idx_bytes(array: np.ndarray, code: int) -> bytes:
    header = bytes([0, 0, code, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    return header + array.astype(np.dtype(idx.IDX_TYPES[code])).tobytes()


def write_set(folder, part="train", count=5, gz=True, dotted=False):
    prefix = idx.PARTS[part]
    images = np.arange(count * 4 * 3, dtype=np.uint8).reshape(count, 4, 3)
    labels = np.arange(count, dtype=np.uint8) % 10
    for kind, array, code in (("images-idx3", images, 0x08), ("labels-idx1", labels, 0x08)):
        name = f"{prefix}-{kind}-ubyte".replace("-idx", ".idx" if dotted else "-idx")
        content = idx_bytes(array, code)
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(content))
        else:
            (folder / name).write_bytes(content)
    return images, labels


@pytest.mark.parametrize("code, values", [
    (0x08, [0, 255, 7]), (0x09, [-128, 127, 0]), (0x0B, [-300, 2, 30000]),
    (0x0C, [-70000, 1, 2**31 - 1]), (0x0D, [0.5, -1.25, 3e38]), (0x0E, [1e-300, -2.0, 0.1]),
])
@pytest.mark.parametrize("gz", [False, True])
def test_every_type_code_reads_big_endian_values(tmp_path, code, values, gz):
    array = np.array([values, values[::-1]])
    content = idx_bytes(array, code)
    path = tmp_path / "values.idx"
    path.write_bytes(gzip.compress(content) if gz else content)
    read = idx.read_idx(path, LIMIT)
    assert read.shape == (2, 3) and read.dtype.isnative
    np.testing.assert_array_equal(read, array.astype(np.dtype(idx.IDX_TYPES[code])))


@pytest.mark.parametrize("gz, dotted", [(True, False), (False, True)])
def test_an_mnist_folder_in_either_spelling(tmp_path, gz, dotted):
    images, labels = write_set(tmp_path, "test", gz=gz, dotted=dotted)
    part = idx.mnist_part(tmp_path, "test", LIMIT)
    np.testing.assert_array_equal(part["images"], images[:, np.newaxis])
    np.testing.assert_array_equal(part["labels"], labels)
    assert idx.mnist_shapes(tmp_path, "test") == {"images": (1, 4, 3), "labels": ()}


def test_files_that_disagree_are_refused(tmp_path):
    write_set(tmp_path, count=5)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(idx_bytes(np.zeros(4, np.uint8), 0x08)))
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte.gz: holds \(4,\) labels for "
                                        "the 5 images"):
        idx.mnist_part(tmp_path, "train", LIMIT)


@pytest.mark.parametrize("content, fragment", [
    (b"\x00\x00\x08", "not an IDX file"),
    (b"\x01\x02\x08\x01" + bytes(8), "not an IDX file"),
    (b"\x00\x00\x07\x01" + bytes(8), "not an IDX file"),
    (b"\x00\x00\x08\x03\x00\x00", r"truncated IDX header \(3 dimensions declared\)"),
    (idx_bytes(np.zeros((4, 2), np.uint8), 0x08)[:-1], r"declares 4 x 2 values \(8 bytes\) but "
                                                        "the file holds 7 .truncated"),
    (idx_bytes(np.zeros((4, 2), np.uint8), 0x08) + b"x", "holds 9 .too long"),
])
@pytest.mark.parametrize("gz", [False, True])
def test_bad_files_are_named(tmp_path, content, fragment, gz):
    path = tmp_path / "bad-idx1-ubyte"
    path.write_bytes(gzip.compress(content) if gz else content)
    if gz and "too long" in fragment:
        fragment = "the file holds more"
    elif gz and "truncated)" in fragment:
        fragment = "the file holds 7 .truncated"
    with pytest.raises(DataError, match=f"^{path}: .*{fragment}"):
        idx.read_idx(path, LIMIT)


def test_255_dimensions_are_refused_naming_the_idx_file(tmp_path):
    header = bytes([0, 0, 8, 255]) + np.ones(255, ">u4").tobytes()
    (tmp_path / "train-images-idx3-ubyte").write_bytes(header + b"\0")
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(1, np.uint8), 0x08))
    fragment = "train-images-idx3-ubyte: its IDX header declares 255 dimensions; an array has " \
               "at most 32"
    for read in (lambda: idx.read_idx_shape(tmp_path / "train-images-idx3-ubyte"),
                 lambda: idx.mnist_part(tmp_path, "train", LIMIT)):
        with pytest.raises(DataError, match=f"^{tmp_path}/{fragment}$"):
            read()


def test_a_gzip_file_declaring_more_than_gzip_can_expand_to_is_refused_before_allocation(
        tmp_path):
    """A header declaring 64 Mi values in a gzip file of a few hundred bytes: more than
    deflate could ever expand them to."""
    path = tmp_path / "zeros-idx1-ubyte.gz"
    header = bytes([0, 0, 0x08, 1]) + (64 << 20).to_bytes(4, "big")
    path.write_bytes(gzip.compress(header + bytes(1000)))
    with pytest.raises(DataError, match=r"declares 67108864 values \(64.0 MiB\) from \d+ bytes "
                                        "of gzip: more than the 1100 times its length gzip can "
                                        "expand to"):
        idx.read_idx(path, 1 << 30)


def test_a_cut_gzip_stream_is_a_located_error(tmp_path):
    path = tmp_path / "cut.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.arange(4000, dtype=">i4"), 0x0C))[:-30])
    with pytest.raises(DataError, match=f"^{path}: corrupt or truncated gzip"):
        idx.read_idx(path, LIMIT)


def test_fashion_mnist_missing_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(idx, "FASHION_MNIST", tmp_path / "absent")
    with pytest.raises(DataError, match=r"sudo apt-get install dataset-fashion-mnist`, or point "
                                        "`path:` at a folder"):
        idx.fashion_folder(None, "data.train")


@pytest.mark.skipif(not idx.FASHION_MNIST.is_dir(), reason="needs Debian's dataset-fashion-mnist"
                    " (sudo apt-get install dataset-fashion-mnist)")
def test_the_installed_fashion_mnist_has_its_published_sizes():
    for part, count in (("train", 60000), ("test", 10000)):
        _, shape = idx.read_idx_shape(idx.find_file(idx.FASHION_MNIST,
                                                    f"{idx.PARTS[part]}-images-idx3-ubyte"))
        assert shape == (count, 28, 28)
    labels = idx.read_idx(idx.find_file(idx.FASHION_MNIST, "t10k-labels-idx1-ubyte"), LIMIT)
    assert np.bincount(labels).tolist() == [1000] * 10
