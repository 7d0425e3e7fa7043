"""Plugins: the modules and `.py` files a config names under `plugins:`, imported before its gates
are read so that the gate types they register are known.

Importing a plugin runs its code: that is the point of `plugins:`, and the only way a config runs
code. A module is imported once, however many configs name it. A plugin file is loaded under its
own stem as module name (so a later `import stem` finds it instead of running it twice), unless
that name is taken by another module or by an installed package, which a plugin never shadows.
A plugin file edited since it was loaded is loaded again (its gates replace their old
definitions), so a notebook sees the new code when it rebuilds a net.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
import zlib
from pathlib import Path
from types import ModuleType

from ..errors import ConfigError

_STAMP = "__gatework_plugin_stamp__"


def load_plugins(plugins: list[str], base_dir: Path, file: str | None = None,
                 line: int = 0) -> None:
    """Import each plugin: a module name, or a `.py` path relative to the config's folder."""
    for plugin in plugins:
        try:
            if plugin.endswith(".py") or "/" in plugin:
                _load_file(plugin, base_dir, file, line)
            else:
                importlib.import_module(plugin)
        except ConfigError:
            raise
        except ImportError as err:
            raise ConfigError(f"cannot import plugin {plugin!r}: {err}", file, line) from None
        except Exception as err:
            raise ConfigError(f"plugin {plugin!r} failed while loading: "
                              f"{type(err).__name__}: {err}", file, line) from err


def _load_file(plugin: str, base_dir: Path, file: str | None, line: int) -> None:
    path = (base_dir / plugin).resolve()
    if not path.is_file():
        raise ConfigError(f"plugin file {plugin!r} not found (looked for {path})", file, line)
    stamp = _stamp(path)
    name, loaded = _module_for(path)
    if loaded is not None and getattr(loaded, _STAMP, stamp) == stamp:
        return                     # imported already (by `import` or another config), unchanged
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    previous = sys.modules.get(name)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        if previous is None:
            del sys.modules[name]
        else:
            sys.modules[name] = previous
        raise
    setattr(module, _STAMP, stamp)


def _module_for(path: Path) -> tuple[str, ModuleType | None]:
    """The module name to load a plugin file under, and the module already loaded from that file
    under it (None if there is none)."""
    candidates = (path.stem, f"gatework_plugin_{zlib.crc32(str(path).encode()):08x}")
    for name in candidates:
        module = sys.modules.get(name)
        if module is not None:
            if getattr(module, "__file__", None) and Path(module.__file__).resolve() == path:
                return name, module
            continue                       # another module holds this name
        if name == path.stem and _installed_elsewhere(name, path):
            continue                       # never shadow an installed package or module
        return name, None
    return candidates[-1], sys.modules.get(candidates[-1])


def _installed_elsewhere(name: str, path: Path) -> bool:
    try:
        found = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return False
    return found is not None and (found.origin is None or Path(found.origin).resolve() != path)


def _stamp(path: Path) -> tuple[int, int]:
    status = path.stat()
    return status.st_mtime_ns, status.st_size
