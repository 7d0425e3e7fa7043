"""The table of Caffe layer types as gates: it covers every registered gate (or says the gate is
Gatework's own), each option's default agrees with caffe.proto's (the differences are listed and
explained), and values convert both ways (fillers, enums, repeated fields)."""
from __future__ import annotations

import pytest

from gates import registered_gates
from net.errors import ConfigError
from net.formats.caffe_layers import (CAFFE_TYPES, LAYERS, canonical_filler, filler_from_caffe,
                                      filler_to_caffe, same_option)
from net.formats.caffe_schema import message_spec, new_message
from net.formats.prototree import Identifier

#: gates of Gatework's own, which Caffe has no layer for (export refuses them by name)
GATEWORK_ONLY = {"Add", "Divide", "MatMul", "Max", "Mean", "Min", "Multiply", "Subtract", "Sum"}

#: options whose Gatework default differs from caffe.proto's declared default only in form:
#: null means "not given", which is what Caffe does with the absent field (pad_h is read only
#: when given; normalization VALID unless the legacy `normalize` says otherwise)
PRESENCE = {("Convolution", "pad_h"), ("Convolution", "pad_w"), ("Deconvolution", "pad_h"),
            ("Deconvolution", "pad_w"), ("Pooling", "pad_h"),
            ("Pooling", "pad_w"), ("SoftmaxWithLoss", "normalization"),
            ("SigmoidCrossEntropyLoss", "normalization"), ("RNN", "num_output"),
            ("LSTM", "num_output")}
#: options Gatework has and Caffe's layer lacks; export refuses them unless at their default
GATE_ONLY_OPTIONS = {("BatchNorm", "affine"), ("Scale", "scale")}
#: caffe.proto fields Gatework does not implement (refused unless at caffe.proto's default)
CAFFE_ONLY_FIELDS = {("Convolution", "axis"), ("InnerProduct", "transpose"),
                     ("Deconvolution", "axis")}


def mapped_fields():
    """(caffe type, layer map, gate class, option, field spec) of every option in the table."""
    for caffe_type, layer_map in LAYERS.items():
        cls = layer_map.gate_class()
        if cls is None:
            continue
        for param in layer_map.params:
            spec = message_spec(message_spec("LayerParameter").field(param).type)
            for name, field in spec.fields.items():
                yield caffe_type, layer_map, cls, name, field


def test_every_registered_gate_has_a_caffe_type_or_is_gateworks_own():
    registered = set(registered_gates())
    assert registered - set(CAFFE_TYPES) == GATEWORK_ONLY & registered
    assert GATEWORK_ONLY <= registered


def test_option_defaults_agree_with_caffe_proto():
    differences, gate_only, caffe_only = set(), set(), set()
    for caffe_type, layer_map, cls, name, field in mapped_fields():
        option = layer_map.legacy.get(name, (name, None))[0]
        if option not in cls.options:
            if name not in layer_map.ignored:
                caffe_only.add((caffe_type, name))
            continue
        if name in layer_map.legacy or field.repeated or field.kind == "message" \
                or field.declared_default is None:
            continue
        caffe = layer_map.caffe_defaults.get(option, field.default)
        if not same_option(str(caffe) if field.kind == "enum" else caffe,
                           cls.options[option].default):
            differences.add((caffe_type, option))
    for caffe_type, layer_map in LAYERS.items():
        cls = layer_map.gate_class()
        fields = {name for param in layer_map.params for name in message_spec(
            message_spec("LayerParameter").field(param).type).fields}
        options = {layer_map.legacy.get(name, (name, None))[0] for name in fields}
        gate_only |= {(caffe_type, name) for name in (cls.options if cls else ())
                      if name not in options}
    assert differences == PRESENCE
    assert gate_only == GATE_ONLY_OPTIONS
    assert caffe_only <= CAFFE_ONLY_FIELDS


def test_weights_without_a_filler_are_zeros_as_in_caffe():
    for caffe_type in ("Convolution", "InnerProduct", "Embed", "RNN", "LSTM"):
        assert LAYERS[caffe_type].caffe_defaults["weight_filler"] == {"type": "constant"}


@pytest.mark.parametrize("fields, expected", [
    ({}, {"type": "constant"}),
    ({"type": "constant", "value": 0.5, "std": 3.0}, {"type": "constant", "value": 0.5}),
    ({"type": "gaussian", "std": 0.01, "mean": 0.0}, {"type": "gaussian", "mean": 0.0,
                                                       "std": 0.01}),
    ({"type": "xavier", "variance_norm": Identifier("AVERAGE")},
     {"type": "xavier", "variance_norm": "AVERAGE"}),
    ({"type": "msra"}, {"type": "msra"}),
    ({"type": "uniform", "min": -1.0, "max": 1.0}, {"type": "uniform", "min": -1.0,
                                                    "max": 1.0}),
])
def test_fillers_convert_both_ways(fields, expected):
    filler = filler_from_caffe(new_message("FillerParameter", **fields), "layer 'x'", "f", 1)
    assert filler == expected
    back = filler_to_caffe(filler)
    assert canonical_filler(filler_from_caffe(back, "", None, 0)) == canonical_filler(filler)


def test_fillers_gatework_lacks_are_refused():
    with pytest.raises(ConfigError, match="filler type 'positive_unitball'"):
        filler_from_caffe(new_message("FillerParameter", type="positive_unitball"),
                          "layer 'x'", "net.prototxt", 3)


def test_same_option_compares_fillers_with_defaults_and_never_bools_with_numbers():
    assert same_option({"type": "constant"}, {"type": "constant", "value": 0.0})
    assert not same_option({"type": "xavier"}, {"type": "constant"})
    assert same_option(1, 1.0) and not same_option(True, 1) and not same_option(0, False)
