"""Config mappings written as YAML and read back equal: every shipped config, scalars YAML would
misread if written plain, floats PyYAML reads only with a dot, and the 100-character lines."""
from __future__ import annotations

import math

import pytest

from net.core.yaml import load_yaml
from net.formats.config_yaml import config_yaml, scalar

from tests.helpers import CONFIGS


@pytest.mark.parametrize("config", sorted(p.name for p in CONFIGS.glob("*.yaml")))
def test_every_shipped_config_reads_back_equal(config):
    mapping = load_yaml((CONFIGS / config).read_text(), config)
    text = config_yaml(mapping, ["a comment"])
    assert load_yaml(text, "back.yaml") == mapping
    assert text.startswith("# a comment\n")
    assert max(len(line) for line in text.splitlines()) <= 100


@pytest.mark.parametrize("value", [
    "yes", "no", "on", "null", "true", "1e3", "0x10", "a b", "x: y", "#hash", "", "[1]",
    "ünïcode", "conv1/7x7_s2", "../data/train.npz", "-", "'quoted'", "a\nb",
    1e-05, 1e+20, -0.5, 0.1, 3.0, 7, -2, True, False, None, math.inf, -math.inf])
def test_scalars_read_back_as_themselves(value):
    assert load_yaml(f"key: {scalar(value)}\n")["key"] == value


def test_plain_names_stay_plain():
    assert [scalar(v) for v in ("conv1", "inception_3a/output", "Convolution", 1e-05)] == \
        ["conv1", "inception_3a/output", "Convolution", "1.0e-05"]
    assert scalar("yes") == '"yes"'
