"""Hostile and careless data files (issue 12, items 1, 12 and 18): nothing read wrongly without a
word, and nothing allocated that a file's content does not justify. Each case failed before
(a row silently lost, a value silently truncated, gigabytes allocated or a MemoryError)."""
from __future__ import annotations

import gzip
import struct
import tracemalloc
import zipfile
import zlib

import numpy as np
import pytest

from net import DataError, Net, load_config
from net.train.data import load_data
from net.train.sources import idx
from net.train.sources.images import decode_image

NET = """\
name: tiny
inputs:
  data:  {shape: [null, 3]DATA_DTYPE}
  label: {shape: [null], dtype: int}
gates:
  - {name: fc, type: InnerProduct, bottom: data, top: scores, num_output: 3}
  - {name: loss, type: SoftmaxWithLoss, bottom: [scores, label], top: loss}
data:
  train: {source: SOURCE, batch_size: 2, shuffle: false}
"""


def load(tmp_path, source, data_dtype=""):
    path = tmp_path / "net.yaml"
    path.write_text(NET.replace("SOURCE", source).replace("DATA_DTYPE", data_dtype))
    return load_data(Net(load_config(path))).train.dataset.arrays


def peak_bytes(action) -> int:
    """The most memory Python and numpy held while `action` ran (it may raise)."""
    tracemalloc.start()
    try:
        action()
    except DataError:
        pass
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


# -- item 12: CSV rows and casts -------------------------------------------------------------------
def test_a_byte_order_mark_does_not_turn_the_first_row_into_a_header(tmp_path):
    (tmp_path / "t.csv").write_bytes("\ufeff1,2,3,0\n4,5,6,1\n".encode("utf-8"))
    arrays = load(tmp_path, "t.csv")
    assert arrays["label"].tolist() == [0, 1] and arrays["data"][0].tolist() == [1, 2, 3]


def test_a_header_after_a_byte_order_mark_is_still_a_header(tmp_path):
    (tmp_path / "t.csv").write_bytes("\ufeffa,b,c,label\n1,2,3,0\n".encode("utf-8"))
    assert load(tmp_path, "t.csv")["label"].tolist() == [0]


@pytest.mark.parametrize("first, fragment", [
    ("1,2.O,3,0", r"t.csv:2: field 2 \('2.O'\) is not a number \(a header line has no numeric"),
    ("1,,3,0", "t.csv:2: field 2 is empty"),
    ("1,2,3", "t.csv:3: 4 fields, but the rows before have 3"),
])
def test_a_damaged_first_row_is_an_error_not_a_header(tmp_path, first, fragment):
    (tmp_path / "t.csv").write_text(f"# made by hand\n{first}\n4,5,6,1\n")
    with pytest.raises(DataError, match=fragment):
        load(tmp_path, "t.csv")


def test_a_damaged_later_row_names_its_line(tmp_path):
    rows = [f"{i},{i},{i},{i % 3}" for i in range(50)]
    rows[37] = "1,2,x,0"
    (tmp_path / "t.csv").write_text("a,b,c,label\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"t.csv:39: field 3 \('x'\) is not a number"):
        load(tmp_path, "t.csv")


def test_float_data_for_an_int_input_is_never_truncated(tmp_path):
    np.savez(tmp_path / "ok.npz", data=np.array([[1.0, 2, 3], [4, 5, 6]]), label=[0, 1])
    assert load(tmp_path, "ok.npz", ", dtype: int")["data"].dtype == np.int64
    np.savez(tmp_path / "bad.npz", data=np.array([[1.0, 2, 3], [4, 5.5, 6]]), label=[0, 1])
    with pytest.raises(DataError, match=r"declared int, so its values must be whole numbers "
                                        r"\(refusing to truncate them\); sample 1 holds 5.5"):
        load(tmp_path, "bad.npz", ", dtype: int")


def test_a_huge_label_is_reported_as_it_is(tmp_path):
    np.savez(tmp_path / "t.npz", data=np.zeros((2, 3)), label=[0, 1e30])
    with pytest.raises(DataError, match=r"labels must be whole numbers .* sample 1 holds "
                                        r"1e\+30"):
        load(tmp_path, "t.npz")


# -- item 1: declared sizes checked before anything is allocated ----------------------------------
def npz_with_header(path, members: dict[str, bytes]):
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            archive.writestr(f"{name}.npy", content)
    return path


def npy_header(shape, dtype="<f8") -> bytes:
    header = repr({"descr": dtype, "fortran_order": False, "shape": shape}).encode()
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header


def test_an_npz_member_declaring_80_gb_is_refused_unread(tmp_path):
    path = npz_with_header(tmp_path / "bomb.npz", {
        "data": npy_header((100000, 100000)) + bytes(64),
        "label": npy_header((2,)) + bytes(16)})
    with pytest.raises(DataError, match=r"bomb.npz: member 'data.npy' declares \(100000, "
                                        r"100000\) float64 \(80000000000 bytes\) but holds"):
        load(tmp_path, "bomb.npz")
    assert peak_bytes(lambda: load(tmp_path, "bomb.npz")) < 20 << 20


def test_an_unused_compressed_member_cannot_blow_up_the_total(tmp_path):
    path = tmp_path / "extra.npz"
    np.savez(path, data=np.zeros((2, 3)), label=[0, 1])
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("padding.npy", npy_header((1 << 20, 1 << 20), "|u1"))
    with pytest.raises(DataError, match="extra.npz: its arrays declare 1024.0 GiB, over the"):
        load(tmp_path, "extra.npz")


def test_an_idx_header_declaring_more_than_the_file_holds(tmp_path):
    header = bytes([0, 0, 8, 3]) + np.array([10**9, 28, 28], ">u4").tobytes()
    (tmp_path / "raw-idx3-ubyte").write_bytes(header + bytes(100))
    with pytest.raises(DataError, match=r"declares 1000000000 x 28 x 28 uint8 values "
                                        r"\(730.2 GiB\), over the"):
        idx.read_idx(tmp_path / "raw-idx3-ubyte", 4 << 30)
    small = bytes([0, 0, 8, 3]) + np.array([10**5, 28, 28], ">u4").tobytes()
    (tmp_path / "cut.gz").write_bytes(gzip.compress(small + bytes(1000)))
    peak = peak_bytes(lambda: idx.read_idx(tmp_path / "cut.gz", 4 << 30))
    with pytest.raises(DataError, match=r"declares 100000 x 28 x 28 values \(78400000 bytes\) "
                                        r"but the file holds 1000 \(truncated\)"):
        idx.read_idx(tmp_path / "cut.gz", 4 << 30)
    assert peak < 20 << 20


def test_an_image_declaring_81_megapixels_is_refused_before_decoding(tmp_path):
    pytest.importorskip("PIL.Image")
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(
            ">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", 9000, 9000, 8, 0, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 10))
    (tmp_path / "bomb.png").write_bytes(png + chunk(b"IEND", b""))
    peak = peak_bytes(lambda: decode_image(tmp_path / "bomb.png", "bomb.png"))
    with pytest.raises(DataError, match="bomb.png: the image declares 9000 x 9000 pixels"):
        decode_image(tmp_path / "bomb.png", "bomb.png")
    assert peak < 20 << 20


def test_an_hdf5_dataset_whose_batches_cannot_fit_is_refused_at_load(tmp_path):
    h5py = pytest.importorskip("h5py")
    with h5py.File(tmp_path / "a.h5", "w") as handle:         # chunks never written: tiny file
        handle.create_dataset("data", shape=(4, 100000, 100000), chunks=(1, 100, 100),
                              dtype="f4")
        handle["label"] = np.zeros(4)
    (tmp_path / "files.txt").write_text("a.h5\n")
    path = tmp_path / "net.yaml"
    path.write_text(NET.replace("SOURCE", "hdf5, path: files.txt").replace("DATA_DTYPE", ""))
    with pytest.raises(DataError, match=r"a batch of 2 samples of data \(100000, 100000\), "
                                        r"label \(\) would take 149.0 GiB"):
        load_data(Net(load_config(path)))
