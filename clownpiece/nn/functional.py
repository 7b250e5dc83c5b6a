"""nn.functional (docs/api.md, Decisions D6): the stateless forms of the layers, as in PyTorch. Everything
composes Tensor ops (which record autograd); the fused nn ops record through the entry points of
clownpiece/autograd/functions/nn.py."""
import numbers

import numpy as np

from .._grad_mode import no_grad
from .._tensor import Tensor, TensorBase
from .._layout import ShapeError, IndexOutOfRange
from ..ops.nn import check_reduction, reduce_loss
from ..autograd.functions.nn import avg_pool2d, conv2d, cross_entropy as _cross_entropy, layer_norm, max_pool2d


def _tensor(x, op):
    if not isinstance(x, TensorBase):
        raise TypeError(f"{op}: expected a tensor, got {type(x).__name__}")
    return x


# ---- activations ----------------------------------------------------------------------------------
def relu(x):
    return _tensor(x, "relu").relu()


def sigmoid(x):
    return _tensor(x, "sigmoid").sigmoid()


def tanh(x):
    return _tensor(x, "tanh").tanh()


def gelu(x):
    return _tensor(x, "gelu").gelu()


def leaky_relu(x, negative_slope=0.01):
    return _tensor(x, "leaky_relu").leaky_relu(negative_slope)


def softmax(x, dim=-1):
    return _tensor(x, "softmax").softmax(dim)


def log_softmax(x, dim=-1):
    return _tensor(x, "log_softmax").log_softmax(dim)


def exp(x):
    return _tensor(x, "exp").exp()


def log(x):
    return _tensor(x, "log").log()


def log1p(x):
    """log(1 + x), accurate for small x."""
    return _tensor(x, "log1p").log1p()


def expm1(x):
    """exp(x) - 1, accurate for small x."""
    return _tensor(x, "expm1").expm1()


def sqrt(x):
    return _tensor(x, "sqrt").sqrt()


def abs(x):
    return _tensor(x, "abs").abs()


# ---- layers ---------------------------------------------------------------------------------------
def linear(x, weight, bias=None):
    """x @ weight.T + bias in one fused launch."""
    return _tensor(x, "linear").linear(weight, bias)


def embedding(ids, weight):
    """Rows of weight [num, dim] picked by the integral float ids (any shape) -> ids.shape + [dim]."""
    _tensor(ids, "embedding")
    rows = weight.index_select(0, ids.reshape(-1))
    return rows.reshape(ids.shape + [weight.shape[-1]])


def flatten(x, start_dim=0, end_dim=-1):
    return _tensor(x, "flatten").flatten(start_dim, end_dim)


def dropout(x, p=0.5, training=True):
    """Zero each element with probability p and scale the rest by 1/(1-p) (identity when not training)."""
    _tensor(x, "dropout")
    if not isinstance(p, numbers.Real) or not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: probability p must be in [0, 1], got {p!r}")
    if not training or p == 0.0:
        return x
    return x * x.dropout_mask(p)


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    """Channel-last batch norm over rows of x [..., C]. Training: normalise with the batch mean and biased
    variance and fold them into the running buffers in place (never recorded); eval: use the buffers."""
    _tensor(x, "batch_norm")
    c = running_mean.shape[0]
    if x.dim() == 0 or x.shape[-1] != c:
        raise ShapeError(f"batch_norm: input {x.shape} must have {c} features in its last dim")
    rows = x.reshape(-1, c)
    if training:
        if rows.shape[0] < 2:
            raise ValueError(f"batch_norm: training needs more than one row per channel, got input {x.shape}")
        mean = rows.mean(dim=0)
        var = rows.var(dim=0, unbiased=False)
        with no_grad():  # the running statistics are state, not part of the graph
            running_mean.copy_(running_mean.affine(1.0 - momentum) + mean.affine(momentum))
            running_var.copy_(running_var.affine(1.0 - momentum) + var.affine(momentum))
    else:
        mean, var = running_mean, running_var
    y = (rows - mean) / (var + eps).sqrt()
    if weight is not None:
        y = y * weight + bias
    return y.reshape(x.shape)


# ---- losses ---------------------------------------------------------------------------------------
def mse_loss(input, target, reduction="mean"):
    """Squared error between same-shaped tensors, reduced by 'mean' | 'sum' | 'none'."""
    check_reduction(reduction, "mse_loss")
    _tensor(input, "mse_loss")
    _tensor(target, "mse_loss")
    if input.shape != target.shape:
        raise ShapeError(f"mse_loss: input {input.shape} and target {target.shape} must have the same shape")
    diff = input - target
    return reduce_loss(diff * diff, reduction)


def cross_entropy(input, target, reduction="mean"):
    """Cross-entropy of logits [..., C] against class indices [...]: a float tensor of integral values, or
    host data (a list or numpy array of ints), which is range-checked here. Indices out of range in a
    device tensor cannot be checked without a sync: their loss is NaN."""
    _tensor(input, "cross_entropy")
    if not isinstance(target, TensorBase):
        target = _host_targets(target, input)
    return _cross_entropy(input, target, reduction)


def _host_targets(target, logits):
    arr = np.asarray(target)
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"cross_entropy: targets must be class indices, got {type(target).__name__} of {arr.dtype}")
    c = logits.shape[-1] if logits.dim() else 0
    bad = (arr != np.floor(arr)) | (arr < 0) | (arr >= c)
    if bad.any():
        raise IndexOutOfRange(f"cross_entropy: target {arr[bad].ravel()[0]!r} is not a class index in [0, {c})")
    return Tensor(arr.astype(logits.dtype), dtype=logits.dtype)


__all__ = ["relu", "sigmoid", "tanh", "gelu", "leaky_relu", "softmax", "log_softmax", "exp", "log", "log1p", "expm1",
           "sqrt", "abs",
           "linear", "embedding", "flatten", "dropout", "batch_norm", "layer_norm", "conv2d", "max_pool2d",
           "avg_pool2d", "mse_loss", "cross_entropy"]
