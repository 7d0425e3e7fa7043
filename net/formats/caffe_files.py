"""Caffe's files read into typed, upgraded trees and written back atomically.

    read_net_text("lenet_train_test.prototxt")   # NetParameter, checked and upgraded
    read_net_binary("lenet.caffemodel")           # NetParameter with blobs (numpy arrays)
    read_solver_text("lenet_solver.prototxt")     # SolverParameter
    read_blobproto("mean.binaryproto")            # numpy array, e.g. (1, 3, 256, 256)
    write_caffemodel(path, net); write_blobproto(path, array); write_text(path, message)

Text files are configs a person writes: as with a YAML config, one that is not a regular file
or is larger than MAX_CONFIG_BYTES (16 MiB; published Caffe nets take a few hundred kB at most)
is refused before it is read. Text problems are ConfigErrors `FILE:LINE: ...`; unreadable or
malformed binary files are DataErrors naming the file (and the byte offset). Writes go to a
temporary file in the same folder, then `os.replace` it over the target, so a reader never sees
half a file.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..core.config import MAX_CONFIG_BYTES, check_config_file
from ..errors import ConfigError, DataError
from ..train.files import atomic_write_bytes, regular_file

from .caffe_messages import array_to_blob, blob_to_array, decode, encode, typed_from_text
from .caffe_upgrade import upgrade_net, upgrade_solver
from .prototext import format_text, parse_text
from .prototree import Message


def read_text(path: str | Path, type_name: str) -> Message:
    """A text file parsed and checked as message `type_name` (no upgrade)."""
    return typed_from_text(read_raw_text(path), type_name, str(path))


def read_raw_text(path: str | Path) -> Message:
    """A text file parsed without a schema (to see what it is before typing it); ConfigError
    naming the file if it is not a regular file, is over MAX_CONFIG_BYTES or is not UTF-8."""
    file = str(path)
    check_config_file(Path(path), MAX_CONFIG_BYTES)
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read: {err.strerror}", file) from None
    except UnicodeDecodeError as err:
        line = err.object[:err.start].count(b"\n") + 1
        raise ConfigError("the file is not UTF-8 text", file, line) from None
    return parse_text(text, file)


def read_binary(path: str | Path, type_name: str) -> Message:
    """A binary protobuf file decoded as message `type_name`; only a regular file is read (a
    device would be read until memory runs out, a FIFO would wait for a writer)."""
    if Path(path).exists():                      # a missing file: "cannot read", below
        regular_file(path, f"Caffe {type_name} file")
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise DataError(f"{path}: cannot read: {err.strerror}") from None
    return decode(data, type_name, str(path))


def read_net_text(path: str | Path, upgrade: bool = True) -> Message:
    """A .prototxt net as a typed NetParameter, upgraded to the current form unless told not."""
    net = read_text(path, "NetParameter")
    return upgrade_net(net) if upgrade else net


def read_net_binary(path: str | Path, upgrade: bool = True) -> Message:
    """A .caffemodel as a typed NetParameter (its layers' `blobs` hold numpy arrays)."""
    net = read_binary(path, "NetParameter")
    return upgrade_net(net) if upgrade else net


def read_solver_text(path: str | Path, upgrade: bool = True) -> Message:
    """A solver .prototxt as a typed SolverParameter (`solver_type` turned into `type`)."""
    solver = read_text(path, "SolverParameter")
    return upgrade_solver(solver) if upgrade else solver


def read_blobproto(path: str | Path) -> np.ndarray:
    """A .binaryproto blob (a mean file) as an array of its shape (legacy blobs are 4-D)."""
    return blob_to_array(read_binary(path, "BlobProto"), str(path))


def write_text(path: str | Path, message: Message) -> None:
    """Any message as protobuf text (a net, a solver), atomically."""
    atomic_write_bytes(path, format_text(message).encode("utf-8"))


def write_caffemodel(path: str | Path, net: Message) -> None:
    """A typed NetParameter as a .caffemodel, atomically."""
    if net.type_name != "NetParameter":
        raise TypeError(f"write_caffemodel needs a typed NetParameter, not {net.type_name}")
    atomic_write_bytes(path, encode(net))


def write_blobproto(path: str | Path, array: np.ndarray, legacy: bool = True) -> None:
    """An array as a .binaryproto blob, atomically. By default in the legacy num/channels/
    height/width form that Caffe's compute_image_mean writes (up to 4 axes); `legacy=False`
    writes `shape {}` instead."""
    atomic_write_bytes(path, encode(array_to_blob(array, legacy=legacy)))
