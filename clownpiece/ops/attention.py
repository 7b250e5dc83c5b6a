"""Raw ops of fused scaled dot-product attention (kernels in cl_kernels/attention.cl): the forward (one
launch, the [L, S] scores never stored) and its backward (two launches, three when an additive mask needs
a gradient). Module-level functions; autograd/functions/attention.py records them.

q [..., L, E], k [..., S, E] and v [..., S, Ev] are read through their strides, so the heads of a
MultiheadAttention ([B, L, H, D] viewed as [B, H, L, D]) need no copy: the batch dims, broadcast against each
other and the masks', are grouped into at most two per tensor (a copy only when strides do not allow it).
Masks broadcast to [..., L, S] and are read through strides too (a key-padding mask [B, 1, 1, S] costs
nothing)."""
import math
import numbers

from .. import backend
from .._layout import ShapeError, broadcast_shapes, broadcast_strides
from ..backend.dtypes import DTypeMismatchError, require_float
from .random import _check_probability, _take_counters

TILE = 32             # rows per local-memory tile (BK), fewer where the device's local memory is small
MAX_HEAD_DIM = 256    # HE, HV: the per-work-item arrays of the kernels
GROUP = 64            # rows per work-group, at most
NONE, ADD, KEEP, DROP = 0, 1, 2, 3  # mask kinds (attention.cl)


def _mergeable(sizes, strides):
    """The one stride walking dims `sizes` in row-major order, or None."""
    stride = None
    for size, st in zip(reversed(sizes), reversed(strides)):
        if size == 1:
            continue
        if stride is None:
            stride, span = st, size
        elif st != stride * span:
            return None
        else:
            span *= size
    return 0 if stride is None else stride


def _grouped(views, batch):
    """Each view's (stride of batch group 0, of group 1), the batch split into (B0, B1), for views already
    broadcast to batch + their two matrix dims; None when no split suits every view."""
    n = len(batch)
    for t in range(n, -1, -1):
        strides = []
        for v in views:
            s0 = _mergeable(batch[:t], v[1][:t])
            s1 = _mergeable(batch[t:], v[1][t:n])
            if s0 is None or s1 is None:
                break
            strides.append((s0, s1))
        else:
            b0, b1 = math.prod(batch[:t]), math.prod(batch[t:])
            return (b0, b1), strides
    return None


class Problem:
    """The batch grouping and kernel arguments of one attention call."""

    def __init__(self, q, k, v, masks, scale, is_causal, dropout_p, op):
        for t, name in ((q, "query"), (k, "key"), (v, "value")):
            if not hasattr(t, "_storage"):
                raise TypeError(f"{op}: {name} must be a tensor, got {type(t).__name__}")
            if t.dim() < 2:
                raise ShapeError(f"{op}: {name} must have at least 2 dims [..., seq, features], got {t.shape}")
            if t.dtype != q.dtype:
                raise DTypeMismatchError(f"{op}: expected query, key and value to have the same dtype, got "
                                         f"{q.dtype}, {k.dtype}, {v.dtype}")
        require_float(q, op)
        self.L, self.E = q._shape[-2:]
        self.S, self.Ev = v._shape[-2:]
        if k._shape[-1] != self.E or k._shape[-2] != self.S:
            raise ShapeError(f"{op}: query {q.shape}, key {k.shape} and value {v.shape} do not fit: expected key "
                             f"[..., S, {self.E}] and value [..., S, Ev] with the same S")
        try:
            self.batch = broadcast_shapes(q._shape[:-2], k._shape[:-2], v._shape[:-2])
        except ShapeError:
            raise ShapeError(f"{op}: the batch dims of query {q.shape}, key {k.shape} and value {v.shape} do not "
                             f"broadcast") from None
        self.masks = []
        for mask, kind in masks:
            if mask is None:
                continue
            try:
                full = broadcast_shapes(mask._shape, self.batch + (self.L, self.S))
            except ShapeError:
                full = None
            if full != self.batch + (self.L, self.S):
                raise ShapeError(f"{op}: mask of shape {mask.shape} does not broadcast to the scores' shape "
                                 f"{list(self.batch + (self.L, self.S))}")
            self.masks.append((mask, kind))
        if scale is not None and (not isinstance(scale, numbers.Real) or isinstance(scale, bool)):
            raise TypeError(f"{op}: scale must be a number or None, got {type(scale).__name__}")
        self.scale = 1.0 / math.sqrt(self.E) if scale is None else float(scale)
        _check_probability(dropout_p, op)
        self.keep = 1.0 - float(dropout_p)
        self.causal = bool(is_causal)
        self.dtype = q.dtype
        self.fused = max(self.E, self.Ev) <= MAX_HEAD_DIM and self.E > 0 and self.Ev > 0

    def views(self, q, k, v, reads=(), writes=()):
        """(B0, B1) and the kernel view arguments (tensor, batch-0 stride, batch-1 stride, row stride, column
        stride) of q, k, v, the masks, `reads` (tensors of the broadcast batch shape) and new tensors for
        `writes` ((matrix shape, template): laid out in memory like the template, so an output shaped like a
        head-split view is a permutation of a plain buffer). Copies only when no batch split suits them all."""
        batch = self.batch
        tensors = [q, k, v] + [m if m.dtype == self.dtype else m.to(self.dtype) for m, _ in self.masks] + list(reads)
        shapes = ([batch + t._shape[-2:] for t in (q, k, v)] + [batch + (self.L, self.S)] * len(self.masks)
                  + [batch + t._shape[-2:] for t in reads])
        outs = [_dense_like(template, batch + tuple(shape), self.dtype) for shape, template in writes]
        views = ([(s, broadcast_strides(t._shape, t._strides, s)) for t, s in zip(tensors, shapes)]
                 + [(o._shape, o._strides) for o in outs])
        grouped = _grouped(views, batch)
        if grouped is None:  # strides that no split merges: copies in the broadcast shape, plain outputs
            tensors = [t.broadcast_to(s).contiguous() for t, s in zip(tensors, shapes)]
            outs = [q._empty(o._shape, self.dtype) for o in outs]
            views = [(s, t._strides) for t, s in zip(tensors, shapes)] + [(o._shape, o._strides) for o in outs]
            grouped = _grouped(views, batch)
        (b0, b1), batch_strides = grouped
        args = [(t, s0, s1, st[-2], st[-1]) for t, (_, st), (s0, s1) in zip(tensors + outs, views, batch_strides)]
        return (b0, b1), args, outs

    def kernel(self, name):
        """The kernel for these head sizes, with the largest tile whose [BK, head] arrays (the backward's
        four, and two per-row values) fit the device's local memory."""
        bk = TILE
        while bk > 1 and bk * (2 * self.E + 2 * self.Ev + 2) * self.dtype.itemsize > backend.device().local_mem_size:
            bk //= 2
        return backend.kernel("attention", name, self.dtype, (f"HE={self.E}", f"HV={self.Ev}", f"BK={bk}"))

    def launch(self, name, rows, nb, *args):
        """Run a row kernel: a work-group per block of rows of one batch element (2-D range rows x nb)."""
        k = self.kernel(name)
        group = min(GROUP, k.max_local, 1 << max(0, (rows - 1).bit_length()))
        group = 1 << (group.bit_length() - 1)
        backend.launch(k, (rows, nb), *args, local=(group, 1))


def _dense_like(template, shape, dtype):
    """A new tensor of `shape` whose memory order follows the template's strides (its dims by decreasing
    stride); contiguous when the template is broadcast along a dim of `shape`."""
    strides = broadcast_strides(template._shape, template._strides, shape)
    if any(st == 0 and n > 1 for st, n in zip(strides, shape)):
        return template._empty(shape, dtype)
    order = sorted(range(len(shape)), key=lambda d: (-strides[d], d))
    base = template._empty(tuple(shape[d] for d in order), dtype)
    return base.permute(tuple(sorted(range(len(shape)), key=order.__getitem__)))


def _score_args(p, b1, mask_args, counters):
    margs = []
    for i in range(2):
        if i < len(mask_args):
            t, s0, s1, sr, sc = mask_args[i][0]
            margs += [t, s0, s1, sr, sc, mask_args[i][1]]
        else:
            margs += [mask_args[0][0][0] if mask_args else None, 0, 0, 0, 0, NONE]
    return (b1, p.L, p.S, p.scale, int(p.causal), *margs, p.keep, *counters)


def forward(q, k, v, masks=(), scale=None, is_causal=False, dropout_p=0.0, op="scaled_dot_product_attention"):
    """(out [*batch, L, Ev], state for backward) of softmax(q k^T * scale + masks) v. masks: up to two
    (tensor, kind) pairs. The batch is the broadcast of q's, k's and v's leading dims; out is laid out like q."""
    p = Problem(q, k, v, masks, scale, is_causal, dropout_p, op)
    (b0, b1), args, (out,) = p.views(q, k, v, writes=[((p.L, p.Ev), q)])
    nb = b0 * b1
    lse = q._empty((nb * p.L,), p.dtype)
    # replayable: a clownpiece.jit replay draws fresh dropout counters (saved for the backward, which reuses them)
    counters = backend.replayable(_take_counters, nb * p.L * p.S) if p.keep < 1.0 else (0, 0, 0)
    mask_args = [(a, kind) for a, (_, kind) in zip(args[3:], p.masks)]
    score = _fill_dummy(_score_args(p, b1, mask_args, counters), q)
    p.launch("sdpa_fwd", p.L, nb, *_flat(args[-1:]), lse, *_flat(args[:3]), *score)
    return out, (p, lse, counters)


def _flat(view_args):
    flat = []
    for t, s0, s1, sr, sc in view_args:
        flat += [t, s0, s1, sr, sc]
    return flat


def _fill_dummy(score, q):
    """Absent masks point at q (never read: kind 0)."""
    return tuple(q if a is None else a for a in score)


def backward(grad, q, k, v, out, state, need_mask_grad):
    """(dq, dk, dv, dscores or None) in the broadcast batch shape, laid out like q, k, v: dq [*batch, L, E],
    dk [*batch, S, E], dv [*batch, S, Ev], dscores [*batch, L, S] (contiguous) when need_mask_grad. state:
    what forward returned (the problem keeps the masks)."""
    p, lse, counters = state
    (b0, b1), args, (dq, dk, dv) = p.views(q, k, v, reads=(out, grad),
                                          writes=[((p.L, p.E), q), ((p.S, p.E), k), ((p.S, p.Ev), v)])
    nb, nm = b0 * b1, len(p.masks)
    qkv, (o_arg, g_arg) = _flat(args[:3]), args[3 + nm:5 + nm]
    mask_args = [(a, kind) for a, (_, kind) in zip(args[3:3 + nm], p.masks)]
    score = _fill_dummy(_score_args(p, b1, mask_args, counters), q)
    D = q._empty((nb * p.L,), p.dtype)
    p.launch("sdpa_bwd_q", p.L, nb, *_flat(args[5 + nm:6 + nm]), D, *qkv, *_flat([o_arg, g_arg]), lse, *score)
    p.launch("sdpa_bwd_kv", p.S, nb, *_flat(args[6 + nm:8 + nm]), *qkv, *_flat([g_arg]), lse, D, *score)
    dscores = None
    if need_mask_grad:
        dscores = q._empty(p.batch + (p.L, p.S), p.dtype)
        backend.launch(p.kernel("sdpa_bwd_mask"), dscores._numel, dscores, *qkv, *_flat([g_arg]), lse, D, *score,
                       dscores._numel)
    return dq, dk, dv, dscores
