"""scripts/time_net.py: JSON and text output, and a bad --iterations refused."""
from __future__ import annotations

import json
import subprocess
import sys

from tests.helpers import CONFIGS, ROOT


def test_script_json_and_text(tmp_path):
    script = str(ROOT / "scripts" / "time_net.py")
    done = subprocess.run([sys.executable, script, str(CONFIGS / "two_layer.yaml"),
                           "--iterations", "2", "--batch-size", "3", "--json"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["batch_size"] == 3 and report["iterations"] == 2
    assert [g["name"] for g in report["gates"]] == ["fc1", "relu1", "fc2"]
    assert set(report) >= {"forward_ms", "backward_ms", "forward_backward_ms"}
    done = subprocess.run([sys.executable, script, str(CONFIGS / "seed_example.yaml"),
                           "--iterations", "2"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[3].split()[:2] == ["add", "Add"]
    done = subprocess.run([sys.executable, script, str(CONFIGS / "seed_example.yaml"),
                           "--iterations", "0"], capture_output=True, text=True)
    assert done.returncode == 2 and "at least 1" in done.stderr
