"""Caffe's DataTransformer: hand-computed cases of crop, mirror, mean (file and per channel)
and scale in Caffe's order, the phases, and the draws made per global batch."""
from __future__ import annotations

import numpy as np
import pytest

from net.core.config import parse_source
from net.errors import ConfigError, DataError
from net.train.sources.caffe_records import encode_blob
from net.train.sources.transform import Transformer


class Draws:
    """A stand-in generator: `integers` returns the next prepared array (checking its range)."""

    def __init__(self, *arrays):
        self.arrays = [np.asarray(a) for a in arrays]

    def integers(self, low, high, size):
        values = self.arrays.pop(0)
        assert values.shape == (size,) and low <= values.min() and values.max() < high
        return values


def transformer(tmp_path, phase="train", shape=(1, 3, 3), **transform):
    spec = parse_source({"source": "dummy", "dummy": {"data": {"shape": list(shape)},
                                                      "label": {"shape": []}},
                         "transform": transform}, phase).transform
    return Transformer(spec, phase, shape, np.float32, tmp_path)


def test_crop_mirror_mean_file_and_scale_in_caffes_order(tmp_path):
    # the mean is taken at the sample's own (uncropped) positions, then the crop is mirrored:
    # rows 1-2, columns 0-1 of x are [[4, 5], [7, 8]], minus the mean there [[1, 0], [0, 1]]
    # gives [[3, 5], [7, 7]]; mirrored [[5, 3], [7, 7]]; times 2: [[10, 6], [14, 14]]
    (tmp_path / "mean.binaryproto").write_bytes(
        encode_blob(np.array([[[0, 1, 0], [1, 0, 1], [0, 1, 0]]], np.float32)))
    apply = transformer(tmp_path, crop_size=2, mirror=True, scale=2.0,
                        mean_file="mean.binaryproto")
    x = np.arange(1, 10, dtype=np.uint8).reshape(1, 1, 3, 3)
    out = apply(x, Draws([1], [1], [0]), 0, 1, 1)        # flip, h_off 1, w_off 0
    np.testing.assert_array_equal(out, [[[[10, 6], [14, 14]]]])
    assert out.dtype == np.float32 and apply.output_shape() == (1, 2, 2)


def test_test_phase_crops_the_centre_and_never_mirrors(tmp_path):
    # C=2, H=3, W=4; offsets ((3-2)//2, (4-2)//2) = (0, 1); channel means 10 and 20; scale 0.5
    apply = transformer(tmp_path, "test", (2, 3, 4), crop_size=2, mirror=True,
                        mean_value=[10, 20], scale=0.5)
    x = np.arange(24, dtype=np.uint8).reshape(1, 2, 3, 4)
    out = apply(x, None, 0, 1, 1)
    np.testing.assert_array_equal(out, [[[[-4.5, -4], [-2.5, -2]], [[-3.5, -3], [-1.5, -1]]]])


def test_one_mean_value_serves_every_channel_and_scale_follows_it(tmp_path):
    apply = transformer(tmp_path, "test", (3, 1, 1), mean_value=100, scale=0.5)
    out = apply(np.array([[[[100]], [[102]], [[96]]]], np.uint8), None, 0, 1, 1)
    np.testing.assert_array_equal(out.reshape(-1), [0, 1, -2])


def test_draws_cover_the_global_batch_and_each_process_takes_its_slice(tmp_path):
    apply = transformer(tmp_path, crop_size=2, mirror=True)
    x = np.arange(4 * 9, dtype=np.uint8).reshape(4, 1, 3, 3)
    whole = apply(x, np.random.default_rng(5), 0, 4, 4)
    halves = [apply(x[lo:lo + 2], np.random.default_rng(5), lo, lo + 2, 4) for lo in (0, 2)]
    np.testing.assert_array_equal(np.concatenate(halves), whole)
    flipped = [np.array_equal(whole[i], x[i, :, h:h + 2, w:w + 2][..., ::-1])
               for i in range(4) for h in range(2) for w in range(2)]
    plain = [np.array_equal(whole[i], x[i, :, h:h + 2, w:w + 2])
             for i in range(4) for h in range(2) for w in range(2)]
    assert sum(flipped) + sum(plain) == 4          # each output is one crop, flipped or not


@pytest.mark.parametrize("transform, shape, error, fragment", [
    ({"crop_size": 4}, (1, 3, 3), ConfigError, "crop_size 4 is larger than the samples"),
    ({"mirror": True}, (5,), ConfigError, r"need \(C, H, W\) samples"),
    ({"mean_value": [1, 2]}, (3, 2, 2), ConfigError, "give one, or one per channel"),
    ({"mean_file": "missing.binaryproto"}, (1, 2, 2), DataError, "no such mean file"),
])
def test_transforms_that_do_not_fit_the_samples(tmp_path, transform, shape, error, fragment):
    with pytest.raises(error, match=fragment):
        transformer(tmp_path, "train", shape, **transform)


def test_a_mean_file_of_another_shape_is_refused(tmp_path):
    (tmp_path / "mean.binaryproto").write_bytes(encode_blob(np.zeros((3, 4, 4))))
    with pytest.raises(DataError, match=r"mean is \(3, 4, 4\) but the samples are \(3, 5, 5\)"):
        transformer(tmp_path, "test", (3, 5, 5), mean_file="mean.binaryproto")


def test_mean_file_and_mean_value_exclude_each_other():
    with pytest.raises(ConfigError, match="mean_file and mean_value exclude each other"):
        parse_source({"source": "x.npz", "transform": {"mean_file": "m", "mean_value": 1}})
