"""The cost table: backprop against the numeric gradient, a row per size, from Python and from
scripts/cost.py."""
from __future__ import annotations

import subprocess
import sys

from net.tools.cost import cost_rows, format_cost
from tests.helpers import ROOT


def test_cost_table_has_a_row_per_size():
    rows = cost_rows(widths=(2, 4), depth=1, batch=2, repeats=1, max_timed=10)
    assert [r.params for r in rows] == [2 * 2 + 2 + 2 * 2 + 2, 4 * 4 + 4 + 4 * 4 + 4]
    assert rows[1].timed == 10 < rows[1].params
    text = format_cost(rows)
    assert "numeric / (fwd+bwd)" in text and "(est.)" in text


def test_cost_script_prints_the_table():
    result = subprocess.run([sys.executable, "scripts/cost.py", "--widths", "2", "3", "--depth",
                             "1", "--repeats", "1"], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "mlp2x1" in result.stdout and "mlp3x1" in result.stdout
