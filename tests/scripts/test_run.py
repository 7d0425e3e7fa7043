"""scripts/run.py: the worked example as JSON, --set overrides, and a missing value reported in
one line without a traceback."""
from __future__ import annotations

import ast
import json
import subprocess
import sys

import pytest

from net import Net
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


def test_run_script_says_when_an_input_without_a_value_is_random(tmp_path):
    config = tmp_path / "net.yaml"
    config.write_text("inputs: {x: {shape: []}}\n"
                      "gates:\n  - {name: e, type: Exp, bottom: x, top: y}\n")
    result = run_script("scripts/run.py", str(config))
    assert result.returncode == 0, result.stderr
    assert result.stderr == "note: x: random values (the config has no data section)\n"
    assert "outputs:\n  y = " in result.stdout


def test_python_reports_a_missing_value_naming_the_input(tmp_path):
    net = Net.from_config({"inputs": {"x": {"shape": []}},
                           "gates": [{"name": "e", "type": "Exp", "bottom": "x", "top": "y"}]})
    with pytest.raises(KeyError, match="no value for input 'x'"):
        net.forward()


def test_run_script_traces_the_worked_example():
    result = run_script("scripts/run.py", "configs/seed_example.yaml", "--trace")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for expected in ("  add (Add): x = 1, y = 2 -> a = 3", "  max (Max): y = 2, z = 0 -> b = 2",
                     "  mul (Multiply): a = 3, b = 2 -> f = 6", "    df/da = 1 x 2 = 2",
                     "    df/db = 1 x 3 = 3", "  y fans out to add, max: df/dy = 2 + 3 = 5"):
        assert expected in lines
    assert lines.index("    df/da = 1 x 2 = 2") < lines.index("    df/dz = 3 x 0 = 0") < \
        lines.index("  y fans out to add, max: df/dy = 2 + 3 = 5")


def test_run_script_gradients_of_intermediate_blobs():
    result = run_script("scripts/run.py", "configs/seed_example.yaml", "--json",
                        "--wrt", "a", "--wrt", "b", "--wrt", "y")
    assert json.loads(result.stdout)["gradients"] == {"a": 2.0, "b": 3.0, "y": 5.0}
    result = run_script("scripts/run.py", "configs/seed_example.yaml", "--trace", "--wrt", "b")
    assert result.stdout.splitlines()[-1] == "gradients: df/db = 3"


@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT / "scripts").glob("*.py")
                                          if not p.name.startswith("_")))
def test_every_scripts_help_opens_with_a_whole_sentence(script):
    """`--help` shows the first line of the script's docstring: it must be a sentence of its
    own, not the first half of one."""
    doc = ast.get_docstring(ast.parse((ROOT / "scripts" / script).read_text()))
    assert doc and doc.splitlines()[0].endswith("."), doc and doc.splitlines()[0]
