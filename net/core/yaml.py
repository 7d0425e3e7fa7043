"""YAML with line numbers: PyYAML's safe loader building mappings and lists that remember where
each key and item stood, so every later error can name the line.

This is the only module that calls PyYAML. It also holds the two small helpers every located
error uses: `line_of` (the line of a key) and `suggest` ("did you mean ...").

Where it departs from PyYAML's safe loader, on purpose:
- `1e-3`, `5e-4` and `5.0e4` are numbers, as in YAML 1.2 and in Caffe files (YAML 1.1 wants a
  dot and a signed exponent).
- A key given twice in one mapping is an error; a key that overrides one brought in by a merge
  (`<<: *defaults`) is not (that is what a merge is for).
- Hostile files: a file may write at most MAX_NODES values (keys and aliases included; PyYAML
  builds about 1 kB and spends tens of microseconds on each, so this bounds the time and memory
  any file costs), aliases may not expand to more than MAX_VALUES values in all (a "billion
  laughs" file is a few lines), nesting stops at MAX_DEPTH levels, and text that YAML cannot
  read (control characters) is one located error, never a traceback.
"""
from __future__ import annotations

import difflib
import re
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


MAX_NODES = 250_000         # values written in a config: a gate takes about 22, so 11,000 gates
MAX_VALUES = 1_000_000      # values a config may hold once its aliases are expanded
MAX_DEPTH = 100             # levels of nesting (real configs use fewer than 10)
INDENTATION_HINT = ("; check the indentation: the keys of one mapping start in the same column, "
                    "and each item of a list starts with '- '")


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, building LineDict/LineList so errors can name lines, and refusing
    a file that writes more than MAX_NODES values before it builds them."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self.nodes = 0

    def compose_node(self, parent: Any, index: Any) -> yaml.Node:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise ConfigError(f"the YAML holds more than {MAX_NODES:,} values (keys included): "
                              "refused (a config of 10,000 gates has about 220,000)", self.name,
                              self.peek_event().start_mark.line + 1)
        return super().compose_node(parent, index)


_Loader.add_implicit_resolver(     # YAML 1.2's exponents: 1e-3, 5E+4, 5.0e4, .5e3 (1.1 wants
    "tag:yaml.org,2002:float",     # a dot and a signed exponent)
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+.0123456789"))


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    explicit = sum(k.tag != "tag:yaml.org,2002:merge" for k, _ in node.value)
    loader.flatten_mapping(node)
    merged = len(node.value) - explicit     # flatten_mapping puts merged pairs first
    mapping = LineDict()
    mapping.line = node.start_mark.line + 1
    from_merge: set = set()
    for index, (key_node, value_node) in enumerate(node.value):
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        try:
            duplicate = key in mapping
        except TypeError:
            raise ConfigError(f"a mapping key must be a plain value, not {short_repr(key)}",
                              loader.name, line) from None
        if duplicate and key not in from_merge:
            raise ConfigError(f"duplicate key {short_repr(key)} (first on line "
                              f"{mapping.key_lines[key]})", loader.name, line)
        if index < merged:
            from_merge.add(key)
        else:
            from_merge.discard(key)
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
    """Parse YAML text safely into LineDict/LineList; every problem becomes one ConfigError."""
    loader = None
    try:
        loader = _Loader(text)               # rejects control characters already
        loader.name = file
        data = loader.get_single_data()
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
        hint = INDENTATION_HINT if any(words in str(err.problem) for words in (
            "mapping values are not allowed", "expected <block end>", "did not find expected",
            "could not find expected ':'")) else ""
        raise ConfigError(f"YAML syntax error: {err.problem or err}{hint}", file, line) from None
    except yaml.reader.ReaderError as err:
        line = text.count("\n", 0, err.position) + 1
        raise ConfigError(f"YAML cannot read character U+{err.character:04X} (position "
                          f"{err.position}): {err.reason}", file, line) from None
    except RecursionError:
        raise ConfigError(f"the YAML is nested too deeply (at most {MAX_DEPTH} levels)",
                          file) from None
    except yaml.YAMLError as err:
        raise ConfigError(f"YAML error: {short_repr(str(err), 200)}", file) from None
    finally:
        if loader is not None:
            loader.dispose()
    _check_size(data, file)
    return data


def _check_size(data: Any, file: str) -> None:
    """Refuse data whose aliases expand to more than MAX_VALUES values or that nests deeper than
    MAX_DEPTH. Sizes are counted once per distinct object, so this is linear in the file. The
    loader has refused more than MAX_NODES (< MAX_VALUES) written values already, so a total
    past MAX_VALUES comes from aliases, as the message says."""
    sizes: dict[int, int] = {}
    stack = [(data, 1, False)]
    while stack:
        value, depth, done = stack.pop()
        if not isinstance(value, (dict, list)):
            continue
        if depth > MAX_DEPTH:
            raise ConfigError(f"the YAML is nested too deeply (more than {MAX_DEPTH} levels)",
                              file, getattr(value, "line", None) or None)
        children = list(value.values()) if isinstance(value, dict) else value
        if not done:
            if id(value) in sizes:
                continue
            stack.append((value, depth, True))
            stack.extend((child, depth + 1, False) for child in children)
            continue
        total = 1 + sum(sizes.get(id(c), 1) for c in children)
        if total > MAX_VALUES:
            raise ConfigError(f"the YAML's aliases expand to more than {MAX_VALUES:,} values: "
                              "refused (a config never needs that many)", file,
                              getattr(value, "line", None) or None)
        sizes[id(value)] = total


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
