"""The validated form of a config: what a reader (YAML here; Caffe's .prototxt and ONNX's
.onnx in net.formats) produces and everything after it consumes.

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
BUILTIN_SOURCES = ("digits", "iris", "diabetes")
#: the kinds a `source:` may name instead of a file; each reads `path` as SOURCE_PATHS says
SOURCE_KINDS = BUILTIN_SOURCES + ("fashion_mnist", "mnist", "lmdb", "images", "hdf5", "dummy")
SOURCE_PATHS = {
    "fashion_mnist": "a folder of the four IDX files (default: Debian's dataset-fashion-mnist)",
    "mnist": "the folder of MNIST's four IDX files (raw or .gz)",
    "lmdb": "the LMDB folder of Caffe Datum records",
    "images": "the list file of 'relative/path label' lines",
    "hdf5": "the list file of .h5 files, one a line",
}
SPLIT_SOURCES = BUILTIN_SOURCES + ("fashion_mnist", "mnist")
DEFAULT_FEEDS = ("data", "label")


@dataclass
class TransformSpec:
    """Caffe's transform_param, applied to the first feed's (C, H, W) samples in Caffe's order:
    crop (random offsets in train, centred in test), mirror (train only), subtract the mean
    (mean_file, at the uncropped position, or mean_value per channel), multiply by scale."""
    scale: float = setting(float, 1.0, "multiplies every value, after the mean is subtracted")
    mirror: bool = setting(bool, False, "flip each sample left-right with probability 1/2 "
                           "(train phase only)")
    crop_size: int = setting(int, 0, "crop a crop_size x crop_size square (0: no crop)",
                             range="[0, inf)")
    mean_file: str | None = setting((str, type(None)), None,
                                    "a .binaryproto mean (C, H, W), relative to the config")
    mean_value: list = setting((float, list), [], "a mean per channel, or one for all",
                               items=float)
    line: int = 0
    key_lines: dict[str, int] = field(default_factory=dict)

    @property
    def identity(self) -> bool:
        """True when the transform changes nothing."""
        return (self.scale == 1.0 and not self.mirror and not self.crop_size
                and self.mean_file is None and not self.mean_value)


@dataclass
class DummyFeedSpec:
    """What a `source: dummy` gives one feed (Caffe's DummyDataParameter): samples of `shape`
    (without the batch axis) drawn by `filler` (net.core.fillers; constant 0 by default)."""
    shape: list = setting(list, doc="the per-sample shape, e.g. [1, 28, 28] ([] for a label)",
                          items=int, range="[1, inf)")
    filler: dict = setting(dict, {"type": "constant", "value": 0.0},
                           "a filler: constant, gaussian, uniform, xavier or msra")
    line: int = 0


@dataclass
class SourceSpec:
    """One entry of the `data:` section (`train` or `test`): where samples come from, how they
    are transformed and batched. README "Data sources" describes each kind."""
    source: str = setting(str, doc="a .npz or .csv file (relative to the config) or one of "
                          f"{', '.join(SOURCE_KINDS)}")
    path: str | None = setting((str, type(None)), None,
                               "the file or folder the source kind reads, relative to the config")
    batch_size: int = setting(int, 64, "samples per batch (per process under MPI)",
                              range="[1, inf)")
    shuffle: bool | None = setting((bool, type(None)), None,
                                   "a new permutation each epoch (default: true for train)")
    split: str | None = setting((str, type(None)), None,
                                "the part of a built-in or MNIST-like set (default: the phase)",
                                choices=("train", "test", None))
    feeds: list = setting(list, list(DEFAULT_FEEDS), "the net inputs the source's arrays go "
                          "to, in order (.npz and HDF5: the arrays named like them)", items=str)
    root_folder: str = setting(str, "", "images: the folder the list file's paths are in "
                               "(default: the list file's folder)")
    new_height: int = setting(int, 0, "images: resize to this height (0: keep)",
                              range="[0, inf)")
    new_width: int = setting(int, 0, "images: resize to this width (0: keep)", range="[0, inf)")
    is_color: bool = setting(bool, True, "images: 3 channels (BGR, as Caffe) or 1 (grey)")
    transform: TransformSpec | None = setting((dict, type(None)), None,
                                              "Caffe's transform_param (a mapping)")
    dummy: dict | None = setting((dict, type(None)), None,
                                 "source dummy: per feed, {shape, filler}")
    prefetch: int | None = setting((int, type(None)), None,
                                   "batches loaded ahead in a background thread (0: none; "
                                   "default 4 for lmdb, images and hdf5, else 0)",
                                   range="[0, inf)")
    phase: str = "train"
    line: int = 0
    key_lines: dict[str, int] = field(default_factory=dict)

    @property
    def shuffled(self) -> bool:
        return self.phase == "train" if self.shuffle is None else self.shuffle

    @property
    def part(self) -> str:
        return self.split or self.phase

    @property
    def kind(self) -> str:
        """The source kind, or "file" for an .npz/.csv path."""
        return self.source if self.source in SOURCE_KINDS else "file"

    @property
    def prefetched(self) -> int:
        if self.prefetch is not None:
            return self.prefetch
        return 4 if self.kind in ("lmdb", "images", "hdf5") else 0

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)


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
    #: values a reader gives for parameters and buffers (ONNX initializers), by the net's names;
    #: the Net copies them in after the fillers ran
    initial: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def error(self, message: str, line: int | None = None) -> ConfigError:
        return ConfigError(message, self.file, line)

    def line_of(self, key: str) -> int:
        """The line of a top-level key (`solver`, `data`, ...), or 1 when it is absent."""
        return self.key_lines.get(key, 1)
