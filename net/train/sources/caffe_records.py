"""Caffe's two data records, on the wire codec (net.train.sources.protowire), without a schema:

    Datum      one sample of an LMDB (caffe.proto: channels 1, height 2, width 3, data 4 (bytes),
               label 5, float_data 6 (repeated float), encoded 7 (bool))
    BlobProto  a mean file (.binaryproto: num 1, channels 2, height 3, width 4, data 5 (packed
               float), double_data 8 (packed double), shape 7 (BlobShape: dim 1, packed int64))

Decoding follows protobuf: unknown fields are skipped, a field seen twice keeps the last value,
packed and unpacked repeated numbers are both read. Malformed bytes raise DataError naming the
source (the file and record) and the byte offset; pixel counts are checked against the declared
shape before anything is built, and nothing is allocated that the bytes do not hold.
(net.formats reads every Caffe message through its schema; these two are what data sources need.)
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...errors import DataError
from .protowire import FIXED32, FIXED64, LENGTH, VARINT, WireReader, WireWriter, signed

_DATUM_INTS = {1: "channels", 2: "height", 3: "width", 5: "label"}


@dataclass
class DatumRecord:
    """One Caffe Datum: pixels as bytes (`data`, uint8 C x H x W, or an encoded image file when
    `encoded`), or as `float_data`; and a label."""
    channels: int = 0
    height: int = 0
    width: int = 0
    data: bytes = b""
    label: int = 0
    float_data: np.ndarray = field(default_factory=lambda: np.empty(0, np.float32))
    encoded: bool = False

    def to_array(self, source: str = "<datum>") -> np.ndarray:
        """The pixels as a (C, H, W) array: uint8 from `data`, float32 from `float_data`.
        An encoded image is refused (net.train.sources.images decodes those)."""
        if self.encoded:
            raise DataError(f"{source}: the Datum holds an encoded image; decode its bytes "
                            "with an image library")
        shape = (self.channels, self.height, self.width)
        if min(shape) < 0:
            raise DataError(f"{source}: the Datum's shape {shape} has a negative dimension")
        count = self.channels * self.height * self.width
        values = np.frombuffer(self.data, dtype=np.uint8) if self.data else self.float_data
        if values.size != count:
            raise DataError(f"{source}: the Datum is {shape} ({count} values) but holds "
                            f"{values.size}")
        return values.reshape(shape).copy()


def encode_datum(image: np.ndarray | bytes, label: int = 0) -> bytes:
    """A Datum's bytes. `image`: a uint8 array (C, H, W) or (H, W) -> `data`; a float array ->
    `float_data` (unpacked, as caffe.proto declares it); bytes (a PNG or JPEG file) -> `data`
    with encoded = true. Fields go in field-number order, as protobuf writes them."""
    writer = WireWriter()
    if isinstance(image, (bytes, bytearray)):
        writer.bytes_field(4, bytes(image))
        writer.varint_field(5, label)
        writer.varint_field(7, 1)
        return writer.getvalue()
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[np.newaxis]
    if array.ndim != 3:
        raise ValueError(f"a Datum holds a (C, H, W) or (H, W) image, not shape {array.shape}")
    if array.dtype != np.uint8 and array.dtype.kind != "f":
        raise ValueError(f"Datum pixels are uint8 or float, not {array.dtype}")
    for number, size in zip((1, 2, 3), array.shape):
        writer.varint_field(number, size)
    if array.dtype == np.uint8:
        writer.bytes_field(4, np.ascontiguousarray(array).tobytes())
    writer.varint_field(5, label)
    if array.dtype.kind == "f":
        writer.unpacked_array(6, array.reshape(-1), "<f4")
    return writer.getvalue()


def decode_datum(buf: bytes, source: str = "<datum>") -> DatumRecord:
    """A Datum's fields from its bytes (DataError naming `source` and the offset if malformed)."""
    reader = WireReader(buf, source)
    record = DatumRecord()
    floats: list[np.ndarray] = []
    pos, end = 0, len(reader.buf)
    while pos < end:
        wire = reader.next_field(pos, end)
        pos = wire.next
        if wire.number in _DATUM_INTS and wire.wire_type == VARINT:
            setattr(record, _DATUM_INTS[wire.number], signed(wire.value, 32))
        elif wire.number == 4 and wire.wire_type == LENGTH:
            record.data = reader.payload(wire)
        elif wire.number == 7 and wire.wire_type == VARINT:
            record.encoded = wire.value != 0
        elif wire.number == 6 and wire.wire_type == LENGTH:
            floats.append(reader.packed_array(wire, "<f4"))
        elif wire.number == 6 and wire.wire_type == FIXED32:
            values, pos = reader.unpacked_run(wire, end, "<f4")
            floats.append(values)
    if floats:
        record.float_data = np.concatenate(floats).astype(np.float32, copy=False)
    return record


def encode_blob(array: np.ndarray) -> bytes:
    """A BlobProto of a float32 array with the legacy num/channels/height/width (up to 4 axes,
    padded with leading 1s), as Caffe's compute_image_mean writes a mean file."""
    array = np.asarray(array, dtype=np.float32)
    if array.ndim > 4:
        raise ValueError(f"a legacy blob has at most 4 axes, not {array.ndim}")
    writer = WireWriter()
    for number, size in zip((1, 2, 3, 4), (1,) * (4 - array.ndim) + array.shape):
        writer.varint_field(number, size)
    writer.packed_array(5, array.reshape(-1), "<f4")
    return writer.getvalue()


def decode_blob(buf: bytes, source: str = "<blob>") -> np.ndarray:
    """A BlobProto's values as an array of its shape (`shape.dim` if given, else num, channels,
    height, width): float32 from `data`, float64 from `double_data`. DataError naming `source`
    if the bytes are malformed or the values do not fill the shape."""
    reader = WireReader(buf, source)
    legacy = {1: 0, 2: 0, 3: 0, 4: 0}
    dims: list[int] | None = None
    chunks: dict[int, list[np.ndarray]] = {5: [], 8: []}
    pos, end = 0, len(reader.buf)
    while pos < end:
        wire = reader.next_field(pos, end)
        pos = wire.next
        if wire.number in legacy and wire.wire_type == VARINT:
            legacy[wire.number] = signed(wire.value, 32)
        elif wire.number == 7 and wire.wire_type == LENGTH:
            dims = _blob_shape(reader, wire)
        elif wire.number in chunks:
            dtype, unpacked = ("<f4", FIXED32) if wire.number == 5 else ("<f8", FIXED64)
            if wire.wire_type == LENGTH:
                chunks[wire.number].append(reader.packed_array(wire, dtype))
            elif wire.wire_type == unpacked:
                values, pos = reader.unpacked_run(wire, end, dtype)
                chunks[wire.number].append(values)
    shape = tuple(dims) if dims is not None else tuple(legacy.values())
    if any(dim < 0 for dim in shape):
        raise DataError(f"{source}: blob shape {shape} has a negative dimension")
    parts = chunks[5] or chunks[8]
    values = np.concatenate(parts) if parts else np.empty(0, np.float32)
    count = int(np.prod(shape, dtype=np.int64))
    if values.size != count:
        raise DataError(f"{source}: blob of shape {shape} needs {count} values but holds "
                        f"{values.size}")
    return values.reshape(shape)


def _blob_shape(reader: WireReader, shape_field) -> list[int]:
    dims: list[int] = []
    for wire in reader.fields(shape_field.start, shape_field.end):
        if wire.number != 1:
            continue
        if wire.wire_type == VARINT:
            dims.append(signed(wire.value, 64))
        elif wire.wire_type == LENGTH:
            dims += [signed(value, 64) for value in reader.packed_varints(wire)]
    return dims
