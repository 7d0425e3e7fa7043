"""The validated form of a config: what a reader (YAML today; Caffe's prototxt and ONNX later)
produces and everything after it consumes.

`NetSpec` holds the net (`inputs`, `params`, `gates`) and, when the file has them, the training
sections: `data` (a `DataSpec`) and `solver` (a `SolverConfig`). Each spec keeps the line it came
from, so later stages (graph, shape inference, the solver) can raise a `ConfigError` that points
at the right line.

The keys of the data and solver sections are declared once, here, as dataclass fields carrying a
`gates.Option` (type, default, meaning, allowed values): the parser validates them with the same
code that validates gate options, and the dataclass is what the rest of Gatework reads.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from gates import REQUIRED, Gate, Option

from ..errors import ConfigError

PHASES = ("train", "test")
DTYPES = ("float32", "float64")
SOLVER_TYPES = ("SGD", "Nesterov", "AdaGrad", "RMSProp", "AdaDelta", "Adam")
LR_POLICIES = ("fixed", "step", "multistep", "exp", "inv", "poly", "sigmoid", "cosine")
BUILTIN_SOURCES = ("digits", "iris", "diabetes")


def setting(kind: type | tuple, default: Any = REQUIRED, doc: str = "", **checks: Any) -> Any:
    """A dataclass field whose value a config sets, validated by an `Option(kind, default, doc,
    **checks)`; a field without a default is required."""
    option = Option(kind, default, doc, **checks)
    metadata = {"option": option}
    if default is REQUIRED:
        return field(metadata=metadata)
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def settings_of(cls: type) -> dict[str, Option]:
    """The settable keys of a spec dataclass and their Options, in declaration order."""
    return {f.name: f.metadata["option"] for f in fields(cls) if "option" in f.metadata}


# -- the net ---------------------------------------------------------------------------------------
@dataclass
class InputSpec:
    """A source node fed at run time. `shape` may hold None for an open (batch) dimension."""
    name: str
    shape: tuple
    dtype: str | None = None       # None: the net's float dtype, integer arrays kept as they are
    value: Any = None              # optional default value (used by scripts/run.py)
    line: int = 0


@dataclass
class ParamRule:
    """Per-parameter settings from a gate's `param:` list (Caffe's ParamSpec)."""
    name: str | None = setting((str, type(None)), None,
                               "a shared name: gates naming the same one share the array")
    lr_mult: float = setting(float, 1.0, "multiplies the learning rate", range="[0, inf)")
    decay_mult: float = setting(float, 1.0, "multiplies the weight decay", range="[0, inf)")
    line: int = 0


@dataclass
class ParamSpec:
    """A learnable source node declared under `params:`."""
    name: str
    shape: tuple
    filler: dict
    rule: ParamRule
    line: int = 0


@dataclass
class GateSpec:
    """One entry of `gates:`. `options` holds every key that is not a structural one."""
    name: str
    type: str
    bottom: list[str]
    top: list[str]
    options: dict[str, Any] = field(default_factory=dict)
    param: list[ParamRule] = field(default_factory=list)
    phase: str | None = None       # None: both phases
    loss_weight: list[float] | None = None
    line: int = 0
    key_lines: dict[str, int] = field(default_factory=dict)
    cls: type[Gate] | None = None

    def where(self) -> str:
        return f"gate {self.name!r} ({self.type})"

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)


# -- the data section ------------------------------------------------------------------------------
@dataclass
class SourceSpec:
    """One entry of the `data:` section (`train` or `test`): where samples come from and how
    they are batched."""
    source: str = setting(str, doc="a .npz or .csv file (relative to the config) or a built-in "
                          f"dataset: {', '.join(BUILTIN_SOURCES)}")
    batch_size: int = setting(int, 64, "samples per batch (per process under MPI)",
                              range="[1, inf)")
    shuffle: bool | None = setting((bool, type(None)), None,
                                   "a new permutation each epoch (default: true for train)")
    split: str | None = setting((str, type(None)), None,
                                "the part of a built-in dataset (default: the phase)",
                                choices=("train", "test", None))
    phase: str = "train"
    line: int = 0
    key_lines: dict[str, int] = field(default_factory=dict)

    @property
    def shuffled(self) -> bool:
        return self.phase == "train" if self.shuffle is None else self.shuffle

    @property
    def part(self) -> str:
        return self.split or self.phase


@dataclass
class DataSpec:
    """The `data:` section: a source per phase (either may be absent)."""
    train: SourceSpec | None = None
    test: SourceSpec | None = None
    line: int = 0

    def sources(self) -> dict[str, SourceSpec]:
        return {phase: s for phase, s in (("train", self.train), ("test", self.test)) if s}


# -- the solver section ----------------------------------------------------------------------------
@dataclass
class SolverConfig:
    """The validated `solver:` section, with Caffe's names, meanings and defaults, except Adam's
    `momentum` (beta1: 0.9 when not given, as in Caffe's examples and PyTorch) and `display`
    (100). `given` holds the keys the config set, so overrides can be merged key by key."""
    base_lr: float = setting(float, doc="the base learning rate", range="[0, inf)")
    type: str = setting(str, "SGD", "the update rule", choices=SOLVER_TYPES)
    momentum: float = setting(float, 0.0, "momentum (Adam: beta1)", range="[0, 1)")
    momentum2: float = setting(float, 0.999, "Adam's beta2", range="[0, 1)")
    delta: float = setting(float, 1e-8, "added to denominators (AdaGrad, RMSProp, AdaDelta, "
                           "Adam)", range="(0, inf)")
    rms_decay: float = setting(float, 0.99, "RMSProp's decay of the squared gradient",
                               range="[0, 1)")
    weight_decay: float = setting(float, 0.0, "regularisation strength", range="[0, inf)")
    regularization_type: str = setting(str, "L2", "L2 or L1", choices=("L2", "L1"))
    lr_policy: str = setting(str, "fixed", "how the rate changes", choices=LR_POLICIES)
    gamma: float = setting(float, 0.1, "the policy's factor")
    power: float = setting(float, 1.0, "the policy's exponent (inv, poly)")
    stepsize: int = setting(int, 0, "iterations per step (step, sigmoid)", range="[1, inf)")
    stepvalue: list = setting(list, [], "iterations where multistep lowers the rate",
                              items=int, range="[1, inf)")
    clip_gradients: float = setting(float, -1.0,
                                    "bound on the global L2 norm of the gradient (-1: off)")
    iter_size: int = setting(int, 1, "forward/backward passes accumulated per update",
                             range="[1, inf)")
    max_iter: int = setting(int, 1000, "iterations to train", range="[0, inf)")
    display: int = setting(int, 100, "iterations between display lines (0: off)",
                           range="[0, inf)")
    average_loss: int = setting(int, 1, "display the loss averaged over this many iterations",
                                range="[1, inf)")
    test_interval: int = setting(int, 0, "iterations between tests (0: at the end only)",
                                 range="[0, inf)")
    test_iter: int = setting(int, 0, "test batches per test (0: the whole test set)",
                             range="[0, inf)")
    test_initialization: bool = setting(bool, True, "test before the first iteration")
    snapshot: int = setting(int, 0, "iterations between snapshots (0: at the end only)",
                            range="[0, inf)")
    snapshot_prefix: str = setting(str, "", "file name prefix of snapshots (default: the net's "
                                   "name)")
    snapshot_after_train: bool = setting(bool, True, "snapshot when training ends")
    random_seed: int = setting(int, 0, "seed of initialisation, shuffling and dropout",
                               range="[0, 18446744073709551615]")
    debug_info: bool = setting(bool, False, "display per-blob statistics")
    given: dict = field(default_factory=dict, repr=False, compare=False)
    lines: dict = field(default_factory=dict, repr=False, compare=False)

    def hyperparameters(self) -> dict[str, Any]:
        """The settings alone (no bookkeeping), as saved in a solverstate file."""
        return {name: getattr(self, name) for name in settings_of(SolverConfig)}


# -- the whole config ------------------------------------------------------------------------------
@dataclass
class NetSpec:
    """A whole validated config."""
    name: str
    dtype: str
    inputs: dict[str, InputSpec]
    params: dict[str, ParamSpec]
    gates: list[GateSpec]
    plugins: list[str] = field(default_factory=list)
    data: DataSpec | None = None
    solver: SolverConfig | None = None
    debug: bool = False
    file: str | None = None        # the config file, for error messages
    base_dir: Path = field(default_factory=Path.cwd)
    key_lines: dict[str, int] = field(default_factory=dict)  # top-level key -> its line

    def error(self, message: str, line: int | None = None) -> ConfigError:
        return ConfigError(message, self.file, line)

    def line_of(self, key: str) -> int:
        """The line of a top-level key (`solver`, `data`, ...), or 1 when it is absent."""
        return self.key_lines.get(key, 1)
