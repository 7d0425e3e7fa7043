"""ONNX files that declare more than they carry: each is refused in one line naming the file and
the node (name and operator) or initializer, before anything of the declared size is allocated.
Folding at import evaluates only the operators in onnx_values.FOLDED, each after its rule says
how many values it makes, within 2**20 values (or one per 8 bytes of the model) in all; an
initializer's or Constant's dims (their product in Python integers) must fit the data it holds.
The declared sizes here are beyond what numpy can allocate, or just over the budget, so that no
test allocates much even where a check were missing."""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from net import Net  # noqa: E402
from net.core.config import load_config  # noqa: E402
from net.formats.onnx_export import export_onnx  # noqa: E402
from net.formats.onnx_import import OnnxImportError, load_onnx_model  # noqa: E402
from net.formats.onnx_values import FOLD_FLOOR, fold_budget  # noqa: E402
from tests.helpers import CONFIGS  # noqa: E402

HUGE = 2 ** 62          # a size numpy refuses outright: no test can allocate it


def ints(name: str, values) -> TensorProto:
    return numpy_helper.from_array(np.asarray(values, np.int64), name)


def relu_model(nodes: list, initializers: list = (), opset: int = 17):
    """x -> Relu -> y, with `nodes` (whose outputs nothing reads) and `initializers` beside."""
    graph = helper.make_graph(
        nodes + [helper.make_node("Relu", ["x"], ["y"], name="relu")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        initializer=list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def refused(model, file: str = "m.onnx") -> str:
    with pytest.raises(OnnxImportError) as caught:
        load_onnx_model(model, file)
    return str(caught.value)


_FILL = helper.make_tensor("v", TensorProto.INT64, [1], [7])
EXPANDING = {    # node (named "big") and initializers: what it would make, in values
    "ConstantOfShape": ([helper.make_node("ConstantOfShape", ["s"], ["o"], name="big",
                                          value=_FILL)], [ints("s", [2 ** 32, 2 ** 32])],
                        2 ** 64),
    "Range": ([helper.make_node("Range", ["a", "b", "c"], ["o"], name="big")],
              [ints("a", 0), ints("b", HUGE), ints("c", 1)], HUGE),
    "Tile": ([helper.make_node("Tile", ["one", "r"], ["o"], name="big")],
             [ints("one", [1]), ints("r", [HUGE])], HUGE),
    "Expand": ([helper.make_node("Expand", ["one", "s"], ["o"], name="big")],
               [ints("one", [1]), ints("s", [HUGE, 4])], 4 * HUGE),
    "ConstantOfShape of a folded shape": (
        [helper.make_node("Concat", ["a", "b"], ["s"], name="cat", axis=0),
         helper.make_node("ConstantOfShape", ["s"], ["o"], name="big", value=_FILL)],
        [ints("a", [2 ** 40]), ints("b", [2 ** 40])], 2 ** 80),
    "Mul broadcasting a column and a row": (    # 1100 x 1100 from 1100 + 1100 values
        [helper.make_node("Range", ["a", "b", "c"], ["r"], name="range"),
         helper.make_node("Unsqueeze", ["r", "one"], ["column"], name="column"),
         helper.make_node("Unsqueeze", ["r", "zero"], ["row"], name="row"),
         helper.make_node("Mul", ["column", "row"], ["o"], name="big")],
        [ints("a", 0), ints("b", 1100), ints("c", 1), ints("one", [1]), ints("zero", [0])],
        1100 * 1100),
}


@pytest.mark.parametrize("case", EXPANDING)
def test_a_node_folding_to_more_values_than_the_model_may_is_refused_by_name(case):
    nodes, initializers, count = EXPANDING[case]
    op_type = nodes[-1].op_type
    message = refused(relu_model(nodes, initializers), "tiny.onnx")
    assert message.startswith(f"tiny.onnx: node 'big' ({op_type}) would compute {count} "
                              "values at import, more than the ")
    assert "(2**20, or one per 8 bytes of the model if more)" in message


def test_the_budget_counts_every_folded_value_of_the_model():
    """Three ConstantOfShape of 2**19 values each: the third is over 2**20 in all."""
    nodes = [helper.make_node("ConstantOfShape", ["s"], [f"o{k}"], name=f"fill{k}", value=_FILL)
             for k in range(3)]
    message = refused(relu_model(nodes, [ints("s", [512, 1024])]))
    assert message.startswith(f"m.onnx: node 'fill2' (ConstantOfShape) would compute {2 ** 19} "
                              f"values at import, more than the 0 left of the {FOLD_FLOOR} ")


def test_the_budget_grows_with_the_model():
    assert fold_budget(100) == fold_budget(8 * FOLD_FLOOR) == FOLD_FLOOR
    assert fold_budget(80 * FOLD_FLOOR) == 10 * FOLD_FLOOR


def test_operators_outside_the_folded_table_are_not_evaluated():
    """A Loop (which could run without end) is left to the mappers, which have none for it."""
    body = helper.make_graph(
        [helper.make_node("Identity", ["go"], ["again"]),
         helper.make_node("Add", ["v", "step"], ["v_next"])], "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("go", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v", TensorProto.INT64, [])],
        [helper.make_tensor_value_info("again", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_next", TensorProto.INT64, [])],
        [ints("step", 1)])
    loop = helper.make_node("Loop", ["trips", "go", "v0"], ["v_end"], name="spin", body=body)
    model = relu_model([loop], [ints("trips", 3), numpy_helper.from_array(np.array(True), "go"),
                                ints("v0", 0)])
    assert refused(model).endswith("spin (Loop): no Gatework mapping")


def test_shape_arithmetic_of_the_usual_operators_still_folds():
    """A reshape target as exporters compute it (Shape, Gather, Range, ConstantOfShape,
    Expand, Equal, Where, Mul, Concat): the batch entry becomes Reshape's 0."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 6])
    node = helper.make_node
    nodes = [node("Shape", ["x"], ["s"]), node("Gather", ["s", "zero"], ["n"], axis=0),
             node("Range", ["one", "three", "one"], ["tail"]),            # [1, 2]
             node("Gather", ["s", "tail"], ["rest"], axis=0),             # [2, 3]
             node("ConstantOfShape", ["one_1"], ["minus"], value=helper.make_tensor(
                 "m", TensorProto.INT64, [1], [-1])),
             node("Expand", ["n", "one_1"], ["n1"]),
             node("Equal", ["minus", "minus"], ["always"]),
             node("Where", ["always", "minus", "rest_size"], ["last"]),
             node("Mul", ["rest", "one"], ["same"]),
             node("Concat", ["n1", "last"], ["target"], axis=0),
             node("Reshape", ["x", "target"], ["y"], name="view")]
    graph = helper.make_graph(nodes, "view", [x], [y], [
        ints("zero", 0), ints("one", 1), ints("three", 3), ints("one_1", [1]),
        ints("rest_size", [6])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    net = load_onnx_model(model, phase="test")
    assert [(g.type, g.options["shape"]) for g in net.spec.gates] == [("Reshape", [0, -1])]
    value = np.arange(30, dtype=np.float32).reshape(5, 2, 3)
    np.testing.assert_array_equal(net.forward({"x": value})["y"], value.reshape(5, 6))


def empty_tensor(name: str, dims: list[int], raw: bytes | None = None) -> TensorProto:
    tensor = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=dims)
    if raw is not None:
        tensor.raw_data = raw
    return tensor


@pytest.mark.parametrize("dims, raw, count, held", [
    ([10 ** 6, 10 ** 6], None, 10 ** 12, 0),
    ([2 ** 32, 2 ** 32, 1], b"\0" * 4, 2 ** 64, 1),      # 2**64 wraps to 0 in int64
    ([4], b"\0" * 8, 4, 2),
])
def test_an_initializer_declaring_more_than_its_data_is_refused_as_config_and_weights(
        tmp_path, dims, raw, count, held):
    model = relu_model([], [empty_tensor("fc1.W", dims, raw)])
    path = tmp_path / "declared.onnx"
    onnx.save(model, path)
    expected = (f"{path}: initializer 'fc1.W' declares shape {dims} ({count} values) but its "
                f"data holds {held}")
    with pytest.raises(OnnxImportError) as caught:
        load_config(path)
    assert str(caught.value) == expected
    net = Net.from_yaml(CONFIGS / "two_layer.yaml", phase="test")
    with pytest.raises(OnnxImportError) as caught:
        net.load_weights(path)
    assert str(caught.value) == expected


def test_weights_kept_in_an_external_file_still_read(tmp_path):
    """onnx.load brings the external data in; the check counts it as the data held."""
    net = Net.from_yaml(CONFIGS / "two_layer.yaml", phase="test", seed=1)
    path = tmp_path / "external.onnx"
    onnx.save(export_onnx(net), path, save_as_external_data=True, location="external.data",
              size_threshold=0)
    assert sorted(load_config(path).initial) == sorted(net.params)
    fresh = Net.from_yaml(CONFIGS / "two_layer.yaml", phase="test", seed=2)
    fresh.load_weights(path, strict=True)
    for name, value in net.params.items():
        np.testing.assert_array_equal(fresh.params[name], value)


def test_a_constant_declaring_more_than_its_data_is_refused():
    constant = helper.make_node("Constant", [], ["c"], name="k",
                                value=empty_tensor("v", [10 ** 6, 10 ** 6]))
    assert refused(relu_model([constant])) == (
        "m.onnx: the value of node 'k' (Constant) declares shape [1000000, 1000000] "
        "(1000000000000 values) but its data holds 0")


def test_sparse_and_valueless_constants_are_refused_by_name():
    sparse = helper.make_sparse_tensor(helper.make_tensor("v", TensorProto.INT64, [1], [5]),
                                       helper.make_tensor("i", TensorProto.INT64, [1], [0]),
                                       [HUGE, HUGE])
    assert refused(relu_model([helper.make_node("Constant", [], ["c"], name="k",
                                                sparse_value=sparse)])) == \
        "m.onnx: node 'k' (Constant) holds a sparse tensor (Gatework has none)"
    assert refused(relu_model([helper.make_node("Constant", [], ["c"])])) == \
        "m.onnx: node 'Constant_0' (Constant) has 0 attributes, where a Constant has one " \
        "(its value)"


def test_average_pooling_of_a_declared_huge_input_is_refused_before_its_divisor():
    """The divisor correction (one factor per output position) is checked against free
    memory before it is computed."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, HUGE, HUGE])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    pool = helper.make_node("AveragePool", ["x"], ["y"], name="pool", kernel_shape=[3, 3],
                            pads=[1, 1, 1, 1])
    model = helper.make_model(helper.make_graph([pool], "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 17)])
    message = refused(model)
    assert f"pool (AveragePool): the divisor correction of its {HUGE} x {HUGE} outputs " \
           "needs " in message and message.endswith("GiB free")


def test_batch_norm_statistics_of_another_size_than_the_channels_are_refused():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 2, 2])
    floats = lambda name, size: numpy_helper.from_array(np.ones(size, np.float32), name)  # noqa
    for sizes, words in (((4, 4, 3, 4), "mean holds 3 values for 4 channels"),
                         ((3, 4, 4, 4), "'s' holds 3 values where the gate needs shape (4,)")):
        graph = helper.make_graph(
            [helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"],
                              name="bn")], "g", [x],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 2, 2])],
            [floats(name, size) for name, size in zip("sbmv", sizes)])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        assert refused(model).endswith(f"bn (BatchNormalization): {words}")
