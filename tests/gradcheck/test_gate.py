"""The numeric gradient checker on single gates: every registered gate passes it, and it catches
real mistakes.

The first test is the promise made to anyone adding a gate: a gate in the `gates` package is
checked here as soon as it is registered, with no test written for it.
"""
from __future__ import annotations

import numpy as np
import pytest

from gates import Gate, registered_gates
from net.gradcheck import GradcheckWarning, GradientCheckError, check_gate

SHIPPED = sorted(name for name, cls in registered_gates().items()
                 if cls.__module__.split(".")[0] == "gates")


@pytest.mark.parametrize("phase", ["train", "test"])
@pytest.mark.parametrize("type_name", SHIPPED)
def test_every_registered_gate_passes_the_gradient_check(type_name, phase):
    report = check_gate(type_name, phase=phase)
    assert report.ok, str(report)
    assert report.checked > 0 or not report.differentiable, str(report)


# -- real mistakes, each named ---------------------------------------------------------------------
def test_a_forgotten_factor_fails_with_the_element_values_and_errors(buggy):
    report = check_gate(buggy.ForgetsFactorGate)
    assert not report.ok and report.failed == report.checked == 12
    text = str(report)
    assert "gate 'ForgetsFactor' (ForgetsFactor): FAIL" in text
    assert "x: 12 of 12 checked elements failed" in text
    worst = report.worst[0]
    assert worst.numeric == pytest.approx(3 * worst.analytic, rel=1e-6)   # the missing 3
    for label in ("numeric", "analytic", "abs err", "rel err", f"{worst.where} = ", "h = 0.0001"):
        assert label in text


def test_swapped_gradients_fail_on_both_inputs(buggy):
    report = check_gate(buggy.SwapsGradientsGate)
    assert [(i.name, i.failed, i.checked) for i in report.inputs] == [("a", 12, 12),
                                                                     ("b", 12, 12)]
    assert "a: 12 of 12" in str(report) and "b: 12 of 12" in str(report)


def test_a_gradient_of_the_wrong_shape_is_a_contract_violation_naming_the_input(buggy):
    report = check_gate(buggy.WrongShapeGate)
    assert not report.ok
    assert report.contract == ["the gradient for 'b' has shape (3, 4), but b has shape (4,)"]
    assert check_gate(buggy.BroadcastBiasGate).ok          # the same gate done right


def test_an_output_shape_other_than_infer_shapes_is_a_contract_violation(buggy):
    """The numbers are right, but a Net built with this gate would record (3, 1) for its top,
    and its runner would refuse the (3,) that forward returns."""
    report = check_gate(buggy.MisdeclaredShapeGate)
    assert report.failed == 0 and not report.ok
    assert report.contract == ["forward returned shape (3,) for output 0, but infer_shapes gives "
                               "(3, 1) for these inputs"]


def test_modifying_dout_in_place_is_caught_even_when_the_values_are_right(buggy):
    report = check_gate(buggy.ModifiesDoutGate)
    assert report.failed == 0 and not report.ok
    assert "backward modified dout (the upstream gradient) in place" in str(report)


@pytest.mark.parametrize("gate, message", [
    ("WrongCountGate", "backward must return a tuple of 2 gradients, one per input (a, b), got 1"),
    ("RandomBackwardGate", "backward run twice gave different gradients for 'x'"),
    ("ModifiesInputGate", "forward or backward modified input 'x' in place"),
])
def test_other_contract_violations(buggy, gate, message):
    report = check_gate(getattr(buggy, gate))
    assert not report.ok and message in str(report)


def test_raise_on_failure_carries_the_report(buggy):
    with pytest.raises(GradientCheckError, match="ForgetsFactor") as caught:
        check_gate(buggy.ForgetsFactorGate, raise_on_failure=True)
    assert caught.value.report.failed == 12
    check_gate("Multiply", raise_on_failure=True)           # a pass returns quietly


def test_an_exception_in_the_gate_is_a_failure_with_its_message():
    class Broken(Gate):
        def forward(self, x):
            raise ValueError("no such thing")

    report = check_gate(Broken)
    assert not report.ok and "ValueError: no such thing" in str(report)
    assert "Broken.forward" not in str(report) and "raise ValueError" in report.traceback


# -- what is skipped, sampled, or not perturbed ----------------------------------------------------
def test_relu_at_zero_is_skipped_with_the_gates_reason():
    report = check_gate("ReLU", [np.array([[0.0, 1.0, -5e-5, 2.0]])])
    assert (report.checked, report.skipped, report.ok) == (2, 2, True)
    assert "skipped 2 element(s) of x: within 2h of a kink (x == 0: the gradient there is " \
           "taken as 0)" in str(report)


def test_a_tie_of_max_is_skipped_on_both_inputs():
    report = check_gate("Max", [np.array([1.0, 2.0]), np.array([1.0, 0.0])])
    assert [(i.checked, i.skipped) for i in report.inputs] == [(1, 1), (1, 1)]


def test_integer_labels_are_not_perturbed():
    report = check_gate("SoftmaxWithLoss")
    labels = report.inputs[1]
    assert report.ok and labels.checked == 0 and labels.note == "integer: not perturbed"


def test_a_gate_that_returns_no_gradient_is_not_differentiable_not_failed():
    class ArgMaxGate(Gate):
        def forward(self, x):
            return np.argmax(x, axis=1).astype(float)

        def backward(self, dout):
            return (None,)

    report = check_gate(ArgMaxGate)
    assert report.ok and report.status == "not differentiable" and report.checked == 0
    assert "not differentiable" in str(report)


def test_a_random_gate_sees_the_same_draw_at_every_evaluation():
    class NoisyScaleGate(Gate):
        def forward(self, x):
            self.noise = 1 + self.rng.standard_normal(x.shape)
            return x * self.noise

        def backward(self, dout):
            return (dout * self.noise,)

    assert check_gate(NoisyScaleGate).ok
    dropout = check_gate("Dropout", options={"dropout_ratio": 0.5})
    assert dropout.ok and dropout.checked == 12


def test_parameters_are_created_from_param_specs_and_checked_like_inputs():
    report = check_gate("InnerProduct")
    assert [(i.name, i.kind, i.shape) for i in report.inputs] == [
        ("x", "input", (4, 5)), ("W", "parameter", (3, 5)), ("b", "parameter", (3,))]
    assert report.ok and report.checked == 20 + 15 + 3


def test_sample_and_directional_modes(buggy):
    sampled = check_gate("InnerProduct", sample=4)
    assert [i.checked for i in sampled.inputs] == [4, 4, 3]
    directional = check_gate("InnerProduct", directional=True)
    assert directional.ok and [i.checked for i in directional.inputs] == [1, 1, 1]
    assert not check_gate(buggy.ForgetsFactorGate, directional=True).ok


def test_float32_inputs_are_checked_as_float64_with_a_warning():
    with pytest.warns(GradcheckWarning, match="float32"):
        report = check_gate("Tanh", [np.ones((2, 2), np.float32) * 0.3])
    assert report.ok and "float32" in report.warnings[0]


def test_tolerances_come_from_the_call_then_the_class_then_the_defaults():
    class LooseGate(Gate):
        check_tol = {"rtol": 1e-3}

        def forward(self, x):
            return x

        def backward(self, dout):
            return (dout,)

    report = check_gate(LooseGate)
    assert (report.h, report.rtol, report.atol) == (1e-4, 1e-3, 1e-6)
    assert check_gate(LooseGate, rtol=0.5, h=1e-3).rtol == 0.5
