"""ONNX's own node tests, run through Gatework's importer: the conformance table.

The `onnx` package ships the generators of its backend node tests (onnx.backend.test.case.node):
each builds a one-node model and its expected outputs with numpy. Only the generator modules
that mention an operator Gatework maps are imported (a few seconds; nothing downloads), and every
single-node case of a mapped operator is run:

- inputs that the importer needs as constants (STATIC_INPUTS: shapes, axes, bounds) or as
  initializers (PARAM_INPUTS: weights a gate owns) are bound to the case's values, as a trained
  model holds them; the other inputs are fed;
- the model is imported (a float32 net for float inputs, float64 for double) and run forward in
  the test phase; outputs are compared as ONNX's backend runner compares them (rtol 1e-3,
  atol 1e-7, or the case's own);
- a case passes, fails, or does not apply (no float tensor involved: Gatework computes in
  floats). Every float case must pass or be listed in DIFFERENCES with the reason.

    python -m tests.formats.onnx_conformance      # the per-operator table, for the README
"""
from __future__ import annotations

import importlib
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from net.formats.onnx_import import MAPPERS, PARAM_INPUTS, STATIC_INPUTS, load_onnx_model

#: float cases of mapped operators that do not pass, and why (a semantic difference, or a
#: feature of the operator that Gatework's Caffe gates do not have)
_ONE_TYPE = "a net computes in one float type: a cast between float32 and float64 is refused"
_EMPTY = "a zero-size tensor: Gatework's shapes are positive"
_ONE_SIDED = "padding on one side only (auto_pad SAME_*): Caffe pads both sides alike"
_OUTPUT_PADDING = "output_padding (rows and columns added at the end): Caffe's Deconvolution " \
    "has none"
DIFFERENCES: dict[str, str] = {
    "test_cast_DOUBLE_to_FLOAT": _ONE_TYPE,
    "test_clip_min_greater_than_max": "Gatework's Clip refuses min above max (ONNX gives max)",
    "test_gather_0": "Gather from a 3-D table: only rows of a 2-D table map (Embed)",
    "test_gather_1": "Gather along axis 1: only rows of a 2-D table map (Embed)",
    "test_gather_2d_indices": "Gather along axis 1: only rows of a 2-D table map (Embed)",
    "test_gather_negative_indices": "Gather from a 1-D table: only rows of a 2-D table map "
                                    "(Embed, whose indices are never negative)",
    "test_gemm_transposeA": "transA = 1: Gatework has no transpose gate",
    "test_gemm_all_attributes": "transA = 1: Gatework has no transpose gate",
    "test_prelu_example": "a slope per element: Caffe's PReLU has one per channel or one",
    "test_prelu_broadcast": "a slope per last-axis entry: Caffe's PReLU has one per channel "
                            "(axis 1) or one",
    "test_reshape_allowzero_reordered": _EMPTY,
    "test_slice_start_out_of_bounds": _EMPTY,
    "test_slice_neg_steps": "steps other than 1: Caffe's Slice cuts contiguous pieces",
    "test_split_zero_size_splits_opset13": _EMPTY,
    "test_split_zero_size_splits_opset18": _EMPTY,
    "test_convtranspose_autopad_same": _ONE_SIDED,
    "test_convtranspose_output_shape": "an output_shape past the full output (rows and "
                                       "columns added at the end): Caffe's Deconvolution "
                                       "has no form for them",
    "test_convtranspose_pad": _OUTPUT_PADDING,
    "test_convtranspose_kernel_shape": _OUTPUT_PADDING,
    "test_averagepool_2d_same_upper": _ONE_SIDED,
    "test_averagepool_2d_same_lower": _ONE_SIDED,
    "test_maxpool_2d_same_upper": _ONE_SIDED,
    "test_maxpool_2d_same_lower": _ONE_SIDED,
}

#: reasons shared by several cases, by a pattern of their names
DIFFERENCE_PATTERNS: list[tuple[str, str]] = [
    (r"test_(average|max)pool_[13]d_default", "1-D and 3-D pooling: Caffe's Pooling is 2-D"),
    (r"test_convtranspose_[13]d", "1-D and 3-D transposed convolution: Gatework's "
                                  "Deconvolution is 2-D"),
    (r"test_(average|max)pool_.*dilations.*", "dilated pooling: Caffe's Pooling has no "
                                              "dilation"),
    (r"test_maxpool_with_argmax.*", "MaxPool's Indices output: int64 indices into the whole "
                                    "tensor, where Pooling's mask top (Caffe's) counts "
                                    "within each plane, as floats"),
    (r"test_batchnorm_.*_training_mode", "training mode with the running statistics as "
                                         "outputs: Gatework keeps them as buffers"),
    (r"test_(training_)?dropout_.*mask.*", "Dropout's mask output: not a top of Gatework's "
                                           "Dropout"),
    (r"test_training_dropout.*", "training mode: ONNX's random mask (its seed) cannot be "
                                 "reproduced; the test phase (inference) passes"),
    (r"test_pow(_example|_bcast_array|_types_float32_u?int(32|64))?",
     "an exponent per element: Caffe's Power takes one number"),
    (r"test_reduce_(l1|l2|sum|sum_square)_empty_set.*", _EMPTY),
]


@dataclass
class CaseResult:
    name: str
    op_type: str
    status: str          # "pass", "fail" or "n/a" (no float tensor: outside Gatework)
    detail: str = ""


def _float_case(case) -> bool:
    """Whether the case computes on float32 or float64 tensors (its first input and output)."""
    graph = case.model.graph
    types = [v.type.tensor_type.elem_type for v in list(graph.input[:1]) + list(graph.output[:1])]
    return bool(types) and all(t in (1, 11) for t in types)


def collect(op_types: list[str] | None = None) -> list:
    """The single-node cases of the given operators (default: every mapped one)."""
    from onnx.backend.test.case import node as node_cases
    wanted = set(op_types or MAPPERS)
    folder = Path(node_cases.__file__).parent
    pattern = re.compile(r'"(%s)"' % "|".join(sorted(wanted)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in sorted(folder.glob("*.py")):
            if path.stem != "__init__" and pattern.search(path.read_text(encoding="utf-8")):
                importlib.import_module(f"{node_cases.__name__}.{path.stem}")
    return [case for case in node_cases._NodeTestCases
            if len(case.model.graph.node) == 1
            and case.model.graph.node[0].op_type in wanted
            and case.model.graph.node[0].domain in ("", "ai.onnx")]


def _bind(case) -> tuple:
    """The case's model with constant-like inputs made initializers, and the feed for the
    rest."""
    from onnx import numpy_helper
    model = type(case.model)()
    model.CopyFrom(case.model)
    graph = model.graph
    node = graph.node[0]
    inputs, expected = ([numpy_helper.to_array(v) if hasattr(v, "dims") else np.asarray(v)
                         for v in values] for values in case.data_sets[0])
    present = [name for name in node.input if name]
    values = dict(zip(present, inputs))
    bound = set()
    for table in (STATIC_INPUTS, PARAM_INPUTS):
        for index in table.get(node.op_type, ()):
            if index < len(node.input) and node.input[index] in values:
                bound.add(node.input[index])
    for name in bound:
        graph.initializer.append(numpy_helper.from_array(np.asarray(values[name]), name))
    kept = [v for v in graph.input if v.name not in bound]
    del graph.input[:]
    graph.input.extend(kept)
    feed = {name: value for name, value in values.items() if name not in bound}
    outputs = [o.name for o in graph.output]
    return model, feed, dict(zip(outputs, expected))


def run_case(case) -> CaseResult:
    op_type = case.model.graph.node[0].op_type
    if not _float_case(case):
        return CaseResult(case.name, op_type, "n/a", "not a float32/float64 case")
    try:
        model, feed, expected = _bind(case)
        net = load_onnx_model(model, case.name, phase="test")
        got = net.forward(feed, outputs=list(expected))
    except Exception as err:                    # every failure is reported, not raised
        return CaseResult(case.name, op_type, "fail", f"{type(err).__name__}: {err}")
    for name, want in expected.items():
        want = np.asarray(want)
        have = np.asarray(got[name])
        if have.shape != want.shape:
            return CaseResult(case.name, op_type, "fail",
                              f"{name}: shape {have.shape}, expected {want.shape}")
        if not np.allclose(have, want, rtol=case.rtol, atol=case.atol, equal_nan=True):
            worst = float(np.max(np.abs(have.astype(np.float64) - want)))
            return CaseResult(case.name, op_type, "fail", f"{name}: off by up to {worst:.3g}")
    return CaseResult(case.name, op_type, "pass")


def gradient_check(case, sample: int = 12):
    """Gatework's gradient checker on the imported net of a case (a float64 copy, centred
    differences on up to `sample` elements of each float input and parameter); None when the
    case feeds inf or nan, where no finite difference exists."""
    from net.gradcheck import check_net
    model, feed, expected = _bind(case)
    floats = {k: np.asarray(v, dtype=np.float64) if v.dtype.kind == "f" else v
              for k, v in feed.items()}
    if not all(np.all(np.isfinite(v)) for v in floats.values() if v.dtype.kind == "f"):
        return None
    net = load_onnx_model(model, case.name, phase="test")
    return check_net(net, floats, sample=sample, seed=0)


def difference(name: str) -> str | None:
    """The documented reason a case does not pass, or None."""
    if name in DIFFERENCES:
        return DIFFERENCES[name]
    for pattern, reason in DIFFERENCE_PATTERNS:
        if re.fullmatch(pattern, name):
            return reason
    return None


def run_all(op_types: list[str] | None = None) -> list[CaseResult]:
    return [run_case(case) for case in collect(op_types)]


def table(results: list[CaseResult]) -> list[str]:
    """Markdown rows: operator, float cases passed / float cases, and why the others differ."""
    rows = ["| ONNX operator | float cases passed | the others: why |", "| --- | --- | --- |"]
    for op_type in sorted({r.op_type for r in results}):
        mine = [r for r in results if r.op_type == op_type and r.status != "n/a"]
        passed = sum(r.status == "pass" for r in mine)
        reasons = dict.fromkeys(difference(r.name) or "UNLISTED: " + r.detail
                                for r in mine if r.status == "fail")
        rows.append(f"| {op_type} | {passed} / {len(mine)} | {'; '.join(reasons) or '-'} |")
    counted = [r for r in results if r.status != "n/a"]
    rows.append(f"| all {len({r.op_type for r in results})} operators | "
                f"{sum(r.status == 'pass' for r in counted)} / {len(counted)} | |")
    return rows


if __name__ == "__main__":
    results = run_all()
    print("\n".join(table(results)))
