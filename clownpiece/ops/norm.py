"""Raw ops of the channel and group normalisations (kernels in cl_kernels/norm.cl): batch norm over an
[N, C, *] input's channels, group norm over groups of channels per sample, RMS norm over trailing dims.
Module-level functions of tensors (not TensorBase methods: PyTorch has no Tensor.batch_norm); the
Functions in autograd/functions/norm.py record them.

Launches: batch norm's training forward is two (statistics with the running-buffer update folded in, then
the normalisation), its backward two (per-channel sums, then dx); group norm the same plus one for the
weight sums. Nothing reads device memory back."""
import numpy as np
import pyopencl as cl

from .. import backend
from .._layout import ShapeError, numel
from ..backend import dtypes as D
from ..backend.dtypes import require_float

_MAX_GROUP = 256


def _group_size(k):
    """The work-group size of a segment kernel: the largest power of two the kernel allows, up to 256."""
    return 1 << (min(_MAX_GROUP, k.max_local).bit_length() - 1)


def _segments(name, dtype, count, *args):
    """Launch norm.cl's `name` with one work-group per segment; its last argument is the local scratch."""
    k = backend.kernel("norm", name, dtype)
    size = _group_size(k)
    backend.launch(k, count * size, *args, cl.LocalMemory(size * dtype.itemsize), local=size)


def _planes(name, out, n, c, s, *args):
    """Launch an element kernel of norm.cl over [N, C, S] on its 2-D range (positions, planes)."""
    backend.launch(backend.kernel("norm", name, out.dtype), (s, n * c), out, *args)


def _check(t, x, name, op, shape):
    if t is None:
        return
    if not hasattr(t, "_storage"):
        raise TypeError(f"{op}: {name} must be a tensor or None, got {type(t).__name__}")
    if t._shape != tuple(shape):
        raise ShapeError(f"{op}: {name} must have shape {list(shape)}, got {t.shape}")


def _same(t, x, name, op, shape):
    """t checked to have `shape`, converted to x's dtype, contiguous (None passes)."""
    _check(t, x, name, op, shape)
    return None if t is None else (t if t.dtype == x.dtype else t.to(x.dtype)).contiguous()


def channels(x, op):
    """(N, C, S) of an [N, C, *] input."""
    require_float(x, op)
    if x.dim() < 2:
        raise ShapeError(f"{op}: expected an input of shape [N, C, *], got {x.shape}")
    n, c = x._shape[:2]
    return n, c, numel(x._shape[2:])


def _affine(weight, bias):
    return (weight is not None) | (bias is not None) << 1


# ---- batch norm -------------------------------------------------------------------------------------------
def batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps, num_batches_tracked=None,
               unbiased=True):
    """(y, mean [C], rstd [C], x contiguous) for x [N, C, *]. training: batch statistics (biased variance),
    and the running buffers, if given, move towards them in the same launch (unbiased variance; momentum
    None is the cumulative average over num_batches_tracked, which is then advanced). Not training: the
    running statistics. unbiased=False: the running variance moves towards the biased batch variance (the
    course's BatchNorm)."""
    op = "batch_norm"
    n, c, s = channels(x, op)
    if (running_mean is None) != (running_var is None):
        raise ValueError(f"{op}: pass both running_mean and running_var, or neither")
    if not training and running_mean is None:
        raise ValueError(f"{op}: eval mode needs running_mean and running_var (or training=True)")
    for t, name in ((running_mean, "running_mean"), (running_var, "running_var")):
        _check(t, x, name, op, (c,))
        if training and t is not None and (t.dtype != x.dtype or not t._contig):
            raise TypeError(f"{op}: {name} must be a contiguous {x.dtype} tensor: it is updated in place")
    cumulative = momentum is None
    if training and cumulative and running_mean is not None and num_batches_tracked is None:
        raise ValueError(f"{op}: momentum=None (a cumulative average) needs num_batches_tracked")
    _check(num_batches_tracked, x, "num_batches_tracked", op, ())
    if num_batches_tracked is not None and num_batches_tracked.dtype != D.int64:
        raise TypeError(f"{op}: num_batches_tracked must be an int64 tensor (PyTorch's; it is counted in place), "
                        f"got {num_batches_tracked.dtype.name}")
    if training and n * s <= 1:
        raise ValueError(f"{op}: training needs more than one value per channel, got input of shape {x.shape}")
    _check(weight, x, "weight", op, (c,)), _check(bias, x, "bias", op, (c,))
    weight, bias = _same(weight, x, "weight", op, (c,)), _same(bias, x, "bias", op, (c,))
    stats = [_same(t, x, "running statistics", op, (c,)) for t in (running_mean, running_var)]
    xc = x.contiguous()
    y = x._empty(x._shape, x.dtype)
    if training:
        mean, rstd = x._empty((c,), x.dtype), x._empty((c,), x.dtype)
        update = running_mean is not None
        nbt = num_batches_tracked if update and num_batches_tracked is not None else xc  # xc: not read
        rm, rv = (stats[0], stats[1]) if update else (xc, xc)
        if c and n * s:
            _segments("norm_stats", x.dtype, c, mean, rstd, xc, s, n, c * s, s, eps, rm, rv, nbt,
                      int(update), int(unbiased), int(cumulative), 0.0 if cumulative else momentum)
        bump = int(update and num_batches_tracked is not None)
        if update:  # updated in place: autograd's saved-tensor check sees it, and so does ops/half.py, which
            # writes a float32 copy of float16 running statistics back when it changed
            rm._storage._version += 1
            rv._storage._version += 1
    else:
        mean = stats[0]
        rstd = (stats[1] + eps).pow(-0.5)
        nbt, bump = xc, 0
    if y._numel:
        _planes("norm_apply", y, n, c, s, xc, mean, rstd, xc if weight is None else weight,
                xc if bias is None else bias, _affine(weight, bias), n, c, s, 0, 1, nbt, bump)
    return y, mean, rstd, xc


def batch_norm_backward(grad, xc, mean, rstd, weight, training, need_affine):
    """(dx, dweight, dbias) of batch_norm for the incoming gradient `grad`; dweight and dbias only when
    need_affine (else None)."""
    n, c, s = channels(xc, "batch_norm")
    g = grad.contiguous()
    dx = xc._empty(xc._shape, xc.dtype)
    sum_gx = sum_g = None
    if training or need_affine:
        sum_gx, sum_g = xc._empty((c,), xc.dtype), xc._empty((c,), xc.dtype)
        if c:
            _segments("channel_grad_sums", xc.dtype, c, sum_gx, sum_g, g, xc, mean, rstd, n, c, s, 0, 1)
    if dx._numel:
        a, b = (sum_g, sum_gx) if training else (xc, xc)
        _planes("norm_backward", dx, n, c, s, g, xc, mean, rstd, xc if weight is None else weight,
                int(weight is not None), a, b, 1, int(not training), n, c, s, 0, 1, n * s)
    return dx, sum_gx if need_affine else None, sum_g if need_affine else None


# ---- group norm -------------------------------------------------------------------------------------------
def group_norm(x, num_groups, weight, bias, eps):
    """(y, mean [N*G], rstd [N*G], x contiguous) for x [N, C, *], C divisible by num_groups."""
    op = "group_norm"
    n, c, s = channels(x, op)
    if not isinstance(num_groups, (int, np.integer)) or num_groups <= 0 or c % num_groups:
        raise ValueError(f"{op}: num_groups {num_groups!r} must be a positive divisor of the {c} channels of "
                         f"input {x.shape}")
    _check(weight, x, "weight", op, (c,)), _check(bias, x, "bias", op, (c,))
    weight, bias = _same(weight, x, "weight", op, (c,)), _same(bias, x, "bias", op, (c,))
    g, cg = int(num_groups), c // num_groups
    xc = x.contiguous()
    mean, rstd = x._empty((n * g,), x.dtype), x._empty((n * g,), x.dtype)
    y = x._empty(x._shape, x.dtype)
    if y._numel:
        _segments("norm_stats", x.dtype, n * g, mean, rstd, xc, cg * s, cg, s, s, eps, xc, xc, xc, 0, 0, 0, 0.0)
        _planes("norm_apply", y, n, c, s, xc, mean, rstd, xc if weight is None else weight,
                xc if bias is None else bias, _affine(weight, bias), n, c, s, g, cg, xc, 0)
    return y, mean, rstd, xc


def group_norm_backward(grad, xc, mean, rstd, weight, num_groups, need_affine):
    n, c, s = channels(xc, "group_norm")
    g, cg = num_groups, c // num_groups
    gr = grad.contiguous()
    dx = xc._empty(xc._shape, xc.dtype)
    dw = db = None
    if dx._numel:
        sum_gwx, sum_gw = xc._empty((n * g,), xc.dtype), xc._empty((n * g,), xc.dtype)
        _segments("group_grad_sums", xc.dtype, n * g, sum_gwx, sum_gw, gr, xc, mean, rstd,
                  xc if weight is None else weight, int(weight is not None), g, cg, s)
        _planes("norm_backward", dx, n, c, s, gr, xc, mean, rstd, xc if weight is None else weight,
                int(weight is not None), sum_gw, sum_gwx, 0, 0, n, c, s, g, cg, cg * s)
    if need_affine:
        dw, db = xc._empty((c,), xc.dtype), xc._empty((c,), xc.dtype)
        if c:
            _segments("channel_grad_sums", xc.dtype, c, dw, db, gr, xc, mean, rstd, n, c, s, g, cg)
    return dx, dw, db


# ---- RMS norm ---------------------------------------------------------------------------------------------
def rms_norm(x, normalized_shape, weight, eps):
    """(y, rrms [rows], x as contiguous [rows, F]) normalising over the trailing dims `normalized_shape`;
    eps None is the dtype's machine epsilon (PyTorch)."""
    op = "rms_norm"
    require_float(x, op)
    dims = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) else tuple(normalized_shape)
    dims = tuple(int(d) for d in dims)
    if not dims or len(dims) > x.dim() or x._shape[x.dim() - len(dims):] != dims:
        raise ShapeError(f"{op}: normalized_shape {list(dims)} must match the trailing dims of the input shape "
                         f"{x.shape}")
    f = numel(dims)
    weight = _same(weight, x, "weight", op, dims)
    eps = float(np.finfo(x.dtype).eps) if eps is None else eps
    rows = x.contiguous().view(-1, f)
    n = rows._shape[0]
    y, rrms = x._empty(rows._shape, x.dtype), x._empty((n,), x.dtype)
    if n and f:
        backend.launch(backend.kernel("norm", "rms_norm_fwd", x.dtype), n, y, rrms, rows,
                       rows if weight is None else weight, int(weight is not None), eps, n, f)
    return y.view(x._shape), rrms, rows


def rms_norm_backward(grad, rows, rrms, weight, need_weight):
    n, f = rows._shape
    g = grad.contiguous().view(n, f)
    dx = rows._empty((n, f), rows.dtype)
    if n and f:
        backend.launch(backend.kernel("norm", "rms_norm_bwd_input", rows.dtype), n, dx, g, rows, rrms,
                       rows if weight is None else weight, int(weight is not None), n, f)
    dw = None
    if need_weight:
        dw = rows._empty((f,), rows.dtype)
        if f:
            backend.launch(backend.kernel("norm", "rms_norm_bwd_weight", rows.dtype), f, dw, g, rows, rrms, n, f)
    return dx, dw
