"""Reading a network config: YAML (safe loader, line numbers kept) -> validated plain specs.

This is the only module that reads YAML. Everything after it sees `NetSpec`/`GateSpec` objects,
whose `line` fields let later stages (graph, shape inference, solver) raise a `ConfigError` that
points at the right line.
"""
from __future__ import annotations

import difflib
import importlib
import importlib.util
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gates import Gate, UnknownGateType, gate_class

from .errors import ConfigError

FORMAT_VERSION = 1
TOP_LEVEL_KEYS = ("version", "name", "dtype", "plugins", "inputs", "params", "gates", "data",
                  "solver", "debug")
GATE_KEYS = ("name", "type", "bottom", "top", "phase", "param", "loss_weight")
PHASES = ("train", "test")
DTYPES = ("float32", "float64")


# -- YAML with line numbers --------------------------------------------------------------------
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


# -- specs ---------------------------------------------------------------------------------------
@dataclass
class InputSpec:
    """A source node fed at run time. `shape` may hold None for an open (batch) dimension."""
    name: str
    shape: tuple
    dtype: str | None = None       # None: the net's float dtype, integer arrays kept as they are
    value: Any = None              # optional default value (used by scripts/run.py)
    line: int = 0


@dataclass
class ParamRule:
    """Per-parameter settings from a gate's `param:` list (Caffe's ParamSpec)."""
    name: str | None = None        # a shared name: gates naming the same one share the array
    lr_mult: float = 1.0
    decay_mult: float = 1.0
    line: int = 0


@dataclass
class ParamSpec:
    """A learnable source node declared under `params:`."""
    name: str
    shape: tuple
    filler: dict
    rule: ParamRule
    line: int = 0


@dataclass
class GateSpec:
    """One entry of `gates:`. `options` holds every key that is not a structural one."""
    name: str
    type: str
    bottom: list[str]
    top: list[str]
    options: dict[str, Any] = field(default_factory=dict)
    param: list[ParamRule] = field(default_factory=list)
    phase: str | None = None       # None: both phases
    loss_weight: list[float] | None = None
    line: int = 0
    key_lines: dict[str, int] = field(default_factory=dict)
    cls: type[Gate] | None = None

    def where(self) -> str:
        return f"gate {self.name!r} ({self.type})"


@dataclass
class NetSpec:
    """A whole validated config."""
    name: str
    dtype: str
    inputs: dict[str, InputSpec]
    params: dict[str, ParamSpec]
    gates: list[GateSpec]
    plugins: list[str] = field(default_factory=list)
    data: Any = None               # the raw `data:` mapping, validated by net.data
    solver: Any = None             # the raw `solver:` mapping, validated by net.solver
    debug: bool = False
    file: str | None = None        # the config file, for error messages
    base_dir: Path = field(default_factory=Path.cwd)
    key_lines: dict[str, int] = field(default_factory=dict)  # top-level key -> its line

    def error(self, message: str, line: int | None = None) -> ConfigError:
        return ConfigError(message, self.file, line)

    def line_of(self, key: str) -> int:
        """The line of a top-level key (`solver`, `data`, ...), or 1 when it is absent."""
        return self.key_lines.get(key, 1)


# -- parsing -------------------------------------------------------------------------------------
def load_config(path: str | Path) -> NetSpec:
    """Read and validate a YAML config file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read config: {err.strerror}", str(path)) from None
    except UnicodeDecodeError:
        raise ConfigError("the config is not UTF-8 text", str(path)) from None
    return parse_config(load_yaml(text, str(path)), file=str(path), base_dir=path.parent)


def parse_config(raw: Any, file: str | None = None, base_dir: str | Path | None = None) -> NetSpec:
    """Validate a config mapping (from YAML or built in Python) into a NetSpec."""
    p = _Parser(file)
    raw = p.mapping(raw, "the config", 1)
    p.known_keys(raw, TOP_LEVEL_KEYS, "at the top level")
    version = raw.get("version", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise p.error(f"unknown config version {version!r}: this Gatework reads version "
                      f"{FORMAT_VERSION}", raw, "version")
    dtype = raw.get("dtype", "float32")
    if dtype not in DTYPES:
        raise p.error(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}", raw, "dtype")
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    plugins = p.names(raw.get("plugins", []), "plugins", raw, "plugins", allow_empty=True)
    load_plugins(plugins, base, file, raw.line_of("plugins") if isinstance(raw, LineDict) else 0)
    if "gates" not in raw:
        raise p.error("the config has no `gates:` list", raw)
    spec = NetSpec(
        name=str(raw.get("name", Path(file).stem if file else "net")),
        dtype=dtype,
        inputs=p.inputs(raw.get("inputs") or {}, raw),
        params=p.params(raw.get("params") or {}, raw),
        gates=p.gates(raw["gates"], raw),
        plugins=plugins,
        data=raw.get("data"),
        solver=raw.get("solver"),
        debug=p.boolean(raw.get("debug", False), raw, "debug"),
        file=file,
        base_dir=base,
        key_lines=dict(raw.key_lines) if isinstance(raw, LineDict) else {},
    )
    return spec


class _Parser:
    """Structural checks with located errors; one instance per config."""

    def __init__(self, file: str | None):
        self.file = file

    def error(self, message: str, where: Any = None, key: Any = None) -> ConfigError:
        return ConfigError(message, self.file, line_of(where, key))

    def mapping(self, value: Any, what: str, parent: Any, key: Any = None) -> dict:
        if not isinstance(value, dict):
            raise self.error(f"{what} must be a mapping, got {_kind(value)}", parent, key)
        return value

    def known_keys(self, mapping: dict, known: tuple, where: str, prefix: str = "") -> None:
        for key in mapping:
            if key not in known:
                close = suggest(str(key), known)
                raise self.error(f"{prefix}unknown key {key!r} {where}{close} "
                                 f"(known: {', '.join(known)})", mapping, key)

    def names(self, value: Any, what: str, parent: Any, key: Any, allow_empty: bool = False
              ) -> list[str]:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(v, str) and v for v in items) or (
                not items and not allow_empty):
            raise self.error(f"{what} must be a name or a list of names, got {value!r}",
                             parent, key)
        return list(items)

    def boolean(self, value: Any, parent: Any, key: str) -> bool:
        if not isinstance(value, bool):
            raise self.error(f"`{key}` must be true or false, got {value!r}", parent, key)
        return value

    def shape(self, value: Any, what: str, parent: Any, key: str, open_dims: bool) -> tuple:
        ok = isinstance(value, list) and all(
            (isinstance(d, int) and not isinstance(d, bool) and d > 0) or (open_dims and d is None)
            for d in value)
        if not ok:
            allowed = "positive integers or null" if open_dims else "positive integers"
            raise self.error(f"{what}: shape must be a list of {allowed}, got {value!r}",
                             parent, key)
        return tuple(value)

    def inputs(self, raw: Any, top: dict) -> dict[str, InputSpec]:
        raw = self.mapping(raw, "`inputs`", top, "inputs")
        specs = {}
        for name, entry in raw.items():
            what = f"input {name!r}"
            entry = self.mapping(entry if entry is not None else {}, what, raw, name)
            self.known_keys(entry, ("shape", "dtype", "value"), f"in {what}")
            if entry.get("dtype", "float") not in ("float", "int"):
                raise self.error(f"{what}: dtype must be float or int, got {entry['dtype']!r}",
                                 entry, "dtype")
            shape = self.shape(entry.get("shape"), what, entry if "shape" in entry else raw,
                               "shape" if "shape" in entry else name, open_dims=True)
            specs[str(name)] = InputSpec(str(name), shape, entry.get("dtype"), entry.get("value"),
                                         line_of(raw, name))
        return specs

    def params(self, raw: Any, top: dict) -> dict[str, ParamSpec]:
        raw = self.mapping(raw, "`params`", top, "params")
        specs = {}
        for name, entry in raw.items():
            what = f"param {name!r}"
            entry = self.mapping(entry, what, raw, name)
            self.known_keys(entry, ("shape", "filler", "lr_mult", "decay_mult"), f"in {what}")
            shape = self.shape(entry.get("shape"), what, entry if "shape" in entry else raw,
                               "shape" if "shape" in entry else name, open_dims=False)
            filler = self.mapping(entry.get("filler", {"type": "constant", "value": 0.0}),
                                  f"{what}: filler", entry, "filler")
            rule = self.param_rule({k: entry[k] for k in ("lr_mult", "decay_mult") if k in entry},
                                   what, entry)
            specs[str(name)] = ParamSpec(str(name), shape, filler, rule, line_of(raw, name))
        return specs

    def param_rule(self, entry: dict, what: str, parent: Any) -> ParamRule:
        rule = ParamRule(line=line_of(parent, None))
        for key in ("lr_mult", "decay_mult"):
            if key in entry:
                value = entry[key]
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                    raise self.error(f"{what}: {key} must be a non-negative number, got {value!r}",
                                     entry, key)
                setattr(rule, key, float(value))
        if "name" in entry:
            rule.name = self.names(entry["name"], f"{what}: name", entry, "name")[0]
        return rule

    def gates(self, raw: Any, top: dict) -> list[GateSpec]:
        if not isinstance(raw, list) or not raw:
            raise self.error("`gates` must be a non-empty list of gates", top, "gates")
        specs, seen = [], {}
        for index, entry in enumerate(raw):
            line = raw.item_lines[index] if isinstance(raw, LineList) else 0
            if not isinstance(entry, dict):
                raise ConfigError(f"gate #{index + 1} must be a mapping, got {_kind(entry)}",
                                  self.file, line)
            for key in ("name", "type", "bottom", "top"):
                if key not in entry:
                    label = f"gate {entry['name']!r}" if isinstance(entry.get("name"), str) \
                        else f"gate #{index + 1}"
                    raise ConfigError(f"{label} has no `{key}`", self.file, line)
            name = entry["name"]
            if not isinstance(name, str) or not name:
                raise self.error(f"gate #{index + 1}: name must be a string, got {name!r}",
                                 entry, "name")
            if name in seen:
                raise self.error(f"duplicate gate name {name!r} (first on line {seen[name]})",
                                 entry, "name")
            seen[name] = line
            specs.append(self.gate(entry, name, line))
        return specs

    def gate(self, entry: dict, name: str, line: int) -> GateSpec:
        type_name = entry["type"]
        if not isinstance(type_name, str):
            raise self.error(f"gate {name!r}: type must be a string, got {type_name!r}",
                             entry, "type")
        where = f"gate {name!r} ({type_name})"
        bottom = self.names(entry["bottom"], f"{where}: bottom", entry, "bottom",
                            allow_empty=True)
        top = self.names(entry["top"], f"{where}: top", entry, "top")
        phase = entry.get("phase")
        if phase is not None and phase not in PHASES:
            raise self.error(f"{where}: phase must be train or test, got {phase!r}",
                             entry, "phase")
        try:
            cls = gate_class(type_name)
        except UnknownGateType as err:
            raise self.error(f"{where}: {err}", entry, "type") from None
        options = {k: v for k, v in entry.items() if k not in GATE_KEYS}
        for key, value in options.items():
            option = cls.options.get(key)
            if option is None:
                close = suggest(str(key), tuple(cls.options) + GATE_KEYS)
                known = ", ".join(cls.options) or "none"
                raise self.error(f"{where}: unknown option {key!r}{close} "
                                 f"(options of {cls.type_name}: {known})", entry, key)
            try:
                option.convert(value)
            except ValueError as err:
                raise self.error(f"{where}: option {key!r}: {err}", entry, key) from None
        missing = [k for k, o in cls.options.items() if o.required and k not in options]
        if missing:
            raise self.error(f"{where}: option {missing[0]!r} is required", entry)
        low, high = cls.bottom_range()
        if len(bottom) < low or (high is not None and len(bottom) > high):
            want = str(low) if low == high else f"{low} to {high}" if high else f"at least {low}"
            raise self.error(f"{where}: takes {want} bottom(s), got {len(bottom)}: {bottom}",
                             entry, "bottom")
        if len(top) != cls.num_tops:
            raise self.error(f"{where}: produces {cls.num_tops} top(s), got {len(top)}: {top}",
                             entry, "top")
        rules = []
        if "param" in entry:
            raw_rules = entry["param"]
            if not isinstance(raw_rules, list):
                raise self.error(f"{where}: param must be a list of mappings", entry, "param")
            for rule in raw_rules:
                rule = self.mapping(rule, f"{where}: each param entry", raw_rules)
                self.known_keys(rule, ("name", "lr_mult", "decay_mult"), f"in {where}'s param")
                rules.append(self.param_rule(rule, f"{where}: param", rule))
        return GateSpec(name=name, type=type_name, bottom=bottom, top=top, options=options,
                        param=rules, phase=phase, loss_weight=self.loss_weight(entry, where, top),
                        line=line, key_lines=dict(getattr(entry, "key_lines", {})), cls=cls)

    def loss_weight(self, entry: dict, where: str, top: list[str]) -> list[float] | None:
        if "loss_weight" not in entry:
            return None
        value = entry["loss_weight"]
        values = value if isinstance(value, list) else [value]
        if len(values) != len(top) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            raise self.error(f"{where}: loss_weight must be a number per top ({len(top)}), "
                             f"got {value!r}", entry, "loss_weight")
        return [float(v) for v in values]


def load_plugins(plugins: list[str], base_dir: Path, file: str | None = None,
                 line: int = 0) -> None:
    """Import each plugin: a module name, or a `.py` path relative to the config's folder.

    This runs the plugin's code: that is the point of `plugins:`, and the only way a config runs
    code. A module is imported once, however many configs name it.
    """
    for plugin in plugins:
        try:
            if plugin.endswith(".py") or "/" in plugin:
                path = (base_dir / plugin).resolve()
                if not path.is_file():
                    raise ConfigError(f"plugin file {plugin!r} not found (looked for {path})",
                                      file, line)
                module_name = _plugin_module_name(path)
                if module_name is None:
                    continue   # already imported, by `import` or by another config
                module_spec = importlib.util.spec_from_file_location(module_name, path)
                module = importlib.util.module_from_spec(module_spec)
                sys.modules[module_name] = module
                try:
                    module_spec.loader.exec_module(module)
                except BaseException:
                    del sys.modules[module_name]
                    raise
            else:
                importlib.import_module(plugin)
        except ConfigError:
            raise
        except ImportError as err:
            raise ConfigError(f"cannot import plugin {plugin!r}: {err}", file, line) from None
        except Exception as err:
            raise ConfigError(f"plugin {plugin!r} failed while loading: "
                              f"{type(err).__name__}: {err}", file, line) from err


def _plugin_module_name(path: Path) -> str | None:
    """The module name to load a plugin file under: its stem, so that a later `import stem`
    finds it instead of running it (and registering its gates) twice; None when a module of
    that file is imported already; a name of its own when another module holds the stem."""
    for name in (path.stem, f"gatework_plugin_{zlib.crc32(str(path).encode()):08x}"):
        module = sys.modules.get(name)
        if module is None:
            return name
        if getattr(module, "__file__", None) and Path(module.__file__).resolve() == path:
            return None
    return None


def line_of(where: Any, key: Any = None) -> int | None:
    """The line of `key` in a LineDict (or of the mapping itself), when known."""
    if isinstance(where, LineDict):
        return where.line_of(key) if key is not None else where.line
    if isinstance(where, LineList):
        return where.line
    return None


def _kind(value: Any) -> str:
    return {dict: "a mapping", LineDict: "a mapping", list: "a list", LineList: "a list",
            str: f"the text {value!r}", type(None): "nothing"}.get(type(value), repr(value))


def suggest(name: str, known) -> str:
    """'; did you mean X?' for the closest known name, or ''."""
    close = difflib.get_close_matches(name, [str(k) for k in known], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""
