"""Running sums and products along a dim, prod, and nonzero. Kernels: cl_kernels/scan.cl. A scan's input
is made contiguous and seen as (outer, len, inner) lines; few long lines are split into blocks so every
core works. nonzero counts the mask's blocks, scans the counts and writes each block's coordinates from
its prefix (indexing's bool masks use it too: ops/indexing.py)."""
from __future__ import annotations

from typing import Optional, Union

import numpy as np

from .. import backend
from .._layout import ceil_div, normalize_dim, numel
from .._types import DTypeLike, TensorT
from ..backend import dtypes as D

_MIN_BLOCK = 256          # elements a work-item scans before splitting a line pays for two more launches
_ITEMS_PER_UNIT = 64      # work-items per compute unit the blocked path aims for
_NONZERO_BLOCK = 256      # mask elements one work-item of nonzero counts and writes


def _lines(x, dim, op):
    """(contiguous x, d, outer, len, inner) for scanning x along dim (a 0-dim tensor is one 1-element line)."""
    if x.dim() == 0:
        normalize_dim(dim, 0, op)
        return x.contiguous(), 0, 1, 1, 1
    d = normalize_dim(dim, x.dim(), op)
    xc = x.contiguous()
    return xc, d, numel(xc._shape[:d]), xc._shape[d], numel(xc._shape[d + 1:])


def _blocks(nlines, length):
    """(block, nblocks) for the blocked path, or None when one work-item per line keeps the device busy."""
    target = backend.device().compute_units * _ITEMS_PER_UNIT
    if nlines >= target or length < 4 * _MIN_BLOCK:
        return None
    nblocks = min(ceil_div(target, nlines), length // _MIN_BLOCK)
    block = ceil_div(length, nblocks)
    return block, ceil_div(length, block)


def _accumulator(x, dtype):
    """(x converted to the dtype the kernels run in, the result dtype): `dtype` if given, else int64 for
    bool and integers (PyTorch), float32 for float16 (converted back at the end), x's own otherwise."""
    out = x.dtype if dtype is None else x._check_dtype(dtype)
    if dtype is None and out not in D.FLOATING:
        out = D.int64
    work = D.float32 if out is D.float16 else out
    return x.to(work), out


def _scan(x, dim, mul, reverse, dtype, op):
    x, result = _accumulator(x, dtype)
    return _scan_lines(x, dim, mul, reverse, op).to(result)


def _scan_lines(x, dim, mul, reverse, op):
    xc, _, outer, length, inner = _lines(x, dim, op)
    out = xc._empty(xc._shape, xc.dtype)
    nlines = outer * inner
    if out._numel == 0:
        return out
    blocks = _blocks(nlines, length)
    if blocks is None:
        backend.launch(backend.kernel("scan", "scan_lines", xc.dtype), nlines, out, xc, length, inner, nlines, mul,
                       reverse)
        return out
    block, nblocks = blocks
    tot = xc._empty((nlines, nblocks), xc.dtype)
    cum = xc._empty((nlines, nblocks), xc.dtype)
    nitems = nlines * nblocks
    backend.launch(backend.kernel("scan", "block_totals", xc.dtype), nitems, tot._storage, xc, length, inner, block,
                   nblocks, nitems, mul)
    backend.launch(backend.kernel("scan", "scan_lines", xc.dtype), nlines, cum, tot, nblocks, 1, nlines, mul,
                   reverse)
    backend.launch(backend.kernel("scan", "scan_blocks", xc.dtype), nitems, out, xc, cum._storage, length, inner,
                   block, nblocks, nitems, mul, reverse)
    return out


def _reduce(x, dim, mul, out_shape, op):
    xc, _, outer, length, inner = _lines(x, dim, op)
    out = xc._empty(out_shape, xc.dtype)
    nlines = outer * inner
    if nlines == 0:
        return out
    blocks = _blocks(nlines, length)
    knl = backend.kernel("scan", "reduce_lines", xc.dtype)
    if blocks is None:
        backend.launch(knl, nlines, out, xc, length, inner, nlines, mul)
        return out
    block, nblocks = blocks
    tot = xc._empty((nlines, nblocks), xc.dtype)
    nitems = nlines * nblocks
    backend.launch(backend.kernel("scan", "block_totals", xc.dtype), nitems, tot._storage, xc, length, inner, block,
                   nblocks, nitems, mul)
    backend.launch(knl, nlines, out, tot, nblocks, 1, nlines, mul)
    return out


def _nonzero_kernel(name):
    return backend.kernel("scan", name, D.int64)


class ScanOps:
    __slots__ = ()

    def cumsum(self: TensorT, dim: int, dtype: DTypeLike = None) -> TensorT:
        """out[..., t, ...] = x[..., 0, ...] + ... + x[..., t, ...] along dim, in `dtype` if given (integers
        and bool: int64)."""
        return _scan(self, dim, 0, 0, dtype, "cumsum")

    def cumprod(self: TensorT, dim: int, dtype: DTypeLike = None) -> TensorT:
        """Running products along dim (in `dtype` if given)."""
        return _scan(self, dim, 1, 0, dtype, "cumprod")

    def prod(self: TensorT, dim: Optional[int] = None, keepdim: bool = False, dtype: DTypeLike = None) -> TensorT:
        """The product of all elements (dim None: a 0-dim tensor), or along one dim."""
        x, result = _accumulator(self, dtype)
        if dim is None:
            return _reduce(x.reshape(-1), 0, 1, (), "prod").to(result)
        if x.dim() == 0:
            normalize_dim(dim, 0, "prod")
            return x.to(result, copy=True)
        d = normalize_dim(dim, x.dim(), "prod")
        shape = x._shape[:d] + ((1,) if keepdim else ()) + x._shape[d + 1:]
        return _reduce(x, d, 1, shape, "prod").to(result)

    def nonzero(self: TensorT, *, as_tuple: bool = False) -> Union[TensorT, tuple[TensorT, ...]]:
        """The coordinates of the nonzero elements, in row-major order: int64 [count, ndim], or with as_tuple
        a tuple of ndim 1-d tensors. Three launches and one read: the count (the shape depends on it)."""
        nd = self.dim()
        if nd > 8:
            raise RuntimeError(f"nonzero: tensors of more than 8 dims are not supported (got {nd})")
        mask = (self if self.dtype is D.bool_ else self != 0).contiguous()
        n = mask._numel
        blocks = ceil_div(n, _NONZERO_BLOCK)
        counts = mask._empty((blocks + 1,), D.int32)  # per block, then exclusive prefix sums and the total
        if n:
            backend.launch(_nonzero_kernel("nonzero_count"), blocks, counts, mask, n, _NONZERO_BLOCK)
        backend.launch(_nonzero_kernel("nonzero_scan"), 1, counts, blocks)
        total = np.empty(1, np.int32)
        backend.download(counts._storage, total, (counts._offset + blocks) * total.itemsize)
        count = int(total[0])
        out = self._empty((count, nd), D.int64)
        if count and nd:
            sh = np.ones(8, np.int32)
            sh[:nd] = self._shape[::-1]
            backend.launch(_nonzero_kernel("nonzero_write"), blocks, out, counts, mask, n, _NONZERO_BLOCK, nd, sh)
        if as_tuple:
            return tuple(out.select(1, d) for d in range(nd)) if nd else (out.reshape(count),)
        return out

    def _cumsum_reverse(self, dim):
        """Sums from the end along dim: the gradient of cumsum."""
        return _scan_lines(self.to(D.float32) if self.dtype is D.float16 else self, dim, 0, 1,
                           "cumsum").to(self.dtype)

    def _cumprod_grad(self, x, dim):
        """The gradient of x.cumprod(dim) (self: the output's gradient), exact where x has zeros."""
        work = D.float32 if self.dtype is D.float16 else self.dtype
        g = self.to(work).contiguous()
        xc, _, outer, length, inner = _lines(x.to(work), dim, "cumprod")
        out = g._empty(g._shape, work)
        nlines = outer * inner
        if out._numel:
            backend.launch(backend.kernel("scan", "cumprod_grad", work), nlines, out, g, xc, length, inner, nlines)
        return out.to(self.dtype)
