"""Every mistake in tests/bad_configs/ gives one ConfigError starting FILE:LINE: and naming the
gate, through the Python API and through the scripts (exit status 2, no traceback).

Each file's first line says what to expect: `# error: LINE: message fragment`.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from net import ConfigError, Net, Solver
from tests.helpers import ROOT

BAD_CONFIGS = ROOT / "tests" / "bad_configs"
CASES = sorted(BAD_CONFIGS.glob("*.yaml"))


def expectation(path: Path) -> tuple[int, str]:
    match = re.match(r"# error: (\d+): (.*)", path.read_text().splitlines()[0])
    assert match, f"{path.name} must start with '# error: LINE: fragment'"
    return int(match.group(1)), match.group(2).strip()


def build_everything(path: Path) -> None:
    """What a training run builds before its first iteration: the net, its data section, its
    solver."""
    net = Net.from_yaml(path)
    if net.spec.solver is not None:
        Solver.from_config(net)


def script_for(path: Path) -> list[str]:
    if "solver:" in path.read_text():
        return ["scripts/train.py", str(path), "--no-progress", "--output-dir", "unused"]
    return ["scripts/run.py", str(path)]


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_python_api_names_file_line_and_problem(path):
    line, fragment = expectation(path)
    with pytest.raises(ConfigError) as err:
        build_everything(path)
    message = str(err.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert fragment in message
    assert "\n" not in message


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_scripts_print_one_line_and_exit_2(path):
    line, fragment = expectation(path)
    result = subprocess.run([sys.executable, *script_for(path)], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [f"error: {path}:{line}: " +
                                                  result.stderr.split(f"{path}:{line}: ", 1)[1].strip()]
    assert fragment in result.stderr


def test_debug_flag_shows_the_traceback():
    path = BAD_CONFIGS / "cycle.yaml"
    result = subprocess.run([sys.executable, "scripts/run.py", str(path), "--debug"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "Traceback" in result.stderr
