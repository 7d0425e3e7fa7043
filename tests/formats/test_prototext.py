"""The protobuf text format without a schema: every construct with its line, errors that start
FILE:LINE:, and the writer's output parsing back to an equal tree."""
from __future__ import annotations

import math

import pytest
from hypothesis import given, settings, strategies as st

from net.errors import ConfigError
from net.formats import prototext
from net.formats.prototext import format_text, parse_text, tokenize
from net.formats.prototree import Identifier, Message
from tests.helpers import examples

CONSTRUCTS = """\
# a comment line
name: "net"  # a trailing comment
layer {
  name: 'conv'
  top: "a" top: "b"; bottom: "c",
}
layer: { name: "colon before the brace" }
layer < name: "angle brackets" >
dim: [1, 2,
      3]
shape: [{dim: 4}, {dim: 5}]
text: "one " 'two'
  " three"
word: MAX
"""


def test_messages_repeated_fields_and_lines():
    root = parse_text(CONSTRUCTS, "net.prototxt")
    assert root.names() == ["name", "layer", "dim", "shape", "text", "word"]
    assert root.get("name") == "net" and root.line_of("name") == 2
    layers = root.all("layer")
    assert [layer.get("name") for layer in layers] == [
        "conv", "colon before the brace", "angle brackets"]
    assert [layer.line for layer in layers] == [3, 7, 8]
    first = layers[0]
    assert first.all("top") == ["a", "b"] and first.all("bottom") == ["c"]
    assert [first.line_of("top", 0), first.line_of("top", 1), first.line_of("name")] == [5, 5, 4]
    assert root.all("dim") == [1, 2, 3]
    assert [root.line_of("dim", index) for index in range(3)] == [9, 9, 10]
    assert [shape.get("dim") for shape in root.all("shape")] == [4, 5]
    assert root.get("text") == "one two three" and root.line_of("text") == 12
    assert root.get("word") == "MAX" and isinstance(root.get("word"), Identifier)


@pytest.mark.parametrize("literal, value", [
    (r'"tab\there"', "tab\there"), (r'"new\nline"', "new\nline"), (r'"q\"uote"', 'q"uote'),
    (r"'it\'s'", "it's"), (r'"back\\slash"', "back\\slash"), (r'"\101\102"', "AB"),
    (r'"\x41\x4a"', "AJ"), (r'"\u00e9"', "\u00e9"), (r'"\a\b\f\v\r\?"', "\a\b\f\v\r?"),
    ('"caf\u00e9"', "caf\u00e9"), (r'"\377"', b"\xff"), (r'"\0"', "\0"),
])
def test_string_escapes(literal, value):
    assert parse_text(f"s: {literal}").get("s") == value


@pytest.mark.parametrize("literal, value", [
    ("42", 42), ("-7", -7), ("- 7", -7), ("0x1F", 31), ("0X10", 16), ("017", 15), ("0", 0),
    ("1.5", 1.5), (".5", 0.5), ("5.", 5.0), ("1e-3", 0.001), ("2E+2", 200.0), ("2.5f", 2.5),
    ("3F", 3.0), ("-0.25", -0.25), ("18446744073709551615", 2**64 - 1),
])
def test_numbers(literal, value):
    parsed = parse_text(f"x: {literal}").get("x")
    assert parsed == value and type(parsed) is type(value)


@pytest.mark.parametrize("literal", ["inf", "-inf", "nan", "Infinity", "-NaN", "INF"])
def test_infinity_and_nan_stay_words_until_typed(literal):
    value = parse_text(f"x: {literal}").get("x")
    assert isinstance(value, Identifier) and value == literal


@pytest.mark.parametrize("text, line, fragment", [
    ('name: "unclosed\n', 1, "string not closed"),
    ("layer {\n  name: 1\n", 3, "'{' opened on line 1 is never closed"),
    ("a: 1\nb 2\n", 2, "expected ':' or '{' after field name 'b'"),
    ("a: 1\n}\n", 2, "expected a field name, got '}'"),
    ("a: 1.2.3\n", 1, "invalid number '1.2.3'"),
    ("a: 12abc\n", 1, "invalid number '12abc'"),
    ("a: 08\n", 1, "invalid octal number '08'"),
    ("\n\na: -word\n", 3, "expected a number after '-'"),
    ('a: "bad \\q escape"\n', 1, "unknown escape sequence \\q"),
    ('a: "\\777"\n', 1, "larger than a byte"),
    ("a: [1, 2\n", 2, "'[' opened on line 1 is never closed"),
    ("a: [1 2]\n", 1, "expected ',' or ']'"),
    ("[ext.field]: 1\n", 1, "extension and Any fields"),
    ("a: @\n", 1, "unexpected character '@'"),
    ("a:\n", 2, "expected a value, got the end of the file"),
    ("a [1, 2]\n", 1, "a list of values needs ':'"),
])
def test_syntax_errors_name_file_and_line(text, line, fragment):
    with pytest.raises(ConfigError) as err:
        parse_text(text, "bad.prototxt")
    message = str(err.value)
    assert message.startswith(f"bad.prototxt:{line}: "), message
    assert fragment in message
    assert "\n" not in message


def test_nesting_is_bounded():
    deep = "a { " * 150 + "}" * 150
    with pytest.raises(ConfigError, match="nested deeper than 100"):
        parse_text(deep, "deep.prototxt")


@pytest.mark.parametrize("text, line", [
    ("x {}\n" * 11, 11),                          # 3 million of these (9 MB) took 1.3 GB
    ("a: [" + "1, " * 10 + "1]", 1),
    ("a { b: 1 c: 2 }\n" * 4, 4),                 # the 11th value is line 4's `c`
], ids=["empty messages", "a list", "nested"])
def test_a_file_holds_at_most_max_values_values(monkeypatch, text, line):
    monkeypatch.setattr(prototext, "MAX_VALUES", 10)
    with pytest.raises(ConfigError) as info:
        parse_text(text, "big.prototxt")
    assert str(info.value) == (f"big.prototxt:{line}: more than 10 values: refused (a Caffe "
                               "net of 5,000 layers has about 60,000)")
    monkeypatch.setattr(prototext, "MAX_VALUES", 12)
    parse_text(text, "big.prototxt")


def test_tokens_keep_lines_and_drop_comments():
    tokens = tokenize('a: 1 # one\n\nb { c: "x" }\n')
    assert [(token.kind, token.text, token.line) for token in tokens] == [
        ("ident", "a", 1), ("symbol", ":", 1), ("number", "1", 1), ("ident", "b", 3),
        ("symbol", "{", 3), ("ident", "c", 3), ("symbol", ":", 3), ("string", '"x"', 3),
        ("symbol", "}", 3), ("end", "", 4)]


def test_writer_uses_caffes_layout():
    root = parse_text('name: "n" layer { name: "a" param { lr_mult: 1.0 } top: "t" }')
    assert format_text(root) == (
        'name: "n"\n'
        "layer {\n"
        '  name: "a"\n'
        "  param {\n"
        "    lr_mult: 1.0\n"
        "  }\n"
        '  top: "t"\n'
        "}\n")


@pytest.mark.parametrize("value, text", [
    ('q"uote\\back\nline\ttab', r'"q\"uote\\back\nline\ttab"'), ("caf\u00e9", '"caf\u00e9"'),
    (b"\x00\xff\x7f", r'"\000\377\177"'), ("\x01", r'"\001"'), ("it's", "\"it's\""),
])
def test_writer_escapes_strings(value, text):
    message = Message()
    message.append_raw("s", value)
    assert format_text(message) == f"s: {text}\n"
    assert parse_text(format_text(message)).get("s") == value


def test_text_tree_text_tree_round_trip_is_exact():
    floats = [0.1, 1e-05, 1.0, 123456789.125, 5e-324, 1.7976931348623157e308, -0.0, 2.0**-30]
    message = parse_text(CONSTRUCTS)
    for value in floats:
        message.append_raw("f", value)
    message.append_raw("raw", b"\x80\x81")
    text = format_text(message)
    again = parse_text(text)
    assert again == message
    assert format_text(again) == text
    assert [math.copysign(1, value) for value in again.all("f")] == [
        math.copysign(1, value) for value in floats]


def test_equality_ignores_lines_but_not_types():
    assert parse_text("a: 1\n\nb: 2") == parse_text("b: 2 a: 1")
    assert parse_text("a: 1") != parse_text("a: 1.0")
    assert parse_text('a: "MAX"') != parse_text("a: MAX")
    assert parse_text("a: nan") == parse_text("a: nan")


@settings(max_examples=examples(400), deadline=None)
@given(st.text(alphabet=" \n\t{}<>[]:;,\"'\\#-.0123456789abefinxtuU_", max_size=60))
def test_any_text_parses_and_round_trips_or_raises_config_error(text):
    try:
        tree = parse_text(text, "fuzz.prototxt")
    except ConfigError as err:
        assert str(err).startswith("fuzz.prototxt:") and "\n" not in str(err)
        return
    assert parse_text(format_text(tree)) == tree
