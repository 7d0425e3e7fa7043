"""Caffe's solver prototxt: read as one NetSpec (the net it names, with a `solver:` section),
and a SolverConfig written back as a SolverParameter.

    spec = read_solver("lenet_solver.prototxt")      # what `train.py lenet_solver.prototxt` reads
    text = format_text(solver_parameter(spec.solver, "lenet_train_test.prototxt"))

The net: `net:` / `net_param` (one net for both phases), or `train_net:` / `train_net_param`
with at most one `test_net:` / `test_net_param` (their layers merged: a layer both nets define
alike runs in both phases, the others in their own). Paths are Caffe's: from the working
directory, else from the solver's folder. `train_state` and `test_state` choose layers as in
Caffe.

The settings keep Caffe's names and meanings; where Caffe's default differs from Gatework's,
the value Caffe would use is written (display 0, max_iter 0, gamma and power 0 for the policies
that read them, momentum 0 for Adam and AdaDelta). `test_iter` takes one value (one test net);
`snapshot_prefix` keeps its last part (snapshots go to the run's output folder); a negative
`random_seed` (Caffe's "seed from the clock") leaves Gatework's default. Read and ignored, as
they mean nothing here: solver_mode, device_id, layer_wise_reduce, snapshot_format,
snapshot_diff, test_compute_loss. Refused: `weights` (pass the file to train.py --weights).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from net.core.config import parse_solver
from net.core.spec import NetSpec, SolverConfig, settings_of
from net.core.yaml import LineDict

from ..errors import ConfigError
from .caffe_layers import ExportError
from .caffe_messages import typed_from_text
from .caffe_net import (NetState, Selected, _caffe_path, _put, finish, load_net, net_mapping,
                        refuse_foreign_layers, select_layers)
from .caffe_files import read_raw_text
from .caffe_schema import message_spec, new_message
from .caffe_upgrade import upgrade_solver
from .prototree import Message

#: settings copied as they are (same name, same meaning)
_SAME = ("base_lr", "type", "momentum", "momentum2", "delta", "rms_decay", "weight_decay",
         "regularization_type", "lr_policy", "gamma", "power", "stepsize", "stepvalue",
         "clip_gradients", "iter_size", "max_iter", "display", "average_loss", "test_interval",
         "test_initialization", "snapshot", "snapshot_after_train", "debug_info")
#: what Caffe uses for an absent setting where Gatework's default differs
_CAFFE_ABSENT = {"display": 0, "max_iter": 0, "gamma": 0.0, "power": 0.0, "momentum": 0.0,
                 "random_seed": -1, "stepsize": 0, "test_iter": 0}
_READS = {"gamma": ("step", "exp", "inv", "multistep", "sigmoid"), "power": ("inv", "poly"),
          "momentum_absent": ("Adam", "AdaDelta")}
_LR_POLICIES = ("fixed", "step", "exp", "inv", "multistep", "poly", "sigmoid")


def read_solver(path: str | Path, **options: Any) -> NetSpec:
    """A solver prototxt as a NetSpec with its solver section (options as read_prototxt's)."""
    return solver_config(Path(path), read_raw_text(path), **options)[1]


def solver_config(path: Path, raw: Message, *, input_shapes: Mapping[str, tuple] | None = None,
                  with_data: bool = True, level: int | None = None,
                  stages: tuple[str, ...] | None = None) -> tuple[LineDict, NetSpec]:
    """The config mapping and NetSpec of an (untyped, parsed) solver file: its net, with its
    solver section."""
    file = str(path)
    for name in ("net_param", "train_net_param", "test_net_param"):
        for net in raw.all(name):
            if isinstance(net, Message):    # else typing below says what it must be
                refuse_foreign_layers(net, file)
    solver = upgrade_solver(typed_from_text(raw, "SolverParameter", file))
    section = solver_mapping(solver, file)
    parse_solver(section, file)                 # errors in the settings name the solver file
    train, test = _nets(solver, file)
    train_state, test_state = _states(solver, level, stages)
    if test is None:
        layers = select_layers(train, {"train": train_state, "test": test_state})
    else:
        layers = merge(select_layers(train, {"train": train_state}),
                       select_layers(test, {"test": test_state}))
    net_file = train.file or file
    mapping = net_mapping(layers, train, net_file, with_data)
    _put(mapping, "solver", section, solver.line)
    return mapping, finish(mapping, Path(net_file), input_shapes, with_data)


def solver_mapping(solver: Message, file: str) -> LineDict:
    """The `solver:` section (a LineDict at the solver's lines) of a typed SolverParameter."""
    if solver.weights:
        raise ConfigError("'weights' in the solver is not supported: pass the file to "
                          "train.py --weights", file, solver.line_of("weights"))
    if not solver.has("lr_policy"):
        raise ConfigError(f"the solver needs lr_policy (Caffe has no default; one of "
                          f"{', '.join(_LR_POLICIES)})", file, solver.line)
    section = LineDict()
    section.line = solver.line
    for name in _SAME:
        if solver.has(name):
            value = solver.get(name) if name != "stepvalue" else solver.stepvalue
            _put(section, name, value, solver.line_of(name))
    if len(solver.test_iter) > 1:
        raise ConfigError(f"{len(solver.test_iter)} test_iter values: Gatework tests one net",
                          file, solver.line_of("test_iter", 1))
    if solver.test_iter:
        _put(section, "test_iter", solver.test_iter[0], solver.line_of("test_iter"))
    if solver.has("snapshot_prefix"):
        _put(section, "snapshot_prefix", Path(solver.snapshot_prefix).name,
             solver.line_of("snapshot_prefix"))
    if solver.random_seed >= 0:
        _put(section, "random_seed", solver.random_seed, solver.line_of("random_seed"))
    for name, value in _absent_values(solver).items():
        _put(section, name, value, solver.line)
    return section


def _absent_values(solver: Message) -> dict[str, Any]:
    """Caffe's values for the absent settings whose Gatework default differs."""
    values = {name: _CAFFE_ABSENT[name] for name in ("display", "max_iter")
              if not solver.has(name)}
    for name in ("gamma", "power"):
        if not solver.has(name) and solver.lr_policy in _READS[name]:
            values[name] = _CAFFE_ABSENT[name]
    if not solver.has("momentum") and solver.type in _READS["momentum_absent"]:
        values["momentum"] = _CAFFE_ABSENT["momentum"]
    return values


def _nets(solver: Message, file: str) -> tuple[Message, Message | None]:
    """The train net and, when the solver names a separate one, the test net."""
    train_fields = [name for name in ("train_net_param", "train_net", "net_param", "net")
                    if solver.has(name)]
    if len(train_fields) != 1:
        raise ConfigError("the solver names " + (
            f"its net {len(train_fields)} times ({', '.join(train_fields)}); give one"
            if train_fields else "no net: give net: \"file.prototxt\""), file,
            solver.line_of(train_fields[-1]) if train_fields else solver.line)
    test_fields = [name for name in ("test_net_param", "test_net") if solver.has(name)]
    tests = sum(len(solver.all(name)) for name in test_fields)
    if tests > 1:
        raise ConfigError(f"the solver names {tests} test nets: Gatework tests one", file,
                          solver.line_of(test_fields[-1]))
    train = _net(solver, train_fields[0], file)
    test = _net(solver, test_fields[0], file) if test_fields else None
    return train, test


def _net(solver: Message, name: str, file: str) -> Message:
    if name.endswith("_param"):
        return solver.get(name) if name in ("net_param", "train_net_param") \
            else solver.all(name)[0]
    text = solver.get(name) if name in ("net", "train_net") else solver.all(name)[0]
    path = Path(_caffe_path(text, file))
    if not path.is_file():
        raise ConfigError(f"{name}: {text!r} is not a file (looked in the working directory "
                          f"and beside the solver)", file, solver.line_of(name))
    return load_net(read_raw_text(path), str(path))


def _states(solver: Message, level: int | None, stages: tuple[str, ...] | None
            ) -> tuple[NetState, NetState]:
    """The NetStates of the train and test nets: the solver's train_state and test_state
    (phase forced, as Caffe does), with `level` and `stages` overriding when given."""
    def state(message: Message | None, phase: str) -> NetState:
        own_level = message.level if message is not None else 0
        own_stages = tuple(message.stage) if message is not None else ()
        return NetState(phase, level if level is not None else own_level,
                        tuple(stages) if stages is not None else own_stages)
    tests = solver.test_state
    return state(solver.get("train_state"), "train"), state(tests[0] if tests else None, "test")


def merge(train: list[Selected], test: list[Selected]) -> list[Selected]:
    """The layers of a train net and a test net as one list: a test layer defined exactly like
    a train layer of the same name (include/exclude aside) joins it; the other test layers go
    right after the last layer both share, so each net keeps its own order."""
    merged = list(train)
    by_name = {selected.layer.get("name"): selected for selected in train}
    position = 0
    for selected in test:
        twin = by_name.get(selected.layer.get("name"))
        if twin is not None and _definition(twin.layer) == _definition(selected.layer):
            twin.phases |= selected.phases
            position = next(index for index, item in enumerate(merged) if item is twin) + 1
        else:
            merged.insert(position, selected)
            position += 1
    return merged


def _definition(layer: Message) -> Message:
    copy = layer.copy()
    for name in ("include", "exclude"):
        copy.remove(name)
    return copy


# -- Gatework -> Caffe --------------------------------------------------------------------------
def solver_parameter(config: SolverConfig, net_file: str, file: str | None = None
                     ) -> Message:
    """A typed SolverParameter for `config` naming `net_file`: every setting whose value differs
    from what Caffe reads when it is absent (base_lr and lr_policy always). `file` is the
    config's, for errors."""
    if config.lr_policy not in _LR_POLICIES:
        raise ExportError(f"solver: lr_policy {config.lr_policy} has no Caffe equivalent "
                          f"(Caffe's: {', '.join(_LR_POLICIES)})", file,
                          config.lines.get("lr_policy"))
    spec = message_spec("SolverParameter")
    solver = new_message("SolverParameter", net=net_file)
    for name in settings_of(SolverConfig):
        value = getattr(config, name)
        field = spec.field(name)
        absent = _CAFFE_ABSENT.get(name, field.default if not field.repeated else [])
        if name in ("base_lr", "lr_policy") or value != absent and value != "":
            solver.set(name, [value] if name == "test_iter" else value)
    return solver
