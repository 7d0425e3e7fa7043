"""The YAML loader's bounds: a file writes at most MAX_NODES values, counted as the loader reads
them, before the alias-expansion and nesting checks; each is one located error."""
from __future__ import annotations

import pytest

from net import ConfigError
from net.core import yaml as gatework_yaml
from net.core.yaml import load_yaml


@pytest.mark.parametrize("text, line", [
    ("gates: [" + "[], " * 10 + "]\n", 1),         # a million of these (3 MB) took 1.27 GB, 40 s
    ("gates:\n" + "- 1\n" * 10, 9),                # the mapping, its key, the list, 8 items
    ("a: 1\nb: 2\nc: 3\nd: 4\ne: 5\nf: 6\n", 5),   # keys count too: the 11th is line 5's 5
], ids=["flow lists", "block items", "keys"])
def test_a_file_writing_more_than_max_nodes_values_is_refused_as_they_are_read(
        monkeypatch, text, line):
    monkeypatch.setattr(gatework_yaml, "MAX_NODES", 10)
    with pytest.raises(ConfigError) as info:
        load_yaml(text, "big.yaml")
    assert str(info.value) == (f"big.yaml:{line}: the YAML holds more than 10 values (keys "
                               "included): refused (a config of 10,000 gates has about 220,000)")
    monkeypatch.setattr(gatework_yaml, "MAX_NODES", 13)
    load_yaml(text, "big.yaml")


def test_only_aliases_can_pass_max_values_so_that_error_blames_them_rightly():
    # the 3 MB file of empty lists used to be told "the YAML's aliases expand to more than
    # 1,000,000 values" although it had none: it now stops at MAX_NODES, which is lower
    assert gatework_yaml.MAX_NODES < gatework_yaml.MAX_VALUES
