"""configs/lenet_fashion.yaml on the real Fashion-MNIST (Debian's dataset-fashion-mnist), kept
short for CI: 200 iterations already reach about 80% on the 10,000 test images. (The full
10,000-iteration run, past 90%, is a README figure, not a test.)"""
from __future__ import annotations

import pytest

from net.train import train
from net.train.sources.idx import FASHION_MNIST
from tests.helpers import CONFIGS


@pytest.mark.slow
@pytest.mark.skipif(not FASHION_MNIST.is_dir(), reason="needs Debian's dataset-fashion-mnist "
                    "(sudo apt-get install dataset-fashion-mnist)")
def test_lenet_learns_fashion_mnist_in_200_iterations(tmp_path):
    result = train(CONFIGS / "lenet_fashion.yaml", output_dir=tmp_path, max_iter=200)
    assert result["iter"] == 200 and result["test_iter"] == 200
    assert result["test"]["accuracy"] > 0.7, result["test"]
