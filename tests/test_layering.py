"""The floors of the package (README, "Code map"): a module imports only from its own floor or
the floors below it, read from every module's import statements."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.helpers import ROOT

# floor of each part of the package: lower numbers are lower floors; parts on one floor are
# siblings that do not import each other (training and gradient checking both stand on the core)
FLOORS = {
    "gates": 0,
    "net.errors": 0,
    "net.core": 1,
    "net.train": 2,
    "net.gradcheck": 2,
    "net.formats": 3,
    "net.tools": 4,
    "net.distributed": 5,      # the public face and an old name kept for users: nothing inside
    "net": 5,                  # the package imports them
}


def part_of(module: str) -> str | None:
    """The entry of FLOORS a module belongs to (the longest matching prefix)."""
    matches = [part for part in FLOORS if module == part or module.startswith(part + ".")]
    return max(matches, key=len) if matches else None


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, text: str) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in `text`, the source of `path`; relative imports
    resolved."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [base] if node.module else [f"{base}.{a.name}" for a in node.names]
            found += [(node.lineno, target) for target in targets]
    return found


def violations(path: Path, text: str) -> list[str]:
    """The imports of `text` (the source of `path`) that reach a higher floor or a sibling."""
    source = part_of(module_name(path))
    assert source is not None, f"{path}: not in any floor; add its part to FLOORS"
    wrong = []
    for line, target in imports(path, text):
        part = part_of(target)
        if part is None or part == source:
            continue                                   # the standard library, numpy, ...
        if FLOORS[part] > FLOORS[source]:
            wrong.append(f"line {line}: {target} is on a higher floor ({part})")
        elif FLOORS[part] == FLOORS[source] and part.split(".")[0] == source.split(".")[0]:
            wrong.append(f"line {line}: {target} is a sibling on the same floor ({part})")
    return wrong


SOURCES = sorted(p for folder in ("gates", "net") for p in (ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=[str(p.relative_to(ROOT)) for p in SOURCES])
def test_a_module_imports_only_its_own_floor_and_below(path):
    assert violations(path, path.read_text(encoding="utf-8")) == []


def test_the_check_sees_upward_and_sibling_imports():
    core, train = ROOT / "net" / "core" / "probe.py", ROOT / "net" / "train" / "probe.py"
    assert violations(core, "from ..tools.cli import guarded\n") == [
        "line 1: net.tools.cli is on a higher floor (net.tools)"]
    assert violations(core, "import net\n") == ["line 1: net is on a higher floor (net)"]
    assert violations(ROOT / "gates" / "probe.py", "from net.core import spec\n") == [
        "line 1: net.core is on a higher floor (net.core)"]
    assert violations(train, "from ..gradcheck import check_net\n") == [
        "line 1: net.gradcheck is a sibling on the same floor (net.gradcheck)"]
    assert violations(train, "from ..core.net import Net\nfrom . import data\n") == []
