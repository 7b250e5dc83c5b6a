"""The losses of nn.functional (re-exported there), with PyTorch's signatures, defaults, formulas and
validation. Cross-entropy, NLL and the two binary cross-entropies are fused kernels (clownpiece/ops/loss.py,
recorded by autograd/functions/loss.py); the rest compose differentiable device ops. Arguments are checked
before anything is launched. The legacy size_average/reduce arguments map to `reduction` as in PyTorch."""
from __future__ import annotations

import numbers
import warnings
from typing import Literal, Optional, Sequence, Union

import numpy as np

from .._layout import IndexOutOfRange, ShapeError
from .._tensor import Tensor, TensorBase
from ..autograd.functions import loss as _fn
from ..autograd.functions.elementwise import where
from ..ops import loss as _ops
from ..ops.nn import check_reduction


def legacy_reduction(size_average: Optional[bool], reduce: Optional[bool], reduction: Literal["mean", "sum", "none"],
                     op: str) -> str:
    """PyTorch's mapping of the deprecated size_average/reduce to a reduction (both None: `reduction`)."""
    if size_average is None and reduce is None:
        check_reduction(reduction, op)
        return reduction
    warnings.warn(f"{op}: size_average and reduce are deprecated, use reduction instead", UserWarning,
                  stacklevel=3)
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    return "none" if not reduce else "mean" if size_average else "sum"


def _tensor(x, name, op):
    if not isinstance(x, TensorBase):
        raise TypeError(f"{op}: {name} must be a tensor, got {type(x).__name__}")
    return x


def _floating(x, name, op):
    _tensor(x, name, op)
    if getattr(x.dtype, "kind", "f") != "f":
        raise TypeError(f"{op}: {name} must be a floating-point tensor, got {x.dtype}")
    return x


_HALF = np.dtype(np.float16)


def _computable(x):
    """The input as loss.cl computes it: float16 goes through float32 (the caller rounds the loss back)."""
    return x.to(np.float32) if x.dtype == _HALF else x


def _rounded_back(loss, input):
    return loss.to(_HALF) if input.dtype == _HALF else loss


def _float_arg(t, name, op):
    """A float tensor argument (weight, target, pos_weight): checked, not yet converted (the raw ops and the
    binary ops convert, after every check has passed)."""
    return _floating(t, name, op)


def _class_targets(target, op):
    """Class-index targets: an integer tensor (PyTorch's), or the course's float tensor of integral values."""
    _tensor(target, "target", op)
    if np.dtype(target.dtype).kind == "b":
        raise TypeError(f"{op}: class-index targets must be int64 or int32 (or float class labels), got bool")
    return target


def _class_weight(weight, c, x, op):
    if weight is None:
        return None
    _float_arg(weight, "weight", op)
    if weight._shape != (c,):
        raise ShapeError(f"{op}: weight tensor should be defined either for all {c} classes or no classes, "
                         f"got weight of shape {weight.shape}")
    return weight


def _ignore_index(ignore_index, op):
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, (numbers.Integral, np.integer)):
        raise TypeError(f"{op}: ignore_index must be an int, got {type(ignore_index).__name__}")
    if not -2 ** 31 <= int(ignore_index) < 2 ** 31:
        raise ValueError(f"{op}: ignore_index {ignore_index} is outside the 32-bit range the kernels take")
    return int(ignore_index)


def _host_array(target, op):
    arr = np.asarray(target)
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{op}: targets must be class indices, got {type(target).__name__} of {arr.dtype}")
    return arr


def _check_host_classes(arr, c, op):
    """Class indices given as host data (a list or numpy array) are range-checked on the host, before any
    launch."""
    bad = (arr != np.floor(arr)) | (arr < 0) | (arr >= c)
    if bad.any():
        raise IndexOutOfRange(f"{op}: target {arr[bad].ravel()[0]!r} is not a class index in [0, {c})")


def cross_entropy(input: Tensor, target: Union[Tensor, Sequence[int], np.ndarray],
                  weight: Union[Tensor, str, None] = None, size_average: Optional[bool] = None,
                  ignore_index: int = -100, reduce: Optional[bool] = None,
                  reduction: Literal["mean", "sum", "none"] = "mean", label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy of unnormalised logits against class indices or class probabilities (PyTorch's
    F.cross_entropy). Layouts: [N, C, d1, ...], [N, C] and [C] (PyTorch's), and the course's [..., C] logits
    with targets of shape [...]; class indices are an integer tensor, the course's float tensor of integral
    values, or host data (a list or numpy array of ints, range-checked here). Targets of the input's shape
    are class probabilities. The course's call form cross_entropy(logits, target, "sum") passes the
    reduction third."""
    op = "cross_entropy"
    if isinstance(weight, str):  # the course's positional reduction
        weight, reduction = None, weight
    reduction = legacy_reduction(size_average, reduce, reduction, op)
    _floating(input, "input", op)
    host = None
    if not isinstance(target, TensorBase):  # the course's float labels, in a dtype that holds them exactly
        host = _host_array(target, op)
        labels = np.float64 if input.dtype == np.float64 else np.float32
        target = Tensor(host.astype(labels), dtype=labels)
    _class_targets(target, op)
    ignore_index = _ignore_index(ignore_index, op)
    eps = float(label_smoothing)
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"{op}: label_smoothing must be between 0.0 and 1.0, got {label_smoothing}")
    b, c, d, probabilities = _ops.class_layout(input, target, op)
    if host is not None and not probabilities:
        _check_host_classes(host, c, op)
    weight = _class_weight(weight, c, input, op)
    if probabilities:
        if ignore_index >= 0:
            raise ValueError(f"{op}: ignore_index is not supported for class-probability targets, got "
                             f"ignore_index={ignore_index}")
        target = _float_arg(target, "target", op)
        loss = _fn.prob_cross_entropy(_computable(input), target, weight, (b, c, d), reduction, eps)
    else:
        loss = _fn.class_loss(_computable(input), target.detach(), weight, (b, c, d), reduction, ignore_index, eps,
                              False)
    return _rounded_back(loss, input)


def nll_loss(input: Tensor, target: Tensor, weight: Optional[Tensor] = None, size_average: Optional[bool] = None,
             ignore_index: int = -100, reduce: Optional[bool] = None,
             reduction: Literal["mean", "sum", "none"] = "mean") -> Tensor:
    """Negative log-likelihood of log-probabilities input [N, C, d1, ...], [N, C] or [C] against class
    indices [N, d1, ...]; 'mean' divides by the sum of the weights of the targets that are not ignored."""
    op = "nll_loss"
    reduction = legacy_reduction(size_average, reduce, reduction, op)
    _floating(input, "input", op)
    _class_targets(target, op)
    ignore_index = _ignore_index(ignore_index, op)
    b, c, d, probabilities = _ops.class_layout(input, target, op, course_layout=False)
    if probabilities:
        raise ShapeError(f"{op}: target {target.shape} must be class indices of shape [N, d1, ...], not the "
                         f"input's shape")
    weight = _class_weight(weight, c, input, op)
    loss = _fn.class_loss(_computable(input), target.detach(), weight, (b, c, d), reduction, ignore_index, 0.0, True)
    return _rounded_back(loss, input)


def _reduce(loss, reduction):
    """'mean' of no elements is NaN, as in PyTorch (computed on the device: 0 / 0)."""
    if reduction == "mean":
        return loss.mean() if loss.numel() else loss.sum() / 0.0
    return loss.sum() if reduction == "sum" else loss


def _check_weight(weight, shape, op, name="weight"):
    """An element weight (or pos_weight) that broadcasts to the input's shape (as PyTorch expands it),
    checked before any launch; None passes."""
    if weight is None:
        return None
    _float_arg(weight, name, op)
    try:
        weight.broadcast_to(*shape)
    except (ValueError, RuntimeError) as e:
        raise ShapeError(f"{op}: {name} {weight.shape} must broadcast to the input's shape {list(shape)}") from e
    return weight


def _input_and_target(input, target, op):
    """Float input and target of the same shape (PyTorch broadcasts some losses with a warning; here a
    mismatch is an error, as for mse_loss)."""
    _floating(input, "input", op)
    _float_arg(target, "target", op)
    if target.shape != input.shape:
        raise ShapeError(f"{op}: target {target.shape} must have the input's shape {input.shape}")


def _weighted(loss, weight):
    return loss if weight is None else loss * weight


def binary_cross_entropy(input: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                         size_average: Optional[bool] = None, reduce: Optional[bool] = None,
                         reduction: Literal["mean", "sum", "none"] = "mean") -> Tensor:
    """-w (t log x + (1 - t) log(1 - x)) for probabilities x, each log clamped to >= -100 (PyTorch's).
    An input element outside [0, 1] (or NaN) is reported by the kernel and raised as DeviceAssertError (a
    RuntimeError, PyTorch's "all elements of input should be between 0 and 1") at the next host read, with no
    extra sync; its loss is NaN. Targets are not range-checked (nor are they in PyTorch)."""
    op = "binary_cross_entropy"
    reduction = legacy_reduction(size_average, reduce, reduction, op)
    _input_and_target(input, target, op)
    weight = _check_weight(weight, input.shape, op)
    loss = _weighted(_fn.binary_cross_entropy(_computable(input), target), weight)
    return _rounded_back(_reduce(loss, reduction), input)


def binary_cross_entropy_with_logits(input: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                                     size_average: Optional[bool] = None, reduce: Optional[bool] = None,
                                     reduction: Literal["mean", "sum", "none"] = "mean",
                                     pos_weight: Optional[Tensor] = None) -> Tensor:
    """Binary cross-entropy on logits, stable for large |x|: w ((1 - t) x - (1 + (p - 1) t) log sigmoid(x)),
    pos_weight p broadcast to the target's shape (e.g. [C] over [N, C])."""
    op = "binary_cross_entropy_with_logits"
    reduction = legacy_reduction(size_average, reduce, reduction, op)
    _input_and_target(input, target, op)
    pos_weight = _check_weight(pos_weight, target.shape, op, "pos_weight")
    weight = _check_weight(weight, input.shape, op)
    loss = _weighted(_fn.binary_cross_entropy_with_logits(_computable(input), target, pos_weight), weight)
    return _rounded_back(_reduce(loss, reduction), input)


def _difference(input, target, op):
    _input_and_target(input, target, op)
    return input - target


def l1_loss(input: Tensor, target: Tensor, size_average: Optional[bool] = None, reduce: Optional[bool] = None,
            reduction: Literal["mean", "sum", "none"] = "mean") -> Tensor:
    """|x - t|."""
    op = "l1_loss"
    reduction = legacy_reduction(size_average, reduce, reduction, op)
    return _reduce(_difference(input, target, op).abs(), reduction)


def smooth_l1_loss(input: Tensor, target: Tensor, size_average: Optional[bool] = None, reduce: Optional[bool] = None,
                   reduction: Literal["mean", "sum", "none"] = "mean", beta: float = 1.0) -> Tensor:
    """0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (d = x - t); beta = 0 is l1_loss."""
    op = "smooth_l1_loss"
    reduction = legacy_reduction(size_average, reduce, reduction, op)
    beta = float(beta)
    if beta < 0:
        raise ValueError(f"{op}: beta must be >= 0, got {beta}")
    d = _difference(input, target, op)
    a = d.abs()
    if beta == 0.0:
        return _reduce(a, reduction)
    return _reduce(where(a < beta, d * d * (0.5 / beta), a - 0.5 * beta), reduction)


def huber_loss(input: Tensor, target: Tensor, reduction: Literal["mean", "sum", "none"] = "mean",
               delta: float = 1.0) -> Tensor:
    """0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta) (d = x - t)."""
    op = "huber_loss"
    check_reduction(reduction, op)
    delta = float(delta)
    if not delta > 0:
        raise ValueError(f"{op}: delta must be > 0, got {delta}")
    d = _difference(input, target, op)
    a = d.abs()
    return _reduce(where(a < delta, d * d * 0.5, (a - 0.5 * delta) * delta), reduction)


KL_REDUCTIONS = ("mean", "sum", "none", "batchmean")


def kl_div(input: Tensor, target: Tensor, size_average: Optional[bool] = None, reduce: Optional[bool] = None,
           reduction: Literal["mean", "sum", "none", "batchmean"] = "mean", log_target: bool = False) -> Tensor:
    """Pointwise KL divergence of log-probabilities input from target (probabilities, or log-probabilities
    with log_target): t (log t - x), 0 where t = 0; exp(t) (t - x) with log_target. 'batchmean' sums and
    divides by the batch size input.shape[0]; 'mean' averages over every element (as PyTorch, which warns)."""
    op = "kl_div"
    if size_average is not None or reduce is not None:
        reduction = legacy_reduction(size_average, reduce, "mean", op)
    elif reduction not in KL_REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {KL_REDUCTIONS}, got {reduction!r}")
    _input_and_target(input, target, op)
    if log_target:
        loss = target.exp() * (target - input)
    else:
        # xlogy(t, t): 0 where t == 0 (log of a safe 1 there keeps the untaken branch finite)
        safe = where(target == 0, 1.0, target)
        loss = target * safe.log() - target * input
    if reduction == "batchmean":
        total = loss.sum()
        return total / input.shape[0] if input.dim() else total
    if reduction == "mean":
        warnings.warn(f"{op}: reduction='mean' divides by the number of elements, not the batch size; "
                      f"'batchmean' is the KL divergence", UserWarning, stacklevel=2)
    return _reduce(loss, reduction)


def _pair(input1, input2, target, op):
    _floating(input1, "input1", op)
    input2 = _float_arg(input2, "input2", op)
    target = _float_arg(target, "target", op)
    return input1, input2, target


def margin_ranking_loss(input1: Tensor, input2: Tensor, target: Tensor, margin: float = 0.0,
                        size_average: Optional[bool] = None, reduce: Optional[bool] = None,
                        reduction: Literal["mean", "sum", "none"] = "mean") -> Tensor:
    """max(0, -y (x1 - x2) + margin); the three tensors have the same number of dims and broadcast."""
    op = "margin_ranking_loss"
    reduction = legacy_reduction(size_average, reduce, reduction, op)
    input1, input2, target = _pair(input1, input2, target, op)
    if not input1.dim() == input2.dim() == target.dim():
        raise ShapeError(f"{op}: input1 {input1.shape}, input2 {input2.shape} and target {target.shape} must "
                         f"have the same number of dims")
    return _reduce((target * (input2 - input1) + float(margin)).relu(), reduction)


def cosine_embedding_loss(input1: Tensor, input2: Tensor, target: Tensor, margin: float = 0.0,
                          size_average: Optional[bool] = None, reduce: Optional[bool] = None,
                          reduction: Literal["mean", "sum", "none"] = "mean") -> Tensor:
    """1 - cos(x1, x2) where y = 1, max(0, cos(x1, x2) - margin) where y = -1, 0 elsewhere; inputs [N, D]
    with target [N], or [D] with a 0-dim target. cos = x1.x2 / sqrt((|x1|^2 + 1e-12) (|x2|^2 + 1e-12))."""
    op = "cosine_embedding_loss"
    reduction = legacy_reduction(size_average, reduce, reduction, op)
    input1, input2, target = _pair(input1, input2, target, op)
    if target.dim() not in (0, 1):
        raise ShapeError(f"{op}: 0-dim or 1-dim target expected (multi-target is not supported), got "
                         f"{target.shape}")
    if input1.shape != input2.shape or input1.dim() != target.dim() + 1 or \
            (target.dim() == 1 and input1.shape[0] != target.shape[0]):
        raise ShapeError(f"{op}: inputs [N, D] with target [N] (or [D] with a 0-dim target) expected, got "
                         f"input1 {input1.shape}, input2 {input2.shape}, target {target.shape}")
    dim = input1.dim() - 1
    dot = (input1 * input2).sum(dim)
    mag = ((input1 * input1).sum(dim) + 1e-12) * ((input2 * input2).sum(dim) + 1e-12)
    cos = dot / mag.sqrt()
    loss = where(target == 1, 1.0 - cos, 0.0) + where(target == -1, (cos - float(margin)).relu(), 0.0)
    return _reduce(loss, reduction)


__all__ = ["nll_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits", "l1_loss", "smooth_l1_loss",
           "huber_loss", "kl_div", "margin_ranking_loss", "cosine_embedding_loss"]
