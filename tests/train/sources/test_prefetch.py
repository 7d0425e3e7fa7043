"""Loading ahead in a background thread: the same batches in the same order, errors handed
over in order, restarts after a jump, and training bit-identical with and without it."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from net import Net, Solver, load_config
from net.errors import DataError
from net.train.data import Batches, Dataset, load_data
from net.train.sources.prefetch import Lookahead


def test_items_in_order_then_the_error_then_nothing():
    def items():
        yield from range(5)
        raise DataError("record 5 is corrupt")

    ahead = Lookahead(items(), 2)
    assert [next(ahead) for _ in range(5)] == list(range(5))
    with pytest.raises(DataError, match="record 5"):
        next(ahead)
    with pytest.raises(StopIteration):
        next(ahead)


def test_close_stops_a_thread_blocked_on_a_full_queue():
    made = []

    def endless():
        while True:
            made.append(len(made))
            yield made[-1]

    before = threading.active_count()
    ahead = Lookahead(endless(), 3)
    time.sleep(0.1)
    ahead.close()
    assert len(made) <= 5 and threading.active_count() == before


def test_batches_ahead_equal_batches_on_demand_across_jumps():
    data = Dataset("toy", {"data": np.arange(23, dtype=np.float32)[:, None],
                           "label": np.arange(23)})
    plain, ahead = (Batches(data, 4, shuffle=True, seed=3, prefetch=p) for p in (0, 3))
    for batches in (plain, ahead):
        batches.set_state(1, 5)
    first = [(plain.next()["label"], ahead.next()["label"]) for _ in range(9)]
    for batches in (plain, ahead):
        batches.set_state(0, 2)                    # a resume: the thread restarts there
    second = [(plain.next()["label"], ahead.next()["label"]) for _ in range(4)]
    for a, b in first + second:
        np.testing.assert_array_equal(a, b)
    passes = [np.concatenate([feed["label"] for feed, _ in b.one_pass()]) for b in (plain, ahead)]
    np.testing.assert_array_equal(passes[0], np.arange(23))
    np.testing.assert_array_equal(passes[1], np.arange(23))
    ahead.close()


NET = """\
name: prefetched
inputs:
  data:  {shape: [null, 1, 6, 6]}
  label: {shape: [null], dtype: int}
gates:
  - {name: conv, type: Convolution, bottom: data, top: conv, num_output: 3, kernel_size: 3,
     weight_filler: {type: xavier}}
  - {name: fc, type: InnerProduct, bottom: conv, top: scores, num_output: 4,
     weight_filler: {type: xavier}}
  - {name: loss, type: SoftmaxWithLoss, bottom: [scores, label], top: loss}
data:
  train:
    source: train.npz
    batch_size: 8
    prefetch: PREFETCH
    transform: {crop_size: 6, mirror: true, mean_value: 100, scale: 0.01}
solver: {base_lr: 0.05, momentum: 0.9, max_iter: 25, display: 0, random_seed: 4}
"""


@pytest.mark.parametrize("prefetch", [1, 4])
def test_training_is_bit_identical_with_and_without_prefetching(tmp_path, prefetch):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "train.npz", data=rng.integers(0, 256, (30, 1, 8, 8), dtype=np.uint8),
             label=rng.integers(0, 4, 30))
    weights = []
    for depth in (0, prefetch):
        path = tmp_path / f"net{depth}.yaml"
        path.write_text(NET.replace("PREFETCH", str(depth)))
        net = Net(load_config(path))
        solver = Solver.from_config(net)
        data = load_data(net, solver.config.random_seed)
        assert data.train.prefetch == depth
        solver.solve(data)
        weights.append({k: v.copy() for k, v in net.params.items()})
        data.close()
    for name in weights[0]:
        np.testing.assert_array_equal(weights[0][name], weights[1][name])
