#!/usr/bin/env python3
"""Compute the mean image of an LMDB of Datum records into a .binaryproto (Caffe's tool).

A transform's `mean_file` reads it, as Caffe's compute_image_mean writes it.

    python scripts/compute_image_mean.py train_lmdb mean.binaryproto
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from net.tools.cli import add_common_arguments, guarded
from net.train.files import atomic_write_bytes
from net.train.sources.caffe_records import encode_blob
from net.train.sources.database import compute_image_mean


def main(args: argparse.Namespace) -> int:
    mean = compute_image_mean(Path(args.database), log=print)
    path = atomic_write_bytes(Path(args.output), encode_blob(mean))
    channels = ", ".join(f"{value:.4f}" for value in mean[0].mean(axis=(1, 2)))
    print(f"mean of shape {mean.shape} written to {path.resolve()}; per channel: {channels}")
    return 0


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("database", help="an LMDB folder of Datum records")
    parser.add_argument("output", help="the .binaryproto file to write")
    add_common_arguments(parser)
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(guarded(main, parse_args()))
