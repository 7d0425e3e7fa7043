"""ONNX's own node tests through Gatework's importer (tests/formats/onnx_conformance.py runs
them): every float case of every mapped operator passes or is listed, with its reason, in the
table of differences; the table has no stale entries; the imported graphs' backward passes the
gradient checker. The per-operator counts are printed (and are the README's table)."""
from __future__ import annotations

import warnings

import pytest

pytest.importorskip("onnx")

from tests.formats import onnx_conformance as conformance  # noqa: E402

pytestmark = pytest.mark.slow      # collecting ONNX's generators takes a few seconds


@pytest.fixture(scope="module")
def results():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # the generators' own inf and nan
        cases = conformance.collect()
        return cases, [conformance.run_case(case) for case in cases]


def test_every_float_case_passes_or_is_a_listed_difference(results, capsys):
    cases, outcomes = results
    with capsys.disabled():
        print("\nONNX node tests through the importer (float cases passed / float cases):")
        print("\n".join(conformance.table(outcomes)))
    unlisted = [f"{r.name}: {r.detail}" for r in outcomes
                if r.status == "fail" and conformance.difference(r.name) is None]
    stale = [r.name for r in outcomes if r.status == "pass" and conformance.difference(r.name)]
    assert not unlisted, "failing cases missing from the table of differences:\n" + \
        "\n".join(unlisted)
    assert not stale, f"listed as differences but passing: {stale}"
    counted = [r for r in outcomes if r.status != "n/a"]
    assert sum(r.status == "pass" for r in counted) >= 250
    assert {r.op_type for r in outcomes} >= {"Conv", "ConvTranspose", "MaxPool", "AveragePool",
                                             "Gemm",
                                             "BatchNormalization", "Softmax", "Reshape"}


def test_the_table_of_differences_names_real_cases(results):
    cases, _ = results
    names = {case.name for case in cases}
    assert set(conformance.DIFFERENCES) <= names


def test_imported_node_graphs_pass_the_gradient_checker(results):
    cases, outcomes = results
    checked, failed = 0, []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for case, outcome in zip(cases, outcomes):
            report = conformance.gradient_check(case) if outcome.status == "pass" else None
            if report is None:
                continue           # not passing, or feeding inf or nan (no finite difference)
            checked += 1
            if not report.ok:
                failed.append(str(report))
    assert not failed, "\n\n".join(failed)
    assert checked >= 200
