"""Caffe's DataTransformer: crop, mirror, mean subtraction and scaling of (C, H, W) samples.

For each sample, in Caffe's order (data_transformer.cpp, Transform(Datum)):

    1. crop: a crop_size x crop_size square at offsets (h_off, w_off): random, uniform over
       0 .. H - crop_size and 0 .. W - crop_size, in the train phase; centred in the test phase,
       ((H - crop_size) // 2, (W - crop_size) // 2)
    2. mirror: with `mirror`, in the train phase, a coin flip per sample reverses the width axis
    3. mean: mean_file's value at the sample's own (uncropped) position, or mean_value[c] per
       channel (one value serves every channel)
    4. scale: out = (x - mean) * scale, computed in the net's float dtype, as Caffe computes in
       its Dtype

One difference from Caffe, on purpose: Caffe also flips test-phase samples when `mirror` is set;
here mirroring is a train-phase augmentation only, so a test pass is the same every time.

Randomness comes from the generator a batch is given, drawn for the whole global batch (every
process of a data-parallel run draws the same values and takes its own slice), so a batch is a
function of the seed and its position in the data alone: prefetching, resuming and the number
of processes change nothing.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ...errors import ConfigError, DataError
from ..files import read_npz, regular_file, size_text
from .caffe_records import decode_blob

#: a .binaryproto mean holds its values as float or double, packed or one field each (at most 9
#: bytes a value); a file larger than this a value, plus the slack, is not a mean of the samples
MEAN_BYTES_PER_VALUE = 16
MEAN_SLACK_BYTES = 1 << 20


class Transformer:
    """A TransformSpec made ready for one source: the mean loaded and checked against the
    sample shape. `output_shape` is the sample shape after the transform."""

    def __init__(self, spec, phase: str, sample_shape: tuple, dtype: np.dtype,
                 base_dir: Path, file: str | None = None):
        self.spec, self.phase, self.dtype = spec, phase, np.dtype(dtype)
        self.input_shape = tuple(sample_shape)

        def error(message: str, key: str) -> ConfigError:
            return ConfigError(f"data.{phase}.transform: {message}", file,
                               spec.key_lines.get(key, spec.line))

        spatial = spec.crop_size or spec.mirror or spec.mean_file
        if spatial and len(self.input_shape) != 3:
            raise error(f"crop_size, mirror and mean_file need (C, H, W) samples; this source "
                        f"gives {self.input_shape}", "crop_size" if spec.crop_size else "mirror")
        if spec.crop_size and spec.crop_size > min(self.input_shape[1:]):
            raise error(f"crop_size {spec.crop_size} is larger than the samples "
                        f"({self.input_shape[1]} x {self.input_shape[2]})", "crop_size")
        self.mean = None
        if spec.mean_file:
            self.mean = read_mean(Path(base_dir) / spec.mean_file, self.input_shape
                                  ).astype(self.dtype)
        elif spec.mean_value:
            channels = self.input_shape[0] if self.input_shape else 1
            if len(spec.mean_value) not in (1, channels):
                raise error(f"mean_value gives {len(spec.mean_value)} values: give one, or one "
                            f"per channel ({channels})", "mean_value")
            values = np.array(spec.mean_value, dtype=self.dtype)
            if len(values) == 1:
                values = np.repeat(values, channels)
            self.mean = values.reshape((-1,) + (1,) * (len(self.input_shape) - 1))
        self.scale = self.dtype.type(spec.scale)

    def output_shape(self) -> tuple:
        crop = self.spec.crop_size
        return self.input_shape[:1] + (crop, crop) if crop else self.input_shape

    def __call__(self, batch: np.ndarray, rng: np.random.Generator | None, lo: int, hi: int,
                 total: int) -> np.ndarray:
        """Transform samples lo:hi of a global batch of `total` (`batch` holds only those);
        random draws are made for all `total` samples from `rng`."""
        spec = self.spec
        train = self.phase == "train"
        flips = offsets = None
        if spec.mirror and train:
            flips = rng.integers(0, 2, total)[lo:hi].astype(bool)
        if spec.crop_size:
            height, width = self.input_shape[1:]
            crop = spec.crop_size
            if train:
                offsets = np.stack([rng.integers(0, height - crop + 1, total),
                                    rng.integers(0, width - crop + 1, total)], axis=1)[lo:hi]
            else:
                offsets = np.tile([(height - crop) // 2, (width - crop) // 2], (len(batch), 1))
        values = batch.astype(self.dtype)
        if self.mean is not None:
            values -= self.mean
        if offsets is not None:
            crop = spec.crop_size
            values = np.stack([values[i, :, h:h + crop, w:w + crop]
                               for i, (h, w) in enumerate(offsets)]) if len(values) else \
                values[:, :, :crop, :crop]
        if flips is not None and flips.any():
            values[flips] = values[flips][..., ::-1]
        if self.scale != 1:
            values *= self.scale
        return values


def read_mean(path: Path, sample_shape: tuple) -> np.ndarray:
    """A mean file as a (C, H, W) array matching `sample_shape`: Caffe's .binaryproto (a
    BlobProto of shape (1, C, H, W)) or an .npz holding one array; DataError naming the file.
    Nothing is read from what is not a regular file, and nothing larger than such a mean can
    be: an .npz array may declare at most 8 bytes a value, a .binaryproto may have at most
    MEAN_BYTES_PER_VALUE bytes a value plus MEAN_SLACK_BYTES."""
    values = math.prod(sample_shape)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        arrays = read_npz(path, "mean file", max_bytes=8 * values)
        if len(arrays) != 1:
            raise DataError(f"{path}: a mean .npz holds one array, not {len(arrays)}")
        mean = next(iter(arrays.values()))
    else:
        size = regular_file(path, "mean file")
        if size > MEAN_BYTES_PER_VALUE * values + MEAN_SLACK_BYTES:
            raise DataError(f"{path}: {size_text(size)} is more than a mean of the samples' "
                            f"{values} values can take (samples {tuple(sample_shape)})")
        try:
            content = path.read_bytes()
        except OSError as err:
            raise DataError(f"{path}: cannot read the mean file ({err.strerror})") from None
        mean = decode_blob(content, str(path))
    if mean.ndim == 4 and mean.shape[0] == 1:
        mean = mean[0]
    if tuple(mean.shape) != tuple(sample_shape):
        raise DataError(f"{path}: the mean is {tuple(mean.shape)} but the samples are "
                        f"{tuple(sample_shape)} (before cropping; Caffe requires the same)")
    if not np.all(np.isfinite(mean)):
        raise DataError(f"{path}: the mean holds NaN or Inf")
    return mean
