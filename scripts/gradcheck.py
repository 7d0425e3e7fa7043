#!/usr/bin/env python3
"""Check backward passes against numeric (centred difference) gradients.

    python scripts/gradcheck.py configs/affine.yaml        # the whole net, then each gate in it
    python scripts/gradcheck.py --gate Multiply            # one registered gate type
    python scripts/gradcheck.py --all --plugin my_gates.py # every registered gate, yours included

Exit status: 0 when everything checked passes, 1 when anything fails, 2 for a usage or config
error. A gate whose backward returns no gradient at all (Accuracy) is listed as not differentiable.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from gates import gate_class, registered_gates
from net import Net
from net.tools.cli import add_common_arguments, guarded
from net.core.plugins import load_plugins
from net.gradcheck import (GradcheckReport, GradcheckWarning, check_gate, check_net,
                           check_net_gates, format_table)

EXIT_FAILED = 1
DEFAULT_SAMPLE = 200


def main(args: argparse.Namespace) -> int:
    warnings.simplefilter("ignore", GradcheckWarning)     # each report prints its own warnings
    load_plugins(args.plugin, Path.cwd())
    options = dict(h=args.h, rtol=args.rtol, atol=args.atol, sample=args.sample or None,
                   directional=args.directional, seed=args.seed)
    if args.config:
        net = Net.from_yaml(args.config, phase=args.phase)
        net_report = check_net(net, **options)
        gate_reports = check_net_gates(net, **options)
        print(net_report)
        print(f"\neach gate of {net.name!r} on its own, at the values it sees in the net:")
        print(format_table(gate_reports))
        reports, details = [net_report] + gate_reports, gate_reports
    elif args.gate:
        for type_name in args.gate:
            gate_class(type_name)            # an unknown name is a usage error (exit 2)
        reports = [check_gate(t, phase=args.phase, **options) for t in args.gate]
        print("\n\n".join(str(r) for r in reports))
        details = []
    else:
        reports = [check_gate(t, phase=args.phase, **options) for t in sorted(registered_gates())]
        print(format_table(reports))
        details = reports
    for report in details:
        if args.verbose or not report.ok:
            print(f"\n{report}")
    _print_tracebacks(reports, args.debug)
    failed = [r for r in reports if not r.ok]
    print(f"\n{len(reports) - len(failed)} of {len(reports)} passed"
          + (f"; FAILED: {', '.join(r.name or r.subject for r in failed)}" if failed else ""))
    return EXIT_FAILED if failed else 0


def _print_tracebacks(reports: list[GradcheckReport], debug: bool) -> None:
    for report in reports:
        if report.traceback and debug:
            print(f"\n{report.subject}:\n{report.traceback}", file=sys.stderr)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", help="a YAML network: check it, then each gate")
    parser.add_argument("--gate", action="append", metavar="TYPE",
                        help="check one registered gate type (repeatable)")
    parser.add_argument("--all", action="store_true", help="check every registered gate type")
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE_OR_PATH",
                        help="import a module or .py file of gates first (repeatable)")
    parser.add_argument("--h", type=float, metavar="H", help="step (default 1e-4)")
    parser.add_argument("--rtol", type=float, help="relative tolerance (default 1e-5, or the "
                        "gate's check_tol)")
    parser.add_argument("--atol", type=float, help="absolute tolerance (default 1e-6, or the "
                        "gate's check_tol)")
    parser.add_argument("--sample", type=int, default=DEFAULT_SAMPLE, metavar="N",
                        help="check at most N random elements per input and parameter, so real "
                             f"layer sizes stay quick (default {DEFAULT_SAMPLE}; 0: every element)")
    parser.add_argument("--directional", action="store_true",
                        help="one random direction per input instead of every element")
    parser.add_argument("--seed", type=int, default=0, help="seed of inputs and dout (default 0)")
    parser.add_argument("--phase", choices=("train", "test"), default="train")
    parser.add_argument("--verbose", "-v", action="store_true",
                        help="print the full report of passing checks too")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    if sum([args.config is not None, bool(args.gate), args.all]) != 1:
        parser.error("give exactly one of: a CONFIG, --gate TYPE, --all")
    if args.sample < 0:
        parser.error("--sample must be 0 (every element) or more")
    if args.h is not None and not args.h > 0:
        parser.error("--h must be positive")
    return args


if __name__ == "__main__":
    sys.exit(guarded(main, parse_args()))
