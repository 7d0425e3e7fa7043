"""Shared fixtures: paths, and a registry that forgets gates a test registered."""
from __future__ import annotations

from pathlib import Path

import pytest

from gates import registered_gates, unregister_gate

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"


@pytest.fixture
def clean_registry():
    """Remove any gate type registered during the test."""
    before = set(registered_gates())
    yield
    for name in set(registered_gates()) - before:
        unregister_gate(name)
