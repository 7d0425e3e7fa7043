"""Random mutations of valid configs (drop, rename, retype a key or item) never produce anything
but a ConfigError that carries a line number: no traceback from deep inside the engine."""
from __future__ import annotations

import copy

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from net import ConfigError, Net, Solver
from net.core.config import load_yaml, parse_config
from tests.helpers import CONFIGS, examples

BASES = ["seed_example.yaml", "affine.yaml", "two_layer.yaml", "digits_mlp.yaml",
         "iris_mlp.yaml", "lenet_digits.yaml"]
REPLACEMENTS = st.one_of(st.none(), st.booleans(), st.integers(-3, 5), st.floats(-2, 2),
                         st.sampled_from(["", "x", "Add", "float64", "train", "y"]),
                         st.lists(st.sampled_from([None, 0, 2, "x", "a"]), max_size=3),
                         st.fixed_dictionaries({"shape": st.just([2])}))


def places(node, path=()):
    """Every (path to a container, key or index) in a nested config."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield path, key
            yield from places(value, path + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield path, index
            yield from places(value, path + (index,))


def mutate(config, place, kind, replacement):
    config = copy.deepcopy(config)
    path, key = place
    parent = config
    for step in path:
        parent = parent[step]
    if kind == "drop":
        del parent[key]
    elif kind == "rename" and isinstance(parent, dict):
        parent[f"{key}_x" if isinstance(key, str) else "renamed"] = parent.pop(key)
    else:
        parent[key] = replacement
    return config


@settings(max_examples=examples(150), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(base=st.sampled_from(BASES), data=st.data())
def test_mutated_configs_fail_only_with_located_config_errors(base, data):
    config = yaml.safe_load((CONFIGS / base).read_text())
    where = data.draw(st.sampled_from(list(places(config))))
    kind = data.draw(st.sampled_from(["drop", "rename", "retype"]))
    text = yaml.safe_dump(mutate(config, where, kind, data.draw(REPLACEMENTS)))
    try:
        net = Net(parse_config(load_yaml(text, "mutated.yaml"), file="mutated.yaml"))
        if net.spec.solver is not None:
            Solver.from_config(net)
    except ConfigError as err:
        assert err.line is not None, str(err)
        assert str(err).startswith(f"mutated.yaml:{err.line}: ")
