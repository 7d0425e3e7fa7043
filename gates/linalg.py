"""Matrix products: MatMul (two bottoms), InnerProduct (Caffe's fully connected layer, which
owns its weights W and bias b) and Embed (a lookup of rows of W by integer index, which is
InnerProduct applied to one-hot vectors)."""
from __future__ import annotations

import numpy as np

from .base import Gate, Option, broadcast_shapes, register_gate, unbroadcast


@register_gate
class MatMulGate(Gate):
    """out = a @ b with numpy matmul semantics (1-D operands promoted, batch dims broadcast).
    Inputs: a (..., n, k), b (..., k, m). Returns: out (..., n, m).
    Local gradients (the lecture's dW = dz x^T, dx = W^T dz): da = dout @ b^T, db = a^T @ dout."""

    check_shapes = ((3, 4), (4, 2))

    def forward(self, a, b):
        self.a, self.b = a, b
        return a @ b

    def backward(self, dout):
        a = self.a[None, :] if self.a.ndim == 1 else self.a
        b = self.b[:, None] if self.b.ndim == 1 else self.b
        batch = broadcast_shapes(a.shape[:-2], b.shape[:-2])
        dout = dout.reshape(batch + (a.shape[-2], b.shape[-1]))
        da = db = None
        if self.needs_input_grad[0]:
            da = unbroadcast(dout @ np.swapaxes(b, -1, -2), a.shape).reshape(self.a.shape)
        if self.needs_input_grad[1]:
            db = unbroadcast(np.swapaxes(a, -1, -2) @ dout, b.shape).reshape(self.b.shape)
        return da, db

    def infer_shapes(self, a_shape, b_shape):
        if not a_shape or not b_shape:
            raise ValueError("MatMul needs inputs of at least one dimension")
        a = (1,) + a_shape if len(a_shape) == 1 else a_shape
        b = b_shape + (1,) if len(b_shape) == 1 else b_shape
        if None not in (a[-1], b[-2]) and a[-1] != b[-2]:
            raise ValueError(f"inner dimensions differ: {a[-1]} (last of the first input) "
                             f"and {b[-2]} ({'only' if len(b_shape) == 1 else 'second to last'} "
                             "of the second)")
        out = broadcast_shapes(a[:-2], b[:-2]) + (a[-2], b[-1])
        if len(a_shape) == 1:
            out = out[:-2] + out[-1:]
        if len(b_shape) == 1:
            out = out[:-1]
        return (out,)



@register_gate
class InnerProductGate(Gate):
    """Fully connected layer: out = x @ W.T + b, x flattened from `axis` on (Caffe's InnerProduct).
    Inputs: x (N, ...) with K = product of x.shape[axis:]; parameters W (num_output, K) and
    b (num_output,) (absent when `bias_term` is false). Returns: out (N, num_output).
    Local gradients: dx = dout @ W, dW = dout^T @ x, db = dout summed over the batch."""

    num_bottoms = 1
    options = {
        "num_output": Option(int, doc="number of outputs", range="[1, inf)"),
        "bias_term": Option(bool, True, "add a learnable bias b"),
        "axis": Option(int, 1, "first axis flattened into the features"),
        "weight_filler": Option(dict, {"type": "xavier"}, "how W is initialised"),
        "bias_filler": Option(dict, {"type": "constant", "value": 0.0}, "how b is initialised"),
    }
    check_options = {"num_output": 3}
    check_shapes = ((4, 5),)

    def param_specs(self, x_shape):
        features = self._features(x_shape)
        specs = {"W": ((self.num_output, features), self.weight_filler)}
        if self.bias_term:
            specs["b"] = ((self.num_output,), self.bias_filler)
        return specs

    def forward(self, x, W, b=None):
        self.x_shape = x.shape
        flat = x.ndim == 2 and self.axis in (1, -1)      # nothing to flatten (a reshape: 0.3 us)
        self.x = x if flat else x.reshape(x.shape[:self.axis] + (-1,))
        self.W = W
        out = self.x @ W.T
        if b is not None:
            out += b
        return out

    def backward(self, dout):
        # the parameters' gradients first, dx last: dx is what the gate before reads next, so it
        # is still in the cache then (the 784-256-256-10 MLP's step at two BLAS threads: 1-2%)
        needs = self.needs_input_grad
        rows, x = dout, self.x          # as (M, num_output) and (M, K)
        if dout.ndim != 2:
            rows, x = dout.reshape(-1, dout.shape[-1]), x.reshape(-1, x.shape[-1])
        dW = rows.T @ x if needs[1] else None
        db = rows.sum(axis=0) if self.bias_term and needs[2] else None
        dx = None
        if needs[0]:
            dx = dout @ self.W
            dx = dx if dx.shape == self.x_shape else dx.reshape(self.x_shape)
        return (dx, dW, db) if self.bias_term else (dx, dW)

    def infer_shapes(self, x_shape, *param_shapes):
        self._features(x_shape)
        return (tuple(x_shape[:self.axis]) + (self.num_output,),)

    def _features(self, x_shape) -> int:
        if not -len(x_shape) <= self.axis < len(x_shape):
            raise ValueError(f"axis {self.axis} leaves no features in an input of shape {x_shape}")
        tail = x_shape[self.axis:]
        if None in tail:
            raise ValueError(f"the feature dimensions {tail} must be known to size W")
        return int(np.prod(tail))


@register_gate
class EmbedGate(Gate):
    """Caffe's Embed: out[...] = W[index[...]] + b, a learned vector per integer index (a word's
    embedding); the same as InnerProduct on one-hot vectors of length `input_dim`.
    Inputs: indices, any shape, integers in [0, input_dim) (an input declared `dtype: int`;
    floats with integer values are taken too); parameters W (input_dim, num_output) (Caffe's
    layout: one row per index, not transposed as InnerProduct's) and b (num_output,) (absent
    when `bias_term` is false). Returns: out, the indices' shape + (num_output,).
    Local gradients: dW[k] = the sum of dout over the positions holding index k; db = dout summed
    over every position; none for the indices (they are not differentiable)."""

    num_bottoms = 1
    options = {
        "num_output": Option(int, doc="length of each embedding vector", range="[1, inf)"),
        "input_dim": Option(int, doc="number of indices (rows of W)", range="[1, inf)"),
        "bias_term": Option(bool, True, "add a learnable bias b"),
        "weight_filler": Option(dict, {"type": "xavier"}, "how W is initialised"),
        "bias_filler": Option(dict, {"type": "constant", "value": 0.0}, "how b is initialised"),
    }
    check_options = {"num_output": 3, "input_dim": 5}

    def sample_inputs(self, rng):
        return [rng.integers(0, self.input_dim, (4, 2))]

    def param_specs(self, index_shape):
        specs = {"W": ((self.input_dim, self.num_output), self.weight_filler)}
        if self.bias_term:
            specs["b"] = ((self.num_output,), self.bias_filler)
        return specs

    def forward(self, indices, W, b=None):
        self.indices = self._checked(indices)
        self.W_shape = W.shape
        out = W[self.indices]
        if b is not None:
            out += b
        return out

    def backward(self, dout):
        needs = self.needs_input_grad
        flat = dout.reshape(-1, self.num_output)
        dW = None
        if needs[1]:
            dW = np.zeros(self.W_shape, dtype=dout.dtype)
            np.add.at(dW, self.indices.reshape(-1), flat)
        grads = (None, dW)
        if self.bias_term:
            grads += (flat.sum(axis=0) if needs[2] else None,)
        return grads

    def infer_shapes(self, index_shape, *param_shapes):
        return (tuple(index_shape) + (self.num_output,),)

    def _checked(self, indices: np.ndarray) -> np.ndarray:
        if indices.dtype.kind not in "iu":
            if indices.dtype.kind != "f" or not np.all(np.mod(indices, 1) == 0):
                raise ValueError("Embed takes integer indices (declare the input `dtype: int`)")
            indices = indices.astype(np.intp)
        outside = (indices < 0) | (indices >= self.input_dim)
        if outside.any():
            raise ValueError(f"index {int(indices[outside][0])} is out of range for input_dim "
                             f"{self.input_dim} (indices must lie in [0, {self.input_dim}))")
        return indices
