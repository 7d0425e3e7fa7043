"""The protobuf binary wire format, without a schema: tags, varints, fixed-width numbers,
length-delimited payloads, packed and unpacked repeated numbers.

A message on the wire is a sequence of fields; each starts with a tag varint
`(field_number << 3) | wire_type` and a payload whose form the wire type gives:

    VARINT (0)   a base-128 varint, least significant group first (int32, int64, uint*, bool,
                 enum; sint* zigzag-encoded); negative int32/int64 take ten bytes
    FIXED64 (1)  eight little-endian bytes (double, fixed64, sfixed64)
    LENGTH (2)   a varint length, then that many bytes (string, bytes, messages, packed numbers)
    GROUP (3/4)  start and end of a deprecated group; skipped, never produced
    FIXED32 (5)  four little-endian bytes (float, fixed32, sfixed32)

`WireReader` walks one buffer by absolute offsets, so nested messages are ranges of the same
bytes (nothing is copied until a value is built) and every error names the byte offset in the
file. Large float arrays become numpy arrays in one `frombuffer`, packed or unpacked.
Malformed input (a truncated varint, a length past the end, a bad wire type, nesting past
MAX_DEPTH) raises `DataError("SOURCE: byte N: problem")`; nothing is allocated that the input
does not contain. A reader given `max_fields` also refuses input holding more fields (skipped
ones and those inside groups included) and packed varints than that, so the work and the Python
objects a caller builds stay bounded by a count the caller chose, not by what the bytes claim.

`WireWriter` collects chunks and joins them once, so a 60 MB blob is copied once, not once per
nesting level.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ...errors import DataError

VARINT, FIXED64, LENGTH, START_GROUP, END_GROUP, FIXED32 = 0, 1, 2, 3, 4, 5
MAX_DEPTH = 100
MAX_FIELD_NUMBER = (1 << 29) - 1
_UINT64 = (1 << 64) - 1


class WireField(NamedTuple):
    """One field as found on the wire. `offset` is where its tag starts, `start:end` its payload
    (for VARINT, the varint's bytes) and `next` where the following field starts; `value` is the
    varint's value for VARINT fields and 0 otherwise."""
    number: int
    wire_type: int
    offset: int
    start: int
    end: int
    next: int
    value: int


def zigzag_encode(value: int) -> int:
    """sint32/sint64 on the wire: 0, -1, 1, -2, ... -> 0, 1, 2, 3, ..."""
    return (value << 1) ^ (value >> 63) if value < 0 else value << 1


def zigzag_decode(value: int) -> int:
    return (value >> 1) ^ -(value & 1)


def encode_varint(value: int) -> bytes:
    """A varint; a negative value is written as its 64-bit two's complement (ten bytes)."""
    value &= _UINT64
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def signed(value: int, bits: int) -> int:
    """Read the low `bits` bits of a varint's value as a two's complement number."""
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


class WireReader:
    """Reads fields out of `buf` (bytes) by absolute offsets; `source` names the file in errors."""

    def __init__(self, buf: bytes, source: str = "<bytes>", max_fields: int | None = None):
        self.buf = bytes(buf)
        self.source = source
        self.max_fields = max_fields
        self.count = 0                  # fields and packed varints read so far

    def spend(self, count: int, offset: int) -> None:
        """Count `count` more fields or packed values; DataError once past `max_fields`."""
        self.count += count
        if self.max_fields is not None and self.count > self.max_fields:
            raise self.error(offset, f"more than {self.max_fields:,} fields and packed numbers: "
                                     "refused (far more than any real file of this kind holds)")

    def error(self, offset: int, problem: str) -> DataError:
        return DataError(f"{self.source}: byte {offset}: {problem}")

    def varint(self, pos: int, end: int) -> tuple[int, int]:
        """The varint at `pos` and the position after it."""
        buf, value, shift, begin = self.buf, 0, 0, pos
        while True:
            if pos >= end:
                raise self.error(begin, "truncated varint")
            byte = buf[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value & _UINT64, pos
            shift += 7
            if shift >= 70:
                raise self.error(begin, "varint longer than 10 bytes")

    def next_field(self, pos: int, end: int, depth: int = 0) -> WireField:
        """The field starting at `pos` (which must be < end); groups are skipped whole."""
        self.spend(1, pos)
        key, start = self.varint(pos, end)
        number, wire_type = key >> 3, key & 7
        if number == 0 or number > MAX_FIELD_NUMBER:
            raise self.error(pos, f"invalid field number {number}")
        if wire_type == VARINT:
            value, after = self.varint(start, end)
            return WireField(number, wire_type, pos, start, after, after, value)
        if wire_type == LENGTH:
            length, begin = self.varint(start, end)
            if length > end - begin:
                raise self.error(pos, f"field {number} claims {length} bytes but only "
                                      f"{end - begin} remain")
            return WireField(number, wire_type, pos, begin, begin + length, begin + length, 0)
        if wire_type in (FIXED32, FIXED64):
            size = 4 if wire_type == FIXED32 else 8
            if size > end - start:
                raise self.error(pos, f"field {number} needs {size} bytes but only "
                                      f"{end - start} remain")
            return WireField(number, wire_type, pos, start, start + size, start + size, 0)
        if wire_type == START_GROUP:
            after = self.skip_group(number, start, end, pos, depth)
            return WireField(number, wire_type, pos, start, after, after, 0)
        if wire_type == END_GROUP:
            raise self.error(pos, f"end of group {number} that was never started")
        raise self.error(pos, f"invalid wire type {wire_type} for field {number}")

    def skip_group(self, number: int, pos: int, end: int, offset: int, depth: int) -> int:
        if depth >= MAX_DEPTH:
            raise self.error(offset, f"groups nested deeper than {MAX_DEPTH}")
        while pos < end:
            key, after = self.varint(pos, end)
            if key & 7 == END_GROUP:
                if key >> 3 != number:
                    raise self.error(pos, f"group {number} ended by the end of group {key >> 3}")
                return after
            pos = self.next_field(pos, end, depth + 1).next
        raise self.error(offset, f"group {number} is never ended")

    def fields(self, start: int, end: int):
        """Every field in `start:end`, in order."""
        pos = start
        while pos < end:
            field = self.next_field(pos, end)
            yield field
            pos = field.next

    def payload(self, field: WireField) -> bytes:
        return self.buf[field.start:field.end]

    def packed_varints(self, field: WireField) -> list[int]:
        """The varints of a packed field, each counted against `max_fields`."""
        values, pos = [], field.start
        while pos < field.end:
            self.spend(1, pos)
            value, pos = self.varint(pos, field.end)
            values.append(value)
        return values

    def packed_array(self, field: WireField, dtype: str) -> np.ndarray:
        """A packed run of little-endian numbers (`dtype` like '<f4') as a new numpy array."""
        itemsize = np.dtype(dtype).itemsize
        length = field.end - field.start
        if length % itemsize:
            raise self.error(field.offset, f"packed field {field.number} holds {length} bytes, "
                                           f"not a multiple of {itemsize}")
        return np.frombuffer(self.buf, dtype=dtype, count=length // itemsize,
                             offset=field.start).copy()

    def unpacked_run(self, field: WireField, end: int, dtype: str) -> tuple[np.ndarray, int]:
        """`field` (a FIXED32/FIXED64 element of a repeated field) and every element of the same
        field that directly follows it, as one array; also the position after the run. Found in
        chunks that double in size, so a long run costs O(n) and an interleaved one stays cheap."""
        tag = self.buf[field.offset:field.start]
        itemsize = np.dtype(dtype).itemsize
        record = len(tag) + itemsize
        available = (end - field.offset) // record
        tag_bytes = np.frombuffer(tag, dtype=np.uint8)
        count, chunk = 0, 64
        while count < available:
            take = min(chunk, available - count)
            rows = np.frombuffer(self.buf, dtype=np.uint8, count=take * record,
                                 offset=field.offset + count * record).reshape(take, record)
            matches = np.all(rows[:, :len(tag)] == tag_bytes, axis=1)
            if not matches.all():
                count += int(np.argmin(matches))
                break
            count += take
            chunk *= 2
        rows = np.frombuffer(self.buf, dtype=np.uint8, count=count * record,
                             offset=field.offset).reshape(count, record)
        values = np.ascontiguousarray(rows[:, len(tag):]).view(dtype).reshape(count)
        return values.copy(), field.offset + count * record


class WireWriter:
    """Builds a message as a list of byte chunks; `getvalue()` joins them once."""

    def __init__(self):
        self.chunks: list[bytes] = []
        self.size = 0

    def raw(self, data: bytes) -> None:
        self.chunks.append(data)
        self.size += len(data)

    def varint_field(self, number: int, value: int) -> None:
        self.raw(encode_varint((number << 3) | VARINT) + encode_varint(value))

    def fixed_field(self, number: int, value: float | int, dtype: str) -> None:
        wire_type = FIXED32 if np.dtype(dtype).itemsize == 4 else FIXED64
        self.raw(encode_varint((number << 3) | wire_type) + np.array(value, dtype=dtype).tobytes())

    def bytes_field(self, number: int, data: bytes) -> None:
        self.raw(encode_varint((number << 3) | LENGTH) + encode_varint(len(data)))
        self.raw(bytes(data))

    def message_field(self, number: int, inner: WireWriter) -> None:
        self.raw(encode_varint((number << 3) | LENGTH) + encode_varint(inner.size))
        self.chunks.extend(inner.chunks)
        self.size += inner.size

    def packed_varints(self, number: int, values: list[int]) -> None:
        if values:
            self.bytes_field(number, b"".join(encode_varint(value) for value in values))

    def packed_array(self, number: int, values: np.ndarray, dtype: str) -> None:
        if len(values):
            self.bytes_field(number, np.ascontiguousarray(values, dtype=dtype).tobytes())

    def unpacked_array(self, number: int, values: np.ndarray, dtype: str) -> None:
        """Each element with its own tag, built in one numpy pass."""
        if not len(values):
            return
        wire_type = FIXED32 if np.dtype(dtype).itemsize == 4 else FIXED64
        tag = np.frombuffer(encode_varint((number << 3) | wire_type), dtype=np.uint8)
        numbers = np.ascontiguousarray(values, dtype=dtype)
        rows = np.empty((len(numbers), len(tag) + numbers.itemsize), dtype=np.uint8)
        rows[:, :len(tag)] = tag
        rows[:, len(tag):] = numbers.view(np.uint8).reshape(len(numbers), numbers.itemsize)
        self.raw(rows.tobytes())

    def getvalue(self) -> bytes:
        return b"".join(self.chunks)
