"""The gate contract, gate options and the registry of gate types.

Everything a gate may declare lives on `Gate` as a class attribute with a default, so a user's gate
that defines only `forward` and `backward` works as it is. The Net and the runner read these
declarations; a gate never sees the Net, the YAML or other gates.
"""
from __future__ import annotations

import difflib
import inspect
import math
import reprlib
from typing import Any, Callable, ClassVar

import numpy as np

Shape = tuple  # a tuple of ints; None marks a dimension left open (the batch)


class _Required:
    def __repr__(self) -> str:
        return "required"


REQUIRED: Any = _Required()


class Option:
    """One option a gate type accepts in YAML: its type(s), default, meaning and allowed values.

    `kind` is a type or a tuple of types; a float option also accepts an int, a bool is never
    taken for an int, and numpy scalars count as the Python numbers they hold. A float option is
    always finite. `choices` restricts the value to a fixed set (strings are matched exactly).
    `range` bounds a number, written as an interval: "[0, 1)", "(0, inf)", "[1, inf)"; a list
    of numbers (a per-axis `stride: [2, 1]`) is bounded element by element. `items` is the kind
    of every element of a list value.
    """

    def __init__(self, kind: type | tuple[type, ...], default: Any = REQUIRED, doc: str = "",
                 choices: tuple | None = None, range: str | None = None,
                 items: type | tuple[type, ...] | None = None):
        self.kinds = kind if isinstance(kind, tuple) else (kind,)
        self.default = default
        self.doc = doc
        self.choices = choices
        self.range = _Interval(range) if range else None
        self.items = Option(items, range=range) if items is not None else None

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def type_name(self) -> str:
        """What the option takes, in words: "a positive integer", "one of MAX, AVE", ..."""
        if self.choices is not None:
            return "one of " + ", ".join("null" if c is None else str(c) for c in self.choices)
        words = [_kind_phrase(kind, self.range) for kind in self.kinds if kind is not type(None)]
        if self.items is not None:
            words = [f"a list of {self.items.type_name().removeprefix('a ').removeprefix('an ')}"
                     "s" if w == "a list" else w for w in words]
        words += ["null"] if type(None) in self.kinds else []
        return " or ".join(words)

    def convert(self, value: Any) -> Any:
        """Return `value` checked against this option; raise ValueError saying, as "must be
        <what it takes>, got <value>", what was expected."""
        if isinstance(value, np.generic) and value.ndim == 0 and value.dtype.kind in "biuf":
            value = value.item()
        ok = False
        for kind in self.kinds:
            if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
                value, ok = float(value), True
                break
            if kind is int and isinstance(value, bool):
                continue
            if isinstance(value, kind):
                ok = True
                break
        if ok and isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"must be a finite number, got {value}")
        if ok and isinstance(value, int) and not isinstance(value, bool) and \
                abs(value) > INT_LIMIT:
            raise ValueError(f"must be {self.type_name()} of at most 2^63 - 1, got a "
                             f"{len(str(abs(value)))}-digit number")
        if ok and self.items is not None and isinstance(value, list):
            try:
                value = [self.items.convert(item) for item in value]
            except ValueError:
                ok = False
        if not ok or (self.choices is not None and value not in self.choices) or (
                self.range is not None and not self.range.holds(value)):
            raise ValueError(f"must be {self.type_name()}, got {short_repr(value)}")
        return value


INT_LIMIT = 2 ** 63 - 1         # an integer option fits numpy's int64


class RetiredOption(Option):
    """An option a gate type no longer takes. Naming it is an error whose message says what to
    use instead (a config keeps failing at its line with the fix, not with "unknown option")."""

    def __init__(self, message: str):
        super().__init__(object, None, f"retired: {message}")
        self.message = message

    def convert(self, value: Any) -> Any:
        raise ValueError(f"is retired: {self.message}")


class _Interval:
    """A closed, open or half-open interval of numbers, read from its usual notation."""

    def __init__(self, text: str):
        low, high = (part.strip() for part in text[1:-1].split(","))
        self.text = text
        self.low, self.high = float(low), float(high)
        self.low_open, self.high_open = text[0] == "(", text[-1] == ")"

    def holds(self, value: Any) -> bool:
        """Whether a number (or every number of a list) lies inside; other values pass."""
        for number in value if isinstance(value, (list, tuple)) else (value,):
            if not isinstance(number, (int, float)) or isinstance(number, bool):
                continue    # a null, or a type the option's kind already vetted
            if (number < self.low or number > self.high or (self.low_open and number == self.low)
                    or (self.high_open and number == self.high)):
                return False
        return True


def _kind_phrase(kind: type, interval: _Interval | None) -> str:
    """"an integer", "a positive number", "a number in [0, 1)", "true or false", ..."""
    if kind not in (int, float):
        return {bool: "true or false", str: "text", list: "a list", dict: "a mapping",
                tuple: "a list"}.get(kind, f"a {kind.__name__}")
    noun = "integer" if kind is int else "number"
    if interval is None or (interval.low == -math.inf and interval.high == math.inf):
        return f"an {noun}" if kind is int else f"a {noun}"
    if interval.high == math.inf and interval.low == 0:
        return f"a {'positive' if interval.low_open else 'non-negative'} {noun}"
    if interval.high == math.inf and kind is int and interval.low == 1:
        return f"a positive {noun}"
    return f"a{'n' if kind is int else ''} {noun} in {interval.text}"


def short_repr(value: Any, limit: int = 80) -> str:
    """repr(value) cut to `limit` characters: error messages never print an unbounded value
    (a YAML file can make a value of any size from a few aliases)."""
    text = _SHORT.repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxdict, _SHORT.maxtuple = 3, 8, 8, 8
_SHORT.maxstring, _SHORT.maxother, _SHORT.maxlong = 80, 80, 40


#: the default of `Gate.needs_input_grad`: every input's gradient is wanted, however many inputs
#: the gate has, until the Net or the gradient checker sets the exact tuple
ALL_INPUTS: tuple[bool, ...] = (True,) * 64


class Gate:
    """Base class of every gate: one operation of the computation graph.

    The contract
    ------------
    - ``forward(*inputs)`` receives numpy arrays (the bottoms, then the gate's parameters, in the
      order of ``param_specs``), caches what ``backward`` needs on ``self`` and returns its output,
      or a tuple of outputs when ``num_tops > 1``, each of the shape ``infer_shapes`` gives it
      (the runner checks a lone top whose shape the net knows whole when it is built).
    - ``backward(dout)`` receives the upstream gradient (a tuple of them when ``num_tops > 1``,
      each the shape of its top) and returns a tuple with exactly one gradient per input, each the
      shape of that input. ``None`` is allowed for an input that takes no gradient (integer labels)
      and for inputs whose entry in ``self.needs_input_grad`` is False.
    - A gate never modifies its inputs, its cached values or ``dout`` in place.

    What a gate may declare (all optional; the defaults fit a plain elementwise gate)
    ---------------------------------------------------------------------------------
    num_bottoms      how many bottoms: an int, or (min, max) with max None for "any number".
                     Default: the number of positional parameters of ``forward``.
    num_tops         how many tops (outputs): an int (default 1), or (min, max) with max None for
                     "any number" when the config decides (optional second tops, Split, Slice).
                     On an instance it is the actual count: the Net sets it to the config's
                     count before the gate's __init__ runs, an __init__ may set it from its
                     options (RNN's expose_hidden, Slice's slice_point), and a gate built by hand
                     gets the class minimum.
    options          dict name -> Option: what the YAML may set; each becomes an attribute.
    param_specs()    the learnable parameters, as name -> (shape, filler), from the bottom shapes.
                     The Net owns the arrays and passes them to forward after the bottoms.
    infer_shapes()   the top shapes from the input shapes (None: run forward once on zeros); a
                     dimension whose size follows the data, not the input shapes, is None.
    kinks()          per input, the distance of each element to the nearest point where the gate
                     is not differentiable (None: nowhere); the gradient checker skips those.
    kink_note        one line saying what the kinks are and the convention used there.
    check_options, check_shapes, sample_inputs(), check_tol
                     how the gradient checker (net.gradcheck) builds and feeds a gate of this
                     type: options, bottom shapes, valid bottoms (positive for Log, integer labels
                     for a loss; parameters come from param_specs), and tolerance overrides as
                     {"rtol": ..., "atol": ..., "h": ...}. The checker resets ``rng`` and
                     ``buffers`` before every forward: a random gate draws the same mask each time.
    is_loss          a top of this gate is a loss; gates whose type ends in "Loss" are.

    Attributes the Net sets
    -----------------------
    name             the gate's name in the config.
    phase            "train" or "test": the phase now running (Dropout and BatchNorm read it).
    needs_input_grad tuple of bools, one per input: which gradients the backward pass will use.
                     Always indexable by every input: the Net and the checker set one flag per
                     input; a gate built by hand starts with ALL_INPUTS (every one wanted).
    rng              a numpy Generator of the gate's own, seeded from the net's seed (Dropout).

    State that is not learned
    -------------------------
    buffers          dict name -> array of running state a gate keeps (BatchNorm's moving
                     averages). The Net lists them as ``<gate>.<name>`` in ``net.buffers`` and
                     snapshots save and restore them; no gradient flows to them.
    """

    type_name: ClassVar[str] = ""
    num_bottoms: ClassVar[int | tuple[int, int | None] | None] = None
    num_tops: ClassVar[int | tuple[int, int | None]] = 1
    options: ClassVar[dict[str, Option]] = {}
    kink_note: ClassVar[str] = ""
    check_options: ClassVar[dict[str, Any]] = {}
    check_shapes: ClassVar[tuple[Shape, ...] | None] = None
    check_tol: ClassVar[dict[str, float]] = {}
    is_loss: ClassVar[bool | None] = None

    def __init__(self, **options: Any):
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise ValueError(f"unknown option {unknown[0]!r} for {type(self).__name__}"
                             f"{_known_list(self.options)}")
        for key, spec in self.options.items():
            if key in options:
                try:
                    value = spec.convert(options[key])
                except ValueError as err:
                    raise ValueError(f"option {key!r} {err}") from None
            elif spec.required:
                raise ValueError(f"option {key!r} is required for {type(self).__name__}")
            else:
                value = spec.default
            setattr(self, key, value)
        if "num_tops" not in vars(self):
            self.num_tops = self.top_range()[0]
        self.name = type(self).__name__
        self.phase = "train"
        self.needs_input_grad: tuple[bool, ...] = ALL_INPUTS
        self.rng = np.random.default_rng(0)
        self.buffers: dict[str, np.ndarray] = {}

    # -- the two methods every gate writes -------------------------------------------------
    def forward(self, *inputs: np.ndarray) -> np.ndarray | tuple[np.ndarray, ...]:
        raise NotImplementedError(f"{type(self).__name__} does not define forward")

    def backward(self, dout: Any) -> tuple[np.ndarray | None, ...]:
        raise NotImplementedError(f"{type(self).__name__} does not define backward")

    # -- declarations with defaults ----------------------------------------------------------
    def param_specs(self, *bottom_shapes: Shape) -> dict[str, tuple[Shape, dict]]:
        """Learnable parameters as name -> (shape, filler dict); none by default."""
        return {}

    def infer_shapes(self, *input_shapes: Shape) -> tuple[Shape, ...] | None:
        """Top shapes from input shapes, or None to let the Net run forward on zeros."""
        return None

    def kinks(self, *inputs: np.ndarray) -> tuple[np.ndarray | None, ...] | None:
        """Per input, each element's distance to a non-differentiable point, or None."""
        return None

    def sample_inputs(self, rng: np.random.Generator) -> list[np.ndarray]:
        """Inputs (bottoms only) for the gradient checker: standard normal of `check_shapes`."""
        shapes = self.check_shapes or ((3, 4),) * self.bottom_range()[0]
        return [rng.standard_normal(shape) for shape in shapes]

    @classmethod
    def bottom_range(cls) -> tuple[int, int | None]:
        """(min, max) number of bottoms; max None means any number."""
        n = cls.num_bottoms
        if n is None:
            return _signature_arity(cls.forward)
        if isinstance(n, int):
            return n, n
        return n

    @classmethod
    def top_range(cls) -> tuple[int, int | None]:
        """(min, max) number of tops; max None means any number."""
        n = cls.num_tops
        return (n, n) if isinstance(n, int) else n

    @classmethod
    def loss_gate(cls) -> bool:
        return cls.type_name.endswith("Loss") if cls.is_loss is None else cls.is_loss

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


class ElementwiseGate(Gate):
    """A one-input gate whose output has its input's shape (ReLU, Exp, Scale, Dropout, ...)."""

    def infer_shapes(self, shape: Shape) -> tuple[Shape, ...]:
        return (shape,)


def _signature_arity(forward: Callable) -> tuple[int, int | None]:
    params = list(inspect.signature(forward).parameters.values())[1:]  # drop self
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = sum(p.default is p.empty for p in positional)
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return required, None
    return required, len(positional)


def _known_list(options: dict) -> str:
    return f" (known: {', '.join(sorted(options))})" if options else " (it takes no options)"


# -- the registry --------------------------------------------------------------------------------
_REGISTRY: dict[str, type[Gate]] = {}
_ALIASES: dict[str, str] = {}      # another name a config may use -> the registered type name


class UnknownGateType(KeyError):
    """A gate type name that no registered gate answers to."""

    def __str__(self) -> str:
        return self.args[0]


def register_gate(cls_or_name: type[Gate] | str | None = None):
    """Class decorator making a Gate subclass usable from YAML.

    ``@register_gate`` registers ``MultiplyGate`` as ``Multiply`` (the class name without its
    ``Gate`` suffix); ``@register_gate("Name")`` chooses the name. Registering a name taken by
    another class is an error; the same class defined again (a notebook cell run twice, a plugin
    file reloaded) replaces the old definition. A class whose own ``__init__`` never calls
    ``Gate.__init__`` is refused: the Net relies on what it sets up.
    """
    def decorate(cls: type[Gate], name: str | None = None) -> type[Gate]:
        if not (isinstance(cls, type) and issubclass(cls, Gate)):
            raise TypeError(f"register_gate expects a subclass of gates.Gate, got {cls!r}")
        name = name or (cls.__name__[:-4] if cls.__name__.endswith("Gate")
                        and cls.__name__ != "Gate"
                        else cls.__name__)
        code = getattr(cls.__dict__.get("__init__"), "__code__", None)
        if code is not None and "__init__" not in code.co_names:
            raise TypeError(f"gate class {cls.__qualname__}: its __init__ does not call "
                            "Gate.__init__; add super().__init__(**options)")
        if name in _ALIASES:
            raise ValueError(f"gate type {name!r} is already an alias of {_ALIASES[name]!r}")
        other = _REGISTRY.get(name)
        if other is not None and (other.__module__, other.__qualname__) != (cls.__module__,
                                                                            cls.__qualname__):
            raise ValueError(f"gate type {name!r} is already registered "
                             f"(by {other.__module__}.{other.__qualname__})")
        cls.type_name = name
        _REGISTRY[name] = cls
        return cls

    if isinstance(cls_or_name, str):
        return lambda cls: decorate(cls, cls_or_name)
    if cls_or_name is None:
        return decorate
    return decorate(cls_or_name)


def register_alias(alias: str, type_name: str) -> None:
    """Let configs name the registered type `type_name` also `alias` (Caffe's ``TanH`` for
    ``Tanh``). An alias is not listed by `registered_gates`, so each type is checked once."""
    if alias in _REGISTRY:
        raise ValueError(f"{alias!r} is a registered gate type, not free for an alias")
    if type_name not in _REGISTRY:
        raise UnknownGateType(f"cannot alias {alias!r} to {type_name!r}: no such gate type")
    _ALIASES[alias] = type_name


def build_gate(cls: type[Gate], options: dict[str, Any], num_tops: int | None = None) -> Gate:
    """An instance of `cls` with `options`, checked to have run ``Gate.__init__`` (a gate class
    that skips it lacks the attributes the Net and the runner set and read). `num_tops`, when
    given, is set before the gate's __init__ runs (which may still change it)."""
    gate = cls.__new__(cls)
    if num_tops is not None:
        gate.num_tops = num_tops
    gate.__init__(**options)
    if "needs_input_grad" not in vars(gate):
        raise TypeError(f"gate class {cls.__qualname__}: its __init__ does not call "
                        "Gate.__init__; add super().__init__(**options)")
    return gate


def gate_class(type_name: str) -> type[Gate]:
    """The registered class for a YAML `type` (``Multiply``, ``MultiplyGate``, or an alias)."""
    cls = _REGISTRY.get(_ALIASES.get(type_name, type_name))
    if cls is None and type_name.endswith("Gate"):
        cls = _REGISTRY.get(type_name[:-4])
        if cls is not None and cls.__name__ != type_name:
            cls = None
    if cls is None:
        close = difflib.get_close_matches(type_name, list(_REGISTRY) + list(_ALIASES), n=1,
                                          cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UnknownGateType(f"unknown gate type {type_name!r}{hint} "
                              f"(known types: {', '.join(sorted(_REGISTRY))})")
    return cls


def registered_gates() -> dict[str, type[Gate]]:
    """A copy of the registry: type name -> class."""
    return dict(_REGISTRY)


def unregister_gate(type_name: str) -> None:
    """Remove a type (for tests and notebooks that redefine a gate)."""
    _REGISTRY.pop(type_name, None)


def unbroadcast(grad: np.ndarray, shape: Shape, reduce: Callable = np.sum) -> np.ndarray:
    """Reduce `grad` (by default: sum it) back down to `shape`, undoing numpy broadcasting."""
    if grad.shape == tuple(shape):
        return grad
    extra = grad.ndim - len(shape)
    axes = tuple(range(extra)) + tuple(i + extra for i, n in enumerate(shape)
                                       if n == 1 and grad.shape[i + extra] != 1)
    return reduce(grad, axis=axes, keepdims=True).reshape(shape) if axes else grad.reshape(shape)


def max_along(x: np.ndarray, axis: int) -> np.ndarray:
    """x.max(axis=axis, keepdims=True), found faster when the axis is the short last axis of a
    tall 2-D array (a batch of class scores). numpy reduces such an axis one row at a time:
    (128, 10) float32 takes 7 us, (1024, 10) 48 us. The maxima of a transposed copy's columns
    come in whole-row passes: 2.5 and 7 us. A maximum is exact, so the values are the same
    (only which zero, of a row of +0.0 and -0.0, or which NaN, may differ, as numpy's own order
    of comparisons decides; subtracted and exponentiated, either gives the same bits)."""
    if x.ndim == 2 and axis in (1, -1) and x.shape[1] <= 32 and x.shape[0] >= 64:
        return np.ascontiguousarray(x.T).max(axis=0)[:, None]
    return x.max(axis=axis, keepdims=True)


def broadcast_shapes(*shapes: Shape) -> Shape:
    """numpy's broadcasting rule on shapes that may hold None (an open dimension)."""
    ndim = max(len(s) for s in shapes)
    out = []
    for axis in range(-ndim, 0):
        dims = {s[axis] for s in shapes if len(s) >= -axis} - {1}
        known = dims - {None}
        if len(known) > 1:
            raise ValueError(f"shapes {' and '.join(map(format_shape, shapes))} do not broadcast")
        out.append(known.pop() if known else (None if None in dims else 1))
    return tuple(out)


def canonical_axis(axis: int, ndim: int, name: str = "axis") -> int:
    """`axis` counted from the front (Caffe's CanonicalAxisIndex): -1 is the last of `ndim` axes;
    anything outside [-ndim, ndim) is an error naming the option."""
    if not -ndim <= axis < ndim:
        raise ValueError(f"{name} {axis} is out of range for an input of {ndim} dimension"
                         f"{'' if ndim == 1 else 's'}")
    return axis % ndim


def known_channels(gate: Gate | type[Gate], shape: Shape) -> int:
    """Dimension 1 (Caffe's channels) of an input (N, C, ...), which must be known: a gate
    sizes its per-channel parameters or buffers from it."""
    if len(shape) < 2 or shape[1] is None:
        raise ValueError(f"{gate.type_name} needs input (N, C, ...) with C known, got "
                         f"{format_shape(shape)}")
    return shape[1]


def format_shape(shape: Shape) -> str:
    """(3, 4) as "(3, 4)", an open dimension as N: "(N, 4)"."""
    inner = ", ".join("N" if d is None else str(d) for d in shape)
    return f"({inner}{',' if len(shape) == 1 else ''})"
