"""The message tree that both protobuf encodings read into and write from.

A `Message` holds its fields by name, in the order each name first appeared; every field keeps a
list of values and, beside it, the 1-based source line of each value (0 when the tree came from
binary or from code). Values are Python scalars (int, float, bool, str, bytes), `Identifier`
(a bare word in the text format: an enum value, `true`, `inf`), nested `Message`s, or, for the
few fields a schema marks as arrays (blob data, Datum float_data), one numpy array.

Untyped trees (straight from the text parser) are read with `all`, `get`, `has`, `line_of`.
Typed trees (a `spec` from caffe_schema attached) also answer attribute reads the way protobuf
does: `layer.convolution_param.kernel_size` is the list of values, a singular field its value,
an absent field its default (an absent message field reads as an empty message that is not
attached to the tree). Reads hand out new lists; change a tree with `set`, `add` and `remove`,
which on a typed message check the value against the field.
"""
from __future__ import annotations

import math
from typing import Any, Iterator

import numpy as np


class Identifier(str):
    """A bare word from the text format (enum value, true/false, inf/nan), written unquoted."""

    def __repr__(self) -> str:
        return f"Identifier({str.__repr__(self)})"


class Message:
    """An ordered set of named fields, each a list of values with their source lines."""

    __slots__ = ("_fields", "_spec", "_line", "_file")

    def __init__(self, spec: Any = None, line: int = 0, file: str | None = None):
        self._fields: dict[str, tuple[list, list[int]]] = {}
        self._spec, self._line, self._file = spec, line, file

    # -- where it came from --------------------------------------------------------------------
    @property
    def spec(self) -> Any:
        """The caffe_schema MessageSpec of a typed message; None for an untyped one."""
        return self._spec

    @property
    def type_name(self) -> str | None:
        return self._spec.name if self._spec is not None else None

    @property
    def line(self) -> int:
        """The line where the message opens (0 when it did not come from text)."""
        return self._line

    @property
    def file(self) -> str | None:
        return self._file

    def line_of(self, name: str, index: int = 0) -> int:
        """The line of value `index` of field `name`; the message's own line if it is absent."""
        entry = self._fields.get(name)
        if entry is None or not entry[1]:
            return self._line
        return entry[1][min(index, len(entry[1]) - 1)]

    # -- reading -------------------------------------------------------------------------------
    def has(self, name: str) -> bool:
        return name in self._fields

    def names(self) -> list[str]:
        """The names of the fields present, in order of first appearance."""
        return list(self._fields)

    def items(self) -> Iterator[tuple[str, list, list[int]]]:
        """(name, values, lines) for every field present."""
        for name, (values, lines) in self._fields.items():
            yield name, values, lines

    def all(self, name: str) -> Any:
        """Every value of `name` (an empty list when absent); an array field's numpy array."""
        entry = self._fields.get(name)
        field = self._field_spec(name) if self._spec is not None else None
        if field is not None and field.array:
            return entry[0][0] if entry else np.empty(0, dtype=field.dtype)
        return list(entry[0]) if entry else []

    def get(self, name: str, default: Any = None) -> Any:
        """The last value of `name` (protobuf's rule for a singular field given twice)."""
        entry = self._fields.get(name)
        return entry[0][-1] if entry else default

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        spec = self._spec
        if spec is None:
            raise AttributeError(f"untyped message has no attribute {name!r}; read its fields "
                                 "with .get(name), .all(name) or .has(name)")
        field = self._field_spec(name)
        entry = self._fields.get(name)
        if field.repeated:
            return self.all(name)
        if entry is not None:
            return entry[0][-1]
        if field.kind == "message":
            return Message(field.message_spec, self._line, self._file)
        return field.default

    # -- writing -------------------------------------------------------------------------------
    def set(self, name: str, value: Any, line: int = 0) -> None:
        """Replace every value of `name` with `value` (a list for a typed repeated field)."""
        field = self._field_spec(name) if self._spec is not None else None
        self._fields.pop(name, None)
        for item in value if field is not None and field.repeated and not field.array else [value]:
            self.add(name, item, line)

    def add(self, name: str, value: Any, line: int = 0) -> None:
        """Append a value to field `name` (checked against the schema when typed)."""
        if self._spec is not None:
            field = self._field_spec(name)
            value = field.coerce(value)
            if field.array:
                self._fields[name] = ([value], [line])
                return
        self.append_raw(name, value, line)

    def append_raw(self, name: str, value: Any, line: int = 0) -> None:
        """Append without checking: for the parser and decoders, which have checked already."""
        entry = self._fields.get(name)
        if entry is None:
            self._fields[name] = ([value], [line])
        else:
            entry[0].append(value)
            entry[1].append(line)

    def replace_raw(self, name: str, values: list, lines: list[int]) -> None:
        """Put `values` (unchecked) in place of field `name`, keeping its position if present."""
        self._fields[name] = (list(values), list(lines))

    def remove(self, name: str) -> None:
        self._fields.pop(name, None)

    def copy(self) -> Message:
        """A deep copy (nested messages and arrays copied; lines and spec kept)."""
        clone = Message(self._spec, self._line, self._file)
        for name, (values, lines) in self._fields.items():
            clone._fields[name] = ([_copy_value(value) for value in values], list(lines))
        return clone

    def _field_spec(self, name: str) -> Any:
        try:
            return self._spec.field(name)
        except KeyError as err:
            raise AttributeError(err.args[0]) from None

    # -- comparing -----------------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        """Same fields with the same values; lines, files and field order between names are not
        compared (they carry no meaning in protobuf); NaN equals NaN."""
        if not isinstance(other, Message):
            return NotImplemented
        if self.type_name != other.type_name or self._fields.keys() != other._fields.keys():
            return False
        return all(_same_values(values, other._fields[name][0])
                   for name, (values, _) in self._fields.items())

    __hash__ = None

    def __repr__(self) -> str:
        kind = self.type_name or "Message"
        label = f" name={self.get('name')!r}" if isinstance(self.get("name"), str) else ""
        where = f" line {self._line}" if self._line else ""
        return f"<{kind}{label}{where}: {', '.join(self._fields)}>"


def _copy_value(value: Any) -> Any:
    if isinstance(value, Message):
        return value.copy()
    if isinstance(value, np.ndarray):
        return value.copy()
    return value


def _same_values(left: list, right: list) -> bool:
    return len(left) == len(right) and all(_same(a, b) for a, b in zip(left, right))


def _same(left: Any, right: Any) -> bool:
    if isinstance(left, np.ndarray) or isinstance(right, np.ndarray):
        if not (isinstance(left, np.ndarray) and isinstance(right, np.ndarray)):
            return False
        return (left.dtype == right.dtype and left.shape == right.shape
                and bool(np.array_equal(left, right, equal_nan=left.dtype.kind == "f")))
    if type(left) is not type(right):
        return False
    if isinstance(left, float) and math.isnan(left):
        return math.isnan(right)
    return left == right
