#!/usr/bin/env python3
"""Convert images and labels into an LMDB of Caffe Datum records, as Caffe's convert_imageset.

    python scripts/convert_imageset.py images/ train.txt train_lmdb
    python scripts/convert_imageset.py images/ train.txt train_lmdb --shuffle --resize 32 32

LISTFILE has one `relative/path label` line per image (paths under ROOT). Keys are
"00000000_relative/path" in list order (after --shuffle, seeded by --seed). Pixels are stored
raw, (C, H, W) B, G, R or grey (--gray), or, with --encoded, as the image file's own bytes.
A source of kind lmdb reads the result (README "Data sources").
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from net.tools.cli import add_common_arguments, guarded
from net.train.sources.database import convert_imageset


def main(args: argparse.Namespace) -> int:
    count = convert_imageset(Path(args.root), Path(args.listfile), Path(args.database),
                             gray=args.gray, shuffle=args.shuffle, seed=args.seed,
                             size=tuple(args.resize) if args.resize else None,
                             encoded=args.encoded, check_size=args.check_size, log=print)
    print(f"wrote {count} records to {Path(args.database).resolve()}")
    return 0


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", help="the folder the list file's paths are relative to")
    parser.add_argument("listfile", help="lines of 'relative/path label'")
    parser.add_argument("database", help="the LMDB folder to create (must not exist)")
    parser.add_argument("--gray", action="store_true", help="one grey channel")
    parser.add_argument("--shuffle", action="store_true", help="shuffle the list first")
    parser.add_argument("--seed", type=int, default=0, help="the shuffle's seed (default 0)")
    parser.add_argument("--resize", type=int, nargs=2, metavar=("HEIGHT", "WIDTH"),
                        help="resize every image (bilinear)")
    parser.add_argument("--encoded", action="store_true",
                        help="store the image files' bytes instead of raw pixels")
    parser.add_argument("--check-size", action="store_true",
                        help="every image must have the size of the first")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    if args.resize and min(args.resize) < 1:
        parser.error("--resize takes two positive integers")
    return args


if __name__ == "__main__":
    sys.exit(guarded(main, parse_args()))
