"""The checker's tests share the gates with deliberate mistakes in tests/plugins/buggy_gates.py."""
from __future__ import annotations

import importlib.util

import pytest

from tests.helpers import ROOT

PLUGINS = ROOT / "tests" / "plugins"


@pytest.fixture
def buggy(clean_registry):
    """tests/plugins/buggy_gates.py, freshly imported; its gate types are forgotten afterwards."""
    spec = importlib.util.spec_from_file_location("buggy_gates_under_test",
                                                  PLUGINS / "buggy_gates.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
