"""The benchmark builds its convnets in code (configs are not installed with the package): they
must stay the nets of configs/lenet_mnist.yaml and configs/cifar10_quick.yaml."""
from __future__ import annotations

import pytest

from net import Net
from net.tools.bench.convnets import CIFAR10_QUICK, LENET

from tests.helpers import CONFIGS


@pytest.mark.parametrize("config, file", [(LENET, "lenet_mnist.yaml"),
                                          (CIFAR10_QUICK, "cifar10_quick.yaml")])
def test_the_benchmarks_nets_are_the_configs(config, file):
    def gates(net):
        return [(g.name, g.type, g.bottom, g.top, g.options, g.phase,
                 [(p.name, p.lr_mult, p.decay_mult) for p in g.param]) for g in net.spec.gates]
    ours, theirs = Net.from_config(config), Net.from_yaml(CONFIGS / file)
    assert gates(ours) == gates(theirs)
    assert {n: p.shape for n, p in ours.params.items()} == \
        {n: p.shape for n, p in theirs.params.items()}
