"""scripts/gradcheck.py: a config then each of its gates, --all with a wrong plugin exits 1
pointing at the wrong input, and usage and config errors exit 2 in one line."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers import ROOT


def gradcheck(*args):
    return subprocess.run([sys.executable, "scripts/gradcheck.py", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_cli_checks_a_config_then_each_gate():
    result = gradcheck("configs/affine.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "net 'affine': pass" in result.stdout
    assert "mul   MatMul" in result.stdout and "3 of 3 passed" in result.stdout


def test_cli_all_with_a_wrong_plugin_exits_1_pointing_at_the_wrong_input():
    result = gradcheck("--all", "--plugin", "tests/plugins/wrong_backward.py")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "gate 'SquaredDifference' (SquaredDifference): FAIL" in result.stdout
    assert "b: 12 of 12 checked elements failed" in result.stdout
    assert "a: " not in result.stdout and "FAILED: SquaredDifference" in result.stdout


@pytest.mark.parametrize("args, message", [
    ((), "give exactly one of"),
    (("--gate", "Multipy"), "did you mean 'Multiply'?"),
    (("--all", "--plugin", "tests/plugins/nowhere.py"), "plugin file 'tests/plugins/nowhere.py' "
                                                         "not found"),
    (("configs/nowhere.yaml",), "configs/nowhere.yaml: cannot read config"),
])
def test_cli_usage_and_config_errors_exit_2_in_one_line(args, message):
    result = gradcheck(*args)
    assert result.returncode == 2 and message in result.stderr
    assert "Traceback" not in result.stderr
