"""A Caffe net (and its caffemodel) converted to a Gatework YAML config (and .weights.npz): what
scripts/convert_caffe.py does.

    result = convert_caffe("deploy.prototxt", "net.yaml", weights="net.caffemodel",
                           weights_out="net.weights.npz")
    result.notes        # e.g. the caffemodel layers that matched no gate

The YAML keeps Caffe's layer names (gate names) and only the options that differ from
Gatework's defaults; paths of data layers are written relative to the YAML's folder. The text
is read back and validated before it is written.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from net.core.config import parse_config
from net.core.net import Net
from net.core.spec import NetSpec
from net.core.text import listing
from net.core.yaml import load_yaml
from net.train.snapshot import save_weights

from .caffe_files import atomic_write_bytes
from .caffe_net import read_caffe_config
from .config_yaml import config_yaml

_PATH_KEYS = ("path", "root_folder")


@dataclass
class Converted:
    """What convert_caffe did: the config it wrote, the weights report, notes for the user."""
    spec: NetSpec
    weights: dict[str, list[str]] | None = None
    notes: list[str] = field(default_factory=list)


def convert_caffe(prototxt: str | Path, out: str | Path, weights: str | Path | None = None,
                  weights_out: str | Path | None = None, **read_options: Any) -> Converted:
    """Write `prototxt` (a net or solver) as the YAML config `out`; with `weights`, load the
    caffemodel into the net and write its arrays to `weights_out` (default: beside `out`,
    `<name>.weights.npz`). `read_options` go to read_prototxt (input_shapes, with_data, level,
    stages)."""
    prototxt, out = Path(prototxt), Path(out)
    mapping, spec = read_caffe_config(prototxt, **read_options)
    _portable_paths(mapping.get("data") or {}, out.parent)
    text = config_yaml(mapping, [f"Converted from {prototxt.name} by scripts/convert_caffe.py",
                                 "(layer names and options as in the Caffe file)"])
    checked = parse_config(load_yaml(text, str(out)), file=str(out), base_dir=out.parent)
    atomic_write_bytes(out, text.encode("utf-8"))
    result = Converted(checked)
    if weights is not None:
        net = Net(spec)
        result.weights = net.load_weights(weights)
        target = Path(weights_out) if weights_out is not None else \
            out.with_name(f"{out.stem}.weights.npz")
        save_weights(net, target)
        if result.weights["ignored"]:
            result.notes.append(f"{weights}: blobs of layers matching no gate, passed over as "
                                f"Caffe does: {listing(result.weights['ignored'])}")
        if result.weights["missing"]:
            result.notes.append(f"{weights}: holds nothing for "
                                f"{listing(result.weights['missing'])} (they keep their "
                                "fillers' values)")
    return result


def _portable_paths(data: dict, folder: Path) -> None:
    """The absolute paths of the data section rewritten relative to `folder` (an entry both
    phases share, once)."""
    for entry in {id(entry): entry for entry in data.values()}.values():
        for key in _PATH_KEYS:
            if isinstance(entry.get(key), str):
                entry[key] = os.path.relpath(entry[key], folder)
        transform = entry.get("transform")
        if isinstance(transform, dict) and isinstance(transform.get("mean_file"), str):
            transform["mean_file"] = os.path.relpath(transform["mean_file"], folder)
