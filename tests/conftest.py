"""Shared fixtures: paths, and a registry that forgets gates a test registered."""
from __future__ import annotations

from pathlib import Path

import pytest

from gates import register_gate, registered_gates, unregister_gate

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"


@pytest.fixture
def clean_registry():
    """Put the registry back as it was: types registered during the test are removed, types
    redefined during the test get their original class back."""
    before = registered_gates()
    yield
    for name, cls in registered_gates().items():
        if before.get(name) is not cls:
            unregister_gate(name)
            if name in before:
                register_gate(name)(before[name])
