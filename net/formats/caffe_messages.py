"""Caffe messages as typed trees: text trees checked against the schema, binary decoded and
encoded, and the helpers for blobs. (Datum records, which data sources read, are in
net.train.sources.caffe_records, on the wire codec net.train.sources.protowire.)

    net = typed_from_text(parse_text(text, file), "NetParameter", file)   # checks every field
    net = decode(caffemodel_bytes, "NetParameter", "model.caffemodel")    # the same tree type
    data = encode(net)                                                    # fields by number

Both paths give `Message`s with a caffe_schema spec, so later code reads
`layer.convolution_param.kernel_size` the same way whichever file it came from.

Checking a text tree: an unknown field, a singular field given twice, a block where a value
belongs (or the reverse), a value of the wrong type or out of range, an enum name that does not
exist, a quoted string for an enum, a missing required field: each a ConfigError at the line of
the value, naming the layer when inside one ("layer 'conv1': ..."), with a suggestion for a
misspelt field or enum name.

Decoding binary follows protobuf: unknown fields and unknown enum numbers are skipped, a
singular field seen twice keeps the last value (messages merge), packed and unpacked encodings
of repeated numbers are both accepted. Malformed bytes raise DataError naming the byte offset.
Encoding writes fields in field-number order with repeated numbers packed where caffe.proto
says so, as protobuf does, so a tree decoded from Caffe's bytes encodes to the same bytes.

Limits far above any real net, so that a small file cannot make the reader build millions of
objects: a net has at most MAX_LAYERS layers and a layer at most MAX_BLOBS blobs (text or
binary: ConfigError at the line, DataError at the byte), and a binary file holds at most
MAX_FIELDS fields and packed numbers in all (float arrays, whose size the bytes justify, count
as one field each). The text parser has its own limit on values (prototext.MAX_VALUES).
"""
from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np

from gates import short_repr
from net.errors import ConfigError, DataError

from .caffe_schema import FieldSpec, MessageSpec, closest, float32_canonical, message_spec
from net.train.sources.protowire import (FIXED32, FIXED64, LENGTH, MAX_DEPTH, VARINT,
                                         WireReader, WireWriter, signed, zigzag_decode,
                                         zigzag_encode)
from .prototree import Identifier, Message

_WIRE_TYPES = {"float": FIXED32, "fixed32": FIXED32, "sfixed32": FIXED32,
               "double": FIXED64, "fixed64": FIXED64, "sfixed64": FIXED64,
               "string": LENGTH, "bytes": LENGTH}
# struct formats, which numpy also reads as dtypes
_FIXED_FORMATS = {"float": "<f", "fixed32": "<I", "sfixed32": "<i",
                  "double": "<d", "fixed64": "<Q", "sfixed64": "<q"}
_LAYER_TYPES = ("LayerParameter", "V1LayerParameter")
MAX_BLOB_AXES = 32      # Caffe's kMaxBlobAxes: Blob::Reshape refuses more
MAX_LAYERS = 100_000    # layers in a net: the largest published Caffe nets have a few thousand
MAX_BLOBS = 1_000       # blobs in a layer: Caffe's layers have at most 6 (RNN)
MAX_FIELDS = 500_000    # fields in a binary file: about 25 a layer with two blobs: 20,000 layers
#: (message, repeated field) -> (its limit, what the values are)
_COUNT_LIMITS = {("NetParameter", "layer"): (MAX_LAYERS, "layers"),
                 ("NetParameter", "layers"): (MAX_LAYERS, "layers"),
                 ("LayerParameter", "blobs"): (MAX_BLOBS, "blobs"),
                 ("V1LayerParameter", "blobs"): (MAX_BLOBS, "blobs"),
                 ("V0LayerParameter", "blobs"): (MAX_BLOBS, "blobs")}
_COUNT_REASONS = {"layers": "the largest published Caffe nets have a few thousand",
                  "blobs": "a Caffe layer has at most 6"}


def wire_type_of(field: FieldSpec) -> int:
    if field.kind == "message":
        return LENGTH
    if field.kind == "enum":
        return VARINT
    return _WIRE_TYPES.get(field.type, VARINT)


# -- text trees ---------------------------------------------------------------------------------
def typed_from_text(raw: Message, type_name: str, file: str | None = None,
                    where: str = "") -> Message:
    """Check an untyped tree against message `type_name` and return it typed (a new tree).
    `where` prefixes error messages (e.g. "layer 'conv1': ")."""
    spec = message_spec(type_name)
    file = file if file is not None else raw.file
    if spec.name in _LAYER_TYPES and isinstance(raw.get("name"), str):
        where = f"layer {short_repr(raw.get('name'))}: "
    typed = Message(spec, raw.line, file)
    for name, values, lines in raw.items():
        if name not in spec.fields:
            raise ConfigError(f"{where}unknown field '{name}' in {spec.name}"
                              f"{closest(name, spec.fields)}", file, lines[0])
        field = spec.fields[name]
        problem = _too_many(spec, name, len(values))
        if problem is not None:
            raise ConfigError(f"{where}{problem}", file, lines[_COUNT_LIMITS[spec.name, name][0]])
        if not field.repeated and len(values) > 1:
            raise ConfigError(f"{where}'{name}' is not a repeated field; it is given again "
                              f"(first on line {lines[0]})", file, lines[1])
        converted = [_typed_value(field, value, line, file, where)
                     for value, line in zip(values, lines)]
        if field.array:
            typed.append_raw(name, np.array(converted, dtype=field.dtype), lines[0])
        else:
            for value, line in zip(converted, lines):
                typed.append_raw(name, value, line)
    for field in spec.fields.values():
        if field.required and not typed.has(field.name):
            raise ConfigError(f"{where}{spec.name} needs '{field.name}'", file, raw.line)
    return typed


def _too_many(spec: MessageSpec, name: str, count: int) -> str | None:
    """What is wrong when a message of type `spec` holds `count` values of field `name`, more
    than _COUNT_LIMITS allows; None when within the limit (or the field has none)."""
    limit, what = _COUNT_LIMITS.get((spec.name, name), (None, ""))
    if limit is None or count <= limit:
        return None
    return f"more than {limit:,} {what}: refused ({_COUNT_REASONS[what]})"


def _typed_value(field: FieldSpec, value: Any, line: int, file: str | None, where: str) -> Any:
    if field.kind == "message":
        if not isinstance(value, Message):
            raise ConfigError(f"{where}'{field.name}' is a {field.message_spec.name} message: "
                              f"write {field.name} {{ ... }}", file, line)
        return typed_from_text(value, field.message_spec.name, file, where)
    if isinstance(value, Message):
        raise ConfigError(f"{where}'{field.name}' takes a value ({field.type}), not a block",
                          file, line)
    if field.kind == "enum" and isinstance(value, str) and not isinstance(value, Identifier):
        raise ConfigError(f"{where}'{field.name}' takes a {field.enum.name} value, written "
                          f"without quotes (one of {', '.join(field.enum.values)})", file, line)
    try:
        return field.coerce_scalar(value)
    except ValueError as err:
        raise ConfigError(f"{where}'{field.name}' {err}", file, line) from None


# -- binary -------------------------------------------------------------------------------------
def decode(buf: bytes, type_name: str, source: str = "<bytes>") -> Message:
    """Decode protobuf binary `buf` as message `type_name` into a typed tree; DataError naming
    the byte for malformed bytes or a count past the module's limits."""
    reader = WireReader(buf, source, MAX_FIELDS)
    return _decode(reader, 0, len(reader.buf), message_spec(type_name), 0, None)


def _decode(reader: WireReader, start: int, end: int, spec: MessageSpec, depth: int,
            into: Message | None) -> Message:
    if depth >= MAX_DEPTH:
        raise reader.error(start, f"messages nested deeper than {MAX_DEPTH}")
    message = into if into is not None else Message(spec, 0, reader.source)
    arrays: dict[str, list[np.ndarray]] = {}
    counts: dict[str, int] = {}
    pos = start
    while pos < end:
        wire = reader.next_field(pos, end, depth)
        pos = wire.next
        field = spec.by_number.get(wire.number)
        if field is None:
            continue
        if field.array:
            pos = _decode_array(reader, wire, field, end, arrays.setdefault(field.name, []), pos)
        elif field.kind == "message":
            if wire.wire_type != LENGTH:
                continue
            if field.repeated:
                counts[field.name] = counts.get(field.name, 0) + 1
                problem = _too_many(spec, field.name, counts[field.name])
                if problem is not None:
                    owner = message.get("name") if spec.name in _LAYER_TYPES else None
                    raise reader.error(wire.offset, (f"layer {short_repr(owner)}: " if
                                                     isinstance(owner, str) else "") + problem)
            merge_into = message.get(field.name) if not field.repeated else None
            child = _decode(reader, wire.start, wire.end, field.message_spec, depth + 1,
                            merge_into)
            if merge_into is None:
                message.append_raw(field.name, child)
        else:
            for value in _decode_scalars(reader, wire, field):
                if not field.repeated:
                    message.remove(field.name)
                message.append_raw(field.name, value)
    for name, chunks in arrays.items():
        if not chunks:
            continue
        parts = ([message.all(name)] if message.has(name) else []) + chunks
        merged = parts[0] if len(parts) == 1 else np.concatenate(parts)
        message.replace_raw(name, [merged.astype(spec.fields[name].dtype, copy=False)], [0])
    return message


def _decode_array(reader: WireReader, wire, field: FieldSpec, end: int,
                  chunks: list[np.ndarray], pos: int) -> int:
    """Collect one packed chunk, or a run of unpacked elements; returns where to go on."""
    dtype = "<f4" if field.type == "float" else "<f8"
    if wire.wire_type == LENGTH:
        chunks.append(reader.packed_array(wire, dtype))
    elif wire.wire_type == wire_type_of(field):
        values, pos = reader.unpacked_run(wire, end, dtype)
        chunks.append(values)
    return pos


def _decode_scalars(reader: WireReader, wire, field: FieldSpec) -> list[Any]:
    """The values one wire field holds for a scalar or enum field (several if packed); none
    when the wire type does not fit the field (protobuf then treats it as unknown)."""
    expected, found = wire_type_of(field), wire.wire_type
    packed = found == LENGTH and field.repeated and expected != LENGTH
    if found == expected == LENGTH:
        data = reader.payload(wire)
        return [data if field.type == "bytes" else data.decode("utf-8", errors="replace")]
    if found == expected == VARINT or (packed and expected == VARINT):
        numbers = [wire.value] if found == VARINT else reader.packed_varints(wire)
        values = [_varint_value(field, number) for number in numbers]
        return [value for value in values if value is not None]
    if found == expected:
        return [_fixed_value(field, struct.unpack_from(_FIXED_FORMATS[field.type], reader.buf,
                                                       wire.start)[0])]
    if packed:
        array = reader.packed_array(wire, _FIXED_FORMATS[field.type])
        return [_fixed_value(field, value) for value in array.tolist()]
    return []


def _fixed_value(field: FieldSpec, value: Any) -> Any:
    return float32_canonical(value) if field.type == "float" else value


def _varint_value(field: FieldSpec, value: int) -> Any:
    """A varint's value as the field's type; None for an enum number the enum does not have."""
    kind = field.type
    if field.kind == "enum":
        name = field.enum.names.get(signed(value, 32))
        return Identifier(name) if name is not None else None
    if kind == "bool":
        return value != 0
    if kind == "int32":
        return signed(value, 32)
    if kind == "int64":
        return signed(value, 64)
    if kind == "uint32":
        return value & 0xFFFFFFFF
    if kind == "sint32":
        return zigzag_decode(value & 0xFFFFFFFF)
    if kind == "sint64":
        return zigzag_decode(value)
    return value


def encode(message: Message) -> bytes:
    """The protobuf binary of a typed tree."""
    writer = WireWriter()
    _encode(message, writer)
    return writer.getvalue()


def _encode(message: Message, writer: WireWriter) -> None:
    spec = message.spec
    if spec is None:
        raise TypeError("only typed messages can be encoded; type the tree first")
    for field in spec.fields.values():
        if field.required and not message.has(field.name):
            raise ValueError(f"{spec.name} needs '{field.name}' to be encoded")
    for field in sorted((spec.fields[name] for name in message.names()), key=_number):
        values = message.all(field.name) if field.repeated else [message.get(field.name)]
        if field.array:
            dtype = "<f4" if field.type == "float" else "<f8"
            if field.packed:
                writer.packed_array(field.number, values, dtype)
            else:
                writer.unpacked_array(field.number, values, dtype)
        elif field.kind == "message":
            for value in values:
                inner = WireWriter()
                _encode(value, inner)
                writer.message_field(field.number, inner)
        elif field.packed and wire_type_of(field) == VARINT:
            writer.packed_varints(field.number, [_varint_of(field, value) for value in values])
        elif field.packed:
            writer.packed_array(field.number, np.array(values), _FIXED_FORMATS[field.type])
        else:
            for value in values:
                _encode_scalar(writer, field, value)


def _number(field: FieldSpec) -> int:
    return field.number


def _varint_of(field: FieldSpec, value: Any) -> int:
    if field.kind == "enum":
        return field.enum.values[value]
    if field.type in ("sint32", "sint64"):
        return zigzag_encode(value)
    return int(value)


def _encode_scalar(writer: WireWriter, field: FieldSpec, value: Any) -> None:
    wire_type = wire_type_of(field)
    if wire_type == VARINT:
        writer.varint_field(field.number, _varint_of(field, value))
    elif wire_type == LENGTH:
        writer.bytes_field(field.number, value if isinstance(value, bytes)
                           else value.encode("utf-8"))
    else:
        writer.fixed_field(field.number, value, _FIXED_FORMATS[field.type])


# -- blobs --------------------------------------------------------------------------------------
def blob_shape(blob: Message) -> tuple[int, ...]:
    """A BlobProto's shape: `shape { dim }` if given, else the legacy (num, channels, height,
    width), as Caffe reads them (absent legacy fields count as 0)."""
    if blob.has("shape"):
        return tuple(blob.shape.dim)
    return (blob.num, blob.channels, blob.height, blob.width)


def blob_to_array(blob: Message, where: str = "") -> np.ndarray:
    """A BlobProto's values as an array of its shape: float32 from `data`, float64 from
    `double_data`. DataError (prefixed with `where`, e.g. the file, layer and blob) if the blob
    has more than MAX_BLOB_AXES axes (Caffe's own limit), a negative dimension, or another number
    of values than its shape needs; the size is counted in Python integers, so dimensions whose
    product overflows 64 bits are reported as they are, and nothing is allocated for them."""
    shape = blob_shape(blob)
    prefix = f"{where}: " if where else (f"{blob.file}: " if blob.file else "")
    if len(shape) > MAX_BLOB_AXES:
        raise DataError(f"{prefix}blob has {len(shape)} axes; Caffe allows at most "
                        f"{MAX_BLOB_AXES}")
    if any(dim < 0 for dim in shape):
        raise DataError(f"{prefix}blob shape {shape} has a negative dimension")
    values = blob.all("data") if blob.has("data") or not blob.has("double_data") \
        else blob.all("double_data")
    count = math.prod(shape)
    if values.size != count:
        raise DataError(f"{prefix}blob of shape {shape} needs {count} values but holds "
                        f"{values.size}")
    return values.reshape(shape)


def array_to_blob(array: np.ndarray, legacy: bool = False) -> Message:
    """A BlobProto holding `array`: float64 arrays in `double_data`, others as float32 `data`.
    `legacy=True` writes num/channels/height/width (up to 4 axes, padded with leading 1s, as
    Caffe's mean files are) instead of `shape`."""
    array = np.asarray(array)
    blob = message_spec("BlobProto").new()
    if legacy:
        if array.ndim > 4:
            raise ValueError(f"a legacy blob has at most 4 axes, not {array.ndim}")
        num, channels, height, width = (1,) * (4 - array.ndim) + array.shape
        blob.set("num", num)
        blob.set("channels", channels)
        blob.set("height", height)
        blob.set("width", width)
    else:
        blob.set("shape", message_spec("BlobShape").new(dim=list(array.shape)))
    if array.dtype == np.float64:
        blob.set("double_data", array.reshape(-1))
    else:
        blob.set("data", array.astype(np.float32).reshape(-1))
    return blob
