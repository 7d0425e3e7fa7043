"""Shared fixtures: a registry that forgets gates a test registered. (Paths and helpers shared by
several test files: tests/helpers.py.)

Tests run with one BLAS thread (unless the variables are already set), here and in the scripts
they start: on a busy machine with few cores, OpenBLAS's threads wait for each other on every
small product, and the LeNet and training tests took 10 to 20 times longer (LeNet learning
digits: 15 s instead of 0.7 s). This runs before numpy is first imported."""
from __future__ import annotations

import os

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import pytest  # noqa: E402

from gates import register_gate, registered_gates, unregister_gate  # noqa: E402


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
