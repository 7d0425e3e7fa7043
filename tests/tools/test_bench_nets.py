"""The benchmark builds its LeNet in code (configs are not installed with the package): it must
stay the net of configs/lenet_mnist.yaml."""
from __future__ import annotations

from net import Net
from net.tools.bench.lenet import LENET

from tests.helpers import CONFIGS


def test_the_benchmarks_lenet_is_configs_lenet_mnist():
    ours, config = Net.from_config(LENET), Net.from_yaml(CONFIGS / "lenet_mnist.yaml")
    assert [(g.name, g.type, g.bottom, g.top, g.options, g.phase) for g in ours.spec.gates] == \
        [(g.name, g.type, g.bottom, g.top, g.options, g.phase) for g in config.spec.gates]
    assert {n: p.shape for n, p in ours.params.items()} == \
        {n: p.shape for n, p in config.params.items()}
