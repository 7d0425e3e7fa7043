"""The `protobuf` package as an outside oracle for the wire and text formats (tests only).

`message_class(name)` builds, at run time, protobuf message classes for Caffe's messages from
caffe_schema's tables (descriptor_pb2, no .proto file, no protoc). The classes then encode and
parse with Google's own code, which is what the tests compare our codec against. Importing this
module fails when protobuf is missing; tests import it through pytest.importorskip.
"""
from __future__ import annotations

from functools import lru_cache

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from net.formats.caffe_schema import ENUMS, MESSAGES

_FIELD = descriptor_pb2.FieldDescriptorProto
_SCALAR_TYPES = {
    "double": _FIELD.TYPE_DOUBLE, "float": _FIELD.TYPE_FLOAT, "int32": _FIELD.TYPE_INT32,
    "int64": _FIELD.TYPE_INT64, "uint32": _FIELD.TYPE_UINT32, "uint64": _FIELD.TYPE_UINT64,
    "sint32": _FIELD.TYPE_SINT32, "sint64": _FIELD.TYPE_SINT64,
    "fixed32": _FIELD.TYPE_FIXED32, "fixed64": _FIELD.TYPE_FIXED64,
    "sfixed32": _FIELD.TYPE_SFIXED32, "sfixed64": _FIELD.TYPE_SFIXED64,
    "bool": _FIELD.TYPE_BOOL, "string": _FIELD.TYPE_STRING, "bytes": _FIELD.TYPE_BYTES,
}
_LABELS = {"optional": _FIELD.LABEL_OPTIONAL, "repeated": _FIELD.LABEL_REPEATED,
           "required": _FIELD.LABEL_REQUIRED}


@lru_cache(maxsize=1)
def _pool() -> descriptor_pool.DescriptorPool:
    proto = descriptor_pb2.FileDescriptorProto(name="caffe_oracle.proto", package="caffe",
                                               syntax="proto2")
    for enum_name, enum in ENUMS.items():
        if "." not in enum_name:
            _add_enum(proto.enum_type.add(), enum_name, enum.values)
    for spec in MESSAGES.values():
        message = proto.message_type.add(name=spec.name)
        for enum_name, enum in ENUMS.items():
            owner, _, short = enum_name.rpartition(".")
            if owner == spec.name:
                _add_enum(message.enum_type.add(), short, enum.values)
        for field in spec.fields.values():
            entry = message.field.add(name=field.name, number=field.number,
                                      label=_LABELS[field.label])
            if field.kind == "scalar":
                entry.type = _SCALAR_TYPES[field.type]
            else:
                entry.type = _FIELD.TYPE_ENUM if field.kind == "enum" else _FIELD.TYPE_MESSAGE
                entry.type_name = f".caffe.{field.type}"
            if field.packed:
                entry.options.packed = True
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return pool


def _add_enum(enum, name: str, values: dict[str, int]) -> None:
    enum.name = name
    for value_name, number in values.items():
        enum.value.add(name=value_name, number=number)


def message_class(name: str):
    """The protobuf class of Caffe message `name`."""
    return message_factory.GetMessageClass(_pool().FindMessageTypeByName(f"caffe.{name}"))
