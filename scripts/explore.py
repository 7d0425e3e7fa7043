#!/usr/bin/env python3
"""Explore a network's backpropagation in the browser, one gate at a time.

    python scripts/explore.py configs/seed_example.yaml              # then open the printed URL
    python scripts/explore.py configs/lenet_digits.yaml --weights runs/lenet/final.weights.npz
    python scripts/explore.py configs/seed_example.yaml --html seed.html

The page draws the net and steps forward and backward through it gate by gate: values in black,
gradients in blue, and for the gate just run its upstream gradient, local gradients and products.
Small inputs can be edited; the server recomputes (the page does no maths). Inputs without a
`value:` take the config's test data (random values when it has no data section; the page says
which). The server listens on 127.0.0.1 only, unless --host names another address. --html writes
the page for the default values as one self-contained file (no server, no network).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from net import Net
from net.tools.cli import add_common_arguments, guarded, parse_assignments
from net.tools.explore import Explorer, make_server


def main(args: argparse.Namespace) -> int:
    net = Net.from_file(args.config, phase=args.phase)
    if args.weights:
        net.load_weights(args.weights)
    explorer = Explorer(net, parse_assignments(args.set), args.batch_size)
    for note in explorer.notes:
        print(note)
    if args.html:
        Path(args.html).write_text(explorer.page(static=True), encoding="utf-8")
        print(f"wrote {args.html}")
        return 0
    server = make_server(explorer, args.host, args.port)
    host, port = server.server_address[:2]
    print(f"exploring {net.name} at http://{host}:{port}/ (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped")
    finally:
        server.server_close()
    return 0


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="a network config")
    parser.add_argument("--weights", metavar="FILE", help="a weights file to load first")
    parser.add_argument("--port", type=int, default=8000,
                        help="the port to listen on (default 8000; 0: any free port)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="the address to listen on (default 127.0.0.1: this machine only)")
    parser.add_argument("--html", metavar="OUT.html",
                        help="write the page for the default values to this file and stop")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="the starting value of an input (YAML syntax); repeatable")
    parser.add_argument("--batch-size", type=int, metavar="B",
                        help="samples of test or random data for inputs without a value "
                             "(default 8)")
    parser.add_argument("--phase", choices=("train", "test"), default="train")
    add_common_arguments(parser)
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(guarded(main, parse_args()))
