"""Raw ops of the fused losses (kernels in cl_kernels/loss.cl): cross-entropy and NLL over a class dim with
class-index or class-probability targets, and binary cross-entropy on probabilities and on logits.
Module-level functions of tensors (PyTorch has no Tensor methods for them); the Functions in
autograd/functions/loss.py record them, and nn.functional (nn/loss_functions.py) checks the arguments.

Class layout: the input is viewed as a contiguous [B, C, D]: PyTorch's [N, C, d1, ...] (B = N, D = d1 * ...),
[N, C] and [C] (D = 1), or the course's [..., C] (B = the leading dims, D = 1). class_layout says which.
Nothing reads device memory back."""
import numpy as np

from .. import backend
from .._layout import ShapeError, numel
from ..backend import checks

_INT64 = np.dtype(np.int64)
_BAD_TARGET = checks.register("cross_entropy / nll_loss", "class target {value} is not in [0, {bound}) nor "
                              "ignore_index (a float target is shown truncated to an integer)")
_BAD_PROBABILITY = checks.register("binary_cross_entropy", "all elements of input should be between 0 and 1, "
                                   "got {value}", float_value=True)


def is_class_index_dtype(dtype):
    """Integer targets are class indices, as in PyTorch; float targets may be either (the course's labels,
    or probabilities)."""
    return np.dtype(dtype).kind in "iu"


def class_layout(x, target, op, course_layout=True):
    """(B, C, D, probabilities) of input x for target: probabilities when target has x's shape; otherwise
    class indices of shape [N, d1, ...] (PyTorch's layout) or, with course_layout, x.shape[:-1] (the
    course's [..., C] logits). Where an input of 3 or more dims admits both (all of its dims after the first
    equal), integer targets take PyTorch's and float targets (the course's labels) the course's."""
    shape, nd = tuple(x._shape), x.dim()
    if nd == 0:
        raise ShapeError(f"{op}: the input needs a class dim, got a 0-dim tensor")
    layout = _layout(shape, nd, target, op, course_layout)
    if layout[1] == 0:
        raise ShapeError(f"{op}: input {list(shape)} has no classes")
    return layout


def _layout(shape, nd, target, op, course_layout):
    tshape = tuple(target._shape)
    torch_shape = shape[:1] + shape[2:] if nd >= 2 else ()
    torch_bcd = (1, shape[0], 1) if nd == 1 else (shape[0], shape[1], numel(shape[2:]))
    if tshape == shape:
        if is_class_index_dtype(target.dtype):
            raise TypeError(f"{op}: a target of the input's shape {list(shape)} holds class probabilities and "
                            f"must be a float tensor, got {target.dtype}")
        return (*torch_bcd, True)
    torch_ok = tshape == torch_shape
    course_ok = course_layout and nd >= 3 and tshape == shape[:-1]
    if torch_ok and (not course_ok or is_class_index_dtype(target.dtype)):
        return (*torch_bcd, False)
    if course_ok:
        return (numel(shape[:-1]), shape[-1], 1, False)
    expected = f"{list(torch_shape)}"
    if course_layout and nd >= 3:
        expected += f" (PyTorch's [N, d1, ...]) or {list(shape[:-1])} (the course's [..., C] logits)"
    raise ShapeError(f"{op}: input {list(shape)} needs class-index targets of shape {expected}, or class "
                     f"probabilities of its own shape; got a target of shape {list(tshape)}")


def operand(t, dtype):
    """An optional float operand (a class weight) in the kernels' dtype, contiguous; None passes."""
    if t is None:
        return None
    return (t if t.dtype == dtype else t.to(dtype)).contiguous()


def _target_defines(t):
    return ("TGT=long",) if is_class_index_dtype(t.dtype) else ()


def _kernel(name, dtype, defines=()):
    return backend.kernel("loss", name, dtype, defines)


def class_loss(x, target, weight, ignore_index, eps, nll, bcd):
    """(per-position loss in target's shape, the positions' weights wt [n] (0 where ignored), lse [n] or
    None for NLL, x as contiguous [B, C, D], targets as contiguous [n]). loss and wt are the two rows of one
    [2, n] buffer, so that 'mean' sums both in one launch (sum_rows)."""
    b, c, d = bcd
    n = b * d
    xc = x.contiguous()
    tc = target.contiguous()
    if tc.dtype != (_INT64 if is_class_index_dtype(tc.dtype) else x.dtype):  # int32 widens; floats take x's
        tc = tc.to(_INT64 if is_class_index_dtype(tc.dtype) else x.dtype)
    rows = x._empty((2, n), x.dtype)
    loss, wt = rows[0], rows[1]
    lse = None if nll else x._empty((n,), x.dtype)
    if n:
        defines = _target_defines(tc) + (("NLL",) if nll else ())
        w = x if weight is None else weight  # not read without weight
        backend.launch(_kernel("class_loss_fwd", x.dtype, defines), n, loss, wt, loss if nll else lse, xc, tc, w,
                       int(weight is not None), ignore_index, backend.kernel_number(x.dtype, eps),
                       checks.error_word(x._storage.pool), _BAD_TARGET, n, c, d)
    return loss.view(target._shape), rows, lse, xc, tc


def class_loss_backward(xc, lse, tc, weight, wsum, grad, per_position, divisor, ignore_index, eps, nll, bcd):
    """d loss / d x (x's contiguous shape): grad holds one value per position (per_position) or is the
    0-dim gradient of the reduced loss; divisor is the 0-dim 'mean' divisor (None: 1); wsum the 0-dim sum of
    the weights (read with label smoothing and weights)."""
    b, c, d = bcd
    dx = xc._empty(xc._shape, xc.dtype)
    if b * c * d:
        defines = _target_defines(tc) + (("NLL",) if nll else ())
        g = grad.contiguous()
        w = xc if weight is None else weight
        backend.launch(_kernel("class_loss_bwd", xc.dtype, defines), b * c * d, dx, xc, xc if lse is None else lse,
                       tc, w, int(weight is not None), xc if wsum is None else wsum, g, int(per_position),
                       xc if divisor is None else divisor, int(divisor is not None), ignore_index,
                       backend.kernel_number(xc.dtype, eps), b * d, c, d)
    return dx


def prob_loss(x, target, weight, eps, bcd):
    """Cross-entropy against class probabilities: per-position loss [B, d1, ...] (x's shape without the
    class dim), and (lse, qw, contiguous x, contiguous target) for the backward."""
    b, c, d = bcd
    n = b * d
    xc, tc = x.contiguous(), target.contiguous()
    if tc.dtype != x.dtype:
        tc = tc.to(x.dtype)
    shape = x._shape[:1] + x._shape[2:] if x.dim() >= 2 else ()
    loss = x._empty(shape, x.dtype)
    qw, lse = x._empty((n,), x.dtype), x._empty((n,), x.dtype)
    if n:
        w = x if weight is None else weight
        backend.launch(_kernel("prob_loss_fwd", x.dtype), n, loss, qw, lse, xc, tc, w, int(weight is not None),
                       backend.kernel_number(x.dtype, eps), n, c, d)
    return loss, (lse, qw, xc, tc)


def prob_loss_backward(saved, weight, grad, per_position, need_dt, eps, bcd):
    """(dx, dt or None), both of x's contiguous shape."""
    lse, qw, xc, tc = saved
    b, c, d = bcd
    dx = xc._empty(xc._shape, xc.dtype)
    dt = xc._empty(xc._shape, xc.dtype) if need_dt else None
    if b * c * d:
        w = xc if weight is None else weight
        backend.launch(_kernel("prob_loss_bwd", xc.dtype), b * c * d, dx, dx if dt is None else dt, xc, tc, w,
                       int(weight is not None), lse, qw, grad.contiguous(), int(per_position), int(need_dt),
                       backend.kernel_number(xc.dtype, eps), b * d, c, d)
    return dx, dt


def _same_shape(x, t, op):
    if x._shape != t._shape:
        raise ShapeError(f"{op}: target {t.shape} must have the input's shape {x.shape}")
    return x.contiguous(), (t if t.dtype == x.dtype else t.to(x.dtype)).contiguous()


def bce(x, target):
    """Elementwise -(t log x + (1 - t) log(1 - x)), logs clamped to >= -100; (loss, contiguous x, t). An x
    outside [0, 1] gives NaN there and raises DeviceAssertError at the next host read."""
    xc, tc = _same_shape(x, target, "binary_cross_entropy")
    out = x._empty(x._shape, x.dtype)
    if out._numel:
        backend.launch(_kernel("bce_fwd", x.dtype), out._numel, out, xc, tc, checks.error_word(x._storage.pool),
                       _BAD_PROBABILITY, out._numel)
    return out, xc, tc


def bce_backward(grad, xc, tc, need_dt):
    dx = xc._empty(xc._shape, xc.dtype)
    dt = xc._empty(xc._shape, xc.dtype) if need_dt else None
    if dx._numel:
        backend.launch(_kernel("bce_bwd", xc.dtype), dx._numel, dx, dx if dt is None else dt, grad.contiguous(),
                       xc, tc, int(need_dt), dx._numel)
    return dx, dt


def bce_logits(x, target, pos_weight):
    """Elementwise (1 - t) x - (1 + (p - 1) t) log sigmoid(x); pos_weight p broadcasts to the target's shape
    (materialised at it). (loss, contiguous x, t, p or None)."""
    xc, tc = _same_shape(x, target, "binary_cross_entropy_with_logits")
    pc = None if pos_weight is None else operand(pos_weight.broadcast_to(*x._shape), x.dtype)
    out = x._empty(x._shape, x.dtype)
    if out._numel:
        backend.launch(_kernel("bce_logits_fwd", x.dtype), out._numel, out, xc, tc, xc if pc is None else pc,
                       int(pc is not None), out._numel)
    return out, xc, tc, pc


def bce_logits_backward(grad, xc, tc, pc, need_dt, need_dp):
    """(dx, dt or None, dp or None), each of x's shape (dp: the caller sums it to pos_weight's shape)."""
    n = xc._numel
    dx = xc._empty(xc._shape, xc.dtype)
    dt = xc._empty(xc._shape, xc.dtype) if need_dt else None
    dp = xc._empty(xc._shape, xc.dtype) if need_dp and pc is not None else None
    if n:
        backend.launch(_kernel("bce_logits_bwd", xc.dtype), n, dx, dx if dt is None else dt, dx if dp is None else dp,
                       grad.contiguous(), xc, tc, xc if pc is None else pc, int(pc is not None), int(need_dt),
                       int(dp is not None), n)
    return dx, dt, dp
