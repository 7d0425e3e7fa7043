"""scripts/run.py: the worked example as JSON, --set overrides, and a missing value reported in
one line without a traceback."""
from __future__ import annotations

import json
import subprocess
import sys

from tests.helpers import ROOT


def run_script(*args):
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def test_run_script_prints_the_worked_example_as_json():
    result = run_script("scripts/run.py", "configs/seed_example.yaml", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"outputs": {"f": 6.0},
                                         "gradients": {"x": 2.0, "y": 5.0, "z": 0.0}}


def test_run_script_set_overrides_values():
    result = run_script("scripts/run.py", "configs/seed_example.yaml", "--json",
                        "--set", "z=4", "--set", "x=-1")
    payload = json.loads(result.stdout)
    # a = 1, b = max(2, 4) = 4, f = 4; df/dx = 4, df/dy = 4 + 0, df/dz = a = 1
    assert payload == {"outputs": {"f": 4.0}, "gradients": {"x": 4.0, "y": 4.0, "z": 1.0}}


def test_run_script_reports_a_missing_value_without_traceback(tmp_path):
    config = tmp_path / "net.yaml"
    config.write_text("inputs: {x: {shape: []}}\ngates:\n  - {name: e, type: Exp, bottom: x, top: y}\n")
    result = run_script("scripts/run.py", str(config))
    assert result.returncode == 2
    assert "no value for input 'x'" in result.stderr and "Traceback" not in result.stderr
