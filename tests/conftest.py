"""Shared fixtures: a registry that forgets gates a test registered. (Paths and helpers shared by
several test files: tests/helpers.py.)"""
from __future__ import annotations

import pytest

from gates import register_gate, registered_gates, unregister_gate


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
