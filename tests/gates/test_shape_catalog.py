"""Caffe's structure layers (gates/shape.py): Tile (against PyTorch in float64), Slice, Split,
Crop, Reshape with axis/num_axes and Flatten with axis/end_axis (against the shapes and values of
Caffe's layer tests and caffe.proto's examples), their gradients, and their mistakes."""
from __future__ import annotations


import numpy as np
import pytest

from gates import gate_class
from net import ConfigError, Net
from net.gradcheck import check_gate

RNG = np.random.default_rng(5)


def make(type_name, **options):
    return gate_class(type_name)(**options)


def passes_gradcheck(gate, inputs=None):
    report = check_gate(gate, inputs)
    assert report.ok and report.checked, str(report)
    return report


# -- Tile ---------------------------------------------------------------------------------------
def test_tile_repeats_the_whole_block_from_axis_on():
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_array_equal(make("Tile", axis=0, tiles=2).forward(x),
                                  [[1, 2], [3, 4], [1, 2], [3, 4]])
    gate = make("Tile", axis=1, tiles=3)
    np.testing.assert_array_equal(gate.forward(x), [[1, 2, 1, 2, 1, 2], [3, 4, 3, 4, 3, 4]])
    assert gate.infer_shapes((None, 2)) == ((None, 6),)
    np.testing.assert_array_equal(gate.backward(np.arange(12.0).reshape(2, 6))[0],
                                  [[0 + 2 + 4, 1 + 3 + 5], [6 + 8 + 10, 7 + 9 + 11]])


def test_tile_needs_a_positive_count():
    with pytest.raises(ValueError, match="option 'tiles' must be a positive integer"):
        make("Tile", tiles=0)
    with pytest.raises(ValueError, match="option 'tiles' is required"):
        make("Tile")


# -- Slice, after Caffe's test_slice_layer.cpp (bottom 6 x 12 x 2 x 3) -------------------------
BOTTOM = RNG.standard_normal((6, 12, 2, 3))


def test_slice_into_equal_parts_by_the_number_of_tops():
    gate = make("Slice", axis=0)
    gate.num_tops = 3                       # what the Net sets from three tops
    assert gate.infer_shapes(BOTTOM.shape) == ((2, 12, 2, 3),) * 3
    pieces = gate.forward(BOTTOM)
    for i, piece in enumerate(pieces):
        np.testing.assert_array_equal(piece, BOTTOM[2 * i:2 * i + 2])
    np.testing.assert_array_equal(gate.backward(pieces)[0], BOTTOM)
    passes_gradcheck(gate, [BOTTOM[:, :2]])


def test_slice_at_slice_points_sets_its_top_count():
    gate = make("Slice", slice_point=[3])
    assert gate.num_tops == 2
    assert gate.infer_shapes(BOTTOM.shape) == ((6, 3, 2, 3), (6, 9, 2, 3))
    first, second = gate.forward(BOTTOM)
    np.testing.assert_array_equal(first, BOTTOM[:, :3])
    np.testing.assert_array_equal(second, BOTTOM[:, 3:])
    three = make("Slice", axis=-1, slice_point=[1, 2])
    assert three.infer_shapes((None, 4, 3)) == ((None, 4, 1),) * 3
    passes_gradcheck(three, [RNG.standard_normal((2, 2, 3))])


@pytest.mark.parametrize("options, num_tops, shape, message", [
    ({"slice_point": [3, 2]}, None, None, "slice_point must increase"),
    ({"slice_point": [0]}, None, None, "slice_point must be a list of integers of at least 1"),
    ({"slice_point": [3]}, 3, (6, 12), "slice_point makes 2 pieces but the gate has 3 top"),
    ({"slice_point": [12]}, None, (6, 12), "slice_point 12 is not inside the axis of size 12"),
    ({}, 5, (6, 12), "an axis of size 12 does not split into 5 equal parts"),
])
def test_slice_mistakes(options, num_tops, shape, message):
    with pytest.raises(ValueError, match=message):
        gate = make("Slice", **options)
        if num_tops:
            gate.num_tops = num_tops
        gate.infer_shapes(shape)


# -- Split --------------------------------------------------------------------------------------
def test_split_hands_the_blob_to_every_top_and_sums_their_gradients():
    gate = make("Split")
    assert gate.num_tops == 1 and gate.top_range() == (1, None)
    gate.num_tops = 3
    x = RNG.standard_normal((2, 3))
    tops = gate.forward(x)
    assert len(tops) == 3 and all(top is x for top in tops)
    assert gate.infer_shapes((None, 3)) == ((None, 3),) * 3
    douts = tuple(RNG.standard_normal((2, 3)) for _ in range(3))
    np.testing.assert_allclose(gate.backward(douts)[0], sum(douts), rtol=1e-15)
    passes_gradcheck(gate)


def test_split_and_slice_in_a_net():
    net = Net.from_config({
        "dtype": "float64", "inputs": {"x": {"shape": [None, 4]}},
        "gates": [{"name": "split", "type": "Split", "bottom": "x", "top": ["a", "b"]},
                  {"name": "slice", "type": "Slice", "bottom": "a", "top": ["a1", "a2"]},
                  {"name": "sum", "type": "Eltwise", "bottom": ["a1", "a2"], "top": "s"},
                  {"name": "out", "type": "Concat", "bottom": ["s", "b"], "top": "y"}]})
    x = RNG.standard_normal((3, 4))
    np.testing.assert_allclose(net.forward({"x": x})["y"],
                               np.concatenate([x[:, :2] + x[:, 2:], x], axis=1))


# -- Crop, after Caffe's test_crop_layer.cpp (bottoms 2 x 4 x 5 x 4 and 2 x 3 x 4 x 2) -----------
X, REF = RNG.standard_normal((2, 4, 5, 4)), np.zeros((2, 3, 4, 2))


@pytest.mark.parametrize("options, offsets, out_shape", [
    ({"axis": 0}, (0, 0, 0, 0), (2, 3, 4, 2)),                            # TestCropAll
    ({"axis": 0, "offset": [0, 1, 1, 2]}, (0, 1, 1, 2), (2, 3, 4, 2)),    # TestCropAllOffset
    ({"axis": 2, "offset": [1, 2]}, (0, 0, 1, 2), (2, 4, 4, 2)),          # TestCropHW
    ({"offset": 1}, (0, 0, 1, 1), (2, 4, 4, 2)),                          # one offset for all
    ({"axis": -1}, (0, 0, 0, 0), (2, 4, 5, 2)),
])
def test_crop_takes_the_window_at_the_offsets(options, offsets, out_shape):
    gate = make("Crop", **options)
    assert gate.infer_shapes(X.shape, REF.shape) == (out_shape,)
    out = gate.forward(X, REF)
    assert out.shape == out_shape
    for index in np.ndindex(out_shape):
        assert out[index] == X[tuple(i + o for i, o in zip(index, offsets))]
    dout = RNG.standard_normal(out_shape)
    dx, dref = gate.backward(dout)
    assert dref is None and dx.sum() == pytest.approx(dout.sum())
    window = tuple(slice(o, o + n) for o, n in zip(offsets, out_shape))
    np.testing.assert_array_equal(dx[window], dout)
    passes_gradcheck(gate, [X, REF])


@pytest.mark.parametrize("options, ref_shape, message", [
    ({"offset": [1, 2, 3]}, (2, 3, 4, 2), "offset gives 3 values for the 2 axes cropped"),
    ({"offset": [1, 3]}, (2, 3, 4, 2), "axis 3: offset 3 plus the reference's size 2 passes"),
    ({}, (2, 3, 4), "differ in their number of axes"),
    ({"offset": -1}, (2, 3, 4, 2), "offset must be a list of integers of at least 0"),
])
def test_crop_mistakes(options, ref_shape, message):
    with pytest.raises(ValueError, match=message):
        make("Crop", **options).infer_shapes(X.shape, ref_shape)


# -- Reshape: caffe.proto's examples and test_reshape_layer.cpp ---------------------------------
@pytest.mark.parametrize("options, in_shape, out_shape", [
    ({"shape": [2, 2, 4]}, (2, 8), (2, 2, 4)),
    ({"shape": [0, 2, 4]}, (2, 8), (2, 2, 4)),
    ({"shape": [0, 2, -1]}, (2, 8), (2, 2, 4)),
    ({"shape": [0, -1, 4]}, (2, 8), (2, 2, 4)),
    ({"shape": [2, 4], "axis": 1}, (2, 8), (2, 2, 4)),
    ({"shape": [2, 4], "axis": -2}, (2, 8), (2, 2, 4)),      # caffe.proto's comment says -3
    ({"shape": [1, 2], "num_axes": 1}, (2, 8), (1, 2, 8)),
    ({"shape": [1], "num_axes": 0}, (2, 8), (1, 2, 8)),
    ({"shape": [1], "axis": 1, "num_axes": 0}, (2, 8), (2, 1, 8)),
    ({"shape": [0, -1]}, (2, 3, 6, 5), (2, 90)),                               # FlattenOutputSizes
    ({"shape": [-1], "axis": 1, "num_axes": 2}, (2, 3, 6, 5), (2, 18, 5)),     # FlattenMiddle
    ({"shape": [1, 1, 1], "num_axes": 0}, (2, 3, 6, 5), (1, 1, 1, 2, 3, 6, 5)),   # InsertStart
    ({"shape": [1, 1, 1], "axis": 2, "num_axes": 0}, (2, 3, 6, 5), (2, 3, 1, 1, 1, 6, 5)),
    ({"shape": [1, 1, 1], "axis": -1, "num_axes": 0}, (2, 3, 6, 5), (2, 3, 6, 5, 1, 1, 1)),
    ({"shape": [0, 0, -1]}, (2, 3, 6, 5), (2, 3, 30)),                          # CopyDimensions
    ({"shape": [0, 3, -1]}, (None, 3, 4), (None, 3, 4)),
    ({"shape": [-1, 12]}, (None, 3, 4), (None, 12)),
    ({"shape": [6, -1], "axis": 1}, (None, 3, 4), (None, 6, 2)),
])
def test_reshape_follows_caffes_reshape_parameter(options, in_shape, out_shape):
    gate = make("Reshape", **options)
    assert gate.infer_shapes(in_shape) == (out_shape,)
    if None not in in_shape:
        x = RNG.standard_normal(in_shape)
        out = gate.forward(x)
        np.testing.assert_array_equal(out, x.reshape(out_shape))
        np.testing.assert_array_equal(gate.backward(out)[0], x)


@pytest.mark.parametrize("options, in_shape, message", [
    ({"shape": [-1, -1]}, None, "at most one -1"),
    ({"shape": [2, -2]}, None, "shape must be a list of integers of at least -1"),
    ({"shape": [0, 0, 0]}, (2, 8), "shape\\[2\\] is 0 \\(copy the input's dimension\\) but the "
                                   "input \\(2, 8\\) has no axis 2"),
    ({"shape": [3, 5]}, (2, 8), "cannot reshape \\(2, 8\\) \\(16 elements\\) into \\(3, 5\\)"),
    ({"shape": [3, -1]}, (2, 8), "cannot reshape \\(2, 8\\) into \\[3, -1\\]"),
    ({"shape": [1], "axis": 3}, (2, 8), "axis 3 is out of range .* \\(Reshape takes -3 to 2\\)"),
    ({"shape": [2, 4], "axis": -3}, (2, 8), "cannot reshape \\(2, 8\\) \\(16 elements\\)"),
    ({"shape": [1], "axis": 1, "num_axes": 2}, (2, 8), "num_axes 2 from axis 1 reaches past"),
])
def test_reshape_mistakes(options, in_shape, message):
    with pytest.raises(ValueError, match=message):
        make("Reshape", **options).infer_shapes(in_shape)


# -- Flatten: test_flatten_layer.cpp (bottom 2 x 3 x 6 x 5) --------------------------------------
@pytest.mark.parametrize("options, out_shape", [
    ({}, (2, 90)),                                      # TestSetup
    ({"axis": 2}, (2, 3, 30)),                          # TestSetupWithAxis
    ({"end_axis": -2}, (2, 18, 5)),                     # TestSetupWithEndAxis
    ({"axis": 0, "end_axis": -2}, (36, 5)),             # TestSetupWithStartAndEndAxis
    ({"axis": -1}, (2, 3, 6, 5)),
    ({"axis": 2, "end_axis": 1}, (2, 3, 1, 6, 5)),      # an empty range counts 1, as in Caffe
])
def test_flatten_merges_axis_to_end_axis(options, out_shape):
    gate = make("Flatten", **options)
    assert gate.infer_shapes((2, 3, 6, 5)) == (out_shape,)
    x = RNG.standard_normal((2, 3, 6, 5))
    np.testing.assert_array_equal(gate.forward(x), x.reshape(out_shape))


def test_flatten_keeps_an_open_batch_open():
    assert make("Flatten").infer_shapes((None, 3, 4)) == ((None, 12),)
    assert make("Flatten", axis=0).infer_shapes((None, 3, 4)) == ((None,),)


@pytest.mark.parametrize("options, message", [
    ({"axis": 9}, "axis 9 is out of range for an input of 4 dimensions"),
    ({"end_axis": -5}, "end_axis -5 is out of range for an input of 4 dimensions"),
    ({"axis": 3, "end_axis": 1}, "end_axis 1 \\(axis 1\\) comes before axis 3 \\(axis 3\\)"),
])
def test_flatten_axes_outside_the_input_are_errors_not_wrapped(options, message):
    with pytest.raises(ValueError, match=message):
        make("Flatten", **options).infer_shapes((2, 3, 6, 5))


def test_flatten_axis_out_of_range_in_a_config_names_the_line(tmp_path):
    config = tmp_path / "flat.yaml"
    config.write_text("inputs: {x: {shape: [2, 3, 4]}}\n"
                      "gates:\n"
                      "  - {name: flat, type: Flatten, bottom: x, top: y, axis: 9}\n")
    with pytest.raises(ConfigError, match=f"^{config}:3: gate 'flat' \\(Flatten\\): axis 9 is "
                                          "out of range for an input of 3 dimensions"):
        Net.from_yaml(config)


def test_silence_swallows_blobs_so_they_are_not_outputs():
    net = Net.from_config({
        "dtype": "float64", "inputs": {"x": {"shape": [None, 2]}},
        "gates": [{"name": "fc", "type": "InnerProduct", "bottom": "x", "top": "y",
                   "num_output": 3},
                  {"name": "relu", "type": "ReLU", "bottom": "y", "top": "z"},
                  {"name": "quiet", "type": "Silence", "bottom": ["y", "x"], "top": []}]})
    assert net.outputs == ["z"]
    net.forward({"x": RNG.standard_normal((4, 2))})
    grads = net.backward()
    assert grads["fc.W"].shape == (3, 2)          # only z's gradient reaches fc
    gate = gate_class("Silence")()
    assert gate.forward(np.ones(2), np.ones(3)) == ()
    assert [g.tolist() for g in gate.backward(())] == [[0.0, 0.0], [0.0, 0.0, 0.0]]
    passes_gradcheck(gate)
