"""Layers with parameters or state (docs/api.md, nn): Linear, Embedding, MultiheadAttention, plus Identity,
Flatten, Unflatten and the dropouts (beyond the course: docs/api.md, Decisions, D7). LayerNorm and BatchNorm
live in norm.py and are importable from here, as in the course."""
from __future__ import annotations

import math
import numbers
from typing import Any, Literal, Optional, Sequence, Union

import numpy as np

from .._grad_mode import no_grad
from .._layout import ShapeError
from .._tensor import Tensor, TensorBase
from .._types import DeviceLike, DTypeLike
from ..autograd.autograd import zeros
from ..autograd.functions.attention import scaled_dot_product_attention as _sdpa
from ..autograd.functions.index import cat
from ..backend import dtypes
from . import functional as F, init
from .module import Module, Parameter, new_parameter as _new_parameter
from .norm import BatchNorm, LayerNorm  # noqa: F401  (the course imports them from here)


def _check_features(x, expected, op):
    if not isinstance(x, TensorBase):
        raise TypeError(f"{op}: expected a tensor input, got {type(x).__name__}")
    if x.dim() == 0 or x.shape[-1] != expected:
        raise ShapeError(f"{op}: input of shape {x.shape} must have {expected} features in its last dim")


class Linear(Module):
    """y = x @ weight.T + bias; weight [out, in], bias [out] (or None), both ~ U(-1/sqrt(in), 1/sqrt(in))."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device: DeviceLike = None,
                 dtype: DTypeLike = None) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        bound = 1.0 / math.sqrt(in_features) if in_features else 0.0
        self.weight = init.uniform_(_new_parameter((out_features, in_features), dtype), -bound, bound)
        if bias:
            self.bias = init.uniform_(_new_parameter((out_features,), dtype), -bound, bound)
        else:
            self.register_parameter("bias", None)

    def forward(self, x: Tensor) -> Tensor:
        _check_features(x, self.in_features, "Linear")
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Embedding(Module):
    """Lookup table: ids (an int64 tensor, the course's float tensor of integral values, or host ints; any
    shape) -> ids.shape + [embd_dim].
    Course names num_embd/embd_dim, PyTorch's num_embeddings/embedding_dim too. padding_idx: that row starts
    at zero and gets no gradient (PyTorch); weight ~ N(0, 1)."""

    def __init__(self, num_embd: Optional[int] = None, embd_dim: Optional[int] = None,
                 padding_idx: Optional[int] = None, max_norm: Optional[float] = None, norm_type: float = 2.0,
                 scale_grad_by_freq: bool = False, sparse: bool = False, _weight: Optional[Tensor] = None,
                 _freeze: bool = False, device: DeviceLike = None, dtype: DTypeLike = None, *,
                 num_embeddings: Optional[int] = None, embedding_dim: Optional[int] = None) -> None:
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
    def from_pretrained(cls, embeddings: Tensor, freeze: bool = True, padding_idx: Optional[int] = None,
                        **kwargs: Any) -> Embedding:
        """An Embedding holding `embeddings` [num, dim] (shared, not copied); freeze: no gradient."""
        if embeddings.dim() != 2:
            raise ShapeError(f"Embedding.from_pretrained: embeddings must be 2-D, got {embeddings.shape}")
        n, d = embeddings.shape
        return cls(n, d, padding_idx, _weight=embeddings, _freeze=freeze, **kwargs)

    def forward(self, ids: Union[Tensor, Sequence[int], np.ndarray]) -> Tensor:
        if not isinstance(ids, TensorBase):
            ids = Tensor(ids, dtype=dtypes.infer(ids))  # ints as int64, the course's float ids as floats
        return F.embedding(ids, self.weight, self.padding_idx)

    def extra_repr(self) -> str:
        return f"{self.num_embd}, {self.embd_dim}" + ("" if self.padding_idx is None
                                                       else f", padding_idx={self.padding_idx}")


def _padding_index(padding_idx, num):
    if padding_idx is None:
        return None
    if not isinstance(padding_idx, numbers.Integral) or not -num <= padding_idx < num:
        raise ValueError(f"Embedding: padding_idx {padding_idx!r} must be an int in [-{num}, {num})")
    return int(padding_idx) % num


class MultiheadAttention(Module):
    """Multi-head attention: out_proj(concat of the heads' softmax(q k^T / sqrt(head_dim) + masks) v).

    The course's form MultiheadAttention(hidden_dim, num_heads, bias) keeps its layout (Linear children
    q_proj, k_proj, v_proj, out_proj) and calls: m(x) is batch-first self-attention and m(x, attn_mask)
    adds a float mask (any mask broadcastable to [B, heads, S, S]); both return the output only. PyTorch's
    keywords: dropout, kdim/vdim (cross-attention), add_bias_kv, add_zero_attn, batch_first (default True,
    the course's rule; PyTorch's is False). PyTorch's call m(query, key, value, key_padding_mask=None,
    need_weights=True, attn_mask=None, average_attn_weights=True, is_causal=False) returns (output, weights
    or None) as PyTorch: a bool key_padding_mask [B, S] / attn_mask ([L, S] or [B*heads, L, S]) is True where
    attention is not allowed, a float one is added. layout='pytorch' keeps PyTorch's parameters
    (in_proj_weight, in_proj_bias or q/k/v_proj_weight, out_proj); either layout loads the other's
    state_dict. need_weights=False (or the course's call) runs the fused kernels; need_weights=True composes
    the explicit softmax (a row with every key masked out gives 0 in both)."""

    def __init__(self, hidden_dim: Optional[int] = None, num_heads: Optional[int] = None, bias: bool = True, *,
                 dropout: float = 0.0, add_bias_kv: bool = False, add_zero_attn: bool = False,
                 kdim: Optional[int] = None, vdim: Optional[int] = None, batch_first: bool = True,
                 device: DeviceLike = None, dtype: DTypeLike = None, layout: Literal["course", "pytorch"] = "course",
                 embed_dim: Optional[int] = None) -> None:
        super().__init__()
        hidden_dim = embed_dim if hidden_dim is None else hidden_dim
        if isinstance(bias, float):
            raise TypeError(f"MultiheadAttention: the third argument is bias (the course's signature), got "
                            f"{bias!r}; pass dropout={bias} by keyword")
        if hidden_dim is None or num_heads is None:
            raise TypeError("MultiheadAttention: hidden_dim (embed_dim) and num_heads are required")
        if num_heads <= 0 or hidden_dim % num_heads:
            raise ValueError(f"MultiheadAttention: hidden_dim {hidden_dim} must be divisible by num_heads "
                             f"{num_heads}")
        if layout not in ("course", "pytorch"):
            raise ValueError(f"MultiheadAttention: layout must be 'course' or 'pytorch', got {layout!r}")
        F.check_p(dropout, "MultiheadAttention")
        e = hidden_dim
        self.hidden_dim = self.embed_dim = e
        self.num_heads, self.head_dim, self.dropout, self.batch_first = num_heads, e // num_heads, dropout, \
            batch_first
        self.kdim, self.vdim = kdim or e, vdim or e
        self._qkv_same_embed_dim = self.kdim == e and self.vdim == e
        self.layout, self.add_zero_attn = layout, add_zero_attn
        if layout == "course":
            self.q_proj = Linear(e, e, bias, dtype=dtype)
            self.k_proj = Linear(self.kdim, e, bias, dtype=dtype)
            self.v_proj = Linear(self.vdim, e, bias, dtype=dtype)
        else:
            if self._qkv_same_embed_dim:
                self.in_proj_weight = init.xavier_uniform_(_new_parameter((3 * e, e), dtype))
                for name in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                    self.register_parameter(name, None)
            else:
                self.register_parameter("in_proj_weight", None)
                self.q_proj_weight = init.xavier_uniform_(_new_parameter((e, e), dtype))
                self.k_proj_weight = init.xavier_uniform_(_new_parameter((e, self.kdim), dtype))
                self.v_proj_weight = init.xavier_uniform_(_new_parameter((e, self.vdim), dtype))
            if bias:
                self.in_proj_bias = init.zeros_(_new_parameter((3 * e,), dtype))
            else:
                self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(e, e, bias, dtype=dtype)
        if layout == "pytorch" and bias:
            init.zeros_(self.out_proj.bias)
        if add_bias_kv:
            self.bias_k = init.xavier_normal_(_new_parameter((1, 1, e), dtype))
            self.bias_v = init.xavier_normal_(_new_parameter((1, 1, e), dtype))
        else:
            self.bias_k = self.bias_v = None

    # ---- projections ------------------------------------------------------------------------------------
    def _projections(self, query, key, value):
        e = self.embed_dim
        if self.layout == "course":
            return self.q_proj(query), self.k_proj(key), self.v_proj(value)
        b = self.in_proj_bias
        bq, bk, bv = (None, None, None) if b is None else (b[0:e], b[e:2 * e], b[2 * e:])
        if self._qkv_same_embed_dim:
            w = self.in_proj_weight
            if query is key and key is value:  # self-attention: one GEMM, the three results are views
                qkv = F.linear(query, w, b)
                return qkv[..., 0:e], qkv[..., e:2 * e], qkv[..., 2 * e:]
            wq, wk, wv = w[0:e], w[e:2 * e], w[2 * e:]
        else:
            wq, wk, wv = self.q_proj_weight, self.k_proj_weight, self.v_proj_weight
        return F.linear(query, wq, bq), F.linear(key, wk, bk), F.linear(value, wv, bv)

    # ---- forward ----------------------------------------------------------------------------------------
    def forward(self, query: Optional[Tensor] = None, key: Optional[Tensor] = None, value: Optional[Tensor] = None,
                key_padding_mask: Optional[Tensor] = None, need_weights: Optional[bool] = None,
                attn_mask: Optional[Tensor] = None, average_attn_weights: bool = True, is_causal: bool = False, *,
                hidden_states: Optional[Tensor] = None) -> Union[Tensor, tuple[Tensor, Optional[Tensor]]]:
        if hidden_states is not None:  # the course's keyword
            if query is not None:
                raise TypeError("MultiheadAttention: pass the input as query or hidden_states, not both")
            query = hidden_states
        if query is None:
            raise TypeError("MultiheadAttention: missing the input (query)")
        course = value is None
        if course:
            if key is not None:  # the course's forward(hidden_states, attn_mask)
                if attn_mask is not None:
                    raise TypeError("MultiheadAttention: m(x, mask) is the course's call (the mask is attn_mask); "
                                    "for cross-attention pass query, key and value")
                attn_mask = key
            key = value = query
        if course and query.dim() != 3:  # the course's call takes batches only
            _check_features(query, self.embed_dim, "MultiheadAttention")
            raise ShapeError(f"MultiheadAttention: expected a [batch, seq, {self.embed_dim}] input, got {query.shape}")
        weights_wanted = bool(need_weights) if need_weights is not None else not course
        out, weights = self._attend(query, key, value, key_padding_mask, weights_wanted, attn_mask,
                                    average_attn_weights, is_causal)
        if course and need_weights is None:
            return out
        return out, weights

    def _attend(self, query, key, value, key_padding_mask, need_weights, attn_mask, average, is_causal):
        op = "MultiheadAttention"
        for t, name, feat in ((query, "query", self.embed_dim), (key, "key", self.kdim), (value, "value", self.vdim)):
            _check_features(t, feat, op)
            if t.dim() not in (2, 3):
                layout = f"[batch, seq, {feat}]" if self.batch_first else f"[seq, batch, {feat}] (batch_first=False)"
                raise ShapeError(f"{op}: expected a {layout} or unbatched [seq, {feat}] {name}, got {t.shape}")
        unbatched = query.dim() == 2
        if key.dim() != query.dim() or value.dim() != query.dim():
            raise ShapeError(f"{op}: query {query.shape}, key {key.shape} and value {value.shape} must all be "
                             f"batched or all unbatched")
        if unbatched:
            query, key, value = query.unsqueeze(0), key.unsqueeze(0), value.unsqueeze(0)
        elif not self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        b, length = query.shape[:2]
        s = key.shape[1]
        if key.shape[:2] != [b, s] or value.shape[:2] != [b, s]:
            raise ShapeError(f"{op}: key {key.shape} and value {value.shape} must have the same batch and length, "
                             f"and the batch of query {query.shape}")
        kpm, kpm_kind = F.attention_mask(key_padding_mask, query.dtype, op, true_means="drop")
        am, am_kind = F.attention_mask(attn_mask, query.dtype, op, true_means="drop")
        if is_causal and am is None:
            raise RuntimeError(f"{op}: is_causal is a hint that attn_mask is the causal mask: pass attn_mask too "
                               f"(as PyTorch)")
        h, d = self.num_heads, self.head_dim
        kpm = self._key_padding_view(kpm, b, s, unbatched)
        am = self._attn_mask_view(am, b, length, s)
        q, k, v = self._projections(query, key, value)
        if self.bias_k is not None:
            k = cat([k, self.bias_k.expand(b, 1, self.embed_dim)], 1)
            v = cat([v, self.bias_v.expand(b, 1, self.embed_dim)], 1)
            kpm, am, s = _pad_key(kpm), _pad_key(am), s + 1
        q, k, v = (t.reshape(b, t.shape[1], h, d).transpose(1, 2) for t in (q, k, v))  # [B, H, seq, D] views
        if self.add_zero_attn:
            k = cat([k, zeros((b, h, 1, d), k.dtype)], 2)
            v = cat([v, zeros((b, h, 1, d), v.dtype)], 2)
            kpm, am, s = _pad_key(kpm), _pad_key(am), s + 1
        p = self.dropout if self.training else 0.0
        causal = is_causal and kpm is None and not need_weights
        if causal:
            am = None  # PyTorch's rule: the hint replaces the mask when nothing else needs it
        if need_weights or F.composed_attention_pays(q, k):
            out, weights = F.math_attention(q, k, v, am, am_kind, p, causal, None, kpm, kpm_kind)
            weights = None if not need_weights else weights.mean(1) if average else weights
        else:
            out, weights = _sdpa(q, k, v, am, kpm, (am_kind, kpm_kind), None, causal, p, op), None
        out = self.out_proj(out.transpose(1, 2).reshape(b, length, self.embed_dim))
        if unbatched:
            return out.squeeze(0), None if weights is None else weights.squeeze(0)
        return (out if self.batch_first else out.transpose(0, 1)), weights

    def _key_padding_view(self, kpm, b, s, unbatched):
        if kpm is None:
            return None
        want = [s] if unbatched else [b, s]
        if kpm.shape != want:
            raise ShapeError(f"MultiheadAttention: key_padding_mask must have shape {want}, got {kpm.shape}")
        return kpm.reshape(b, 1, 1, s)

    def _attn_mask_view(self, am, b, length, s):
        if am is None:
            return None
        if am.dim() == 3 and am.shape[0] == b * self.num_heads and am.shape[1:] == [length, s]:
            return am.reshape(b, self.num_heads, length, s)  # PyTorch's [B*heads, L, S]
        if am.dim() in (2, 3, 4) and am.shape[-2:] == [length, s] and (am.dim() < 3 or am.shape[0] == 1
                                                                        or am.dim() == 4):
            return am  # [L, S], [1, L, S] or (the course's) anything broadcastable to [B, heads, L, S]
        raise ShapeError(f"MultiheadAttention: attn_mask must have shape [{length}, {s}] or "
                         f"[{b * self.num_heads}, {length}, {s}], got {am.shape}")

    # ---- checkpoints of the other layout ----------------------------------------------------------------
    _TORCH_NAMES = ("in_proj_weight", "in_proj_bias", "q_proj_weight", "k_proj_weight", "v_proj_weight")

    def _translate_state_dict(self, state, prefix):
        """A PyTorch-layout checkpoint (in_proj_weight [3E, E], in_proj_bias [3E], or q/k/v_proj_weight) for a
        course-layout module, and the other way round: the rows split or joined (views or host arrays)."""
        e = self.embed_dim
        if self.layout == "course":
            w, b, *sep = (state.get(prefix + n) for n in self._TORCH_NAMES)
            if w is None and b is None and all(x is None for x in sep):
                return state
            state = {k: v for k, v in state.items() if k not in {prefix + n for n in self._TORCH_NAMES}}
            weights = [w[0:e], w[e:2 * e], w[2 * e:3 * e]] if w is not None else sep
            for name, part in zip("qkv", weights):
                if part is not None:
                    state[f"{prefix}{name}_proj.weight"] = part
            if b is not None:
                for i, name in enumerate("qkv"):
                    state[f"{prefix}{name}_proj.bias"] = b[i * e:(i + 1) * e]
            return state
        course = {f"{prefix}{n}_proj.{w}" for n in "qkv" for w in ("weight", "bias")}
        weights = [state.get(f"{prefix}{n}_proj.weight") for n in "qkv"]
        biases = [state.get(f"{prefix}{n}_proj.bias") for n in "qkv"]
        if all(x is None for x in weights + biases):
            return state
        state = {k: v for k, v in state.items() if k not in course}
        if self._qkv_same_embed_dim and all(x is not None for x in weights):
            state[prefix + "in_proj_weight"] = _join(weights)
        else:
            for n, part in zip("qkv", weights):
                state[f"{prefix}{n}_proj_weight"] = part
        if all(x is not None for x in biases):
            state[prefix + "in_proj_bias"] = _join(biases)
        return state

    def extra_repr(self) -> str:
        return f"hidden_dim={self.hidden_dim}, num_heads={self.num_heads}" + (
            f", dropout={self.dropout}" if self.dropout else "") + (
            "" if self.batch_first else ", batch_first=False")


def _join(parts):
    """Checkpoint entries stacked along dim 0: tensors on the device, anything else as host arrays."""
    if all(isinstance(p, TensorBase) for p in parts):
        with no_grad():
            return cat(list(parts), 0)
    return np.concatenate([np.asarray(p) for p in parts], 0)


def _pad_key(mask):
    """A mask [..., S] with one more key that takes part (0: neither added to nor masked out)."""
    return None if mask is None else F.pad(mask, (0, 1))


class Identity(Module):
    """Returns its input; accepts (and ignores) any constructor arguments, as in PyTorch."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, x: Tensor) -> Tensor:
        return x


class Flatten(Module):
    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: Tensor) -> Tensor:
        return F.flatten(x, self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Splits dim `dim` into `unflattened_size` (one entry may be -1)."""

    def __init__(self, dim: int, unflattened_size: Sequence[int]) -> None:
        super().__init__()
        if not isinstance(unflattened_size, (list, tuple)) or not unflattened_size:
            raise TypeError(f"Unflatten: unflattened_size must be a non-empty list or tuple of ints, got "
                            f"{unflattened_size!r}")
        self.dim, self.unflattened_size = dim, tuple(unflattened_size)

    def forward(self, x: Tensor) -> Tensor:
        return F.unflatten(x, self.dim, self.unflattened_size)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"


class Dropout(Module):
    """Zeroes elements with probability p in training mode (survivors scaled by 1/(1-p)); identity in eval."""
    _fn = staticmethod(F.dropout)

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{type(self).__name__}: probability p must be in [0, 1], got {p}")
        self.p, self.inplace = p, inplace

    def forward(self, x: Tensor) -> Tensor:
        return type(self)._fn(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}" + (", inplace=True" if self.inplace else "")


class Dropout1d(Dropout):
    """Zeroes whole channels of [N, C, L] (or [C, L]) inputs with probability p in training mode."""
    _fn = staticmethod(F.dropout1d)


class Dropout2d(Dropout):
    """Zeroes whole channels of [N, C, H, W] (or [C, H, W]) inputs with probability p in training mode."""
    _fn = staticmethod(F.dropout2d)
