"""Gatework's gates: the `Gate` contract, the registry, and the shipped gate families.

    from gates import Gate, register_gate

Importing this package registers every shipped gate type.
"""
from .base import (ALL_INPUTS, REQUIRED, ElementwiseGate, Gate, Option, RetiredOption,
                   UnknownGateType, broadcast_shapes, build_gate, format_shape, gate_class,
                   register_alias, register_gate, registered_gates, short_repr, unbroadcast,
                   unregister_gate)
# importing the family modules registers their gates
from . import activations, arithmetic, linalg, losses, regularization, shape  # noqa: F401
from . import normalization, recurrent, vision  # noqa: F401

__all__ = ["Gate", "ElementwiseGate", "Option", "RetiredOption", "REQUIRED", "ALL_INPUTS",
           "UnknownGateType", "register_gate", "register_alias", "build_gate", "gate_class",
           "registered_gates", "unregister_gate", "unbroadcast", "broadcast_shapes",
           "format_shape", "short_repr"]
