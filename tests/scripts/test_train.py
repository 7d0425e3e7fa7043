"""scripts/train.py's command line: a config error is one line, exit status 2, before the first
iteration and before anything is written. (Training runs themselves: tests/train/.)"""
from __future__ import annotations

from net import SolverConfig
from net.core.spec import settings_of

from tests.helpers import CONFIGS, train


def test_a_config_error_stops_before_the_first_iteration(tmp_path):
    text = (CONFIGS / "digits_mlp.yaml").read_text().replace("  momentum: 0.9",
                                                              "  momentum: 0.9\n  lr_polcy: step")
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    result = train(str(path), "--output-dir", str(tmp_path / "out"))
    assert result.returncode == 2
    line = text.splitlines().index("  lr_polcy: step") + 1
    assert result.stderr.strip() == (
        f"error: {path}:{line}: unknown key 'lr_polcy' in `solver`; did you mean 'lr_policy'? "
        f"(known: {', '.join(settings_of(SolverConfig))})")
    assert not (tmp_path / "out").exists()
