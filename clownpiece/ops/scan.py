"""Running sums and products along a dim, and prod (kernels: cl_kernels/scan.cl). The input is made
contiguous and seen as (outer, len, inner) lines; few long lines are split into blocks so every core works."""
from .._layout import ceil_div
from .. import backend
from .._layout import normalize_dim, numel

_MIN_BLOCK = 256          # elements a work-item scans before splitting a line pays for two more launches
_ITEMS_PER_UNIT = 64      # work-items per compute unit the blocked path aims for


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


def _scan(x, dim, mul, reverse, dtype, op):
    if dtype is not None:
        x = x.to(dtype)
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


class ScanOps:
    __slots__ = ()

    def cumsum(self, dim, dtype=None):
        """out[..., t, ...] = x[..., 0, ...] + ... + x[..., t, ...] along dim (in `dtype` if given)."""
        return _scan(self, dim, 0, 0, dtype, "cumsum")

    def cumprod(self, dim, dtype=None):
        """Running products along dim (in `dtype` if given)."""
        return _scan(self, dim, 1, 0, dtype, "cumprod")

    def prod(self, dim=None, keepdim=False, dtype=None):
        """The product of all elements (dim None: a 0-dim tensor), or along one dim."""
        x = self if dtype is None else self.to(dtype)
        if dim is None:
            return _reduce(x.reshape(-1), 0, 1, (), "prod")
        if x.dim() == 0:
            normalize_dim(dim, 0, "prod")
            return x.clone()
        d = normalize_dim(dim, x.dim(), "prod")
        shape = x._shape[:d] + ((1,) if keepdim else ()) + x._shape[d + 1:]
        return _reduce(x, d, 1, shape, "prod")

    def _cumsum_reverse(self, dim):
        """Sums from the end along dim: the gradient of cumsum."""
        return _scan(self, dim, 0, 1, None, "cumsum")

    def _cumprod_grad(self, x, dim):
        """The gradient of x.cumprod(dim) (self: the output's gradient), exact where x has zeros."""
        g = self.contiguous()
        xc, _, outer, length, inner = _lines(x, dim, "cumprod")
        out = g._empty(g._shape, g.dtype)
        nlines = outer * inner
        if out._numel:
            backend.launch(backend.kernel("scan", "cumprod_grad", g.dtype), nlines, out, g, xc, length, inner, nlines)
        return out
