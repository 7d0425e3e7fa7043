"""Recurrent gates, as Caffe defines them: RNN and LSTM, which run a whole batch of sequences laid
out time-major (T timesteps x N independent streams), and LSTMUnit, one LSTM step.

The sequences. Input x is (T, N, ...) (everything after the second axis is flattened into D
features, as Caffe's InnerProduct with axis 2). `cont` (T, N) marks where sequences continue:
cont[t, n] = 0 starts a new sequence in stream n at step t (the state carried from step t - 1 is
multiplied by 0, so the stream starts afresh), 1 continues it. cont is used as a multiplier, as in
Caffe, so values other than 0 and 1 scale the carried state. An optional static input x_static
(N, ...) is added, through its own weights, at every step. With `expose_hidden`, the initial
state comes in as extra bottoms (h_0, and c_0 for the LSTM, each (1, N, num_output)) and the
final state goes out as extra tops (h_T, and c_T); without it the initial state is zero.

Differences from Caffe, each for an exact gradient check or stated on purpose:
- Without `expose_hidden`, Caffe carries the final state of one forward pass into the next (used
  where cont[0] = 1); here every forward pass starts from zero. Feed h_T (and c_T) back through
  `expose_hidden` to carry state across batches.
- Caffe gives no gradient to h_0, c_0 or cont and ignores the gradient arriving at h_T and c_T;
  here each gets its exact gradient (a cont declared `dtype: int` gets none).
- Default fillers: xavier weights and zero biases, as InnerProduct here (Caffe's default filler is
  constant 0).
"""
from __future__ import annotations

from typing import ClassVar

import numpy as np

from .base import Gate, Option, format_shape, register_gate


def _sigmoid(x: np.ndarray) -> np.ndarray:
    z = np.exp(-np.abs(x))          # exp of a non-positive number never overflows
    return np.where(x >= 0, 1 / (1 + z), z / (1 + z))


def _lstm_step(gates: np.ndarray, c_prev: np.ndarray, cont: np.ndarray):
    """One LSTM step from the gate inputs (..., 4H) in Caffe's order i, f, o, g:
    c = cont * f * c_prev + i * g, h = o * tanh(c). Returns c, h and what the backward needs."""
    hidden = c_prev.shape[-1]
    i, f, o = (_sigmoid(gates[..., k * hidden:(k + 1) * hidden]) for k in range(3))
    g = np.tanh(gates[..., 3 * hidden:])
    c = cont[..., None] * f * c_prev + i * g
    tanh_c = np.tanh(c)
    return c, o * tanh_c, (i, f, o, g, tanh_c)


def _lstm_step_backward(dc: np.ndarray, dh: np.ndarray, c_prev: np.ndarray, cont: np.ndarray,
                        cache: tuple):
    """The gradients of one LSTM step: of the gate inputs (..., 4H), of c_prev and of cont."""
    i, f, o, g, tanh_c = cache
    dc = dc + dh * o * (1 - tanh_c * tanh_c)
    carried = dc * f
    dgates = np.concatenate([dc * g * i * (1 - i),
                             carried * cont[..., None] * c_prev * (1 - f),
                             dh * tanh_c * o * (1 - o),
                             dc * i * (1 - g * g)], axis=-1)
    return dgates, carried * cont[..., None], np.sum(carried * c_prev, axis=-1)


class _Recurrent(Gate):
    """What RNN and LSTM share: the inputs (x, cont, x_static, the exposed initial state), the
    input projection W_x x + b (+ W_static x_static), and the shapes. A subclass runs the
    recurrence (`_run`, `_run_backward`) on the projected inputs."""

    states: ClassVar[tuple[str, ...]]       # the recurrent state: ("h",) or ("h", "c")
    width: ClassVar[int]                    # gate inputs per hidden unit: 1 (RNN) or 4 (LSTM)
    input_params: ClassVar[tuple[str, str, str]]     # names of W_x, b, W_static
    options = {
        "num_output": Option(int, doc="size of the hidden state h (and of each output)",
                             range="[1, inf)"),
        "weight_filler": Option(dict, {"type": "xavier"}, "how every weight matrix starts"),
        "bias_filler": Option(dict, {"type": "constant", "value": 0.0},
                              "how the biases start"),
        "expose_hidden": Option(bool, False, "take the initial state as extra bottoms and "
                                             "give the final state as extra tops"),
    }
    check_options = {"num_output": 3, "expose_hidden": True}

    def __init__(self, **options):
        super().__init__(**options)
        self.num_tops = 1 + len(self.states) * self.expose_hidden

    def sample_inputs(self, rng):
        steps, streams, hidden = 3, 2, self.num_output
        cont = np.array([[0.0, 1.0], [1.0, 1.0], [1.0, 0.0]])   # a start in each stream
        inputs = [rng.standard_normal((steps, streams, 2)), cont, rng.standard_normal((streams, 2))]
        if self.expose_hidden:
            inputs += [rng.standard_normal((1, streams, hidden)) for _ in self.states]
        return inputs

    # -- the inputs --------------------------------------------------------------------------
    def _exposed(self) -> int:
        return len(self.states) if self.expose_hidden else 0

    def _has_static(self, bottoms: int) -> bool:
        exposed = self._exposed()
        if bottoms not in (2 + exposed, 3 + exposed):
            names = ", ".join(["x", "cont", "[x_static]"] + [f"{s}_0" for s in self.states][
                :exposed])
            raise ValueError(f"takes the bottoms {names}"
                             f"{' (expose_hidden is true)' if exposed else ''}, got {bottoms}")
        return bottoms == 3 + exposed

    def _split(self, inputs: tuple):
        """(x, cont, x_static or None, [initial states], {param name: value}) from forward's
        inputs (or their shapes): the bottoms, then the parameters."""
        base = len(self.param_names(False))
        extra = len(inputs) - 2 - self._exposed() - base      # 0, or 2: x_static and W_static
        static = self._has_static(2 + self._exposed() + extra // 2)
        bottoms = 2 + static + self._exposed()
        params = dict(zip(self.param_names(static), inputs[bottoms:]))
        return (inputs[0], inputs[1], inputs[2] if static else None,
                list(inputs[2 + static:bottoms]), params)

    def param_names(self, static: bool) -> list[str]:
        raise NotImplementedError

    def param_specs(self, *bottom_shapes):
        static = self._has_static(len(bottom_shapes))
        x_shape = bottom_shapes[0]
        if len(x_shape) < 2:
            raise ValueError(f"x must be (T, N, ...), got {format_shape(x_shape)}")
        features = self._features(x_shape[2:], "x")
        hidden, gates = self.num_output, self.width * self.num_output
        w_x, b, w_static = self.input_params
        specs = {w_x: ((gates, features), self.weight_filler), b: ((gates,), self.bias_filler)}
        if static:
            static_shape = bottom_shapes[2]
            specs[w_static] = ((gates, self._features(static_shape[1:], "x_static")),
                               self.weight_filler)
        specs.update(self._recurrent_specs(hidden, gates))
        return specs

    def _recurrent_specs(self, hidden: int, gates: int) -> dict:
        raise NotImplementedError

    @staticmethod
    def _features(tail: tuple, name: str) -> int:
        if None in tail:
            raise ValueError(f"the feature dimensions {format_shape(tail)} of {name} must be "
                             "known to size the weights")
        return int(np.prod(tail, dtype=np.int64))

    def infer_shapes(self, *shapes):
        x, cont, static, initial, _ = self._split(shapes)
        if len(x) < 2:
            raise ValueError(f"x must be (T, N, ...), got {format_shape(x)}")
        steps, streams = x[:2]
        state = (1, streams, self.num_output)
        if len(cont) != 2 or not _agree(cont, (steps, streams)):
            raise ValueError(f"cont must be (T, N) = {format_shape((steps, streams))} like the "
                             f"first two axes of x, got {format_shape(cont)}")
        if static is not None and (not static or not _agree(static[:1], (streams,))):
            raise ValueError(f"x_static must be (N, ...) with N = {streams}, got "
                             f"{format_shape(static)}")
        for name, shape in zip(self.states, initial):
            if len(shape) != 3 or not _agree(shape, state):
                raise ValueError(f"{name}_0 must be (1, N, num_output) = {format_shape(state)}, "
                                 f"got {format_shape(shape)}")
        return ((steps, streams, self.num_output),) + (state,) * self._exposed()

    # -- forward and backward ----------------------------------------------------------------
    def forward(self, x, cont, *rest):
        x, cont, static, initial, params = self._split((x, cont) + rest)
        steps, streams = x.shape[:2]
        if cont.shape != (steps, streams):
            raise ValueError(f"cont must be (T, N) = {(steps, streams)}, got {cont.shape}")
        w_x, b, w_static = self.input_params
        self.x_shape, self.params = x.shape, params
        self.x = x.reshape(steps, streams, -1)
        projected = self.x @ params[w_x].T + params[b]
        self.static = None if static is None else static.reshape(streams, -1)
        if static is not None:
            self.static_shape = static.shape
            projected += (self.static @ params[w_static].T)[None]
        self.cont_is_int = cont.dtype.kind in "iub"
        self.cont = cont.astype(projected.dtype)
        zero = np.zeros((streams, self.num_output), dtype=projected.dtype)
        start = [s.reshape(streams, self.num_output) for s in initial] or [zero] * len(self.states)
        out, final = self._run(projected, start)
        if not self.expose_hidden:
            return out
        return (out,) + tuple(s[None] for s in final)

    def backward(self, dout):
        if self.expose_hidden:
            dout, dfinal = dout[0], [d[0] for d in dout[1:]]
        else:
            zero = np.zeros(self.x.shape[1:2] + (self.num_output,), dtype=self.x.dtype)
            dfinal = [zero] * len(self.states)
        dprojected, dcont, dstart, param_grads = self._run_backward(dout, dfinal)
        needs = self.needs_input_grad
        w_x, b, w_static = self.input_params
        weights = self.params
        flat = dprojected.reshape(-1, dprojected.shape[-1])
        grads = [(dprojected @ weights[w_x]).reshape(self.x_shape) if needs[0] else None,
                 None if self.cont_is_int or not needs[1] else dcont]
        param_grads[w_x] = flat.T @ self.x.reshape(flat.shape[0], -1)
        param_grads[b] = flat.sum(axis=0)
        if self.static is not None:
            summed = dprojected.sum(axis=0)
            grads.append((summed @ weights[w_static]).reshape(self.static_shape)
                         if needs[2] else None)
            param_grads[w_static] = summed.T @ self.static
        if self.expose_hidden:
            grads += [d[None] for d in dstart]
        grads += [param_grads[name] for name in weights]
        return tuple(g if need else None for g, need in zip(grads, needs))

    def _run(self, projected: np.ndarray, start: list[np.ndarray]):
        raise NotImplementedError

    def _run_backward(self, dout: np.ndarray, dfinal: list[np.ndarray]):
        raise NotImplementedError


def _agree(shape: tuple, expected: tuple) -> bool:
    """Equal where both dimensions are known."""
    return len(shape) == len(expected) and all(
        a is None or b is None or a == b for a, b in zip(shape, expected))


@register_gate
class RNNGate(_Recurrent):
    """Caffe's RNN layer: a vanilla recurrent net over T steps of N streams,
        h_t = tanh(W_hh (cont_t h_{t-1}) + W_xh x_t + b_h [+ W_xh_static x_static])
        o_t = tanh(W_ho h_t + b_o)
    (see the module docstring for x, cont, x_static and `expose_hidden`).
    Inputs: x (T, N, ...) (D features after the second axis), cont (T, N), optionally x_static
    (N, ...) (S features), then with `expose_hidden` h_0 (1, N, H), H = num_output.
    Parameters, in Caffe's order and layout: W_xh (H, D), b_h (H,), W_xh_static (H, S) (only with
    x_static), W_hh (H, H), W_ho (H, H), b_o (H,).
    Returns: o (T, N, H); with `expose_hidden` also h_T (1, N, H), the last hidden state.
    Backward through time: every gradient is exact (checked against centred differences)."""

    num_bottoms = (2, 4)
    num_tops = (1, 2)
    states = ("h",)
    width = 1
    input_params = ("W_xh", "b_h", "W_xh_static")

    def param_names(self, static):
        return ["W_xh", "b_h"] + ["W_xh_static"] * static + ["W_hh", "W_ho", "b_o"]

    def _recurrent_specs(self, hidden, gates):
        return {"W_hh": ((hidden, hidden), self.weight_filler),
                "W_ho": ((hidden, hidden), self.weight_filler),
                "b_o": ((hidden,), self.bias_filler)}

    def _run(self, projected, start):
        W_hh = self.params["W_hh"]
        h = start[0]
        self.h_prev, self.h = np.empty_like(projected), np.empty_like(projected)
        for t in range(len(projected)):
            self.h_prev[t] = h
            h = self.h[t] = np.tanh(projected[t] + (self.cont[t][:, None] * h) @ W_hh.T)
        self.o = np.tanh(self.h @ self.params["W_ho"].T + self.params["b_o"])
        return self.o, [h]

    def _run_backward(self, dout, dfinal):
        W_hh, W_ho = self.params["W_hh"], self.params["W_ho"]
        do = dout * (1 - self.o * self.o)
        flat = do.reshape(-1, do.shape[-1])
        grads = {"W_ho": flat.T @ self.h.reshape(flat.shape), "b_o": flat.sum(axis=0),
                 "W_hh": np.zeros_like(W_hh)}
        dh_out = do @ W_ho
        dprojected, dcont = np.empty_like(self.h), np.empty_like(self.cont)
        dh = dfinal[0]
        for t in reversed(range(len(self.h))):
            da = dprojected[t] = (dh + dh_out[t]) * (1 - self.h[t] * self.h[t])
            keep = self.cont[t][:, None]
            grads["W_hh"] += da.T @ (keep * self.h_prev[t])
            dcarried = da @ W_hh
            dcont[t] = np.sum(dcarried * self.h_prev[t], axis=1)
            dh = dcarried * keep
        return dprojected, dcont, [dh], grads


@register_gate
class LSTMGate(_Recurrent):
    """Caffe's LSTM layer: a long short-term memory over T steps of N streams. At each step the
    gate inputs, 4H values per stream in Caffe's order i, f, o, g (input, forget, output gates,
    candidate; PyTorch's order is i, f, g, o),
        a_t = W_hc (cont_t h_{t-1}) + W_xc x_t + b_c [+ W_xc_static x_static]
    go through Caffe's LSTMUnit: i, f, o = sigmoid(a_i, a_f, a_o), g = tanh(a_g),
        c_t = cont_t f c_{t-1} + i g,    h_t = o tanh(c_t)
    (see the module docstring for x, cont, x_static and `expose_hidden`).
    Inputs: x (T, N, ...) (D features after the second axis), cont (T, N), optionally x_static
    (N, ...) (S features), then with `expose_hidden` h_0 and c_0, each (1, N, H), H = num_output.
    Parameters, in Caffe's order and layout (rows in blocks of H: i, f, o, g): W_xc (4H, D),
    b_c (4H,), W_xc_static (4H, S) (only with x_static), W_hc (4H, H). Caffe has one bias; a
    PyTorch LSTM's b_ih + b_hh is its b_c.
    Returns: h (T, N, H); with `expose_hidden` also h_T and c_T (1, N, H), the last states.
    Backward through time: every gradient is exact (checked against centred differences)."""

    num_bottoms = (2, 5)
    num_tops = (1, 3)
    states = ("h", "c")
    width = 4
    input_params = ("W_xc", "b_c", "W_xc_static")

    def param_names(self, static):
        return ["W_xc", "b_c"] + ["W_xc_static"] * static + ["W_hc"]

    def _recurrent_specs(self, hidden, gates):
        return {"W_hc": ((gates, hidden), self.weight_filler)}

    def _run(self, projected, start):
        W_hc = self.params["W_hc"]
        h, c = start
        steps = len(projected)
        self.h_prev, self.c_prev, self.caches = [None] * steps, [None] * steps, [None] * steps
        out = np.empty(projected.shape[:2] + (self.num_output,), dtype=projected.dtype)
        for t in range(steps):
            self.h_prev[t], self.c_prev[t] = h, c
            gates = projected[t] + (self.cont[t][:, None] * h) @ W_hc.T
            c, h, self.caches[t] = _lstm_step(gates, c, self.cont[t])
            out[t] = h
        return out, [h, c]

    def _run_backward(self, dout, dfinal):
        W_hc = self.params["W_hc"]
        steps = len(self.caches)
        dprojected = np.empty(dout.shape[:2] + (4 * self.num_output,), dtype=dout.dtype)
        dcont = np.empty_like(self.cont)
        grads = {"W_hc": np.zeros_like(W_hc)}
        dh, dc = dfinal
        for t in reversed(range(steps)):
            keep = self.cont[t][:, None]
            da, dc, dcont_c = _lstm_step_backward(dc, dh + dout[t], self.c_prev[t],
                                                  self.cont[t], self.caches[t])
            dprojected[t] = da
            grads["W_hc"] += da.T @ (keep * self.h_prev[t])
            dcarried = da @ W_hc
            dcont[t] = dcont_c + np.sum(dcarried * self.h_prev[t], axis=1)
            dh = dcarried * keep
        return dprojected, dcont, [dh, dc], grads


@register_gate
class LSTMUnitGate(Gate):
    """Caffe's LSTMUnit: the nonlinear part of one LSTM step, for stream-by-stream unrolling.
    Inputs: c_prev (1, N, H), the previous cell state; x (1, N, 4H), the gate inputs in Caffe's
    order i, f, o, g (blocks of H); cont (1, N), 0 where a sequence starts (any matching leading
    shape is taken, not only (1, N)). Returns: c and h, each the shape of c_prev:
        i, f, o = sigmoid(x_i, x_f, x_o), g = tanh(x_g),
        c = cont f c_prev + i g,    h = o tanh(c).
    Local gradients (dc the gradient arriving at c plus dh o (1 - tanh(c)^2)): dc_prev = dc cont f;
    dx_i = dc g i (1 - i), dx_f = dc cont c_prev f (1 - f), dx_o = dh tanh(c) o (1 - o),
    dx_g = dc i (1 - g^2); dcont = sum over H of dc f c_prev (Caffe refuses this one; a cont
    declared `dtype: int` gets none)."""

    num_tops = 2
    check_shapes = ((1, 3, 2), (1, 3, 8), (1, 3))

    def sample_inputs(self, rng):
        return [rng.standard_normal((1, 3, 2)), rng.standard_normal((1, 3, 8)),
                np.array([[1.0, 0.0, 1.0]])]

    def forward(self, c_prev, x, cont):
        self._check(c_prev.shape, x.shape, cont.shape)
        self.c_prev, self.cont_is_int = c_prev, cont.dtype.kind in "iub"
        self.cont = cont.astype(c_prev.dtype)
        c, h, self.cache = _lstm_step(x, c_prev, self.cont)
        return c, h

    def backward(self, dout):
        dc, dh = dout
        dx, dc_prev, dcont = _lstm_step_backward(dc, dh, self.c_prev, self.cont, self.cache)
        needs = self.needs_input_grad
        return (dc_prev if needs[0] else None, dx if needs[1] else None,
                None if self.cont_is_int or not needs[2] else dcont)

    def infer_shapes(self, c_prev, x, cont):
        self._check(c_prev, x, cont)
        return tuple(c_prev), tuple(c_prev)

    @staticmethod
    def _check(c_prev: tuple, x: tuple, cont: tuple) -> None:
        hidden = c_prev[-1] if c_prev else None
        lead = tuple(c_prev[:-1])
        if not c_prev or not _agree(tuple(x), lead + (None if hidden is None else 4 * hidden,)) \
                or not _agree(tuple(cont), lead):
            raise ValueError(f"expects c_prev (1, N, H), x (1, N, 4H) and cont (1, N), got "
                             f"{format_shape(c_prev)}, {format_shape(x)} and "
                             f"{format_shape(cont)}")
