"""Reading a config: a YAML file (or a mapping built in Python) -> a validated `NetSpec`.

One parser for the three sections of a config (the net, `data:` and `solver:`) and one way of
validating a key: every settable key is declared as a `gates.Option` (type, default, allowed
values),
on the gate class for gate options and on the spec dataclasses (`net.core.spec`) for the rest,
and `_Parser.settings` checks a mapping against such a table, naming the line of a wrong or
unknown key and suggesting the closest known one. Everything after this module sees specs.
"""
from __future__ import annotations

import os
import stat
import unicodedata
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Mapping

from gates import Option, UnknownGateType, format_shape, gate_class, short_repr

from ..errors import ConfigError
from .fillers import check_filler
from .plugins import load_plugins
from .spec import (DEFAULT_FEEDS, DTYPES, PHASES, SOURCE_KINDS, SOURCE_PATHS, SPLIT_SOURCES,
                   DataSpec, DummyFeedSpec, GateSpec, InputSpec, NetSpec, ParamRule, ParamSpec,
                   SolverConfig, SourceSpec, TransformSpec, settings_of)
from .yaml import LineDict, LineList, describe, line_of, load_yaml, suggest

FORMAT_VERSION = 1
TOP_LEVEL_KEYS = ("version", "name", "dtype", "plugins", "inputs", "params", "gates", "data",
                  "solver", "debug")
GATE_KEYS = ("name", "type", "bottom", "top", "phase", "param", "loss_weight")
INPUT_KEYS = ("shape", "dtype", "value")
PARAM_KEYS = ("shape", "filler", "lr_mult", "decay_mult")


#: a config file reader other than YAML's: path -> NetSpec (Caffe's .prototxt, .onnx)
ConfigReader = Callable[[Path], NetSpec]
_READERS: dict[str, ConfigReader] = {}


def register_reader(suffix: str, reader: ConfigReader) -> None:
    """Let `load_config` (and so `Net.from_yaml`, `Net.from_file` and every script) read files
    ending in `suffix` with `reader`, which returns the same validated NetSpec a YAML file gives.
    Readers live in net.formats and register themselves when it is imported (`import net`
    does)."""
    _READERS[suffix.lower()] = reader


def load_config(path: str | Path) -> NetSpec:
    """Read and validate a config file: YAML, or any format a reader is registered for by its
    suffix (`.prototxt`, `.onnx`)."""
    path = Path(path)
    reader = _READERS.get(path.suffix.lower())
    check_config_file(path, MAX_CONFIG_BYTES if reader is None else None)
    if reader is not None:
        return reader(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read config: {err.strerror}", str(path)) from None
    except UnicodeDecodeError:
        raise ConfigError("the config is not UTF-8 text", str(path)) from None
    return parse_config(load_yaml(text, str(path)), file=str(path), base_dir=path.parent)


MAX_CONFIG_BYTES = 16 << 20      # a config is text a person writes


def check_config_file(path: Path, max_bytes: int | None = MAX_CONFIG_BYTES) -> None:
    """Refuse what is not a regular file (a device would be read forever), or one larger than
    `max_bytes` (a YAML config is text a person writes; other formats carry weights)."""
    try:
        status = path.stat()
    except OSError as err:
        raise ConfigError(f"cannot read config: {err.strerror}", str(path)) from None
    if not stat.S_ISREG(status.st_mode):
        raise ConfigError("not a regular file (a config is a text file)", str(path))
    if max_bytes is not None and status.st_size > max_bytes:
        raise ConfigError(f"{status.st_size / 2**20:.0f} MiB is too large for a config (at most "
                          f"{MAX_CONFIG_BYTES >> 20} MiB)", str(path))


def parse_config(raw: Any, file: str | None = None, base_dir: str | Path | None = None) -> NetSpec:
    """Validate a config mapping (from YAML or built in Python) into a NetSpec."""
    p = _Parser(file)
    raw = p.mapping(raw, "the config", None)
    p.known_keys(raw, TOP_LEVEL_KEYS, "at the top level")
    version = raw.get("version", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise p.error(f"unknown config version {short_repr(version)}: this Gatework reads "
                      f"version {FORMAT_VERSION}", raw, "version")
    dtype = raw.get("dtype", "float32")
    if dtype not in DTYPES:
        raise p.error(f"dtype must be one of {', '.join(DTYPES)}, got {short_repr(dtype)}",
                      raw, "dtype")
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    plugins = p.names(raw.get("plugins", []), "plugins", raw, "plugins", allow_empty=True)
    load_plugins(plugins, base, file, line_of(raw, "plugins") or 0)
    if "gates" not in raw:
        raise p.error("the config has no `gates:` list", raw)
    inputs = p.inputs(raw.get("inputs") or {}, raw)
    name = raw.get("name", Path(file).stem if file else "net")
    if not isinstance(name, str) or not name:
        raise p.error(f"name must be text, got {describe(name)}", raw, "name")
    spec = NetSpec(
        name=name,
        dtype=dtype,
        inputs=inputs,
        params=p.params(raw.get("params") or {}, raw),
        gates=p.gates(raw["gates"], raw),
        plugins=plugins,
        data=p.data(raw["data"], raw, inputs) if raw.get("data") is not None else None,
        solver=p.solver(raw["solver"], raw) if raw.get("solver") is not None else None,
        debug=p.boolean(raw.get("debug", False), raw, "debug"),
        file=file,
        base_dir=base,
        key_lines=dict(raw.key_lines) if isinstance(raw, LineDict) else {},
    )
    return spec


#: the folders a snapshot_prefix may name, and the bytes it may take: far inside what pathlib
#: and the system handle, so a prefix that parses is one every snapshot can be written under
MAX_PREFIX_FOLDERS = 32
MAX_PREFIX_BYTES = 1024
#: what a snapshot's file name adds to the prefix's last part: `_iter_N` (N of up to 20 digits)
#: and `.solverstate.npz`, and the `.` and `.XXXXXXXX.tmp` of the temporary file written first
SNAPSHOT_NAME_EXTRA = 56
#: the longest file name, where the system does not say (and at most: the output directory may
#: be on another file system than the one asked)
DEFAULT_NAME_MAX = 255


def snapshot_prefix_problem(prefix: str) -> str | None:
    """Why `prefix` cannot name snapshot files inside a run's output directory, as the end of
    a sentence about it, or None. A prefix passes only if it is relative, has no `..`, ends in a
    name, holds no control character, names at most MAX_PREFIX_FOLDERS folders within
    MAX_PREFIX_BYTES, and each of its parts (the last with SNAPSHOT_NAME_EXTRA added) fits the
    system's longest file name: so no snapshot written under it fails for its name."""
    path = PurePosixPath(prefix.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or path.name in ("", "."):
        return ("must name files inside the run's output directory (a relative path without "
                "'..')")
    bad = next((c for c in prefix if unicodedata.category(c) in ("Cc", "Cs")), None)
    if bad is not None:
        return f"holds the control character U+{ord(bad):04X}, which a file name may not"
    try:
        size = len(os.fsencode(prefix))
    except UnicodeEncodeError:
        return "cannot be written as a file name on this system"
    if size > MAX_PREFIX_BYTES or len(path.parts) > MAX_PREFIX_FOLDERS + 1:
        return (f"is {size} bytes naming {len(path.parts) - 1} folders; it may take at most "
                f"{MAX_PREFIX_BYTES} bytes naming {MAX_PREFIX_FOLDERS}")
    name_max = _name_max()
    parts = PurePosixPath(prefix).parts        # on POSIX a backslash is part of a name
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        room = name_max - (SNAPSHOT_NAME_EXTRA if last else 0)
        size = len(os.fsencode(part))
        if size > room and last:
            return (f"ends in a name of {size} bytes; file names here take at most {name_max}, "
                    f"and a snapshot's adds up to {SNAPSHOT_NAME_EXTRA}, so it may take {room}")
        if size > room:
            return (f"names a folder of {size} bytes ({short_repr(part, 40)}); file names "
                    f"here take at most {name_max}")
    return None


def _name_max() -> int:
    """The longest file name (in bytes) this system allows, at most DEFAULT_NAME_MAX."""
    try:
        found = os.pathconf(".", "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        return DEFAULT_NAME_MAX
    return min(found, DEFAULT_NAME_MAX) if found > 0 else DEFAULT_NAME_MAX


def parse_solver(raw: Any, file: str | None = None) -> SolverConfig:
    """Validate a `solver:` mapping on its own (a Python dict, or a section of a file)."""
    return _Parser(file).solver(raw, None)


MAX_RANK = 32                   # numpy's limit on dimensions
MAX_DIMENSION = 2 ** 31


def _value_shape(value: Any) -> tuple[int, ...] | None:
    """The shape of a number or of nested lists of numbers; None when the lists are ragged."""
    if not isinstance(value, list):
        return ()
    inner = {_value_shape(item) for item in value}
    if len(inner) > 1 or None in inner:
        return None
    return (len(value),) + (inner.pop() if inner else ())


def _numbers(value: Any) -> bool:
    """Whether `value` is a number (not a bool) or nested lists of numbers."""
    if isinstance(value, list):
        return all(_numbers(item) for item in value)
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def parse_source(raw: Any, phase: str = "train", file: str | None = None) -> SourceSpec:
    """Validate one `data:` entry on its own, before the net's inputs are known (an importer
    asks `net.train.data.source_shapes` what inputs it needs). Feeds are not checked against
    a net; the default is [data, label]."""
    return _Parser(file).source(raw, phase, None, None)


class _Parser:
    """Structural checks with located errors; one instance per config."""

    def __init__(self, file: str | None):
        self.file = file

    def error(self, message: str, where: Any = None, key: Any = None) -> ConfigError:
        return ConfigError(message, self.file, line_of(where, key))

    # -- the one way a key is validated ---------------------------------------------------------
    def settings(self, mapping: Mapping, table: Mapping[str, Option], what: str,
                 extra: tuple = (), gate: str = "") -> dict[str, Any]:
        """Check every key of `mapping` against `table` (name -> Option): `what` is the section
        ("solver", "data.train"), or, for a gate's options, `gate` is its type and `what` says
        which gate. `extra` names keys the caller handles itself. Returns the converted values
        of the keys given."""
        values = {}
        for key, value in mapping.items():
            if key in extra:
                continue
            option = table.get(key)
            name = f"option {short_repr(key)}" if gate else f"{what}.{key}"
            if option is None:
                known = tuple(table) + tuple(extra)
                hint = suggest(str(key), known)
                raise self.error(
                    f"{what}: unknown option {short_repr(key)}{hint} (options of {gate}: "
                    f"{', '.join(table) or 'none'})" if gate else
                    f"unknown key {short_repr(key)} in `{what}`{hint} (known: "
                    f"{', '.join(map(str, known))})", mapping, key)
            try:
                values[key] = option.convert(value)
            except ValueError as err:
                raise self.error(f"{what + ': ' if gate else ''}{name} {err}", mapping,
                                 key) from None
        missing = [k for k, o in table.items() if o.required and k not in mapping]
        if missing:
            raise self.error(f"{what}: option {missing[0]!r} is required" if gate else
                             f"`{what}` needs `{missing[0]}`, {table[missing[0]].doc}", mapping)
        return values

    def mapping(self, value: Any, what: str, parent: Any, key: Any = None) -> dict:
        if not isinstance(value, dict):
            raise self.error(f"{what} must be a mapping, got {describe(value)}", parent, key)
        return value

    def known_keys(self, mapping: dict, known: tuple, where: str) -> None:
        for key in mapping:
            if key not in known:
                raise self.error(f"unknown key {short_repr(key)} {where}"
                                 f"{suggest(str(key), known)} (known: {', '.join(known)})",
                                 mapping, key)

    def names(self, value: Any, what: str, parent: Any, key: Any, allow_empty: bool = False
              ) -> list[str]:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(v, str) and v for v in items) or (
                not items and not allow_empty):
            raise self.error(f"{what} must be a name or a list of names, got {short_repr(value)}",
                             parent, key)
        return list(items)

    def boolean(self, value: Any, parent: Any, key: str) -> bool:
        if not isinstance(value, bool):
            raise self.error(f"`{key}` must be true or false, got {short_repr(value)}",
                             parent, key)
        return value

    def shape(self, value: Any, what: str, parent: Any, key: str, open_dims: bool) -> tuple:
        ok = isinstance(value, list) and len(value) <= MAX_RANK and all(
            (isinstance(d, int) and not isinstance(d, bool) and 0 < d < MAX_DIMENSION)
            or (open_dims and d is None) for d in value)
        if not ok:
            allowed = "positive integers or null" if open_dims else "positive integers"
            allowed += f" (at most {MAX_RANK} of them, each below 2^31)"
            raise self.error(f"{what}: shape must be a list of {allowed}, got "
                             f"{short_repr(value)}", parent, key)
        return tuple(value)

    # -- the net -----------------------------------------------------------------------------------
    def inputs(self, raw: Any, top: dict) -> dict[str, InputSpec]:
        raw = self.mapping(raw, "`inputs`", top, "inputs")
        specs = {}
        for name, entry in raw.items():
            what = f"input {short_repr(name)}"
            entry = self.mapping(entry if entry is not None else {}, what, raw, name)
            self.known_keys(entry, INPUT_KEYS, f"in {what}")
            if entry.get("dtype", "float") not in ("float", "int"):
                raise self.error(f"{what}: dtype must be float or int, got "
                                 f"{short_repr(entry['dtype'])}", entry, "dtype")
            shape = self.shape(entry.get("shape"), what, entry if "shape" in entry else raw,
                               "shape" if "shape" in entry else name, open_dims=True)
            value = entry.get("value")
            if value is not None and not _numbers(value):
                raise self.error(f"{what}: value must be a number or a list of numbers, got "
                                 f"{describe(value)}", entry, "value")
            if value is not None:
                self.value_fits(value, shape, what, entry)
            specs[str(name)] = InputSpec(str(name), shape, entry.get("dtype"), value,
                                         line_of(raw, name) or 0)
        return specs

    def value_fits(self, value: Any, shape: tuple, what: str, entry: dict) -> None:
        """An input's `value:` has its declared shape (an open dimension takes any size), as
        every array fed to it must: checked here, so that no run starts with a value it refuses."""
        found = _value_shape(value)
        if found is None:
            raise self.error(f"{what}: value is not a rectangular array (its lists differ in "
                             "length)", entry, "value")
        if len(found) != len(shape) or any(d is not None and d != n for d, n in zip(shape, found)):
            raise self.error(f"{what}: value has shape {format_shape(found)}, but the input's "
                             f"shape is {format_shape(shape)}", entry, "value")

    def params(self, raw: Any, top: dict) -> dict[str, ParamSpec]:
        raw = self.mapping(raw, "`params`", top, "params")
        specs = {}
        for name, entry in raw.items():
            what = f"param {short_repr(name)}"
            entry = self.mapping(entry, what, raw, name)
            self.known_keys(entry, PARAM_KEYS, f"in {what}")
            shape = self.shape(entry.get("shape"), what, entry if "shape" in entry else raw,
                               "shape" if "shape" in entry else name, open_dims=False)
            filler = self.mapping(entry.get("filler", {"type": "constant", "value": 0.0}),
                                  f"{what}: filler", entry, "filler")
            rule = self.param_rule(entry, what, ("shape", "filler"))
            specs[str(name)] = ParamSpec(str(name), shape, filler, rule, line_of(raw, name) or 0)
        return specs

    def param_rule(self, entry: dict, what: str, extra: tuple = ()) -> ParamRule:
        values = self.settings(entry, settings_of(ParamRule), what, extra)
        return ParamRule(**values, line=line_of(entry) or 0)

    def gates(self, raw: Any, top: dict) -> list[GateSpec]:
        if not isinstance(raw, list) or not raw:
            raise self.error("`gates` must be a non-empty list of gates", top, "gates")
        specs, seen = [], {}
        for index, entry in enumerate(raw):
            line = raw.item_lines[index] if isinstance(raw, LineList) else 0
            if not isinstance(entry, dict):
                raise ConfigError(f"gate #{index + 1} must be a mapping, got {describe(entry)}",
                                  self.file, line)
            for key in ("name", "type", "bottom", "top"):
                if key not in entry:
                    label = f"gate {short_repr(entry['name'])}" if isinstance(
                        entry.get("name"), str) else f"gate #{index + 1}"
                    raise ConfigError(f"{label} has no `{key}`", self.file, line)
            name = entry["name"]
            if not isinstance(name, str) or not name:
                raise self.error(f"gate #{index + 1}: name must be a string, got "
                                 f"{short_repr(name)}", entry, "name")
            if name in seen:
                raise self.error(f"duplicate gate name {name!r} (first on line {seen[name]})",
                                 entry, "name")
            seen[name] = line
            specs.append(self.gate(entry, name, line))
        return specs

    def gate(self, entry: dict, name: str, line: int) -> GateSpec:
        type_name = entry["type"]
        if not isinstance(type_name, str):
            raise self.error(f"gate {name!r}: type must be a string, got {short_repr(type_name)}",
                             entry, "type")
        where = f"gate {name!r} ({type_name})"
        bottom = self.names(entry["bottom"], f"{where}: bottom", entry, "bottom",
                            allow_empty=True)
        top = self.names(entry["top"], f"{where}: top", entry, "top", allow_empty=True)
        phase = entry.get("phase")
        if phase is not None and phase not in PHASES:
            raise self.error(f"{where}: phase must be train or test, got {short_repr(phase)}",
                             entry, "phase")
        try:
            cls = gate_class(type_name)
        except UnknownGateType as err:
            raise self.error(f"{where}: {err}", entry, "type") from None
        self.settings(entry, cls.options, where, extra=GATE_KEYS, gate=cls.type_name)
        options = {k: v for k, v in entry.items() if k not in GATE_KEYS}
        low, high = cls.bottom_range()
        if len(bottom) < low or (high is not None and len(bottom) > high):
            want = str(low) if low == high else f"{low} to {high}" if high else f"at least {low}"
            raise self.error(f"{where}: takes {want} bottom(s), got {len(bottom)}: {bottom}",
                             entry, "bottom")
        low, high = cls.top_range()
        if len(top) < low or (high is not None and len(top) > high):
            want = str(low) if low == high else f"{low} to {high}" if high else f"at least {low}"
            raise self.error(f"{where}: produces {want} top(s), got {len(top)}: {top}",
                             entry, "top")
        rules = []
        if "param" in entry:
            raw_rules = entry["param"]
            if not isinstance(raw_rules, list):
                raise self.error(f"{where}: param must be a list of mappings", entry, "param")
            for rule in raw_rules:
                rule = self.mapping(rule, f"{where}: each param entry", raw_rules)
                rules.append(self.param_rule(rule, f"{where}: param"))
        return GateSpec(name=name, type=type_name, bottom=bottom, top=top, options=options,
                        param=rules, phase=phase, loss_weight=self.loss_weight(entry, where, top),
                        line=line, key_lines=dict(getattr(entry, "key_lines", {})), cls=cls)

    def loss_weight(self, entry: dict, where: str, top: list[str]) -> list[float] | None:
        if "loss_weight" not in entry:
            return None
        value = entry["loss_weight"]
        values = value if isinstance(value, list) else [value]
        try:
            if len(values) != len(top):
                raise ValueError
            return [Option(float).convert(v) for v in values]
        except ValueError:
            raise self.error(f"{where}: loss_weight must be a finite number per top "
                             f"({len(top)}), got {short_repr(value)}", entry,
                             "loss_weight") from None

    # -- the data section --------------------------------------------------------------------------
    def data(self, raw: Any, top: dict, inputs: dict[str, InputSpec]) -> DataSpec:
        raw = self.mapping(raw, "`data` (with `train` and/or `test`)", top, "data")
        section = DataSpec(line=line_of(top, "data") or 0)
        if "data" not in inputs and not any(isinstance(e, dict) and "feeds" in e
                                            for e in raw.values()):
            raise self.error("the `data` section feeds an input named `data`, but the net "
                             f"declares none (inputs: {', '.join(inputs) or 'none'}); name "
                             "the inputs with `feeds:`", top, "data")
        for phase, entry in raw.items():
            if phase not in PHASES:
                raise self.error(f"unknown key {short_repr(phase)} in `data` (known: "
                                 f"{', '.join(PHASES)})", raw, phase)
            setattr(section, phase, self.source(entry, phase, raw, inputs))
        for source in section.sources().values():
            for feed in source.feeds:
                first = inputs[feed].shape[0] if feed in inputs and inputs[feed].shape else None
                if first is not None:
                    raise self.error(f"input {feed!r} has a fixed batch dimension of {first}, "
                                     f"but data.{source.phase} feeds it batches of "
                                     f"{source.batch_size}, the last of a pass smaller: make "
                                     "that dimension null (open)", raw[source.phase],
                                     "batch_size" if "batch_size" in raw[source.phase] else None)
        return section

    def source(self, entry: Any, phase: str, parent: Any,
               inputs: dict[str, InputSpec] | None) -> SourceSpec:
        """One `data:` entry; `inputs` (the net's) to check and default `feeds` against."""
        where = f"data.{phase}"
        entry = self.mapping(entry, f"`{where}` (like {{source: digits, batch_size: 64}})",
                             parent, phase)
        values = self.settings(entry, settings_of(SourceSpec), where)

        def fail(message: str, key: str | None = None) -> ConfigError:
            return self.error(f"{where}: {message}", entry, key)

        kind = values["source"]
        if not kind:
            raise fail(f"source must name a file or one of {', '.join(SOURCE_KINDS)}", "source")
        if "split" in values and kind not in SPLIT_SOURCES:
            raise fail(f"split applies to {', '.join(SPLIT_SOURCES)} only", "split")
        if kind in SOURCE_PATHS:
            if values.get("path") is None and kind != "fashion_mnist":
                raise fail(f"source {kind} needs `path`: {SOURCE_PATHS[kind]}", "source")
        elif values.get("path") is not None:
            raise fail(f"path applies to {', '.join(SOURCE_PATHS)}; a file source is named by "
                       "`source` itself", "path")
        for key in ("root_folder", "new_height", "new_width", "is_color"):
            if key in values and kind != "images":
                raise fail(f"{key} applies to source images only", key)
        if bool(values.get("new_height")) != bool(values.get("new_width")):
            raise fail("new_height and new_width go together: both 0 or both positive",
                       "new_height" if "new_height" in values else "new_width")
        if "feeds" in values:
            feeds = values["feeds"]
            if not feeds or len(set(feeds)) != len(feeds):
                raise fail(f"feeds must name distinct inputs, got {short_repr(feeds)}", "feeds")
        elif inputs is not None:
            values["feeds"] = [name for name in DEFAULT_FEEDS if name in inputs]
            if not values["feeds"]:
                raise fail("name the inputs this source feeds with `feeds:` (the net has no "
                           f"input named {' or '.join(DEFAULT_FEEDS)})", None)
        feeds = values.get("feeds", list(DEFAULT_FEEDS))
        if inputs is not None:
            for name in feeds:
                if name not in inputs:
                    raise fail(f"feeds: {short_repr(name)} is not an input of the net (inputs: "
                               f"{', '.join(inputs)})", "feeds")
        if values.get("transform") is not None:
            values["transform"] = self.transform(values["transform"], where)
        if kind == "dummy":
            values["dummy"] = self.dummy(values.get("dummy"), feeds, where, entry)
        elif values.get("dummy") is not None:
            raise fail("dummy applies to source dummy only", "dummy")
        return SourceSpec(**values, phase=phase,
                          line=line_of(entry) or line_of(parent, phase) or 0,
                          key_lines=dict(getattr(entry, "key_lines", {})))

    def transform(self, raw: dict, where: str) -> TransformSpec:
        what = f"{where}.transform"
        values = self.settings(raw, settings_of(TransformSpec), what)
        mean = values.get("mean_value")
        if mean is not None and not isinstance(mean, list):
            values["mean_value"] = [mean]
        if values.get("mean_file") and values.get("mean_value"):
            raise self.error(f"{what}: mean_file and mean_value exclude each other (as in "
                             "Caffe)", raw, "mean_value")
        return TransformSpec(**values, line=line_of(raw) or 0,
                             key_lines=dict(getattr(raw, "key_lines", {})))

    def dummy(self, raw: dict | None, feeds: list[str], where: str,
              entry: dict) -> dict[str, DummyFeedSpec]:
        what = f"{where}.dummy"
        if raw is None:
            raise self.error(f"{where}: source dummy needs `dummy:` giving each feed "
                             "{shape: [...], filler: {...}}", entry, "source")
        for name in feeds:
            if name not in raw:
                raise self.error(f"{what}: no entry for the feed {short_repr(name)} (feeds: "
                                 f"{', '.join(feeds)})", entry, "dummy")
        specs = {}
        for name, item in raw.items():
            if name not in feeds:
                raise self.error(f"{what}: {short_repr(name)} is not one of the feeds "
                                 f"({', '.join(feeds)})", raw, name)
            item = self.mapping(item, f"{what}.{name} ({{shape: [...], filler: {{...}}}})",
                                raw, name)
            values = self.settings(item, settings_of(DummyFeedSpec), f"{what}.{name}")
            try:
                check_filler(values.get("filler", {"type": "constant"}))
            except ValueError as err:
                raise self.error(f"{what}.{name}.filler: {err}", item, "filler") from None
            specs[str(name)] = DummyFeedSpec(**values, line=line_of(raw, name) or 0)
        return specs

    # -- the solver section ------------------------------------------------------------------------
    def solver(self, raw: Any, top: dict | None) -> SolverConfig:
        raw = self.mapping(raw, "`solver`", top, "solver")
        values = self.settings(raw, settings_of(SolverConfig), "solver")
        kind = values.get("type", "SGD")
        if kind in ("AdaGrad", "RMSProp") and values.get("momentum", 0.0) != 0.0:
            raise self.error(f"solver.momentum cannot be used with {kind} (leave it out)",
                             raw, "momentum")
        if kind in ("Adam", "AdaDelta") and "momentum" not in values:
            values["momentum"] = 0.9 if kind == "Adam" else 0.95
        config = SolverConfig(**values, given=dict(raw),
                              lines=dict(getattr(raw, "key_lines", {})))
        needs = {"step": ("stepsize",), "multistep": ("stepvalue",), "sigmoid": ("stepsize",)}
        for key in needs.get(config.lr_policy, ()):
            if key not in values:
                raise self.error(f"lr_policy {config.lr_policy} needs solver.{key}",
                                 raw, "lr_policy")
        problem = config.snapshot_prefix and snapshot_prefix_problem(config.snapshot_prefix)
        if problem:
            raise self.error(f"solver.snapshot_prefix {problem}, got "
                             f"{short_repr(config.snapshot_prefix)}", raw, "snapshot_prefix")
        if list(config.stepvalue) != sorted(config.stepvalue):
            raise self.error(f"solver.stepvalue must increase, got {config.stepvalue}",
                             raw, "stepvalue")
        return config
