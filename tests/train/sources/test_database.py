"""LMDB of Datum records: convert_imageset and compute_image_mean as Caffe's tools, raw,
float and encoded records read back, and truncated or corrupt databases refused naming the file
and the record, before any record of a bad batch is used."""
from __future__ import annotations

import numpy as np
import pytest

from net.errors import DataError
from net.train.sources.caffe_records import decode_blob, encode_blob, encode_datum
from net.train.sources.database import (LmdbSource, compute_image_mean, convert_imageset,
                                        open_environment)

lmdb = pytest.importorskip("lmdb")
Image = pytest.importorskip("PIL.Image")


def write_db(path, values: dict[bytes, bytes]):
    env = open_environment(path, write=True, map_size=1 << 24)
    with env.begin(write=True) as txn:
        for key, value in values.items():
            txn.put(key, value)
    env.close()
    return path


def image_folder(tmp_path, count=5):
    rng = np.random.default_rng(0)
    pictures = []
    for index in range(count):
        rgb = rng.integers(0, 256, (6, 4, 3), dtype=np.uint8)
        Image.fromarray(rgb).save(tmp_path / f"{index}.png")
        pictures.append(rgb)
    (tmp_path / "list.txt").write_text("".join(f"{i}.png {i % 3}\n" for i in range(count)))
    return pictures


@pytest.mark.parametrize("encoded", [False, True])
def test_convert_imageset_and_read_back_in_list_order(tmp_path, encoded):
    pictures = image_folder(tmp_path)
    count = convert_imageset(tmp_path, tmp_path / "list.txt", tmp_path / "db", encoded=encoded)
    source = LmdbSource(tmp_path / "db", ["data", "label"])
    assert count == len(source) == 5 and source.keys[1] == b"00000001_1.png"
    batch = source.read(np.array([4, 0]))
    np.testing.assert_array_equal(batch["data"][0], pictures[4][:, :, ::-1].transpose(2, 0, 1))
    assert batch["label"].tolist() == [1, 0]
    assert not (tmp_path / ".db.partial").exists()
    with pytest.raises(DataError, match="already exists"):
        convert_imageset(tmp_path, tmp_path / "list.txt", tmp_path / "db")


def test_grey_resized_conversion_and_the_mean_image(tmp_path):
    pictures = image_folder(tmp_path, 3)
    convert_imageset(tmp_path, tmp_path / "list.txt", tmp_path / "db", gray=True, size=(3, 2))
    mean = compute_image_mean(tmp_path / "db")
    expected = np.mean([np.asarray(Image.fromarray(p).convert("L").resize((2, 3),
                                                                           Image.BILINEAR))
                        for p in pictures], axis=0)
    assert mean.shape == (1, 1, 3, 2)
    np.testing.assert_allclose(mean[0, 0], expected, rtol=1e-6)
    np.testing.assert_array_equal(decode_blob(encode_blob(mean)), mean)


def test_float_records_and_a_record_of_another_shape(tmp_path):
    values = {b"a": encode_datum(np.full((1, 2, 2), 0.5, np.float32), 1),
              b"b": encode_datum(np.zeros((1, 2, 3), np.float32), 2)}
    source = LmdbSource(write_db(tmp_path / "db", values), ["data", "label"])
    np.testing.assert_array_equal(source.read(np.array([0]))["data"], np.full((1, 1, 2, 2), 0.5))
    with pytest.raises(DataError, match=r"record 1 \(key 'b'\): the Datum is \(1, 2, 3\), but "
                                        r"the first record is \(1, 2, 2\)"):
        source.read(np.array([0, 1]))


@pytest.mark.parametrize("value, fragment", [
    (b"\x08\x01\x10", "byte 3: truncated varint"),
    (encode_datum(np.zeros((1, 2, 2), np.uint8))[:-3], "byte 6: field 4 claims 4 bytes"),
    (encode_datum(b"\x89PNG\r\n\x1a\nnot really"), "not a readable image"),
])
def test_a_corrupt_record_names_the_database_and_the_record(tmp_path, value, fragment):
    good = encode_datum(np.zeros((1, 2, 2), np.uint8))
    path = write_db(tmp_path / "db", {b"00000000_ok": good, b"00000001_bad": value})
    source = LmdbSource(path, ["data", "label"])
    with pytest.raises(DataError, match=f"^{path}: record 1 \\(key '00000001_bad'\\): "
                                        f".*{fragment}"):
        source.read(np.array([0, 1]))


def test_a_truncated_database_is_refused_before_any_read(tmp_path):
    values = {f"{i:08d}".encode(): encode_datum(np.full((3, 16, 16), i, np.uint8), i)
              for i in range(200)}
    path = write_db(tmp_path / "db", values)
    data = path / "data.mdb"
    data.write_bytes(data.read_bytes()[:len(data.read_bytes()) // 2])
    with pytest.raises(DataError, match=f"^{data}: truncated: the database declares"):
        LmdbSource(path, ["data", "label"])


@pytest.mark.parametrize("content", [b"", b"not a database" * 1000])
def test_a_file_that_is_no_database(tmp_path, content):
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "data.mdb").write_bytes(content)
    with pytest.raises(DataError, match=f"^{tmp_path / 'db'}: not a readable LMDB database"):
        LmdbSource(tmp_path / "db", ["data"])
