"""A config mapping written as readable YAML, in the layout of Gatework's own configs.

    text = config_yaml(mapping, comments=["Converted from deploy.prototxt"])

The top-level keys in the order of net.core.config.TOP_LEVEL_KEYS; one line per input,
parameter and data source (a flow mapping), one flow mapping per gate
(wrapped at 100 characters, continuation lines aligned under the first key), the solver as a
block of `key: value` lines. Strings are written plain where YAML reads them back as the same
string, else double-quoted; floats always read back as floats (1e-05 is written 1.0e-05, which
PyYAML's YAML 1.1 resolver needs). Reading the text back with net.core.yaml gives an equal
mapping.
"""
from __future__ import annotations

import json
import math
import re
from typing import Any, Mapping

import yaml

from net.core.config import TOP_LEVEL_KEYS

WIDTH = 100
_PLAIN = re.compile(r"[A-Za-z_./~][A-Za-z0-9_./~+-]*\Z")
_BLOCKS = ("solver",)          # top-level mappings written key per line
_ROWS = ("inputs", "params", "data")   # top-level mappings written one flow mapping per key


def config_yaml(mapping: Mapping[str, Any], comments: list[str] | tuple = ()) -> str:
    """The YAML text of a config mapping (see the module docstring)."""
    lines = [f"# {comment}" if comment else "#" for comment in comments]
    order = {key: index for index, key in enumerate(TOP_LEVEL_KEYS)}
    for key in sorted(mapping, key=lambda name: order.get(name, len(order))):
        value = mapping[key]
        if key in _ROWS and isinstance(value, Mapping):
            lines.append(f"{key}:")
            for name, entry in value.items():
                lines += _wrapped(f"  {scalar(name)}: ", _flow(entry), "    ")
        elif key in _BLOCKS and isinstance(value, Mapping):
            lines.append(f"{key}:")
            lines += [f"  {scalar(name)}: {_flow(item)}" for name, item in value.items()]
        elif key == "gates":
            lines.append("gates:")
            for gate in value:
                lines += _wrapped("  - ", _flow(gate), "     ")
        else:
            lines.append(f"{scalar(key)}: {_flow(value)}")
    return "\n".join(lines) + "\n"


def _wrapped(prefix: str, flow: str, indent: str) -> list[str]:
    """`prefix + flow` broken after commas into lines of at most WIDTH characters."""
    if len(prefix) + len(flow) <= WIDTH or not flow.startswith("{"):
        return [prefix + flow]
    first, *rest = _top_items(flow[1:-1])
    lines, current = [], prefix + "{" + first
    for item in rest:
        if len(current) + len(item) + 3 > WIDTH:       # ", " before it, "," or "}" after
            lines.append(current + ",")
            current = indent + item
        else:
            current += ", " + item
    lines.append(current + "}")
    return lines


def _top_items(text: str) -> list[str]:
    """The comma-separated items of a flow collection's inside, nested ones kept whole."""
    items, depth, start, quoted = [], 0, 0, False
    for index, char in enumerate(text):
        if char == '"' and (index == 0 or text[index - 1] != "\\"):
            quoted = not quoted
        elif not quoted and char in "[{":
            depth += 1
        elif not quoted and char in "]}":
            depth -= 1
        elif not quoted and char == "," and depth == 0:
            items.append(text[start:index].strip())
            start = index + 1
    items.append(text[start:].strip())
    return items


def _flow(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{scalar(key)}: {_flow(item)}" for key, item in value.items()) \
            + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_flow(item) for item in value) + "]"
    return scalar(value)


def scalar(value: Any) -> str:
    """One scalar as YAML that reads back as the same value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float(value)
    text = str(value)
    if _PLAIN.match(text) and yaml.safe_load(text) == text:
        return text
    return json.dumps(text, ensure_ascii=False)


def _float(value: float) -> str:
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    text = repr(value)
    mantissa, _, exponent = text.partition("e")
    if exponent:
        return f"{mantissa if '.' in mantissa else mantissa + '.0'}e{exponent}"
    return text
