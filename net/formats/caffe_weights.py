"""Caffe's .caffemodel weights as a Net's parameters and buffers, and back.

    net.load_weights("lenet_iter_10000.caffemodel")     # through the registered reader
    arrays = read_caffemodel(path, net)                  # {"conv1.W": ..., "bn1.mean": ...}
    blobs = gate_blobs(net)["conv1"]                      # [W, b] in Caffe's blob order

A caffemodel is a binary NetParameter (current `layer` or V1 `layers`, upgraded); each layer's
`blobs` are matched to the gate of the same name, in order: a gate's parameters in the order
the gate declares them (W then b: Caffe's order), except BatchNorm, whose three blobs are its
buffers mean, variance and scale_factor (Caffe's moving-average factor). As Caffe's
CopyTrainedLayersFrom: a layer whose name matches no gate is passed over and reported (its
blobs come back under `<layer>.blobs[i]`, which Net.load_weights lists as ignored), a layer
with another number of blobs than its gate has arrays is an error, and so is a shape mismatch,
naming the layer. A blob in the legacy num/channels/height/width form matches an array of up
to four axes padded with leading 1s (an old InnerProduct's (1, 1, 500, 800) is (500, 800)).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from gates import short_repr
from net.core.spec import PHASES

from ..errors import DataError
from .caffe_files import read_net_binary
from .caffe_messages import blob_shape, blob_to_array

#: gates whose Caffe blobs are buffers first: gate type -> the buffer names, in blob order
BUFFER_BLOBS = {"BatchNorm": ("mean", "variance", "scale_factor")}


def read_caffemodel(path: str | Path, net: Any) -> dict[str, np.ndarray]:
    """The arrays of a .caffemodel by the net's names (the reader Net.load_weights uses)."""
    model = read_net_binary(path)
    targets = weight_names(net)
    live = {**net.params, **net.buffers}
    arrays: dict[str, np.ndarray] = {}
    for layer in model.layer:
        blobs = layer.blobs
        if not blobs:
            continue
        names = targets.get(layer.name)
        where = f"{path}: layer {short_repr(layer.name)}"
        if names is None:
            for index, blob in enumerate(blobs):
                arrays[f"{layer.name}.blobs[{index}]"] = blob_to_array(blob,
                                                                       f"{where} blob {index}")
            continue
        if len(blobs) != len(names):
            raise DataError(f"{where} has {len(blobs)} blob(s) but the gate has "
                            f"{len(names)} array(s) ({', '.join(names) or 'none'})")
        for index, (blob, name) in enumerate(zip(blobs, names)):
            arrays[name] = _fitted(blob, live[name].shape, f"{where} blob {index} ({name})")
    return arrays


def _fitted(blob, target: tuple, where: str) -> np.ndarray:
    """A blob's values in the target shape, where Caffe's ShapeEquals lets them match."""
    array = blob_to_array(blob, where)
    shape = blob_shape(blob)
    legacy = not blob.has("shape")
    if shape == tuple(target) or (legacy and len(target) <= 4
                                  and shape == (1,) * (4 - len(target)) + tuple(target)):
        return array.reshape(target)
    raise DataError(f"{where}: shape {shape} in the file but {tuple(target)} in the net")


def weight_names(net: Any) -> dict[str, list[str]]:
    """Each gate's arrays in Caffe's blob order (gates without arrays left out)."""
    names: dict[str, list[str]] = {}
    current = net.phase
    try:
        for phase in PHASES:
            net.phase = phase
            for step in net.runner.steps:
                gate = step.spec.name
                if gate in names:
                    continue
                buffers = [f"{gate}.{key}" for key in BUFFER_BLOBS.get(step.spec.type, ())]
                arrays = buffers + list(step.inputs[len(step.spec.bottom):])
                if arrays:
                    names[gate] = arrays
    finally:
        net.phase = current
    return names


def gate_blobs(net: Any) -> dict[str, list[np.ndarray]]:
    """Each gate's arrays in Caffe's blob order, in the net's dtype (buffers too)."""
    live = {**net.params, **net.buffers}
    return {gate: [np.asarray(live[name], dtype=net.dtype) for name in names]
            for gate, names in weight_names(net).items()}
