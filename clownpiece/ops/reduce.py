"""Reductions on TensorBase: sum/mean/var/std, max/min/argmax/argmin/amax/amin, the softmax family and the
gradient helpers autograd uses (softmax_grad, log_softmax_grad, sum_to). Kernels: cl_kernels/reduce.cl.

A reduction reads its (possibly non-contiguous) input in place: the kept dims and the reduced dims each
become a collapsed strided layout, one work-item per output element loops over the reduced elements. When
there are few outputs and long reductions the work is split into chunks whose partials a second launch
combines, so every core gets work."""
from __future__ import annotations

import collections
from typing import Optional

from .. import backend
from .._layout import ShapeError, ceil_div, contiguous_strides, kernel_meta, normalize_dim, normalize_dims, numel
from .._types import AnyTensor, DimLike, DTypeLike, ShapeLike, TensorT
from ..backend import dtypes as D
from .half import through_float32
from .shape import _shape_arg

_MIN_CHUNK = 256       # elements per work-item before splitting a reduction is worth a second launch
_ITEMS_PER_UNIT = 256  # work-items per compute unit a two-stage reduction aims for
_FAR_STRIDE = 1024     # reduced elements this far apart (column-like) are read in chunks of _MIN_CHUNK
_ONE_STAGE_MAX = 1 << 16  # below this many elements in all, a second launch costs more than it saves

# kmeta/rmeta: (nd, shape, strides) of the kept and the reduced dims; chunk/nchunk: the split of each
# output's nred elements over work-items (nchunk == 1: one stage).
_Plan = collections.namedtuple("_Plan", "nout nred kmeta rmeta chunk nchunk")
_plans = {}


def _plan(x, dims, ordered):
    """How to reduce `dims` of x. Unless the op depends on element order (max/argmax indices), the reduced
    dims are sorted by stride so that a permuted contiguous input still collapses to one strided loop."""
    key = (x._shape, x._strides, dims, ordered)
    plan = _plans.get(key)
    if plan is not None:
        return plan
    shape, strides = x._shape, x._strides
    kept = [d for d in range(len(shape)) if d not in dims]
    red = list(dims) if ordered else sorted(dims, key=lambda d: -abs(strides[d]))
    kmeta = kernel_meta(tuple(shape[d] for d in kept), tuple(strides[d] for d in kept))[:3]
    rmeta = kernel_meta(tuple(shape[d] for d in red), tuple(strides[d] for d in red))[:3]
    nout, nred = numel(shape[d] for d in kept), numel(shape[d] for d in red)
    plan = _Plan(nout, nred, kmeta, rmeta, *_split(nout, nred, abs(int(rmeta[2][0])) >= _FAR_STRIDE))
    if len(_plans) > 4096:
        _plans.clear()
    _plans[key] = plan
    return plan


def _split(nout, nred, far):
    """(chunk, nchunk): one chunk per output unless that leaves the device idle, or unless the reduced
    elements lie far apart: one work-item walking a whole column touches a new page per element, while
    short chunks let the work-items of a group share the rows they read (a CPU cache/TLB effect)."""
    if nout * nred <= _ONE_STAGE_MAX:
        return max(nred, 1), 1
    target_items = max(256, backend.device().compute_units * _ITEMS_PER_UNIT)
    wanted = ceil_div(target_items, max(nout, 1))
    if far:
        wanted = max(wanted, ceil_div(nred, _MIN_CHUNK))
    nchunk = min(wanted, nred // _MIN_CHUNK)
    if nchunk <= 1:
        return max(nred, 1), 1
    chunk = ceil_div(nred, nchunk)
    return chunk, ceil_div(nred, chunk)


def _keep(keepdims, keepdim):
    """`keepdim=` (PyTorch) is an alias of the course's `keepdims=`."""
    return bool(keepdims if keepdim is None else keepdim)


def _out_shape(shape, dims, keepdims):
    if keepdims:
        return tuple(1 if d in dims else s for d, s in enumerate(shape))
    return tuple(s for d, s in enumerate(shape) if d not in dims)


def _check_nonempty(x, dims, plan, op):
    if plan.nred == 0:
        raise RuntimeError(f"{op}: cannot reduce over an empty dim (input shape {x.shape}, dims {list(dims)}); "
                           f"expected the reduced dims to have at least one element")


def _single_dim(x, dim, op):
    """One reduced dim for max/min/logsumexp: an int or a 1-element list; None means -1 (course API)."""
    if dim is None:
        dim = -1
    if isinstance(dim, (list, tuple)):
        if len(dim) != 1:
            raise RuntimeError(f"{op}: expected a single dim, got {list(dim)}")
        dim = dim[0]
    d = normalize_dim(dim, x.dim(), op)
    return (d,) if x._shape else ()  # a 0-dim tensor accepts dim 0/-1 and reduces nothing


def _reduce_args(x, plan):
    """The arguments every *_r kernel takes after its outputs: the input and the split."""
    return x, plan.nout, plan.nred, plan.chunk, plan.nchunk


def _floating(x, op):
    """x, if floating (var, std and the softmax family need it, as in PyTorch)."""
    if x.dtype not in D.FLOATING:
        raise TypeError(f"{op}: not supported for {x.dtype.name} tensors; it takes floating tensors "
                        f"(convert with .float())")
    return x


def _sum(x, dims, out_shape, mean=False, op="sum"):
    """sum (bool and integers give int64) or mean (bool and integers give float32: numpy's rule, where
    PyTorch refuses; docs/api.md, dtypes)."""
    if mean and x.dtype not in D.FLOATING:
        x = x.to(D.DEFAULT_FLOAT)
    plan = _plan(x, dims, ordered=False)
    if mean:
        _check_nonempty(x, dims, plan, op)
    out_dtype = x.dtype if x.dtype is D.float32 else D.sum_dtype(x.dtype)
    out = x._empty(out_shape, out_dtype)
    if plan.nout == 0:
        return out
    if plan.nred == 0:
        return out.zero_()
    args = _reduce_args(x, plan)
    acc = out_dtype if out_dtype is D.float32 else D.compute_dtype(out_dtype)
    denom = D.INFO[acc].scalar(plan.nred if mean else 1)
    knl = backend.kernel("reduce", "sum_r", x.dtype)
    if plan.nchunk == 1:  # part (only written with several chunks) points at out
        backend.launch(knl, plan.nout, out, out, *args, denom, *plan.kmeta, *plan.rmeta)
        return out
    part = backend.alloc(plan.nout * plan.nchunk * acc.itemsize)
    backend.launch(knl, plan.nout * plan.nchunk, part, 0, part, 0, *args, denom, *plan.kmeta, *plan.rmeta)
    backend.launch(backend.kernel("reduce", "sum_partials", x.dtype), plan.nout, out, part, 0, plan.nout,
                   plan.nchunk, denom)
    return out


def _extremum(x, kind, dims, out_shape, want_idx, op):
    """(values, int64 indices or None) of max/min over `dims`; indices count row-major over the reduced
    dims."""
    plan = _plan(x, dims, ordered=want_idx)
    _check_nonempty(x, dims, plan, op)
    vals = x._empty(out_shape, x.dtype)
    idx = x._empty(out_shape, D.int64) if want_idx else None
    if plan.nout == 0:
        return vals, idx
    args = _reduce_args(x, plan)
    flag = int(want_idx)
    idx_out = idx if want_idx else vals  # not written when flag is 0
    knl = backend.kernel("reduce", kind + "_r", x.dtype)
    if plan.nchunk == 1:
        backend.launch(knl, plan.nout, vals, idx_out, *args, flag, *plan.kmeta, *plan.rmeta)
        return vals, idx
    count = plan.nout * plan.nchunk
    pv, pi = backend.alloc(count * x.dtype.itemsize), backend.alloc(count * D.int64.itemsize)
    # partials always carry indices: the combine step needs them to report the winning chunk's position
    backend.launch(knl, count, pv, 0, pi, 0, *args, 1, *plan.kmeta, *plan.rmeta)
    backend.launch(backend.kernel("reduce", kind + "_partials", x.dtype), plan.nout, vals, idx_out, pv, 0, pi, 0,
                   plan.nout, plan.nchunk, flag)
    return vals, idx


def _var(x, dims, out_shape, unbiased, take_sqrt, op):
    _floating(x, op)
    plan = _plan(x, dims, ordered=False)
    _check_nonempty(x, dims, plan, op)
    out = x._empty(out_shape, x.dtype)
    if plan.nout == 0:
        return out
    args = _reduce_args(x, plan)
    ddof, sqrt_flag = 1 if unbiased else 0, int(take_sqrt)
    knl = backend.kernel("reduce", "var_r", x.dtype)
    if plan.nchunk == 1:  # pmean and pm2 (only written with several chunks) point at out
        backend.launch(knl, plan.nout, out, out, out, *args, ddof, sqrt_flag, *plan.kmeta, *plan.rmeta)
        return out
    nbytes = plan.nout * plan.nchunk * D.compute_dtype(x.dtype).itemsize
    pmean, pm2 = backend.alloc(nbytes), backend.alloc(nbytes)
    backend.launch(knl, plan.nout * plan.nchunk, pmean, 0, pmean, 0, pm2, 0, *args, ddof, sqrt_flag, *plan.kmeta,
                   *plan.rmeta)
    backend.launch(backend.kernel("reduce", "var_partials", x.dtype), plan.nout, out, pmean, 0, pm2, 0,
                   plan.nout, plan.nchunk, plan.chunk, plan.nred, ddof, sqrt_flag)
    return out


def _rows(x, dim, *operands):
    """Row layout for the softmax family along `dim`: (nrows, length, per-operand row strides, META).
    operands: extra (shape-equal) tensors whose rows are walked alongside x; the contiguous output is last."""
    shape = x._shape
    out_strides = contiguous_strides(shape)
    strides = [t._strides for t in (x,) + operands] + [out_strides]
    if not shape:  # 0-dim: one row of one element
        return 1, 1, [0] * len(strides), kernel_meta((), *([()] * len(strides)))
    kept = [k for k in range(len(shape)) if k != dim]
    kept_shape = tuple(shape[k] for k in kept)
    meta = kernel_meta(kept_shape, *(tuple(st[k] for k in kept) for st in strides))
    return numel(kept_shape), shape[dim], [st[dim] for st in strides], meta


def _contiguous_rows(d, *tensors):
    """(nrows, length) when every tensor is non-empty, contiguous and `d` is its last dim (the *_rows_c
    kernels), else None."""
    x = tensors[0]
    if x._numel and all(t._contig for t in tensors) and d >= x.dim() - 1:
        length = x._shape[d] if x._shape else 1
        return x._numel // length, length
    return None


def _softmax(x, dim, mode, op):
    if _floating(x, op).dtype is D.float16:
        return through_float32(_softmax, (x, dim, mode, op), {})  # the row kernels: float and double only
    d = normalize_dim(dim, x.dim(), op)
    out = x._empty(x._shape, x.dtype)
    rows = _contiguous_rows(d, x)
    if rows:
        backend.launch(backend.kernel("reduce", "softmax_rows_c", x.dtype), rows[0], out, x, rows[0], rows[1], mode)
    elif out._numel:
        nrows, length, (sa, so), meta = _rows(x, d)
        backend.launch(backend.kernel("reduce", "softmax_rows", x.dtype), nrows, out, x, nrows, length, sa, so,
                       mode, *meta)
    return out


def _softmax_grad(g, y, dim, mode, op):
    if not isinstance(y, ReduceOps):
        raise TypeError(f"{op}: expected the forward output tensor, got {type(y).__name__}")
    if g._shape != y._shape:
        raise ShapeError(f"{op}: gradient shape {g.shape} does not match output shape {y.shape}")
    if g.dtype != y.dtype:
        raise TypeError(f"{op}: gradient dtype {g.dtype} does not match output dtype {y.dtype}")
    if _floating(g, op).dtype is D.float16:
        return through_float32(_softmax_grad, (g, y, dim, mode, op), {})
    d = normalize_dim(dim, g.dim(), op)
    out = g._empty(g._shape, g.dtype)
    rows = _contiguous_rows(d, g, y)
    if rows:
        backend.launch(backend.kernel("reduce", "softmax_grad_rows_c", g.dtype), rows[0], out, g, y, rows[0],
                       rows[1], mode)
    elif out._numel:
        nrows, length, (sg, sy, so), meta = _rows(g, d, y)
        backend.launch(backend.kernel("reduce", "softmax_grad_rows", g.dtype), nrows, out, g, y, nrows, length,
                       sg, sy, so, mode, *meta)
    return out


class ReduceOps:
    __slots__ = ()

    def _reduced_dims(self, dim, op):
        """Normalised, sorted dims. None or an empty list mean all dims (as in PyTorch); a 0-dim tensor
        accepts dim 0/-1 and reduces nothing."""
        if dim is None or (isinstance(dim, (list, tuple)) and len(dim) == 0):
            return tuple(range(self.dim()))
        dims = normalize_dims(dim, self.dim(), op)
        return dims if self._shape else ()

    # ---- sum / mean / var / std -------------------------------------------------------------------------
    def sum(self: TensorT, dim: DimLike = None, keepdims: bool = False, *, keepdim: Optional[bool] = None,
            dtype: DTypeLike = None) -> TensorT:
        """Bool and integers sum in int64; with `dtype` the input is converted to it first and the result is
        in it (PyTorch; an int32 sum wraps as it would accumulated in int32)."""
        dims = self._reduced_dims(dim, "sum")
        if dtype is None:
            return _sum(self, dims, _out_shape(self._shape, dims, _keep(keepdims, keepdim)))
        dtype = self._check_dtype(dtype)
        out = _sum(self.to(dtype), dims, _out_shape(self._shape, dims, _keep(keepdims, keepdim)))
        return out if out.dtype is dtype else out.to(dtype)

    def mean(self: TensorT, dim: DimLike = None, keepdims: bool = False, *, keepdim: Optional[bool] = None,
             dtype: DTypeLike = None) -> TensorT:
        """Bool and integers give float32 (docs/api.md); with a floating `dtype` the input is converted to it
        first (PyTorch)."""
        dims = self._reduced_dims(dim, "mean")
        x = self
        if dtype is not None:
            dtype = self._check_dtype(dtype)
            if dtype not in D.FLOATING:
                raise TypeError(f"mean: dtype must be a floating dtype, got {dtype.name}")
            x = self.to(dtype)
        return _sum(x, dims, _out_shape(self._shape, dims, _keep(keepdims, keepdim)), mean=True, op="mean")

    def var(self: TensorT, dim: DimLike = None, keepdims: bool = False, unbiased: bool = True, *,
            keepdim: Optional[bool] = None) -> TensorT:
        """Divides by n - 1 when unbiased, else by n (n = 1 unbiased gives NaN, as in PyTorch)."""
        dims = self._reduced_dims(dim, "var")
        return _var(self, dims, _out_shape(self._shape, dims, _keep(keepdims, keepdim)), unbiased, False, "var")

    def std(self: TensorT, dim: DimLike = None, keepdims: bool = False, unbiased: bool = True, *,
            keepdim: Optional[bool] = None) -> TensorT:
        dims = self._reduced_dims(dim, "std")
        return _var(self, dims, _out_shape(self._shape, dims, _keep(keepdims, keepdim)), unbiased, True, "std")

    # ---- max / min (course form: (values, indices)), argmax / argmin, amax / amin ---------------------
    def max(self: TensorT, dim: int = -1, keepdims: bool = False, *,
            keepdim: Optional[bool] = None) -> tuple[TensorT, TensorT]:
        """(values, indices) along one dim; indices are int64, first occurrence on ties, NaN wins."""
        dims = _single_dim(self, dim, "max")
        return _extremum(self, "max", dims, _out_shape(self._shape, dims, _keep(keepdims, keepdim)), True, "max")

    def min(self: TensorT, dim: int = -1, keepdims: bool = False, *,
            keepdim: Optional[bool] = None) -> tuple[TensorT, TensorT]:
        dims = _single_dim(self, dim, "min")
        return _extremum(self, "min", dims, _out_shape(self._shape, dims, _keep(keepdims, keepdim)), True, "min")

    def _arg(self, kind, dim, keepdims, op):
        if dim is None:  # index into the flattened tensor, counted in logical (row-major) order
            dims = tuple(range(self.dim()))
        else:
            dims = (normalize_dim(dim, self.dim(), op),) if self._shape else ()
        return _extremum(self, kind, dims, _out_shape(self._shape, dims, keepdims), True, op)[1]

    def argmax(self: TensorT, dim: DimLike = None, keepdims: bool = False, *,
               keepdim: Optional[bool] = None) -> TensorT:
        return self._arg("max", dim, _keep(keepdims, keepdim), "argmax")

    def argmin(self: TensorT, dim: DimLike = None, keepdims: bool = False, *,
               keepdim: Optional[bool] = None) -> TensorT:
        return self._arg("min", dim, _keep(keepdims, keepdim), "argmin")

    def amax(self: TensorT, dim: DimLike = None, keepdims: bool = False, *, keepdim: Optional[bool] = None) -> TensorT:
        dims = self._reduced_dims(dim, "amax")
        return _extremum(self, "max", dims, _out_shape(self._shape, dims, _keep(keepdims, keepdim)), False,
                         "amax")[0]

    def amin(self: TensorT, dim: DimLike = None, keepdims: bool = False, *, keepdim: Optional[bool] = None) -> TensorT:
        dims = self._reduced_dims(dim, "amin")
        return _extremum(self, "min", dims, _out_shape(self._shape, dims, _keep(keepdims, keepdim)), False,
                         "amin")[0]

    # ---- softmax family (row max subtracted: stable for large logits) ---------------------------------
    def softmax(self: TensorT, dim: int = -1) -> TensorT:
        return _softmax(self, dim, 0, "softmax")

    def log_softmax(self: TensorT, dim: int = -1) -> TensorT:
        return _softmax(self, dim, 1, "log_softmax")

    def logsumexp(self: TensorT, dim: int = -1, keepdims: bool = False, *, keepdim: Optional[bool] = None) -> TensorT:
        if _floating(self, "logsumexp").dtype is D.float16:
            return through_float32(ReduceOps.logsumexp, (self, dim, keepdims), {"keepdim": keepdim})
        d = _single_dim(self, dim, "logsumexp")
        out = self._empty(_out_shape(self._shape, d, _keep(keepdims, keepdim)), self.dtype)
        rows = _contiguous_rows(d[0] if d else 0, self)
        if rows:
            backend.launch(backend.kernel("reduce", "logsumexp_rows_c", self.dtype), rows[0], out, self, rows[0],
                           rows[1])
        elif out._numel:
            nrows, length, (sa, _), meta = _rows(self, d[0] if d else 0)
            backend.launch(backend.kernel("reduce", "logsumexp_rows", self.dtype), nrows, out, self, nrows, length,
                           sa, *meta)
        return out

    # ---- gradient helpers for autograd (self is the incoming gradient) ---------------------------------
    def softmax_grad(self: TensorT, output: AnyTensor, dim: int = -1) -> TensorT:
        """y * (g - sum(g * y, dim)) for y = softmax output, in one launch."""
        return _softmax_grad(self, output, dim, 0, "softmax_grad")

    def log_softmax_grad(self: TensorT, output: AnyTensor, dim: int = -1) -> TensorT:
        """g - exp(y) * sum(g, dim) for y = log_softmax output, in one launch."""
        return _softmax_grad(self, output, dim, 1, "log_softmax_grad")

    # ---- truth reductions -----------------------------------------------------------------------------
    def any(self: TensorT, dim: DimLike = None, keepdim: Optional[bool] = False) -> TensorT:
        """Whether any element along dim (None: all dims; an int or a tuple) is nonzero (NaN counts), as
        bool; False over an empty dim."""
        return self._truth(dim, keepdim, "any")

    def all(self: TensorT, dim: DimLike = None, keepdim: Optional[bool] = False) -> TensorT:
        """Whether every element along dim is nonzero, as bool; True over an empty dim."""
        return self._truth(dim, keepdim, "all")

    def count_nonzero(self: TensorT, dim: DimLike = None) -> TensorT:
        """How many elements along dim (None: all; an int or a tuple) are nonzero, as int64."""
        dims = self._reduced_dims(dim, "count_nonzero")
        return (self != 0).sum(list(dims) if dims else dims)

    def _truth(self, dim, keepdim, op):
        dims = self._reduced_dims(dim, op)
        nonzero = self != 0
        if nonzero.dtype is not D.bool_:
            nonzero = nonzero.to(D.bool_)
        if not dims:
            return nonzero.reshape(self._shape)
        if any(self._shape[d] == 0 for d in dims):
            shape = _out_shape(self._shape, dims, bool(keepdim))
            return self._empty(shape, D.bool_)._assign_from(op == "all")
        return nonzero.amax(dims, keepdim) if op == "any" else nonzero.amin(dims, keepdim)

    def sum_to(self: TensorT, *shape: ShapeLike) -> TensorT:
        """Sum a broadcast result back to `shape` (the gradient of broadcasting); self when it already is."""
        shape = _shape_arg(shape, "sum_to")
        if shape == self._shape:
            return self
        lead = self.dim() - len(shape)
        if lead < 0 or any(s != 1 and s != self._shape[lead + i] for i, s in enumerate(shape)):
            raise ShapeError(f"sum_to: shape {self.shape} cannot be summed to {list(shape)}; expected a shape "
                             f"that broadcasts to it")
        if numel(shape) == self._numel:  # only size-1 dims differ
            return self.reshape(shape)
        broadcast = tuple(lead + i for i, s in enumerate(shape) if s == 1 and self._shape[lead + i] != 1)
        return _sum(self, tuple(range(lead)) + broadcast, shape)
