"""Hostile weights and solverstate files (issue 12, items 1, 6, 7): each is refused naming the
file before anything is allocated for what it merely declares, and nothing is half-loaded."""
from __future__ import annotations

import io
import json
import struct
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from net import DataError, Net, Solver
from net.train.files import read_npz
from net.train.snapshot import restore, snapshot
from tests.helpers import examples

TINY = {"name": "tiny", "inputs": {"x": {"shape": [None, 3]}, "y": {"shape": [None, 2]}},
        "gates": [{"name": "fc", "type": "InnerProduct", "bottom": "x", "top": "o",
                   "num_output": 2},
                  {"name": "loss", "type": "EuclideanLoss", "bottom": ["o", "y"],
                   "top": "loss"}],
        "solver": {"base_lr": 0.1, "momentum": 0.9}}


def npy_header(shape: tuple, dtype: str = "<f4") -> bytes:
    """The .npy header of an array of `shape` (the data itself is left out)."""
    header = repr({"descr": dtype, "fortran_order": False, "shape": shape}).encode() + b" "
    header += b" " * (-(len(header) + 11) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header


def write_npz(path, members: dict[str, bytes], compress: bool = False) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) \
            as archive:
        for name, data in members.items():
            archive.writestr(name + ".npy", data)


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def weights_of(net: Net) -> dict[str, bytes]:
    return {name: npy(value) for name, value in net.params.items()}


def test_a_member_declaring_a_huge_shape_is_refused_before_allocation(tmp_path):
    path = tmp_path / "w.npz"
    net = Net.from_config(TINY)
    write_npz(path, {**weights_of(net), "fc.W": npy_header((100000, 100000)) + b"\0" * 64})
    with pytest.raises(DataError, match="'fc.W' declares 40000000000 bytes"):
        net.load_weights(path)
    with pytest.raises(DataError, match="declares shape \\(100000, 100000\\)"):
        read_npz(path)                       # no expectation: the entry's size exposes it


def test_an_extra_zero_filled_member_is_never_read(tmp_path):
    path = tmp_path / "w.npz"
    net = Net.from_config(TINY)
    bomb = npy_header((64, 1024, 1024)) + bytes(64 << 20)          # 256 MiB of zeros
    write_npz(path, {**weights_of(net), "padding": bomb}, compress=True)
    assert path.stat().st_size < 2 << 20
    report = net.load_weights(path)
    assert report["ignored"] == ["padding"] and sorted(report["loaded"]) == ["fc.W", "fc.b"]


def test_data_that_ends_early_is_called_truncated(tmp_path):
    path = tmp_path / "w.npz"
    write_npz(path, {"fc.W": npy_header((2, 3)) + b"\0" * 8})
    with pytest.raises(DataError, match="'fc.W' is truncated: 8 of its 24 bytes"):
        read_npz(path)


@pytest.mark.parametrize("members", [None, {"fc.W": b"garbage" * 20}])
def test_pk_and_garbage_is_corrupt_not_pickled(tmp_path, members):
    path = tmp_path / "w.npz"
    if members is None:
        path.write_bytes(b"PK\x03\x04" + b"garbage" * 20)
    else:
        write_npz(path, members)               # a real zip whose member is not an array
    with pytest.raises(DataError) as info:
        Net.from_config(TINY).load_weights(path)
    assert "corrupt or truncated" in str(info.value) and "pickle" not in str(info.value)


def test_weights_beyond_float32_range_are_refused(tmp_path):
    path = tmp_path / "w.npz"
    net = Net.from_config(TINY)
    np.savez(path, **{"fc.W": np.full((2, 3), 1e300), "fc.b": np.zeros(2)})
    with pytest.raises(DataError, match="beyond float32's range"):
        net.load_weights(path)
    assert not np.any(net.params["fc.W"] == np.inf)


def trained_snapshot(tmp_path):
    net = Net.from_config(TINY)
    solver = Solver.from_config(net)
    rng = np.random.default_rng(0)
    solver.step({"x": rng.standard_normal((4, 3)), "y": rng.standard_normal((4, 2))})
    return solver, snapshot(solver, tmp_path / "tiny")


def rewrite_state(state_path, **changes):
    with np.load(state_path) as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays.update(changes)
    np.savez(state_path, **arrays)


@pytest.mark.parametrize("change, fragment", [
    ({"history:history:fc.W": np.full((2, 3), np.nan)}, "holds NaN or Inf"),
    ({"history:history:fc.W": np.zeros((4, 3))}, "the solver history of 'fc.W' is float64 (4, "
     "3), the net needs (2, 3) (is the snapshot from another net?)"),
    ({"history:history:fc.W": np.zeros((1000, 1000))}, "declares 8000000 bytes, more than"),
    ({"rng": np.array("[" * 100000 + "]" * 100000)}, "unreadable RNG state"),
    ({"rng": np.array(json.dumps({"fc": {"bit_generator": "nope"}}))}, "unreadable RNG state"),
    ({"rng": np.array("x" * (1 << 25))}, "declares"),
    ({"iter": np.zeros((1000, 1000))}, "has shape (1000, 1000); expected ()"),
])
def test_a_bad_solverstate_is_refused_and_changes_nothing(tmp_path, change, fragment):
    solver, (weights, state) = trained_snapshot(tmp_path)
    rewrite_state(state, **change)
    fresh = Solver.from_config(Net.from_config(TINY))
    before = {n: p.copy() for n, p in fresh.net.params.items()}
    with pytest.raises(DataError) as info:
        restore(fresh, state)
    assert fragment in str(info.value) and str(state) in str(info.value)
    assert all(np.array_equal(before[n], p) for n, p in fresh.net.params.items())
    assert fresh.iter == 0


@settings(max_examples=examples(150), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_weights_files_fail_only_with_data_errors(tmp_path, data):
    net = Net.from_config(TINY)
    blob = bytearray(_saved(net))
    for _ in range(data.draw(st.integers(1, 8))):
        where = data.draw(st.integers(0, len(blob) - 1))
        blob[where] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        blob = blob[:data.draw(st.integers(0, len(blob)))]
    path = tmp_path / "fuzzed.npz"
    path.write_bytes(bytes(blob))
    try:
        net.load_weights(path)
    except DataError as err:
        assert str(path) in str(err)


@settings(max_examples=examples(100), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_solverstates_fail_only_with_data_errors(tmp_path, data):
    solver, (weights, state) = _SNAPSHOT
    blob = bytearray(state.read_bytes())
    for _ in range(data.draw(st.integers(1, 8))):
        where = data.draw(st.integers(0, len(blob) - 1))
        blob[where] = data.draw(st.integers(0, 255))
    copy = weights.parent / "fuzzed.solverstate.npz"
    copy.write_bytes(bytes(blob))
    fresh = Solver.from_config(Net.from_config(TINY))
    try:
        restore(fresh, copy)
    except DataError as err:
        assert str(copy) in str(err) or str(weights) in str(err)


def _saved(net: Net) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **net.params)
    return buffer.getvalue()


@pytest.fixture(autouse=True, scope="module")
def _snapshot_once(tmp_path_factory):
    global _SNAPSHOT
    _SNAPSHOT = trained_snapshot(tmp_path_factory.mktemp("state"))
    yield
