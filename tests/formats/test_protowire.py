"""The protobuf wire format: the encoding examples from protobuf's documentation, packed and
unpacked arrays, and malformed input rejected with the byte offset."""
from __future__ import annotations

import time

import numpy as np
import pytest

from net.errors import DataError
from net.formats.protowire import (FIXED32, LENGTH, VARINT, WireReader, WireWriter,
                                   encode_varint, signed, zigzag_decode, zigzag_encode)


@pytest.mark.parametrize("value, encoded", [
    (0, "00"), (1, "01"), (127, "7f"), (128, "8001"), (150, "9601"), (300, "ac02"),
    (2**32 - 1, "ffffffff0f"), (-1, "ffffffffffffffffff01"), (-2, "feffffffffffffffff01"),
])
def test_varints_match_protobufs_encoding(value, encoded):
    assert encode_varint(value).hex() == encoded
    decoded, end = WireReader(bytes.fromhex(encoded)).varint(0, len(encoded) // 2)
    assert end == len(encoded) // 2
    assert decoded == value % 2**64
    assert signed(decoded, 64) == value


@pytest.mark.parametrize("value, encoded", [
    (0, 0), (-1, 1), (1, 2), (-2, 3), (2147483647, 4294967294), (-2147483648, 4294967295)])
def test_zigzag_pairs_from_the_documentation(value, encoded):
    assert zigzag_encode(value) == encoded
    assert zigzag_decode(encoded) == value


def test_documented_messages_decode_field_by_field():
    # "message Test1 { int32 a = 1; }" with a = 150 is 08 96 01
    (field,) = WireReader(bytes.fromhex("089601")).fields(0, 3)
    assert (field.number, field.wire_type, field.value) == (1, VARINT, 150)
    # "message Test2 { string b = 2; }" with b = "testing"
    data = bytes.fromhex("120774657374696e67")
    reader = WireReader(data)
    (field,) = reader.fields(0, len(data))
    assert (field.number, field.wire_type, reader.payload(field)) == (2, LENGTH, b"testing")
    # packed "repeated int32 f = 4" holding 3, 270, 86942
    data = bytes.fromhex("2206038e029ea705")
    reader = WireReader(data)
    (field,) = reader.fields(0, len(data))
    assert reader.packed_varints(field) == [3, 270, 86942]


def test_writer_produces_the_documented_bytes():
    writer = WireWriter()
    writer.varint_field(1, 150)
    writer.bytes_field(2, b"testing")
    writer.packed_varints(4, [3, 270, 86942])
    assert writer.getvalue().hex() == "089601" + "120774657374696e67" + "2206038e029ea705"


def test_nested_message_length_prefix():
    inner = WireWriter()
    inner.varint_field(1, 150)
    outer = WireWriter()
    outer.message_field(3, inner)
    assert outer.getvalue().hex() == "1a03089601"   # protobuf docs' Test3 { Test1 c = 3; }


@pytest.mark.parametrize("dtype", ["<f4", "<f8"])
def test_packed_and_unpacked_arrays_decode_alike(dtype):
    values = np.array([0.0, -1.5, 3.25, np.inf, 1e-30], dtype=dtype)
    packed, unpacked = WireWriter(), WireWriter()
    packed.packed_array(5, values, dtype)
    unpacked.unpacked_array(5, values, dtype)
    size = np.dtype(dtype).itemsize
    assert len(unpacked.getvalue()) == len(values) * (1 + size)
    reader = WireReader(packed.getvalue())
    (field,) = reader.fields(0, packed.size)
    np.testing.assert_array_equal(reader.packed_array(field, dtype), values)
    reader = WireReader(unpacked.getvalue())
    first = reader.next_field(0, unpacked.size)
    assert first.wire_type == (FIXED32 if size == 4 else 1)
    run, end = reader.unpacked_run(first, unpacked.size, dtype)
    np.testing.assert_array_equal(run, values)
    assert end == unpacked.size


def test_unpacked_run_stops_at_another_field():
    writer = WireWriter()
    writer.unpacked_array(6, np.arange(200, dtype="<f4"), "<f4")
    writer.varint_field(5, 7)
    writer.unpacked_array(6, np.array([9.0], dtype="<f4"), "<f4")
    reader = WireReader(writer.getvalue())
    run, end = reader.unpacked_run(reader.next_field(0, writer.size), writer.size, "<f4")
    np.testing.assert_array_equal(run, np.arange(200))
    assert reader.next_field(end, writer.size).number == 5


def test_groups_are_skipped_whole():
    # field 2 as a group holding field 1 = 5, then field 3 = 1
    data = bytes.fromhex("13" "0805" "14" "1801")
    fields = list(WireReader(data).fields(0, len(data)))
    assert [(field.number, field.wire_type) for field in fields] == [(2, 3), (3, VARINT)]


def test_group_nesting_is_bounded():
    data = bytes.fromhex("0b") * 150 + bytes.fromhex("0c") * 150
    with pytest.raises(DataError, match="byte 100: groups nested deeper than 100"):
        list(WireReader(data, "deep").fields(0, len(data)))


@pytest.mark.parametrize("hex_data, offset, fragment", [
    ("08", 1, "truncated varint"),
    ("0a05616263", 0, "claims 5 bytes but only 3 remain"),
    ("0aff", 1, "truncated varint"),
    ("0affffffffffffffffff7f", 0, "claims"),
    ("0d0000", 0, "needs 4 bytes but only 2 remain"),
    ("ffffffffffffffffffffff01", 0, "longer than 10 bytes"),
    ("0f", 0, "invalid wire type 7"),
    ("0c", 0, "end of group 1 that was never started"),
    ("0b0801", 0, "group 1 is never ended"),
    ("00", 0, "invalid field number 0"),
])
def test_malformed_bytes_name_the_file_and_offset(hex_data, offset, fragment):
    data = bytes.fromhex(hex_data)
    with pytest.raises(DataError) as err:
        list(WireReader(data, "weights.caffemodel").fields(0, len(data)))
    assert str(err.value).startswith(f"weights.caffemodel: byte {offset}: ")
    assert fragment in str(err.value)


def test_packed_floats_of_a_wrong_length_are_refused():
    data = bytes.fromhex("2a03000000")
    reader = WireReader(data, "mean.binaryproto")
    with pytest.raises(DataError, match=r"mean.binaryproto: byte 0: .*3 bytes, not a multiple"):
        reader.packed_array(next(reader.fields(0, len(data))), "<f4")


def test_a_huge_claimed_length_allocates_nothing():
    data = encode_varint((5 << 3) | LENGTH) + encode_varint(2**62) + b"\0" * 8
    with pytest.raises(DataError, match="claims 4611686018427387904 bytes but only 8 remain"):
        list(WireReader(data, "x").fields(0, len(data)))


def test_large_unpacked_runs_decode_in_numpy_time():
    values = np.random.default_rng(0).standard_normal(1_000_000).astype("<f4")
    writer = WireWriter()
    writer.unpacked_array(6, values, "<f4")
    reader = WireReader(writer.getvalue())
    started = time.perf_counter()
    run, _ = reader.unpacked_run(reader.next_field(0, writer.size), writer.size, "<f4")
    assert time.perf_counter() - started < 2.0    # a per-element Python loop takes longer
    np.testing.assert_array_equal(run, values)
