"""Layers with parameters or state (docs/api.md, nn): Linear, Embedding, MultiheadAttention, plus Identity,
Flatten, Unflatten and the dropouts (beyond the course: docs/api.md, Decisions, D7). LayerNorm and BatchNorm
live in norm.py and are importable from here, as in the course."""
import math
import numbers

from .._grad_mode import no_grad
from .._tensor import Tensor, TensorBase
from .._layout import ShapeError
from .module import Module, Parameter, new_parameter as _new_parameter
from .norm import LayerNorm, BatchNorm  # noqa: F401  (the course imports them from here)
from . import functional as F, init


def _check_features(x, expected, op):
    if not isinstance(x, TensorBase):
        raise TypeError(f"{op}: expected a tensor input, got {type(x).__name__}")
    if x.dim() == 0 or x.shape[-1] != expected:
        raise ShapeError(f"{op}: input of shape {x.shape} must have {expected} features in its last dim")


class Linear(Module):
    """y = x @ weight.T + bias; weight [out, in], bias [out] (or None), both ~ U(-1/sqrt(in), 1/sqrt(in))."""

    def __init__(self, in_features, out_features, bias=True, device=None, dtype=None):
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
    """Lookup table: ids (a float tensor of integral values, any shape, or host ints) -> ids.shape + [embd_dim].
    Course names num_embd/embd_dim, PyTorch's num_embeddings/embedding_dim too. padding_idx: that row starts
    at zero and gets no gradient (PyTorch); weight ~ N(0, 1)."""

    def __init__(self, num_embd=None, embd_dim=None, padding_idx=None, max_norm=None, norm_type=2.0,
                 scale_grad_by_freq=False, sparse=False, _weight=None, _freeze=False, device=None, dtype=None, *,
                 num_embeddings=None, embedding_dim=None):
        super().__init__()
        num_embd = num_embeddings if num_embd is None else num_embd
        embd_dim = embedding_dim if embd_dim is None else embd_dim
        if num_embd is None or embd_dim is None:
            raise TypeError("Embedding: num_embeddings and embedding_dim are required")
        if max_norm is not None or scale_grad_by_freq or sparse:
            raise NotImplementedError("Embedding: max_norm, scale_grad_by_freq and sparse are not supported")
        self.num_embd, self.embd_dim = self.num_embeddings, self.embedding_dim = num_embd, embd_dim
        self.padding_idx = _padding_index(padding_idx, num_embd)
        if _weight is not None:
            if list(_weight.shape) != [num_embd, embd_dim]:
                raise ShapeError(f"Embedding: _weight has shape {list(_weight.shape)}, expected "
                                 f"{[num_embd, embd_dim]}")
            self.weight = Parameter(_weight, requires_grad=not _freeze)
        else:
            self.weight = init.normal_(_new_parameter((num_embd, embd_dim), dtype))
            if self.padding_idx is not None:
                with no_grad():
                    self.weight[self.padding_idx] = 0.0
            if _freeze:
                self.weight.requires_grad_(False)

    @classmethod
    def from_pretrained(cls, embeddings, freeze=True, padding_idx=None, **kwargs):
        """An Embedding holding `embeddings` [num, dim] (shared, not copied); freeze: no gradient."""
        if embeddings.dim() != 2:
            raise ShapeError(f"Embedding.from_pretrained: embeddings must be 2-D, got {embeddings.shape}")
        n, d = embeddings.shape
        return cls(n, d, padding_idx, _weight=embeddings, _freeze=freeze, **kwargs)

    def forward(self, ids):
        if not isinstance(ids, TensorBase):
            ids = Tensor(ids, dtype=self.weight.dtype)
        return F.embedding(ids, self.weight, self.padding_idx)

    def extra_repr(self):
        return f"{self.num_embd}, {self.embd_dim}" + ("" if self.padding_idx is None
                                                       else f", padding_idx={self.padding_idx}")


def _padding_index(padding_idx, num):
    if padding_idx is None:
        return None
    if not isinstance(padding_idx, numbers.Integral) or not -num <= padding_idx < num:
        raise ValueError(f"Embedding: padding_idx {padding_idx!r} must be an int in [-{num}, {num})")
    return int(padding_idx) % num


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
        self.q_proj = Linear(hidden_dim, hidden_dim, bias, dtype=dtype)
        self.k_proj = Linear(hidden_dim, hidden_dim, bias, dtype=dtype)
        self.v_proj = Linear(hidden_dim, hidden_dim, bias, dtype=dtype)
        self.out_proj = Linear(hidden_dim, hidden_dim, bias, dtype=dtype)

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


class Identity(Module):
    """Returns its input; accepts (and ignores) any constructor arguments, as in PyTorch."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x):
        return x


class Flatten(Module):
    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        return F.flatten(x, self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Splits dim `dim` into `unflattened_size` (one entry may be -1)."""

    def __init__(self, dim, unflattened_size):
        super().__init__()
        if not isinstance(unflattened_size, (list, tuple)) or not unflattened_size:
            raise TypeError(f"Unflatten: unflattened_size must be a non-empty list or tuple of ints, got "
                            f"{unflattened_size!r}")
        self.dim, self.unflattened_size = dim, tuple(unflattened_size)

    def forward(self, x):
        return F.unflatten(x, self.dim, self.unflattened_size)

    def extra_repr(self):
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"


class Dropout(Module):
    """Zeroes elements with probability p in training mode (survivors scaled by 1/(1-p)); identity in eval."""
    _fn = staticmethod(F.dropout)

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{type(self).__name__}: probability p must be in [0, 1], got {p}")
        self.p, self.inplace = p, inplace

    def forward(self, x):
        return type(self)._fn(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}" + (", inplace=True" if self.inplace else "")


class Dropout1d(Dropout):
    """Zeroes whole channels of [N, C, L] (or [C, L]) inputs with probability p in training mode."""
    _fn = staticmethod(F.dropout1d)


class Dropout2d(Dropout):
    """Zeroes whole channels of [N, C, H, W] (or [C, H, W]) inputs with probability p in training mode."""
    _fn = staticmethod(F.dropout2d)
