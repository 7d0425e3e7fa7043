"""YAML with line numbers: PyYAML's safe loader building mappings and lists that remember where
each key and item stood, so every later error can name the line.

This is the only module that calls PyYAML. It also holds the two small helpers every located
error uses: `line_of` (the line of a key) and `suggest` ("did you mean ...").
"""
from __future__ import annotations

import difflib
from typing import Any

import yaml

from gates import short_repr

from ..errors import ConfigError


class LineDict(dict):
    """A YAML mapping that remembers its own line and the line of each key (1-based)."""
    line: int = 0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.key_lines: dict[Any, int] = {}

    def line_of(self, key: Any) -> int:
        return self.key_lines.get(key, self.line)


class LineList(list):
    """A YAML sequence that remembers its own line and the line of each item (1-based)."""
    line: int = 0

    def __init__(self, *args):
        super().__init__(*args)
        self.item_lines: list[int] = []


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, building LineDict/LineList so errors can name lines."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    mapping = LineDict()
    mapping.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        try:
            duplicate = key in mapping
        except TypeError:
            raise ConfigError(f"a mapping key must be a plain value, not {key!r}",
                              loader.name, line) from None
        if duplicate:
            raise ConfigError(f"duplicate key {key!r} (first on line {mapping.key_lines[key]})",
                              loader.name, line)
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.key_lines[key] = line
    return mapping


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> LineList:
    items = LineList(loader.construct_object(child, deep=True) for child in node.value)
    items.line = node.start_mark.line + 1
    items.item_lines = [child.start_mark.line + 1 for child in node.value]
    return items


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)
_Loader.add_constructor("tag:yaml.org,2002:seq", _construct_sequence)


def load_yaml(text: str, file: str = "<config>") -> Any:
    """Parse YAML text safely into LineDict/LineList; syntax errors become ConfigError."""
    loader = _Loader(text)
    loader.name = file
    try:
        return loader.get_single_data()
    except ConfigError:
        raise
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        if mark and err.context_mark and mark.line >= len(text.splitlines()):
            mark = err.context_mark  # "found end of file": the unclosed thing is the place
        line = mark.line + 1 if mark else None
        if isinstance(err, yaml.constructor.ConstructorError):
            raise ConfigError(f"YAML tag not allowed: {err.problem} (configs are plain YAML; "
                              "code runs only through `plugins:`)", file, line) from None
        raise ConfigError(f"YAML syntax error: {err.problem or err}", file, line) from None
    except yaml.YAMLError as err:
        raise ConfigError(f"YAML error: {err}", file) from None
    finally:
        loader.dispose()


def line_of(where: Any, key: Any = None) -> int | None:
    """The line of `key` in a LineDict (or of the mapping or list itself), when known."""
    if isinstance(where, LineDict):
        return where.line_of(key) if key is not None else where.line
    if isinstance(where, LineList):
        return where.line
    return None


def describe(value: Any) -> str:
    """What a value is, for "must be ..., got ..." messages."""
    return {dict: "a mapping", LineDict: "a mapping", list: "a list", LineList: "a list",
            str: f"the text {short_repr(value)}", type(None): "nothing"}.get(type(value)) \
        or short_repr(value)


def suggest(name: str, known) -> str:
    """'; did you mean X?' for the closest known name, or ''."""
    close = difflib.get_close_matches(name, [str(k) for k in known], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""
