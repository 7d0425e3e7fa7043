"""The IDX file format of MNIST and Fashion-MNIST, raw or gzip-compressed, and the two sets.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of dimensions
d), d big-endian uint32 sizes, then the values, big-endian, in C order:

    type 0x08 uint8   0x09 int8   0x0B int16   0x0C int32   0x0D float32   0x0E float64

`read_idx` checks the header before it allocates anything: at most MAX_DIMENSIONS sizes, the
declared size against `limit` bytes and, for a raw file, against the file's length; a gzip file
may declare at most MAX_EXPANSION times its own length (as a compressed .npz member, see
net.train.files), is read in bounded chunks and must hold exactly what its header declares.
Only regular files are opened. Every problem is a DataError naming the file.

`mnist_part(folder, part)` reads one part ("train": 60,000 samples, "test": 10,000) from the
four files of MNIST or Fashion-MNIST, named as they are published (train-images-idx3-ubyte,
t10k-labels-idx1-ubyte, ...; also with .gz, or with a dot before idx: train-images.idx3-ubyte).
Images come out (N, 1, H, W) uint8 (one channel, as Caffe's MNIST LMDB holds them) and labels
(N,) uint8.
"""
from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

from ...errors import DataError
from ..files import (EXPANSION_ALLOWANCE, MAX_DIMENSIONS, MAX_EXPANSION, regular_file,
                     size_text)

IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FASHION_INSTALL = ("it reads Debian's dataset-fashion-mnist package: install it with "
                   "`sudo apt-get install dataset-fashion-mnist`, or point `path:` at a folder "
                   "holding the four IDX files")
PARTS = {"train": "train", "test": "t10k"}
_CHUNK = 1 << 24


def idx_header(path: Path, handle) -> tuple[np.dtype, tuple[int, ...], int]:
    """The dtype, shape and header length of the IDX stream `handle` (positioned at 0)."""
    magic = handle.read(4)
    if len(magic) < 4 or magic[:2] != b"\0\0" or magic[2] not in IDX_TYPES or magic[3] == 0:
        raise DataError(f"{path}: not an IDX file (its first bytes are {magic.hex() or 'none'}; "
                        "an IDX file starts with 00 00, a type code and a dimension count)")
    rank = magic[3]
    if rank > MAX_DIMENSIONS:
        raise DataError(f"{path}: its IDX header declares {rank} dimensions; an array has at "
                        f"most {MAX_DIMENSIONS}")
    sizes = handle.read(4 * rank)
    if len(sizes) < 4 * rank:
        raise DataError(f"{path}: truncated IDX header ({rank} dimensions declared)")
    shape = tuple(int(n) for n in np.frombuffer(sizes, dtype=">u4"))
    return np.dtype(IDX_TYPES[magic[2]]), shape, 4 + 4 * rank


def _open(path: Path):
    """The IDX file opened for reading (decompressing a gzip file), whether it is gzipped, and
    its length; only a regular file is opened."""
    size = regular_file(path, "IDX file")
    try:
        with open(path, "rb") as probe:
            gzipped = probe.read(2) == b"\x1f\x8b"
        return (gzip.open(path, "rb") if gzipped else open(path, "rb")), gzipped, size
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror})") from None


def read_idx_shape(path: str | Path) -> tuple[np.dtype, tuple[int, ...]]:
    """The dtype and shape an IDX file declares, reading only its header."""
    path = Path(path)
    handle, _, _ = _open(path)
    try:
        with handle:
            dtype, shape, _ = idx_header(path, handle)
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path}: corrupt or truncated gzip file ({err})") from None
    return dtype, shape


def read_idx(path: str | Path, limit: int) -> np.ndarray:
    """The array an IDX file holds (native byte order); DataError naming the file if it is not
    IDX, is truncated or too long, or declares more than `limit` bytes (or, gzipped, more than
    MAX_EXPANSION times its length plus EXPANSION_ALLOWANCE). The one buffer the array needs
    is allocated after those checks and filled in bounded chunks."""
    path = Path(path)
    handle, gzipped, size = _open(path)
    try:
        with handle:
            dtype, shape, header = idx_header(path, handle)
            declared = math.prod(shape) * dtype.itemsize
            if declared > limit:
                raise DataError(f"{path}: its header declares {_shape_text(shape)} {dtype.name} "
                                f"values ({declared / 2**30:.1f} GiB), over the {limit / 2**30:.1f}"
                                " GiB a data set may hold in memory")
            if not gzipped and size - header != declared:
                actual = size - header
                raise DataError(f"{path}: its header declares {_shape_text(shape)} values "
                                f"({declared} bytes) but the file holds {actual} "
                                f"({'truncated' if actual < declared else 'too long'})")
            if gzipped and declared > MAX_EXPANSION * size + EXPANSION_ALLOWANCE:
                raise DataError(f"{path}: its header declares {_shape_text(shape)} values "
                                f"({size_text(declared)}) from {size_text(size)} of gzip: more "
                                f"than the {MAX_EXPANSION} times its length gzip can expand "
                                "to")
            content = np.empty(declared, dtype=np.uint8)
            view, got = memoryview(content), 0
            while got < declared:
                count = handle.readinto(view[got:got + _CHUNK])
                if not count:
                    break
                got += count
            extra = handle.read(1) if got == declared else b""
    except (EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise DataError(f"{path}: corrupt or truncated gzip file ({err})") from None
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror or err})") from None
    if got != declared or extra:
        found = "more" if extra else f"{got} (truncated)"
        raise DataError(f"{path}: its header declares {_shape_text(shape)} values ({declared} "
                        f"bytes) but the file holds {found}")
    array = content.view(dtype).reshape(shape)
    if dtype.byteorder == ">" and dtype.itemsize > 1:
        return array.byteswap(inplace=True).view(dtype.newbyteorder("="))
    return array.view(dtype.newbyteorder("="))


def _shape_text(shape: tuple[int, ...]) -> str:
    return " x ".join(map(str, shape)) or "scalar"


def find_file(folder: Path, stem: str) -> Path:
    """The file of `stem` (e.g. "train-images-idx3-ubyte") in `folder`, in any published
    spelling; DataError listing what was looked for."""
    dotted = stem.replace("-idx", ".idx")
    names = [stem, stem + ".gz", dotted, dotted + ".gz"]
    for name in names:
        if (folder / name).is_file():
            return folder / name
    raise DataError(f"{folder}: no {' or '.join(names)}")


def mnist_part(folder: str | Path, part: str, limit: int) -> dict[str, np.ndarray]:
    """One part ("train" or "test") of MNIST-like IDX files in `folder`: {"images": (N, 1, H,
    W), "labels": (N,)}; DataError if the files disagree on N or are not images and labels."""
    folder = Path(folder)
    prefix = PARTS[part]
    images_path = find_file(folder, f"{prefix}-images-idx3-ubyte")
    labels_path = find_file(folder, f"{prefix}-labels-idx1-ubyte")
    images, labels = read_idx(images_path, limit), read_idx(labels_path, limit)
    if images.ndim != 3:
        raise DataError(f"{images_path}: holds a {images.ndim}-d array; images are N x H x W")
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataError(f"{labels_path}: holds {labels.shape} labels for the "
                        f"{len(images)} images of {images_path.name}")
    return {"images": images[:, np.newaxis], "labels": labels}


def mnist_shapes(folder: str | Path, part: str) -> dict[str, tuple]:
    """The per-sample shapes of `mnist_part` from the headers alone."""
    folder = Path(folder)
    _, shape = read_idx_shape(find_file(folder, f"{PARTS[part]}-images-idx3-ubyte"))
    return {"images": (1,) + shape[1:], "labels": ()}


def fashion_folder(path: Path | None, where: str) -> Path:
    """Where Fashion-MNIST is: `path` when given, else Debian's folder; DataError saying how to
    install the package when neither holds it."""
    folder = path or FASHION_MNIST
    try:
        find_file(folder, "train-images-idx3-ubyte")
    except DataError:
        raise DataError(f"{where}: source fashion_mnist: no Fashion-MNIST files in {folder}; "
                        f"{FASHION_INSTALL}") from None
    return folder
