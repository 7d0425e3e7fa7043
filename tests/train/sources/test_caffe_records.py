"""Caffe's Datum and BlobProto records on the wire codec: field layout as protobuf writes it,
round trips, and malformed records refused naming the source. (The `protobuf` package reads
our Datum bytes in tests/formats/test_caffe_messages.py; net.formats' schema-driven BlobProto
codec is the second oracle here.)"""
from __future__ import annotations

import numpy as np
import pytest

from net.errors import DataError
from net.formats.caffe_files import read_blobproto, write_blobproto
from net.train.sources.caffe_records import (DatumRecord, decode_blob, decode_datum,
                                             encode_blob, encode_datum)


def test_datum_with_uint8_pixels():
    image = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    record = decode_datum(encode_datum(image, label=7))
    assert (record.channels, record.height, record.width, record.label) == (2, 3, 4, 7)
    assert record.data == image.tobytes() and not record.encoded
    np.testing.assert_array_equal(record.to_array(), image)


def test_datum_with_float_data_and_a_negative_label():
    image = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    data = encode_datum(image, label=-1)
    record = decode_datum(data)
    assert record.label == -1 and record.data == b"" and record.channels == 1
    np.testing.assert_array_equal(record.to_array(), image[np.newaxis])
    assert data.count(bytes([0x35])) >= 12       # float_data is not packed in caffe.proto


def test_datum_with_an_encoded_image():
    png = b"\x89PNG\r\n\x1a\n fake image bytes"
    record = decode_datum(encode_datum(png, label=3))
    assert record.encoded and record.data == png and record.label == 3
    with pytest.raises(DataError, match="db/key 5: the Datum holds an encoded image"):
        record.to_array("db/key 5")


def test_datum_bytes_match_caffes_field_layout():
    # channels 1, height 1, width 2, data "\x07\x08", label 1
    expected = "0801" "1001" "1802" "22020708" "2801"
    assert encode_datum(np.array([[[7, 8]]], np.uint8), 1).hex() == expected


def test_packed_float_data_and_unknown_fields_are_read():
    # float_data packed (field 6, length 8: 1.0, 2.0), then an unknown field 99 (varint 5)
    payload = bytes.fromhex("0801" "1001" "1802" "3208") + np.array([1, 2], "<f4").tobytes() \
        + bytes.fromhex("98060" "5".replace(" ", ""))
    record = decode_datum(payload)
    np.testing.assert_array_equal(record.to_array(), [[[1.0, 2.0]]])


def test_a_datum_that_does_not_fit_its_shape_is_refused():
    record = DatumRecord(channels=1, height=2, width=2, data=b"\x00\x01\x02")
    with pytest.raises(DataError, match="is \\(1, 2, 2\\) \\(4 values\\) but holds 3"):
        record.to_array()
    with pytest.raises(DataError, match="^lmdb key 9: byte 1: truncated varint"):
        decode_datum(b"\x08", "lmdb key 9")


def test_blob_round_trip_and_the_schema_codec_agree(tmp_path):
    mean = np.arange(2 * 3 * 4, dtype=np.float32).reshape(1, 2, 3, 4) / 7
    np.testing.assert_array_equal(decode_blob(encode_blob(mean[0])), mean)
    ours = tmp_path / "ours.binaryproto"
    ours.write_bytes(encode_blob(mean))
    np.testing.assert_array_equal(read_blobproto(ours), mean)            # formats reads ours
    theirs = tmp_path / "theirs.binaryproto"
    write_blobproto(theirs, mean[0].astype(np.float64), legacy=False)    # double_data, shape
    np.testing.assert_array_equal(decode_blob(theirs.read_bytes()), mean[0])
    write_blobproto(theirs, mean, legacy=True)
    np.testing.assert_array_equal(decode_blob(theirs.read_bytes()), mean)


@pytest.mark.parametrize("payload, fragment", [
    (encode_blob(np.ones((1, 1, 2, 2)))[:-3], "byte 8: field 5 claims 16 bytes but only 13"),
    (bytes.fromhex("0801" "1001" "1802" "2002") + b"*\x04" + np.ones(1, "<f4").tobytes(),
     r"blob of shape \(1, 1, 2, 2\) needs 4 values but holds 1"),
    (bytes.fromhex("08ffffffff0f"), "negative dimension"),
])
def test_malformed_blobs_name_the_source(payload, fragment):
    with pytest.raises(DataError, match=f"^mean.binaryproto: .*{fragment}"):
        decode_blob(payload, "mean.binaryproto")
