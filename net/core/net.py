"""The Net: gates instantiated from a spec, parameters created and owned, shapes inferred, and the
forward/backward entry points (the loops themselves are in `net.runner`)."""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from gates import Gate, build_gate, format_shape, short_repr

from ..errors import ConfigError
from .config import load_config, parse_config
from .fillers import check_filler, fill, fill_bytes
from .graph import Graph, build_graph
from .hooks import chain, check_feed, finite_check
from .memory import available_bytes
from .runner import Runner, Step
from .spec import PHASES, GateSpec, NetSpec, ParamRule
from .state import copy_weights, read_weights
from .text import table
from .yaml import suggest


@dataclass
class _Phase:
    graph: Graph
    runner: Runner
    shapes: dict[str, tuple]        # inferred shape of every blob (None: open dimension)
    inputs: list[str]               # the inputs some gate of this phase reads
    loss_weights: dict[str, float]  # loss top -> weight
    seeds: dict[str, float]         # what backward seeds by default: the losses, else the outputs
    sources: dict[tuple | None, tuple] = field(default_factory=dict)   # see Net._floating
    seeded: dict[str, tuple] = field(default_factory=dict)   # see Net._seed


class Net:
    """A network built from a config: ``Net.from_yaml(path)`` or ``Net.from_config(mapping)``.

    - ``forward(feed)`` takes a dict of input values and returns a dict of every output blob.
    - ``backward(top_grads=None)`` returns the gradient of every input and parameter by name.
    - ``params`` maps parameter names (``fc1.W``; ``W`` for a ``params:`` entry) to live arrays.
    - ``blobs`` holds every value of the last forward pass; ``grads`` those of the last backward.
    - ``phase`` ("train" or "test") selects the gates active, as Caffe's include rules do.
    """

    def __init__(self, spec: NetSpec, phase: str = "train", seed: int | None = None):
        if phase not in PHASES:
            raise ValueError(f"phase must be train or test, got {phase!r}")
        self.spec = spec
        self.name = spec.name
        self.dtype = np.dtype(spec.dtype)
        if seed is None:
            seed = spec.solver.random_seed if spec.solver is not None else 0
        self._rng = np.random.default_rng(seed)
        self._room = available_bytes()     # read once per build (a few files); _fill spends it
        self.inputs = dict(spec.inputs)
        self.params: dict[str, np.ndarray] = {}
        self.param_rules: dict[str, ParamRule] = {}
        for p in spec.params.values():
            self.params[p.name] = self._fill(p.shape, p.filler, p.line, f"param {p.name!r}")
            self.param_rules[p.name] = p.rule
        self.gates: dict[str, Gate] = {g.name: self._instantiate(g) for g in spec.gates}
        self._param_inputs: dict[str, tuple[str, ...]] = {}
        self._phases = {p: self._build_phase(p) for p in PHASES}
        if spec.initial:                 # a reader's values (ONNX initializers), by name
            copy_weights(self, spec.initial, spec.file or self.name)
        self.blobs: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray | None] = {}
        self._defaults: dict[str, tuple[Any, np.ndarray]] = {}   # see _default_input
        self._fitting: dict[str, tuple[tuple, tuple]] = {}  # input -> (declared, a shape fitting)
        self.debug = spec.debug     # check every output and gradient for NaN/Inf (net.debug)
        self.phase = phase
        self._check_namespace()
        self._check_memory()
        self._busy = threading.Lock()

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_yaml(cls, path: str | Path, phase: str = "train", seed: int | None = None) -> "Net":
        return cls(load_config(path), phase, seed)

    from_file = from_yaml    # any config file: YAML, or a format with a registered reader

    @classmethod
    def from_prototxt(cls, path: str | Path, phase: str = "train", seed: int | None = None
                      ) -> "Net":
        """A net from a Caffe .prototxt (net or solver; read by net.formats)."""
        return cls(load_config(path), phase, seed)

    @classmethod
    def from_onnx(cls, path: str | Path, phase: str = "train", seed: int | None = None) -> "Net":
        """A net from an ONNX model (the onnx extra): its graph mapped onto gates, its
        initializers as the parameters."""
        return cls(load_config(path), phase, seed)

    @classmethod
    def from_config(cls, config: Mapping | NetSpec, phase: str = "train", seed: int | None = None,
                    base_dir: str | Path | None = None) -> "Net":
        spec = config if isinstance(config, NetSpec) else parse_config(config, None, base_dir)
        return cls(spec, phase, seed)

    def _error(self, message: str, line: int | None) -> ConfigError:
        return self.spec.error(message, line)

    def _instantiate(self, g: GateSpec) -> Gate:
        try:
            gate = build_gate(g.cls, g.options, num_tops=len(g.top))
        except (TypeError, ValueError) as err:
            raise self._error(f"{g.where()}: {err}", g.line) from None
        if gate.num_tops != len(g.top):
            raise self._error(f"{g.where()}: with these options it produces {gate.num_tops} "
                              f"top(s), got {len(g.top)}: {g.top}", g.line_of("top"))
        gate.name, gate.phase = g.name, "train"
        gate.rng = np.random.default_rng(self._rng.integers(2**63))
        return gate

    def _fill(self, shape: tuple, filler: dict, line: int, what: str) -> np.ndarray:
        try:
            check_filler(filler)
        except ValueError as err:
            raise self._error(f"{what}: {err}", line) from None
        needed = fill_bytes(shape, filler, self.dtype)
        if needed > self._room:
            raise self._error(f"{what}: shape {tuple(shape)} needs {_gib(needed)} of memory to "
                              f"fill, more than the {_gib(self._room)} available", line)
        self._room -= math.prod(shape) * self.dtype.itemsize       # what the array keeps
        try:
            return fill(tuple(shape), filler, self._rng, self.dtype, aligned=True)
        except ValueError as err:       # a bilinear filler's shape
            raise self._error(f"{what}: {err}", line) from None

    def _build_phase(self, phase: str) -> _Phase:
        graph = build_graph(self.spec, phase)
        shapes = {name: tuple(i.shape) for name, i in self.inputs.items()}
        shapes.update({name: p.shape for name, p in self.params.items()})
        steps, loss_weights = [], {}
        for g in graph.order:
            gate = self.gates[g.name]
            bottom_shapes = [shapes[b] for b in g.bottom]
            param_names = self._gate_params(g, gate, bottom_shapes)
            in_shapes = bottom_shapes + [self.params[p].shape for p in param_names]
            inferred = self._infer(g, gate, in_shapes, g.bottom + list(param_names))
            for top, shape in zip(g.top, inferred):
                shapes[top] = shape
            gate.needs_input_grad = (True,) * (len(g.bottom) + len(param_names))
            whole = inferred[0] if len(inferred) == 1 and None not in inferred[0] else None
            steps.append(Step(gate, g, tuple(g.bottom) + param_names, tuple(g.top), whole))
            # a loss gate's first top is its loss (Caffe's LossLayer); others weigh 0
            weights = g.loss_weight or ([1.0] + [0.0] * (len(g.top) - 1)
                                        if g.cls.loss_gate() else None)
            if weights:
                loss_weights.update((t, w) for t, w in zip(g.top, weights) if w)
        used = {b for g in graph.order for b in g.bottom}
        inputs = [name for name in self.inputs if name in used]
        seeds = loss_weights or {name: 1.0 for name in graph.outputs}
        known = {name: shapes[name] for name in inputs if None not in shapes[name]}
        return _Phase(graph, Runner(steps, self.spec.file, known), shapes, inputs, loss_weights,
                      seeds)

    def _check_namespace(self) -> None:
        """Inputs, parameters, gate buffers and blobs share one namespace: a name may mean one
        thing only (a top named `fc1.W` would silently become InnerProduct fc1's weight)."""
        owner: dict[str, tuple[str, str, int]] = {}     # name -> (kind, what, line)

        def claim(name: str, kind: str, what: str, line: int) -> None:
            first = owner.setdefault(name, (kind, what, line))
            if first[0] != kind:
                raise self._error(f"{what} is named {name!r}, like {first[1]} (line "
                                  f"{first[2]}): inputs, parameters, gate buffers and blobs "
                                  "share one namespace; rename one of them", line)

        for name, spec in self.inputs.items():
            claim(name, "input", f"input {name!r}", spec.line)
        for name, spec in self.spec.params.items():
            claim(name, "parameter", f"param {name!r}", spec.line)
        by_name = {g.name: g for g in self.spec.gates}
        for gate_name, names in self._param_inputs.items():
            for name in names:
                claim(name, "parameter", f"the parameter of {by_name[gate_name].where()}",
                      by_name[gate_name].line)
        for gate_name, gate in self.gates.items():
            for key in gate.buffers:
                claim(f"{gate_name}.{key}", "buffer",
                      f"the buffer of {by_name[gate_name].where()}", by_name[gate_name].line)
        for phase in self._phases.values():
            for g in phase.graph.order:
                for top in g.top:
                    claim(top, "blob", f"the blob written by {g.where()}", g.line_of("top"))

    def _check_memory(self) -> None:
        """Refuse, at build, a net whose parameters and one training batch's blobs (values and
        gradients) cannot fit in the memory this process may still allocate (the free memory,
        `ulimit -v` and the cgroup's limit: net.core.memory)."""
        data = self.spec.data
        batch = max((s.batch_size for s in data.sources().values()), default=1) \
            if data is not None else 1
        shapes = self._phases["train"].shapes
        per_batch = sum(math.prod(batch if d is None else d for d in shape)
                        for name, shape in shapes.items() if name not in self.params)
        needed = (2 * per_batch + 3 * sum(p.size for p in self.params.values())) \
            * self.dtype.itemsize
        available = available_bytes()
        if needed > available:
            raise self._error(f"the net needs about {_gib(needed)} for its parameters and one "
                              f"batch of {batch} (values and gradients), more than the "
                              f"{_gib(available)} this process may allocate; lower the batch "
                              "size or the layer sizes", self.spec.line_of("data" if data
                                                                            else "gates"))

    def _gate_params(self, g: GateSpec, gate: Gate, bottom_shapes: list) -> tuple[str, ...]:
        """Create (once) the parameters a gate owns; returns their blob names in order."""
        if g.name in self._param_inputs:
            return self._param_inputs[g.name]
        try:
            specs = gate.param_specs(*bottom_shapes)
        except (TypeError, ValueError) as err:
            raise self._error(f"{g.where()}: {err} (input shapes: "
                              f"{_shapes_text(g.bottom, bottom_shapes)})", g.line) from None
        if len(g.param) > len(specs):
            raise self._error(f"{g.where()}: `param` lists {len(g.param)} entries but the gate "
                              f"has {len(specs)} parameter(s): {', '.join(specs) or 'none'}",
                              g.key_lines.get("param", g.line))
        names = []
        for index, (pname, (shape, filler)) in enumerate(specs.items()):
            rule = g.param[index] if index < len(g.param) else ParamRule()
            name = rule.name or f"{g.name}.{pname}"
            shape = tuple(shape)
            if name in self.params:
                if self.params[name].shape != shape:
                    raise self._error(f"{g.where()}: shared parameter {name!r} has shape "
                                      f"{self.params[name].shape} elsewhere but {shape} here",
                                      g.key_lines.get("param", g.line))
                first = self.param_rules[name]
                if (first.lr_mult, first.decay_mult) != (rule.lr_mult, rule.decay_mult):
                    raise self._error(f"{g.where()}: shared parameter {name!r} has lr_mult "
                                      f"{rule.lr_mult} and decay_mult {rule.decay_mult} here but "
                                      f"{first.lr_mult} and {first.decay_mult} where it was "
                                      "first declared; a shared parameter has one setting",
                                      g.key_lines.get("param", g.line))
            else:
                line = g.key_lines.get(f"{pname.lower()}_filler", g.key_lines.get(
                    "weight_filler" if index == 0 else "bias_filler", g.line))
                self.params[name] = self._fill(shape, filler, line, f"{g.where()}: {pname} filler")
                self.param_rules[name] = rule
            names.append(name)
        self._param_inputs[g.name] = tuple(names)
        return tuple(names)

    def _infer(self, g: GateSpec, gate: Gate, in_shapes: list, in_names: list) -> list[tuple]:
        """Top shapes of one gate; a mismatch becomes a ConfigError at the gate's line."""
        try:
            shapes = gate.infer_shapes(*in_shapes)
            if shapes is None:
                shapes = self._probe(g, gate, in_shapes)
        except ConfigError:
            raise
        except Exception as err:
            raise self._error(f"{g.where()}: {err} (input shapes: "
                              f"{_shapes_text(in_names, in_shapes)})", g.line) from None
        if len(shapes) != len(g.top):
            raise self._error(f"{g.where()}: the gate describes {len(shapes)} output shape(s) "
                              f"for {len(g.top)} top(s)", g.line)
        return [tuple(s) for s in shapes]

    def _probe(self, g: GateSpec, gate: Gate, in_shapes: list) -> list[tuple]:
        """Shape inference for a gate that declares none: run forward on zeros twice, open
        dimensions set to 2 and then to 3; an output dimension that follows them is open."""
        runs = [self._probe_once(g, gate, in_shapes, size) for size in (2, 3)]
        if not any(None in s for s in in_shapes):
            return runs[0]
        return [tuple(a if a == b else None for a, b in zip(first, second)) if len(first) ==
                len(second) else first for first, second in zip(*runs)]

    def _probe_once(self, g: GateSpec, gate: Gate, in_shapes: list, open_size: int
                    ) -> list[tuple]:
        probes = []
        for name, shape in zip(g.bottom, in_shapes):
            int_input = name in self.inputs and self.inputs[name].dtype == "int"
            probes.append(np.zeros([open_size if d is None else d for d in shape],
                                   dtype=np.int64 if int_input else self.dtype))
        probes += [np.zeros(s, self.dtype) for s in in_shapes[len(g.bottom):]]
        out = gate.forward(*probes)
        return [tuple(np.shape(o)) for o in (out if len(g.top) > 1 else (out,))]

    # -- phase -------------------------------------------------------------------------------
    @property
    def phase(self) -> str:
        return self._phase_name

    @phase.setter
    def phase(self, phase: str) -> None:
        if phase not in PHASES:
            raise ValueError(f"phase must be train or test, got {phase!r}")
        self._phase_name = phase
        self._active = self._phases[phase]
        for step in self._active.runner.steps:
            step.gate.phase = phase

    @property
    def buffers(self) -> dict[str, np.ndarray]:
        """Running state kept by gates (not learned), as ``<gate>.<name>`` -> live array."""
        return {f"{name}.{key}": value for name, gate in self.gates.items()
                for key, value in gate.buffers.items()}

    @property
    def outputs(self) -> list[str]:
        """Blobs that no gate of the current phase consumes."""
        return list(self._active.graph.outputs)

    @property
    def loss_weights(self) -> dict[str, float]:
        """Loss tops of the current phase and their weights."""
        return dict(self._active.loss_weights)

    @property
    def runner(self) -> Runner:
        return self._active.runner

    @property
    def shapes(self) -> dict[str, tuple]:
        """The shape inferred for every blob at build time (None marks an open dimension)."""
        return dict(self._active.shapes)

    # -- running -----------------------------------------------------------------------------
    def forward(self, feed: Mapping[str, Any] | None = None, hook=None,
                outputs: str | list[str] | None = None) -> dict[str, np.ndarray]:
        """Run the gates in order on `feed` (input name -> array, scalar or list); returns every
        output blob by name. An input not fed takes the `value:` of its spec if it has one.

        outputs: the blobs wanted (any blob, not only the net's outputs: `["prob"]`, `"ip1"`).
        Then only the gates they depend on run, and only the inputs those gates read are needed
        (a trained classifier's scores need no label). Returns those blobs by name."""
        if not self._busy.acquire(False):     # positional: a keyword costs 0.1 us
            raise self._busy_error()
        try:
            return self._forward(feed, hook, outputs)
        finally:
            self._busy.release()

    def _forward(self, feed, hook, outputs) -> dict[str, np.ndarray]:
        feed = feed or {}
        active = self._active
        blobs = self.blobs = {}
        for name in feed:
            if name not in self.inputs:
                raise KeyError(f"{name!r} is not an input of net {self.name!r} "
                               f"(inputs: {', '.join(self.inputs)})")
        steps, inputs, wanted = None, active.inputs, active.graph.outputs
        if outputs is not None:
            wanted = [outputs] if isinstance(outputs, str) else list(outputs)
            for name in wanted:
                if name not in active.shapes:
                    raise KeyError(f"{name!r} is not a blob of net {self.name!r} in the "
                                   f"{self.phase} phase{suggest(name, active.shapes)}")
            steps, needed = active.runner.needed(frozenset(wanted))
            inputs = [name for name in active.inputs if name in needed]
        defaults, specs = self._defaults, self.inputs
        for name in inputs:
            if name in feed:
                blobs[name] = self._cast_input(name, feed[name])
                continue
            cached = defaults.get(name)     # _default_input's answer, without its call
            blobs[name] = (cached[1] if cached is not None and cached[0] is specs[name].value
                           else self._default_input(name))
        blobs.update(self.params)
        if self.debug:
            check_feed({name: blobs[name] for name in inputs})
            with np.errstate(all="ignore"):  # the check below says where, numpy's warning cannot
                active.runner.forward(blobs, chain(finite_check(self.spec.file), hook), steps)
        else:
            active.runner.forward(blobs, hook, steps)
        return {name: blobs[name] for name in wanted}

    def _default_input(self, name: str) -> np.ndarray:
        """An input's `value:`, cast once into a read-only array and reused while `value` stays
        the same object (casting it on every call was a third of the scalar example's forward)."""
        value = self.inputs[name].value
        cached = self._defaults.get(name)
        if cached is None or cached[0] is not value:
            array = self._cast_input(name, value)
            array = array.view() if array is value else array
            array.flags.writeable = False
            cached = self._defaults[name] = (value, array)
        return cached[1]

    def _cast_input(self, name: str, value: Any) -> np.ndarray:
        spec = self.inputs[name]
        if value is None:
            raise KeyError(f"no value for input {name!r}: feed it, or give it a `value:` in the "
                           "config")
        try:
            array = value if isinstance(value, np.ndarray) else np.asarray(value)
        except ValueError:      # ragged nested lists
            raise ValueError(f"input {name!r}: {short_repr(value)} is not a rectangular array "
                             "of numbers") from None
        if array.dtype.kind not in "biuf":
            raise ValueError(f"input {name!r} takes numbers, got {short_repr(value)}")
        if spec.dtype == "int" or (spec.dtype is None and array.dtype.kind in "iu"
                                   and isinstance(value, np.ndarray)):
            if array.dtype.kind not in "iu":
                if array.dtype.kind != "f" or not np.all(np.mod(array, 1) == 0):
                    raise ValueError(f"input {name!r} is declared int but got non-integer values")
                array = array.astype(np.int64)
        elif array.dtype != self.dtype:
            array = array.astype(self.dtype)
        shape = spec.shape
        if self._fitting.get(name) != (shape, array.shape):    # checked once per new shape
            if len(shape) != array.ndim or any(d is not None and d != n
                                               for d, n in zip(shape, array.shape)):
                raise ValueError(f"input {name!r} has shape {array.shape} but the config "
                                 f"declares {format_shape(shape)}")
            self._fitting[name] = (shape, array.shape)
        return array

    def backward(self, top_grads: Mapping[str, Any] | None = None,
                 wrt: list[str] | None = None, hook=None) -> dict[str, np.ndarray | None]:
        """Run the gates in reverse order and return d(output)/d(source) for each source.

        top_grads: blob name -> upstream gradient (an array of the blob's shape, or a scalar
            broadcast to it). Default: each loss top seeded with its loss weight, or, in a net
            with no loss, every output seeded with ones (the lecture's initial gradient 1).
        wrt: the blobs whose gradients are wanted: inputs, parameters or intermediate blobs
            (only the gates on the way to them run backward). Default: every input and
            parameter; an integer input's gradient is None.
        Gradients are summed where a blob fans out. Calling backward twice gives the same result.
        Treat what it returns as read-only: a seeded blob's gradient, or one passed through
        unchanged from it, is the default seed itself, made once and shared between calls.
        """
        if not self._busy.acquire(False):     # positional: a keyword costs 0.1 us
            raise self._busy_error()
        try:
            return self._backward(top_grads, wrt, hook)
        finally:
            self._busy.release()

    def _busy_error(self) -> RuntimeError:
        return RuntimeError(f"net {self.name!r} is already running in another thread: a Net is "
                            "not thread-safe (its blobs, gradients and gates' caches are shared); "
                            "build one Net per thread")

    def _backward(self, top_grads, wrt, hook) -> dict[str, np.ndarray | None]:
        if not self.blobs:
            raise RuntimeError("backward needs a forward pass first")
        self.grads = {}     # let the last pass's gradients go before this pass allocates its own
        active, blobs = self._active, self.blobs
        grads: dict[str, np.ndarray] = {}
        for name, value in (active.seeds if top_grads is None else top_grads).items():
            if name not in blobs:
                raise KeyError(f"cannot seed a gradient for {name!r}: it is not a blob of the "
                               "last forward pass")
            target = blobs[name]
            grads[name] = (self._seed(name, value, target) if top_grads is None
                           else self._grad_like(value, target))
        sources, floating = self._floating(wrt)
        if self.debug:
            with np.errstate(all="ignore"):
                active.runner.backward(self.blobs, grads, floating,
                                       chain(finite_check(self.spec.file), hook))
        else:
            active.runner.backward(self.blobs, grads, floating, hook)
        result = {}
        for name in sources:    # None where no gradient flows; zeros where none reached the blob
            grad = None
            if name in floating:
                grad = grads.get(name)
                if grad is None:
                    grad = np.zeros_like(blobs[name])
            result[name] = grad
        self.grads = result
        return result

    def _seed(self, name: str, value: float, target: np.ndarray) -> np.ndarray:
        """The default seed of `name` (its loss weight, or 1) in the dtype and shape of its blob:
        made once, read-only, and reused while the blob's dtype and shape stay the same."""
        dtype, shape = target.dtype, target.shape
        kept = self._active.seeded.get(name)
        if kept is not None and kept[0] is dtype and kept[1] == shape:
            return kept[2]
        grad = self._grad_like(value, target)
        grad.flags.writeable = False
        self._active.seeded[name] = (dtype, shape, grad)
        return grad

    def _grad_like(self, value: Any, target: np.ndarray) -> np.ndarray:
        """`value` (an array, or a number broadcast) as a gradient of `target`: its float dtype
        (the Net's for an integer blob) and its shape."""
        grad = np.asarray(value, dtype=target.dtype if target.dtype.kind == "f" else self.dtype)
        return np.broadcast_to(grad, target.shape) if grad.shape != target.shape else grad

    def sources(self) -> list[str]:
        """Every input of the current phase and every parameter, by name."""
        return list(self._active.inputs) + list(self.params)

    def _floating(self, wrt: list[str] | None) -> tuple[list[str], frozenset[str]]:
        """The sources backward answers for (`wrt`, or every input and parameter) and those of
        them that take a gradient: the ones the last forward pass holds as floating-point arrays.
        Kept per `wrt` and reused while its inputs' kinds of dtype stay the same (the Net fills
        its parameters in its float dtype): a training loop's backward asks the same every step."""
        blobs = self.blobs
        key = None if wrt is None else tuple(wrt)
        found = self._active.sources.get(key)
        if found is not None:
            sources, inputs, kinds, floating = found
            if [blobs[n].dtype.kind if n in blobs else None for n in inputs] == kinds:
                return sources, floating
        sources = self.sources() if wrt is None else list(key)
        active = self._active
        for name in sources:
            if name not in active.shapes and name not in self.params:
                raise KeyError(f"{name!r} is not a blob of net {self.name!r} in the "
                               f"{self.phase} phase"
                               f"{suggest(name, [*active.shapes, *self.params])}")
        inputs = [n for n in sources if n not in self.params]
        kinds = [blobs[n].dtype.kind if n in blobs else None for n in inputs]
        floating = frozenset(n for n in sources if n in blobs and blobs[n].dtype.kind == "f")
        self._active.sources[key] = (sources, inputs, kinds, floating)
        return sources, floating

    # -- inspection ---------------------------------------------------------------------------
    def load_weights(self, path: str | Path, strict: bool = False) -> dict[str, list[str]]:
        """Copy a weights file's arrays into the parameters and buffers, by name: Gatework's
        .npz (snapshots' .weights.npz) or any format a reader is registered for
        (`net.core.state.register_weights_reader`; Caffe's .caffemodel once net.formats is
        imported, as `import net` does).

        Shapes must match exactly and values must be finite floating point. With `strict`, the
        file must hold exactly the net's arrays (resuming); otherwise names the net lacks are
        ignored and arrays the file lacks keep their values (fine-tuning), but at least one must
        match. Nothing is copied unless the whole file is valid. Returns {"loaded", "missing",
        "ignored"} (lists of names)."""
        return copy_weights(self, read_weights(self, path), path, strict)

    def integer_inputs(self) -> dict[str, int | None]:
        """The inputs that take integers (declared `dtype: int`, or labels: an input read by a
        loss gate after its first bottom, of lower rank than that bottom), each with the number
        of values it ranges over (the class count), or None where no gate says. The count comes
        from the reading gate's `num_classes(*input_shapes)` when it declares one, else from
        dimension 1 of the gate's first bottom (a classifier's (N, C) scores)."""
        found: dict[str, int | None] = {}
        for phase in self._phases.values():
            for step in phase.runner.steps:
                bottoms = step.spec.bottom
                shapes = [phase.shapes[b] for b in bottoms]
                for index, name in enumerate(bottoms):
                    spec = self.inputs.get(name)
                    if spec is None:
                        continue
                    label_like = (index > 0 and step.spec.cls.loss_gate() and spec.dtype is None
                                  and len(spec.shape) < len(shapes[0]))
                    if spec.dtype != "int" and not label_like:
                        continue
                    count = _class_count(step.gate, index, shapes)
                    if found.get(name) is None or (count is not None and count < found[name]):
                        found[name] = count
        return found

    def summary(self) -> str:
        """A table of the gates in execution order with input and output shapes and parameter
        counts, like Caffe's build log, ending with the total number of parameters."""
        active = self._active
        rows = []
        for step in active.runner.steps:
            params = self._param_inputs.get(step.spec.name, ())
            count = sum(int(self.params[p].size) for p in params)
            rows.append((step.spec.name, step.spec.type,
                         _shapes_text(step.spec.bottom,
                                      [active.shapes[b] for b in step.spec.bottom]),
                         _shapes_text(step.tops, [active.shapes[t] for t in step.tops]),
                         str(count) if count else "-"))
        lines = table(("gate", "type", "inputs", "outputs", "params"), rows)
        total = sum(int(p.size) for p in self.params.values())   # `params:` sources too
        lines.append(f"total parameters: {total} in {len(self.params)} arrays "
                     f"({self.dtype.name}, phase {self.phase})")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Net {self.name!r}: {len(self._active.runner.steps)} gates, phase {self.phase}>"


def _gib(size: int | float) -> str:
    return f"{size / 2 ** 30:.1f} GiB" if size >= 2 ** 28 else f"{size / 2 ** 20:.1f} MiB"


def _class_count(gate: Gate, index: int, shapes: list[tuple]) -> int | None:
    """How many values the integer input `index` of `gate` takes (see Net.integer_inputs)."""
    declared = getattr(gate, "num_classes", None)
    if declared is not None:
        count = declared(*shapes)
    else:
        first = shapes[0] if index > 0 else ()
        count = first[1] if len(first) > 1 else None
    return int(count) if isinstance(count, (int, np.integer)) and count > 0 else None


def _shapes_text(names, shapes) -> str:
    return ", ".join(f"{n} {format_shape(s)}" for n, s in zip(names, shapes))
