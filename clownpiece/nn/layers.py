"""Layers with parameters or state (docs/api.md, nn): Linear, Embedding, LayerNorm, BatchNorm,
MultiheadAttention, plus Flatten and Dropout (beyond the course: docs/api.md, Decisions, D7)."""
import math

from .._tensor import Tensor, TensorBase
from .._layout import ShapeError
from .module import Module, Parameter, Buffer
from . import functional as F, init


def _new_parameter(shape, dtype):
    """An uninitialised Parameter of `shape` (callers fill it through nn.init)."""
    return Parameter(Tensor._empty(tuple(shape), Tensor._check_dtype(dtype)))


def _init_affine(module, num_features, affine, dtype):
    """The per-feature scale (ones) and shift (zeros) of a norm layer, or both registered as None."""
    if affine:
        module.weight = init.ones_(_new_parameter((num_features,), dtype))
        module.bias = init.zeros_(_new_parameter((num_features,), dtype))
    else:
        module.register_parameter("weight", None)
        module.register_parameter("bias", None)


def _check_features(x, expected, op):
    if not isinstance(x, TensorBase):
        raise TypeError(f"{op}: expected a tensor input, got {type(x).__name__}")
    if x.dim() == 0 or x.shape[-1] != expected:
        raise ShapeError(f"{op}: input of shape {x.shape} must have {expected} features in its last dim")


class Linear(Module):
    """y = x @ weight.T + bias; weight [out, in], bias [out] (or None), both ~ U(-1/sqrt(in), 1/sqrt(in))."""

    def __init__(self, in_features, out_features, bias=True, dtype=None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        bound = 1.0 / math.sqrt(in_features) if in_features else 0.0
        self.weight = init.uniform_(_new_parameter((out_features, in_features), dtype), -bound, bound)
        if bias:
            self.bias = init.uniform_(_new_parameter((out_features,), dtype), -bound, bound)
        else:
            self.register_parameter("bias", None)

    def forward(self, x):
        _check_features(x, self.in_features, "Linear")
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Embedding(Module):
    """Lookup table: ids (a float tensor of integral values, any shape) -> ids.shape + [embd_dim]."""

    def __init__(self, num_embd, embd_dim, dtype=None):
        super().__init__()
        self.num_embd, self.embd_dim = num_embd, embd_dim
        self.weight = init.normal_(_new_parameter((num_embd, embd_dim), dtype))

    def forward(self, ids):
        if not isinstance(ids, TensorBase):
            ids = Tensor(ids, dtype=self.weight.dtype)
        return F.embedding(ids, self.weight)

    def extra_repr(self):
        return f"{self.num_embd}, {self.embd_dim}"


class LayerNorm(Module):
    """Course semantics: the input is viewed as [-1, num_features] and every row is normalised with its
    mean and biased variance, then scaled by weight and shifted by bias ([num_features], if affine)."""

    def __init__(self, num_features, eps=1e-5, affine=True, dtype=None):
        super().__init__()
        self.num_features, self.eps, self.affine = num_features, eps, affine
        _init_affine(self, num_features, affine, dtype)

    def forward(self, x):
        if not isinstance(x, TensorBase):
            raise TypeError(f"LayerNorm: expected a tensor input, got {type(x).__name__}")
        return F.layer_norm(x, self.num_features, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, affine={self.affine}"


class BatchNorm(Module):
    """Channel-last batch norm over rows of [..., num_features] (biased variance, course semantics); the
    running_mean/running_var buffers move towards the batch statistics by `momentum` in training mode."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, dtype=None):
        super().__init__()
        self.num_features, self.eps, self.momentum, self.affine = num_features, eps, momentum, affine
        dtype = Tensor._check_dtype(dtype)
        _init_affine(self, num_features, affine, dtype)
        self.running_mean = Buffer(Tensor._empty((num_features,), dtype).zero_())
        self.running_var = Buffer(Tensor._empty((num_features,), dtype).fill_(1.0))

    def forward(self, x):
        _check_features(x, self.num_features, "BatchNorm")
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, self.training,
                            self.momentum, self.eps)

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}"


class MultiheadAttention(Module):
    """Batch-first self-attention: [B, S, hidden_dim] -> [B, S, hidden_dim] (the output only). attn_mask is
    added to the scores before the softmax and must broadcast to [B, num_heads, S, S] (use large negative
    values to block positions)."""

    def __init__(self, hidden_dim, num_heads, bias=True, dtype=None):
        super().__init__()
        if num_heads <= 0 or hidden_dim % num_heads:
            raise ValueError(f"MultiheadAttention: hidden_dim {hidden_dim} must be divisible by num_heads "
                             f"{num_heads}")
        self.hidden_dim, self.num_heads, self.head_dim = hidden_dim, num_heads, hidden_dim // num_heads
        self.q_proj = Linear(hidden_dim, hidden_dim, bias, dtype)
        self.k_proj = Linear(hidden_dim, hidden_dim, bias, dtype)
        self.v_proj = Linear(hidden_dim, hidden_dim, bias, dtype)
        self.out_proj = Linear(hidden_dim, hidden_dim, bias, dtype)

    def _split_heads(self, x, b, s):
        return x.reshape(b, s, self.num_heads, self.head_dim).transpose(1, 2)  # [B, heads, S, hd]

    def forward(self, hidden_states, attn_mask=None):
        x = hidden_states
        _check_features(x, self.hidden_dim, "MultiheadAttention")
        if x.dim() != 3:
            raise ShapeError(f"MultiheadAttention: expected a [batch, seq, {self.hidden_dim}] input, got {x.shape}")
        b, s, _ = x.shape
        q = self._split_heads(self.q_proj(x), b, s)
        k = self._split_heads(self.k_proj(x), b, s)
        v = self._split_heads(self.v_proj(x), b, s)
        # scale q ([.., S, hd]) rather than the scores ([.., S, S]): the same product, S/hd times less work
        scores = (q * (1.0 / math.sqrt(self.head_dim))) @ k.transpose(-1, -2)
        if attn_mask is not None:
            scores = scores + attn_mask
        out = scores.softmax(-1) @ v  # [B, heads, S, hd]
        return self.out_proj(out.transpose(1, 2).reshape(b, s, self.hidden_dim))

    def extra_repr(self):
        return f"hidden_dim={self.hidden_dim}, num_heads={self.num_heads}"


class Flatten(Module):
    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        return F.flatten(x, self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Dropout(Module):
    """Zeroes elements with probability p in training mode (survivors scaled by 1/(1-p)); identity in eval."""

    def __init__(self, p=0.5):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: probability p must be in [0, 1], got {p}")
        self.p = p

    def forward(self, x):
        return F.dropout(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"
