"""Plugins: a config's `plugins:` loads a user's gate file from a path, and a file also imported
by hand registers its gates once."""
from __future__ import annotations

import sys
import textwrap

import pytest

from net import Net


def test_plugins_load_user_gates_from_a_path(tmp_path, clean_registry):
    (tmp_path / "my_gates.py").write_text(textwrap.dedent("""\
        from gates import Gate, register_gate

        @register_gate
        class SquareGate(Gate):
            def forward(self, x):
                self.x = x
                return x * x

            def backward(self, dout):
                return (2 * self.x * dout,)
    """))
    config = tmp_path / "net.yaml"
    config.write_text("plugins: [my_gates.py]\ndtype: float64\ninputs: {x: {shape: []}}\n"
                      "gates:\n  - {name: sq, type: Square, bottom: x, top: y}\n")
    net = Net.from_yaml(config)
    assert net.forward({"x": 3.0})["y"] == 9.0
    assert net.backward()["x"] == 6.0


@pytest.mark.parametrize("import_first", [True, False])
def test_a_plugin_file_also_imported_by_hand_registers_its_gates_once(tmp_path, clean_registry,
                                                                      monkeypatch, import_first):
    """`import my_gates` in a session and `plugins: [my_gates.py]` in a config are one module."""
    import importlib
    stem = f"user_gates_{'import' if import_first else 'plugin'}_first"
    (tmp_path / f"{stem}.py").write_text(textwrap.dedent(f"""\
        from gates import Gate, register_gate

        @register_gate("Twice{stem}")
        class TwiceGate(Gate):
            def forward(self, x):
                return 2 * x

            def backward(self, dout):
                return (2 * dout,)
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    config = {"plugins": [f"{stem}.py"], "inputs": {"x": {"shape": []}},
              "gates": [{"name": "t", "type": f"Twice{stem}", "bottom": "x", "top": "y"}]}
    if import_first:
        importlib.import_module(stem)
    net = Net.from_config(config, base_dir=tmp_path)
    importlib.import_module(stem)
    assert net.forward({"x": 3.0})["y"] == 6.0
    monkeypatch.delitem(sys.modules, stem)
