"""nn.functional (docs/api.md, Decisions D6): the stateless forms of the layers, as in PyTorch. Everything
composes Tensor ops (which record autograd); the fused nn ops record through the entry points of
clownpiece/autograd/functions/nn.py."""
from __future__ import annotations

import math
import numbers
import warnings
from typing import Any, Literal, Optional, Sequence, Union

import numpy as np

from .._layout import IndexOutOfRange, ShapeError, is_int
from .._tensor import Tensor, TensorBase
from .._types import DTypeLike, IntOrPair, ShapeLike
from ..autograd.functions.attention import scaled_dot_product_attention as _sdpa
from ..autograd.functions.conv import conv2d as _conv2d, conv_transpose2d as _conv_transpose2d, pad as _pad
from ..autograd.functions.elementwise import where
from ..autograd.functions.nn import layer_norm
from ..autograd.functions.norm import batch_norm as _batch_norm, group_norm as _group_norm, rms_norm as _rms_norm
from ..autograd.functions.pool import adaptive_pool as _adaptive_pool, avg_pool as _avg_pool, max_pool as _max_pool
from ..autograd.functions.upsample import interpolate as _interpolate
from ..factories import _arange
from ..ops import attention as _attention
from ..ops.nn import check_reduction, reduce_loss
from . import loss_functions as _loss_functions
from .loss_functions import (  # noqa: F401 (re-exported: __all__ below)
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cosine_embedding_loss,
    cross_entropy,
    huber_loss,
    kl_div,
    l1_loss,
    margin_ranking_loss,
    nll_loss,
    smooth_l1_loss,
)


def _tensor(x, op):
    if not isinstance(x, TensorBase):
        raise TypeError(f"{op}: expected a tensor, got {type(x).__name__}")
    return x


# ---- activations ----------------------------------------------------------------------------------
def relu(x: Tensor, inplace: bool = False) -> Tensor:
    """max(x, 0). inplace=True is accepted and computed out of place (same result; x is unchanged)."""
    return _tensor(x, "relu").relu()


def sigmoid(x: Tensor) -> Tensor:
    return _tensor(x, "sigmoid").sigmoid()


def tanh(x: Tensor) -> Tensor:
    return _tensor(x, "tanh").tanh()


_GELU_APPROXIMATIONS = ("none", "tanh")


def check_gelu_approximate(approximate: str) -> None:
    if approximate not in _GELU_APPROXIMATIONS:
        raise ValueError(f"gelu: approximate must be one of {_GELU_APPROXIMATIONS}, got {approximate!r}")


def gelu(x: Tensor, approximate: Literal["none", "tanh"] = "none") -> Tensor:
    """x * Phi(x) with the exact erf (approximate='none') or PyTorch's tanh approximation ('tanh')."""
    check_gelu_approximate(approximate)
    x = _tensor(x, "gelu")
    return x.gelu() if approximate == "none" else x.gelu_tanh()


def leaky_relu(x: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    return _tensor(x, "leaky_relu").leaky_relu(negative_slope)


def silu(x: Tensor, inplace: bool = False) -> Tensor:
    """x * sigmoid(x)."""
    return _tensor(x, "silu").silu()


def elu(x: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """x if x > 0 else alpha * (exp(x) - 1)."""
    return _tensor(x, "elu").elu(alpha)


def selu(x: Tensor, inplace: bool = False) -> Tensor:
    """scale * elu(x, alpha) with alpha = 1.6732632423543772, scale = 1.0507009873554805 (PyTorch's)."""
    return _tensor(x, "selu").selu()


def softplus(x: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + exp(beta * x)) / beta, and x where beta * x > threshold."""
    if beta == 0:
        raise ValueError("softplus: beta must be non-zero")
    return _tensor(x, "softplus").softplus(beta, threshold)


def mish(x: Tensor, inplace: bool = False) -> Tensor:
    """x * tanh(softplus(x))."""
    return _tensor(x, "mish").mish()


def hardswish(x: Tensor, inplace: bool = False) -> Tensor:
    """x * relu6(x + 3) / 6."""
    return _tensor(x, "hardswish").hardswish()


def hardsigmoid(x: Tensor, inplace: bool = False) -> Tensor:
    """relu6(x + 3) / 6."""
    return _tensor(x, "hardsigmoid").hardsigmoid()


def softmax(x: Tensor, dim: int = -1) -> Tensor:
    return _tensor(x, "softmax").softmax(dim)


def log_softmax(x: Tensor, dim: int = -1) -> Tensor:
    return _tensor(x, "log_softmax").log_softmax(dim)


def exp(x: Tensor) -> Tensor:
    return _tensor(x, "exp").exp()


def log(x: Tensor) -> Tensor:
    return _tensor(x, "log").log()


def log1p(x: Tensor) -> Tensor:
    """log(1 + x), accurate for small x."""
    return _tensor(x, "log1p").log1p()


def expm1(x: Tensor) -> Tensor:
    """exp(x) - 1, accurate for small x."""
    return _tensor(x, "expm1").expm1()


def sqrt(x: Tensor) -> Tensor:
    return _tensor(x, "sqrt").sqrt()


def abs(x: Tensor) -> Tensor:
    return _tensor(x, "abs").abs()


# ---- layers ---------------------------------------------------------------------------------------
def linear(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None) -> Tensor:
    """x @ weight.T + bias in one fused launch."""
    return _tensor(x, "linear").linear(weight, bias)


def embedding(ids: Tensor, weight: Tensor, padding_idx: Optional[int] = None, max_norm: Optional[float] = None,
              norm_type: float = 2.0, scale_grad_by_freq: bool = False, sparse: bool = False) -> Tensor:
    """Rows of weight [num, dim] picked by the integral float ids (any shape) -> ids.shape + [dim]; the rows
    looked up at padding_idx pass no gradient to weight (PyTorch)."""
    _tensor(ids, "embedding")
    if max_norm is not None or scale_grad_by_freq or sparse:
        raise NotImplementedError("embedding: max_norm, scale_grad_by_freq and sparse are not supported")
    flat = ids.reshape(-1)
    rows = weight.index_select(0, flat)
    if padding_idx is not None:
        num = weight.shape[0]
        if not -num <= padding_idx < num:
            raise ValueError(f"embedding: padding_idx {padding_idx} is out of range for {num} embeddings")
        rows = where((flat == float(padding_idx % num)).unsqueeze(-1), rows.detach(), rows)
    return rows.reshape(ids.shape + [weight.shape[-1]])


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    """PyTorch's F.one_hot: Tensor.one_hot (num_classes=-1: the largest id + 1; the result keeps the ids'
    dtype, so int64 ids give int64 as in PyTorch)."""
    return _tensor(tensor, "one_hot").one_hot(num_classes)


def flatten(x: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    return _tensor(x, "flatten").flatten(start_dim, end_dim)


def unflatten(x: Tensor, dim: int, sizes: Sequence[int]) -> Tensor:
    """x with dim `dim` split into `sizes` (one of them may be -1)."""
    _tensor(x, "unflatten")
    d = dim + x.dim() if dim < 0 else dim
    if not 0 <= d < x.dim():
        raise IndexOutOfRange(f"unflatten: dim {dim} is out of range for a {x.dim()}-d input")
    sizes = [int(v) for v in sizes]
    known = int(np.prod([v for v in sizes if v != -1]))
    if sizes.count(-1) > 1 or (-1 not in sizes and known != x.shape[d]) or (known == 0 or x.shape[d] % known):
        raise ShapeError(f"unflatten: sizes {sizes} do not split dim {dim} of size {x.shape[d]} (input {x.shape})")
    return x.reshape(x.shape[:d] + sizes + x.shape[d + 1:])


def check_p(p: float, op: str) -> float:
    if not isinstance(p, numbers.Real) or not 0.0 <= p <= 1.0:
        raise ValueError(f"{op}: probability p must be in [0, 1], got {p!r}")


def dropout(x: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero each element with probability p and scale the rest by 1/(1-p) (identity when not training)."""
    _tensor(x, "dropout")
    check_p(p, "dropout")
    if not training or p == 0.0:
        return x
    return x * x.dropout_mask(p)


def _channel_dropout(x, p, training, spatial, op):
    """Zero whole channels: one draw per (sample, channel), i.e. per index of all but the last `spatial` dims."""
    _tensor(x, op)
    check_p(p, op)
    if not training or p == 0.0:
        return x
    mask_shape = x.shape[:-spatial] + [1] * spatial
    return x * TensorBase._empty(mask_shape, x.dtype).dropout_mask(p)


def dropout1d(x: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Channel dropout of [N, C, L] or [C, L] inputs."""
    if x.dim() not in (2, 3):
        raise ShapeError(f"dropout1d: expected a 2-D [C, L] or 3-D [N, C, L] input, got {x.shape}")
    return _channel_dropout(x, p, training, 1, "dropout1d")


def dropout2d(x: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Channel dropout of [N, C, H, W] or [C, H, W] inputs. As in PyTorch, a 3-D input is read as [N, C, L]
    (channel-wise 1-D dropout), with a warning."""
    if x.dim() not in (3, 4):
        raise ShapeError(f"dropout2d: expected a 3-D or 4-D [N, C, H, W] input, got {x.shape}")
    if x.dim() == 3 and training and p > 0:
        warnings.warn("dropout2d: a 3-D input is read as [N, C, L] (channel-wise 1-D dropout), as PyTorch does; "
                      "use dropout1d for that, or a 4-D input", UserWarning, stacklevel=2)
        return _channel_dropout(x, p, training, 1, "dropout2d")
    return _channel_dropout(x, p, training, 2, "dropout2d")


# ---- convolution ----------------------------------------------------------------------------------
def conv2d(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None, stride: IntOrPair = 1,
           padding: Union[IntOrPair, Literal["valid", "same"]] = 0, dilation: IntOrPair = 1, groups: int = 1) -> Tensor:
    """2-D cross-correlation of input [N, C, H, W] with weight [OC, C/groups, kH, kW] (+ bias [OC]);
    padding an int, a pair, 'valid' or 'same' (stride 1; an even total puts the extra row/column at the
    bottom/right, as PyTorch)."""
    return _conv2d(_tensor(input, "conv2d"), weight, bias, stride, padding, dilation, groups)


def _one(v, name, op):
    """A 1-D size given as an int or a one-element sequence."""
    if isinstance(v, (list, tuple)) and len(v) == 1:
        v = v[0]
    if not is_int(v):
        raise TypeError(f"{op}: {name} must be an int or a 1-tuple of ints, got {v!r}")
    return int(v)


def _as_2d(x, weight, op):
    _tensor(x, op)
    if x.dim() != 3 or not isinstance(weight, TensorBase) or weight.dim() != 3:
        raise ShapeError(f"{op}: expected a 3-d [N, C, L] input and a 3-d weight, got {x.shape} and "
                         f"{getattr(weight, 'shape', type(weight).__name__)}")
    return x.unsqueeze(2), weight.unsqueeze(2)


def conv1d(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None, stride: IntOrPair = 1,
           padding: Union[IntOrPair, Literal["valid", "same"]] = 0, dilation: IntOrPair = 1, groups: int = 1) -> Tensor:
    """1-D cross-correlation of input [N, C, L] with weight [OC, C/groups, k]: conv2d with a height of 1."""
    x, w = _as_2d(input, weight, "conv1d")
    pad = padding if isinstance(padding, str) else (0, _one(padding, "padding", "conv1d"))
    return _conv2d(x, w, bias, (1, _one(stride, "stride", "conv1d")), pad,
                   (1, _one(dilation, "dilation", "conv1d")), groups).squeeze(2)


def conv_transpose2d(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None, stride: IntOrPair = 1,
                     padding: IntOrPair = 0, output_padding: IntOrPair = 0, groups: int = 1,
                     dilation: IntOrPair = 1) -> Tensor:
    """The transposed convolution (the gradient of conv2d w.r.t. its input) of input [N, C, H, W] with
    weight [C, OC/groups, kH, kW]."""
    return _conv_transpose2d(_tensor(input, "conv_transpose2d"), weight, bias, stride, padding, output_padding,
                             groups, dilation)


def conv_transpose1d(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None, stride: IntOrPair = 1,
                     padding: IntOrPair = 0, output_padding: IntOrPair = 0, groups: int = 1,
                     dilation: IntOrPair = 1) -> Tensor:
    op = "conv_transpose1d"
    x, w = _as_2d(input, weight, op)
    return _conv_transpose2d(x, w, bias, (1, _one(stride, "stride", op)), (0, _one(padding, "padding", op)),
                             (0, _one(output_padding, "output_padding", op)), groups,
                             (1, _one(dilation, "dilation", op))).squeeze(2)


def pad(input: Tensor, pad: Sequence[int], mode: Literal["constant", "reflect", "replicate", "circular"] = "constant",
        value: Optional[float] = None) -> Tensor:
    """Pad the last dims, a (front, back) pair per dim, last dim first: (left, right), (left, right, top,
    bottom), ...; mode 'constant' (value, default 0; negative pads crop; any number of dims), 'reflect',
    'replicate' or 'circular' (the last 3 dims at most), as PyTorch."""
    return _pad(_tensor(input, "pad"), pad, mode, value)


# ---- pooling (inputs [N, C, H, W] or unbatched [C, H, W]; 1-D: [N, C, L] or [C, L]) -------------------------
def max_pool2d(input: Tensor, kernel_size: IntOrPair, stride: Optional[IntOrPair] = None,
               padding: IntOrPair = 0, dilation: IntOrPair = 1, ceil_mode: bool = False,
               return_indices: bool = False) -> Union[Tensor, tuple[Tensor, Tensor]]:
    """Max over windows (stride defaults to kernel_size); padding (at most half the kernel) never wins, NaN
    does; return_indices also gives each maximum's flat position h*W + w (a float tensor for now)."""
    return _max_pool(_tensor(input, "max_pool2d"), kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices)


def max_pool1d(input: Tensor, kernel_size: IntOrPair, stride: Optional[IntOrPair] = None,
               padding: IntOrPair = 0, dilation: IntOrPair = 1, ceil_mode: bool = False,
               return_indices: bool = False) -> Union[Tensor, tuple[Tensor, Tensor]]:
    return _max_pool(_tensor(input, "max_pool1d"), kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices, dims=1, op="max_pool1d")


def avg_pool2d(input: Tensor, kernel_size: IntOrPair, stride: Optional[IntOrPair] = None,
               padding: IntOrPair = 0, ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: Optional[int] = None) -> Tensor:
    """Mean over windows; the divisor counts the zero padding unless count_include_pad=False, or is
    divisor_override (PyTorch's rules, ceil_mode windows included)."""
    return _avg_pool(_tensor(input, "avg_pool2d"), kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override)


def avg_pool1d(input: Tensor, kernel_size: IntOrPair, stride: Optional[IntOrPair] = None,
               padding: IntOrPair = 0, ceil_mode: bool = False, count_include_pad: bool = True) -> Tensor:
    return _avg_pool(_tensor(input, "avg_pool1d"), kernel_size, stride, padding, ceil_mode, count_include_pad,
                     dims=1, op="avg_pool1d")


def adaptive_avg_pool2d(input: Tensor, output_size: Union[int, None, Sequence[Optional[int]]]) -> Tensor:
    """Average over the windows [floor(i*H/OH), ceil((i+1)*H/OH)) (and likewise for W); output_size an int, a
    pair, or None for a dim to keep."""
    return _adaptive_pool(_tensor(input, "adaptive_avg_pool2d"), output_size, False)


def adaptive_avg_pool1d(input: Tensor, output_size: Union[int, None, Sequence[Optional[int]]]) -> Tensor:
    return _adaptive_pool(_tensor(input, "adaptive_avg_pool1d"), output_size, False, dims=1,
                          op="adaptive_avg_pool1d")


def adaptive_max_pool2d(input: Tensor, output_size: Union[int, None, Sequence[Optional[int]]],
                        return_indices: bool = False) -> Union[Tensor, tuple[Tensor, Tensor]]:
    return _adaptive_pool(_tensor(input, "adaptive_max_pool2d"), output_size, True, return_indices,
                          op="adaptive_max_pool2d")


def adaptive_max_pool1d(input: Tensor, output_size: Union[int, None, Sequence[Optional[int]]],
                        return_indices: bool = False) -> Union[Tensor, tuple[Tensor, Tensor]]:
    return _adaptive_pool(_tensor(input, "adaptive_max_pool1d"), output_size, True, return_indices, dims=1,
                          op="adaptive_max_pool1d")


def interpolate(input: Tensor, size: Optional[IntOrPair] = None,
                scale_factor: Union[float, Sequence[float], None] = None,
                mode: Literal["nearest", "nearest-exact", "linear", "bilinear"] = "nearest",
                align_corners: Optional[bool] = None, recompute_scale_factor: Optional[bool] = None,
                antialias: bool = False) -> Tensor:
    """Resample [N, C, L] or [N, C, H, W] to `size` or by `scale_factor` (output floor(in * factor)) with
    mode 'nearest', 'nearest-exact', 'linear' (3-d) or 'bilinear' (4-d), PyTorch's index rules."""
    if antialias:
        raise NotImplementedError("interpolate: antialias=True is not supported")
    return _interpolate(_tensor(input, "interpolate"), size, scale_factor, mode, align_corners,
                        recompute_scale_factor)


def upsample(input: Tensor, size: Optional[IntOrPair] = None, scale_factor: Union[float, Sequence[float], None] = None,
             mode: Literal["nearest", "nearest-exact", "linear", "bilinear"] = "nearest",
             align_corners: Optional[bool] = None) -> Tensor:
    return interpolate(input, size, scale_factor, mode, align_corners)


# ---- attention ------------------------------------------------------------------------------------
def attention_mask(mask: Any, dtype: DTypeLike, op: str,
                   true_means: Literal["keep", "drop"] = "keep") -> tuple[Optional[Tensor], int]:
    """(tensor or None, kind) for an attention mask: a float tensor or array is added to the scores; a bool
    one (a bool tensor, a numpy bool array or a list of bools) keeps the scores where it is True
    (true_means='keep': scaled_dot_product_attention) or masks them out (true_means='drop':
    MultiheadAttention); a float 0/1 tensor is an additive mask (PyTorch's rule). The kernels read the mask
    in the scores' dtype (a bool one as 0/1)."""
    if mask is None:
        return None, _attention.NONE
    boolean = _attention.KEEP if true_means == "keep" else _attention.DROP
    if isinstance(mask, TensorBase):
        if np.dtype(mask.dtype).kind == "b":
            return mask.to(dtype), boolean
        if np.dtype(mask.dtype).kind != "f":
            raise TypeError(f"{op}: a mask must be bool or float, got {mask.dtype}")
        return (mask if mask.dtype == dtype else mask.to(dtype)), _attention.ADD
    arr = np.asarray(mask)
    if arr.dtype.kind == "b":
        return Tensor(arr.astype(dtype), dtype=dtype), boolean
    if arr.dtype.kind != "f":
        raise TypeError(f"{op}: a mask must be bool or float, got an array of {arr.dtype}")
    return Tensor(arr.astype(dtype), dtype=dtype), _attention.ADD


def scaled_dot_product_attention(query: Tensor, key: Tensor, value: Tensor, attn_mask: Optional[Any] = None,
                                 dropout_p: float = 0.0, is_causal: bool = False, scale: Optional[float] = None,
                                 enable_gqa: bool = False) -> Tensor:
    """softmax(query @ key^T * scale + mask) @ value (scale 1/sqrt(E) by default) over [..., L, E],
    [..., S, E], [..., S, Ev], the batch dims broadcast. attn_mask: bool (True takes part) or float (added),
    broadcast to [..., L, S]; is_causal: keys after the query's position (top-left aligned) are masked out;
    dropout_p: dropout on the probabilities; enable_gqa: query heads share key/value heads in groups (dim -3).
    Fused into kernels that never store the [L, S] scores; a row with every key masked out gives 0 (PyTorch's
    safe softmax)."""
    op = "scaled_dot_product_attention"
    for t, name in ((query, "query"), (key, "key"), (value, "value")):
        _tensor(t, f"{op} ({name})")
    if attn_mask is not None and is_causal:
        raise ValueError(f"{op}: give attn_mask or is_causal=True, not both (as PyTorch)")
    mask, kind = attention_mask(attn_mask, query.dtype, op)
    if enable_gqa:
        return _grouped_query_attention(query, key, value, mask, kind, dropout_p, is_causal, scale)
    if max(query.shape[-1:] + value.shape[-1:]) > _attention.MAX_HEAD_DIM:
        return math_attention(query, key, value, mask, kind, dropout_p, is_causal, scale)[0]
    return _sdpa(query, key, value, mask, None, (kind, 0), scale, is_causal, dropout_p)


# MultiheadAttention's choice. On devices that emulate local memory (CPUs) the composed path (register-
# blocked matmuls, the row softmax) beat the fused kernels at every size measured on PoCL, 2 cores, fp32,
# forward + backward, best of 15 with the tiled kernels: 1.0 vs 3.0 ms at the seed model's [20, 1, 49, 4]
# heads, 26 vs 168 ms at [1000, 1, 49, 4], 2.4 vs 4.6 ms at [8, 4, 64, 16], 22 vs 73 ms at [4, 8, 128, 64],
# 29 vs 143 ms at [2, 8, 256, 64]. It stores the [..., L, S] scores, so beyond _COMPOSED_SCORES_BYTES the
# fused kernels, which never do, are used there too.
_COMPOSED_SCORES_BYTES = 256 << 20


def composed_attention_pays(query: Tensor, key: Tensor) -> bool:
    """Whether attention over these [..., L, E] queries and [..., S, E] keys runs faster composed from
    matmul/softmax ops than through the fused kernels on the current device."""
    if query.device.local_mem_dedicated:
        return False
    batch = max(math.prod(query.shape[:-2]), math.prod(key.shape[:-2]))  # the broadcast batch, near enough
    scores = batch * query.shape[-2] * key.shape[-2] * query.dtype.itemsize
    return scores <= _COMPOSED_SCORES_BYTES


def _grouped_query_attention(query, key, value, mask, kind, dropout_p, is_causal, scale):
    """Query heads h use key/value head h // (Hq / Hkv): q viewed as [..., Hkv, g, L, E] against key/value
    [..., Hkv, 1, S, E] (a broadcast, no copy)."""
    op = "scaled_dot_product_attention"
    if query.dim() < 3 or key.dim() < 3 or value.dim() < 3:
        raise ShapeError(f"{op}: enable_gqa needs [..., heads, seq, features] inputs")
    hq, hk, hv = query.shape[-3], key.shape[-3], value.shape[-3]
    if hk != hv or hk == 0 or hq % hk:
        raise ShapeError(f"{op}: enable_gqa needs the query heads ({hq}) to be a multiple of the key/value heads "
                         f"({hk}, {hv})")
    g = hq // hk
    q = query.reshape(query.shape[:-3] + [hk, g] + query.shape[-2:])
    k, v = key.unsqueeze(-3), value.unsqueeze(-3)
    if mask is not None and mask.dim() >= 3 and mask.shape[-3] != 1:
        mask = mask.reshape(mask.shape[:-3] + [hk, g] + mask.shape[-2:])
    out = _sdpa(q, k, v, mask, None, (kind, 0), scale, is_causal, dropout_p)
    return out.reshape(out.shape[:-4] + [hq] + out.shape[-2:])


def math_attention(query: Tensor, key: Tensor, value: Tensor, mask: Optional[Any], kind: int, dropout_p: float = 0.0,
                   is_causal: bool = False, scale: Optional[float] = None, mask_b: Optional[Any] = None,
                   kind_b: int = 0) -> tuple[Tensor, Optional[Tensor]]:
    """(output, probabilities) of attention composed from matmul/softmax ops: what MultiheadAttention's
    need_weights=True returns the weights of, and the path for head sizes the fused kernels do not take."""
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    if key.shape[-2] > query.shape[-1]:  # fewer values to scale in the queries [.., L, E] than in the scores
        s = (query * scale) @ key.transpose(-1, -2)
    else:
        s = (query @ key.transpose(-1, -2)) * scale
    for m, kd in ((mask, kind), (mask_b, kind_b)):
        if m is None:
            continue
        if kd == _attention.ADD:
            s = s + m
        else:
            s = where(m, s, -math.inf) if kd == _attention.KEEP else where(m, -math.inf, s)
    if is_causal:
        length, keys = s.shape[-2:]
        rows = _arange(Tensor, length, dtype=s.dtype).unsqueeze(-1)
        below = (rows - _arange(Tensor, keys, dtype=s.dtype)) >= 0  # j <= i
        s = where(below, s, -math.inf)
    p = s.softmax(-1)
    if mask is not None or mask_b is not None:  # only a mask can leave a row without keys (causal keeps j = i)
        p = where(p != p, 0.0, p)  # rows with every key masked out: 0, as the fused kernels
    if dropout_p > 0.0:
        p = dropout(p, dropout_p)
    return p @ value, p


# ---- normalisation --------------------------------------------------------------------------------
def batch_norm(input: Tensor, running_mean: Optional[Tensor], running_var: Optional[Tensor],
               weight: Optional[Tensor] = None, bias: Optional[Tensor] = None, training: bool = False,
               momentum: Optional[float] = 0.1, eps: float = 1e-5, *,
               num_batches_tracked: Optional[Tensor] = None) -> Tensor:
    """PyTorch's batch norm over dim 1 of input [N, C, *]. training: batch mean and biased variance, and the
    running buffers (if given) move towards them in place, unbiased (momentum None: the cumulative average
    over num_batches_tracked, which is advanced); not training: the running statistics."""
    return _batch_norm(_tensor(input, "batch_norm"), running_mean, running_var, weight, bias, training, momentum,
                       eps, num_batches_tracked)


def group_norm(input: Tensor, num_groups: int, weight: Optional[Tensor] = None, bias: Optional[Tensor] = None,
               eps: float = 1e-5) -> Tensor:
    """Normalise each sample's num_groups groups of channels of input [N, C, *]; weight, bias [C]."""
    return _group_norm(_tensor(input, "group_norm"), num_groups, weight, bias, eps)


def rms_norm(input: Tensor, normalized_shape: ShapeLike, weight: Optional[Tensor] = None,
             eps: Optional[float] = None) -> Tensor:
    """input / sqrt(mean(input^2 over the trailing dims normalized_shape) + eps) * weight; eps None is the
    dtype's machine epsilon."""
    return _rms_norm(_tensor(input, "rms_norm"), normalized_shape, weight, eps)


# ---- losses ---------------------------------------------------------------------------------------
def mse_loss(input: Tensor, target: Tensor, reduction: Literal["mean", "sum", "none"] = "mean") -> Tensor:
    """Squared error between same-shaped tensors, reduced by 'mean' | 'sum' | 'none'."""
    check_reduction(reduction, "mse_loss")
    _tensor(input, "mse_loss")
    _tensor(target, "mse_loss")
    if input.shape != target.shape:
        raise ShapeError(f"mse_loss: input {input.shape} and target {target.shape} must have the same shape")
    diff = input - target
    return reduce_loss(diff * diff, reduction)


__all__ = ["relu", "sigmoid", "tanh", "gelu", "leaky_relu", "silu", "elu", "selu", "softplus", "mish", "hardswish",
           "hardsigmoid", "softmax", "log_softmax", "exp", "log", "log1p", "expm1",
           "sqrt", "abs",
           "linear", "embedding", "one_hot", "flatten", "unflatten", "dropout", "dropout1d", "dropout2d", "batch_norm",
           "group_norm", "rms_norm", "layer_norm", "conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d", "pad",
           "max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d", "adaptive_avg_pool1d", "adaptive_avg_pool2d",
           "adaptive_max_pool1d", "adaptive_max_pool2d", "interpolate", "upsample", "scaled_dot_product_attention",
           "mse_loss", "cross_entropy"]
__all__ += _loss_functions.__all__
