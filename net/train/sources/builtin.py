"""The built-in datasets (scikit-learn's bundled copies, no download): `digits` (8x8
handwritten digits, pixels scaled to [0, 1]), `iris` (features standardised) and `diabetes`
(a regression set, target standardised). Each has a fixed `train` and `test` part: every fifth
sample (index % 5 == 0) is a test sample; statistics come from the train part only.
"""
from __future__ import annotations

import numpy as np

from ...core.spec import BUILTIN_SOURCES
from ...errors import DataError

#: per-sample shapes (features, target), known without loading
SHAPES = {"digits": ((64,), ()), "iris": ((4,), ()), "diabetes": ((10,), ())}


def builtin_dataset(name: str, split: str) -> dict[str, np.ndarray]:
    """A built-in dataset's fixed `train` or `test` part: {"data", "label"}."""
    try:
        from sklearn import datasets
    except ImportError:
        raise DataError(f"the built-in dataset {name!r} needs scikit-learn: "
                        "pip install -e '.[train]'") from None
    if name == "digits":
        bunch = datasets.load_digits()
        data, label = bunch.data / 16.0, bunch.target
    elif name == "iris":
        bunch = datasets.load_iris()
        data, label = bunch.data, bunch.target
    elif name == "diabetes":
        bunch = datasets.load_diabetes()
        data, label = bunch.data, bunch.target.astype(np.float64)
    else:
        raise DataError(f"unknown built-in dataset {name!r} (known: "
                        f"{', '.join(BUILTIN_SOURCES)})")
    test = np.arange(len(data)) % 5 == 0
    train = ~test
    if name in ("iris", "diabetes"):     # standardise with statistics of the train part only
        data = (data - data[train].mean(axis=0)) / data[train].std(axis=0)
    if name == "diabetes":
        label = (label - label[train].mean()) / label[train].std()
    part = test if split == "test" else train
    return {"data": data[part], "label": label[part]}
