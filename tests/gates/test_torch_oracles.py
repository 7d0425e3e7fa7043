"""Every gate family against PyTorch in float64, forward and backward: the cases and PyTorch's
answers live in tests/gates/fixtures (made by make_torch_fixtures_a.py and _b.py, run with a
Python that has PyTorch), so CI checks them without PyTorch; where PyTorch imports, each case is
also recomputed live, which shows that the stored answers are current."""
from __future__ import annotations

import numpy as np
import pytest

from tests.gates.fixtures import make_torch_fixtures_a as A
from tests.gates.fixtures import make_torch_fixtures_b as B

FAMILIES_A = ("activations", "arithmetic", "shape", "normalization")
FAMILIES_B = ("losses", "linalg", "recurrent")

CASES_A = [(family, case) for family in FAMILIES_A for case in A.cases(family)]
STORED_A = {family: A.read(family) for family in FAMILIES_A}
CASES_B = {family: B.load(family) for family in FAMILIES_B}
NAMES_B = [(family, name) for family in FAMILIES_B for name in sorted(CASES_B[family])]


def ids(item) -> str:
    return item.name if hasattr(item, "name") else str(item)


@pytest.mark.parametrize("family, case", CASES_A, ids=ids)
def test_a_family_matches_the_stored_pytorch_answers(family, case):
    A.compare(case, STORED_A[family][case.name])


@pytest.mark.parametrize("family, case", CASES_A, ids=ids)
def test_a_family_matches_pytorch_live(family, case):
    pytest.importorskip("torch")
    A.compare(case, A.live(case))


@pytest.mark.parametrize("family, name", NAMES_B, ids=ids)
def test_b_family_matches_the_stored_pytorch_answers(family, name):
    B.check_case(CASES_B[family][name])


@pytest.fixture(scope="module")
def live_b():
    pytest.importorskip("torch")
    return {family: B.build(family) for family in FAMILIES_B}


@pytest.mark.parametrize("family, name", NAMES_B, ids=ids)
def test_b_family_matches_pytorch_live_and_the_stored_cases_are_current(family, name, live_b):
    live = live_b[family][name]
    B.check_case(live)
    for mine, theirs in zip(CASES_B[family][name]["inputs"], live["inputs"]):
        np.testing.assert_array_equal(mine, theirs)
