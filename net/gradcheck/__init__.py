"""Numeric gradient checking: the centred difference as the authority on every backward.

    from net.gradcheck import check_gate, check_net
    print(check_gate("Multiply"))                 # a registered type, built from its check_options
    report = check_net(Net.from_yaml("configs/two_layer.yaml"))
    report.ok, report.worst_rel_err

    numeric  the centred difference, CheckOptions, the element and direction loops
    gate     check_gate: one gate and its contract
    net      check_net, check_net_gates, sample_feed: a whole net, and each gate in it
    report   what a check reports

The runner (`net.core.runner`) checks gradient counts and shapes on every training step; this
package only reports. `scripts/gradcheck.py` prints what these functions return.
"""
from .gate import check_gate
from .net import check_net, check_net_gates, sample_feed
from .numeric import DEFAULT_ATOL, DEFAULT_H, DEFAULT_RTOL, KINK_MARGIN, CheckOptions
from .report import (ElementCheck, GradcheckReport, GradcheckWarning, GradientCheckError,
                     InputCheck, format_table)

__all__ = ["check_gate", "check_net", "check_net_gates", "sample_feed", "CheckOptions",
           "GradcheckReport", "GradcheckWarning", "GradientCheckError", "ElementCheck",
           "InputCheck", "format_table", "DEFAULT_H", "DEFAULT_RTOL", "DEFAULT_ATOL", "KINK_MARGIN"]
