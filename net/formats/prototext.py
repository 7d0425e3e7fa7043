"""The protobuf text format (Caffe's .prototxt), without a schema: tokenizer, parser, writer.

What is read:
    name: value            a scalar; `name: [v1, v2]` several at once; repeating a name repeats
    name { ... }           a message; also `name: { ... }`, `name < ... >`, `name: [{...}, {...}]`
    "text" 'text'          strings with C escapes (\\n \\t \\" \\\\ \\' \\ooo octal, \\xhh hex,
                           \\uhhhh), adjacent strings concatenated: "a" "b" is "ab"
    12 -3 0x1F 017         integers (decimal, hex, octal)
    1.5 .5 5. 1e-3 2.5f    floats (a trailing f or F is allowed)
    inf -inf nan           (any case, also `infinity`) kept as Identifier; typed later
    WORD                   identifiers: enum values, true/false, kept as `Identifier`
    # comment              to the end of the line
    , ;                    optional separators after a field
Extensions (`[pkg.ext]: ...`) and Any expansions are refused.

`parse_text(text, file)` returns an untyped `Message`: every value keeps the line of its own
token, every message the line where it opens. Strings that are valid UTF-8 become str, others
bytes. Errors are `ConfigError`s reading `FILE:LINE: problem`. Tokens are read one at a time,
never held as a list, and a file may hold at most MAX_VALUES values (each scalar and each
message counts one; a Caffe net has about 12 a layer: 5,000 layers take 60,000) and nest
MAX_DEPTH messages deep: the tree a file can make stays bounded whatever its size.

`format_text(message)` writes Caffe's style: two-space indent, `name {` blocks, one `name: value`
line per value, strings double-quoted and escaped, floats in the shortest form that reads back
to the same number. Parsing what it writes gives back an equal tree.
"""
from __future__ import annotations

import math
import re
from typing import Any, Iterator, NamedTuple

import numpy as np

from net.errors import ConfigError

from .prototree import Identifier, Message

MAX_DEPTH = 100
MAX_VALUES = 250_000

_TOKEN = re.compile(r"""
    (?P<space>[ \t\r\f\v]+)
  | (?P<newline>\n)
  | (?P<comment>\#[^\n]*)
  | (?P<number>(?:0[xX][0-9A-Fa-f]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?[fF]?)(?![\w.]))
  | (?P<bad_number>(?:\d|\.\d)[\w.+-]*)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<open_string>["'])
  | (?P<symbol>[{}<>\[\]:,;\-/.])
""", re.VERBOSE)
_SIMPLE_ESCAPES = {"n": 10, "t": 9, "r": 13, "a": 7, "b": 8, "f": 12, "v": 11,
                   "\\": 92, "'": 39, '"': 34, "?": 63}
_ESCAPE = re.compile(r"\\(?:([0-7]{1,3})|x([0-9A-Fa-f]{1,2})|u([0-9A-Fa-f]{4})"
                     r"|U([0-9A-Fa-f]{8})|(.))", re.DOTALL)
_FLOAT_WORDS = {"inf", "infinity", "nan"}


class Token(NamedTuple):
    kind: str       # 'number', 'ident', 'string', 'symbol', 'end'
    text: str
    line: int


def tokenize(text: str, file: str | None = None) -> list[Token]:
    """The tokens of `text`, each with its 1-based line; comments and spaces dropped."""
    return list(tokens(text, file))


def tokens(text: str, file: str | None = None) -> Iterator[Token]:
    """The tokens of `text` one at a time, as `tokenize` lists them, ending with an 'end'
    token; ConfigError at the line of the first character that starts no token."""
    line, pos = 1, 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise ConfigError(f"unexpected character {text[pos]!r}", file, line)
        kind, value = match.lastgroup, match.group()
        if kind == "newline":
            line += 1
        elif kind == "bad_number":
            raise ConfigError(f"invalid number {value!r}", file, line)
        elif kind == "open_string":
            raise ConfigError("string not closed before the end of the line", file, line)
        elif kind not in ("space", "comment"):
            yield Token(kind, value, line)
        pos = match.end()
    yield Token("end", "", line)


def unescape(literal: str, file: str | None = None, line: int = 0) -> bytes:
    """The bytes of a quoted string token (quotes included), with C escapes resolved."""
    body, out, pos = literal[1:-1], bytearray(), 0
    for match in _ESCAPE.finditer(body):
        out += body[pos:match.start()].encode("utf-8")
        octal, hex_byte, short_unicode, long_unicode, other = match.groups()
        if octal:
            if int(octal, 8) > 255:
                raise ConfigError(f"octal escape \\{octal} is larger than a byte", file, line)
            out.append(int(octal, 8))
        elif hex_byte:
            out.append(int(hex_byte, 16))
        elif short_unicode or long_unicode:
            code = int(short_unicode or long_unicode, 16)
            if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                raise ConfigError(f"\\u escape {code:#x} is not a character", file, line)
            out += chr(code).encode("utf-8")
        elif other in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[other])
        else:
            raise ConfigError(f"unknown escape sequence \\{other}", file, line)
        pos = match.end()
    out += body[pos:].encode("utf-8")
    return bytes(out)


def parse_number(text: str) -> int | float:
    """A number token's value: hex and octal (leading 0) integers, decimals, floats."""
    if text[:2] in ("0x", "0X"):
        return int(text, 16)
    if re.fullmatch(r"0[0-7]+", text):
        return int(text, 8)
    if re.fullmatch(r"\d+", text):
        if len(text) > 1 and text[0] == "0":
            raise ValueError(f"invalid octal number {text!r}")
        return int(text)
    return float(text.rstrip("fF"))


class _Parser:
    """Recursive descent over a stream of tokens with one token of lookahead (`current`)."""

    def __init__(self, text: str, file: str | None):
        self.file = file
        self.stream = tokens(text, file)
        self.current = next(self.stream)
        self.values = 0

    def error(self, message: str, token: Token | None = None) -> ConfigError:
        return ConfigError(message, self.file, (token or self.peek()).line)

    def peek(self) -> Token:
        return self.current

    def take(self) -> Token:
        token = self.current
        if token.kind != "end":
            self.current = next(self.stream)
        return token

    def accept(self, symbol: str) -> bool:
        token = self.current
        if token.kind == "symbol" and token.text == symbol:
            self.take()
            return True
        return False

    def add(self, into: Message, name: str, value: Any, line: int) -> None:
        """Append one value to `into`, counting it against MAX_VALUES."""
        self.values += 1
        if self.values > MAX_VALUES:
            raise ConfigError(f"more than {MAX_VALUES:,} values: refused (a Caffe net of "
                              "5,000 layers has about 60,000)", self.file, line)
        into.append_raw(name, value, line)

    def describe(self, token: Token) -> str:
        return "the end of the file" if token.kind == "end" else repr(token.text)

    def message(self, into: Message, close: str | None, opened: Token | None, depth: int):
        """Fields until `close` (or the end of the file at the top level)."""
        if depth > MAX_DEPTH:
            raise self.error(f"messages nested deeper than {MAX_DEPTH}", opened)
        while True:
            token = self.peek()
            if close is None and token.kind == "end":
                return
            if close is not None and token.kind == "symbol" and token.text == close:
                self.take()
                return
            if token.kind == "end":
                raise self.error(f"'{opened.text}' opened on line {opened.line} is never closed")
            self.field(into, depth)
            self.accept(",") or self.accept(";")

    def field(self, into: Message, depth: int) -> None:
        name = self.take()
        if name.kind == "symbol" and name.text == "[":
            raise self.error("extension and Any fields ([...]) are not supported", name)
        if name.kind != "ident":
            raise self.error(f"expected a field name, got {self.describe(name)}", name)
        colon = self.accept(":")
        token = self.peek()
        if token.kind == "symbol" and token.text in "{<":
            self.add(into, name.text, self.block(depth), name.line)
        elif token.kind == "symbol" and token.text == "[":
            self.take()
            self.list_values(into, name.text, depth, colon, token)
        elif not colon:
            raise self.error(f"expected ':' or '{{' after field name '{name.text}', "
                             f"got {self.describe(token)}")
        else:
            value, line = self.scalar()
            self.add(into, name.text, value, line)

    def block(self, depth: int) -> Message:
        opened = self.take()
        child = Message(line=opened.line, file=self.file)
        self.message(child, "}" if opened.text == "{" else ">", opened, depth + 1)
        return child

    def list_values(self, into: Message, name: str, depth: int, colon: bool, opened: Token):
        if self.accept("]"):
            return
        while True:
            token = self.peek()
            if token.kind == "symbol" and token.text in "{<":
                self.add(into, name, self.block(depth), token.line)
            elif not colon:
                raise self.error(f"a list of values needs ':' after field name '{name}'", token)
            else:
                value, line = self.scalar()
                self.add(into, name, value, line)
            if self.accept("]"):
                return
            if not self.accept(","):
                if self.peek().kind == "end":
                    raise self.error(f"'[' opened on line {opened.line} is never closed")
                raise self.error(f"expected ',' or ']' in the list of '{name}', "
                                 f"got {self.describe(self.peek())}")

    def scalar(self) -> tuple[Any, int]:
        token = self.take()
        if token.kind == "string":
            data = unescape(token.text, self.file, token.line)
            while self.peek().kind == "string":
                following = self.take()
                data += unescape(following.text, self.file, following.line)
            try:
                return data.decode("utf-8"), token.line
            except UnicodeDecodeError:
                return data, token.line
        if token.kind == "ident":
            return Identifier(token.text), token.line
        negative = token.kind == "symbol" and token.text == "-"
        if negative:
            token = self.take()
            if token.kind == "ident" and token.text.lower() in _FLOAT_WORDS:
                return Identifier("-" + token.text), token.line
        if token.kind == "number":
            try:
                value = parse_number(token.text)
            except ValueError as err:
                raise self.error(str(err), token) from None
            return (-value if negative else value), token.line
        expected = "a number after '-'" if negative else "a value"
        raise self.error(f"expected {expected}, got {self.describe(token)}", token)


def parse_text(text: str, file: str | None = None) -> Message:
    """Parse protobuf text into an untyped Message (its fields keep their lines)."""
    root = Message(line=1, file=file)
    _Parser(text, file).message(root, None, None, 0)
    return root


# -- writing ------------------------------------------------------------------------------------
_PRINTABLE = {byte: chr(byte) for byte in range(32, 127)}
_PRINTABLE.update({ord('"'): '\\"', ord("\\"): "\\\\", 10: "\\n", 13: "\\r", 9: "\\t"})


def quote(value: str | bytes) -> str:
    """A double-quoted string literal: a str keeps its non-ASCII characters; other bytes outside
    printable ASCII become octal escapes."""
    if isinstance(value, str):
        return '"' + "".join(char if ord(char) > 127 else _escape_byte(ord(char))
                             for char in value) + '"'
    return '"' + "".join(_escape_byte(byte) for byte in value) + '"'


def _escape_byte(byte: int) -> str:
    return _PRINTABLE.get(byte) or f"\\{byte:03o}"


def format_float(value: float) -> str:
    """The shortest text that reads back to `value` (and still reads as a float)."""
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return repr(value)


def format_scalar(value: Any) -> str:
    if isinstance(value, Identifier):
        return str(value)
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return format_float(float(value))
    if isinstance(value, (str, bytes)):
        return quote(value)
    raise TypeError(f"cannot write {type(value).__name__} in protobuf text")


def _typed_float(value: float) -> str:
    """A typed float field's value as Caffe prints it: whole numbers without '.0' (-0.0 keeps
    its sign, which an integer would lose)."""
    negative_zero = value == 0 and math.copysign(1.0, value) < 0
    if value.is_integer() and abs(value) < 1e16 and not negative_zero:
        return str(int(value))
    return format_float(value)


def _array_texts(array: np.ndarray, typed: bool) -> list[str]:
    """Each element in the shortest form for the array's own precision."""
    if array.dtype == np.float32:
        texts = [str(value) for value in array]
        return [text[:-2] if typed and text.endswith(".0") and "e" not in text
                and text != "-0.0" else text for text in texts]
    return [_typed_float(value) if typed else format_float(value) for value in array.tolist()]


def format_text(message: Message, indent: int = 0) -> str:
    """The text of `message` in Caffe's layout (fields in the tree's order). In a typed tree
    whole floats are written like integers (`lr_mult: 1`), as Caffe does; the schema reads them
    back as floats. An untyped tree keeps `1.0`, so that it too reads back unchanged."""
    lines: list[str] = []
    _format_into(message, indent, lines)
    return "".join(lines)


def _format_into(message: Message, indent: int, lines: list[str]) -> None:
    pad = "  " * indent
    typed = message.spec is not None
    for name, values, _ in message.items():
        for value in values:
            if isinstance(value, Message):
                lines.append(f"{pad}{name} {{\n")
                _format_into(value, indent + 1, lines)
                lines.append(f"{pad}}}\n")
            elif isinstance(value, np.ndarray):
                lines.extend(f"{pad}{name}: {text}\n" for text in _array_texts(value, typed))
            elif typed and isinstance(value, float):
                lines.append(f"{pad}{name}: {_typed_float(value)}\n")
            else:
                lines.append(f"{pad}{name}: {format_scalar(value)}\n")
