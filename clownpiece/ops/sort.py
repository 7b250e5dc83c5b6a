"""Sorting on TensorBase: sort, argsort, topk, msort (kernels: cl_kernels/sort.cl, a stable merge sort; topk
with k >= 32 in long rows selects its k with a radix select first and orders only those).

The sorted dim is moved last and made contiguous ([rows, len]); the results come back in the input's dim
order. Rows are sorted as integer keys that encode the order (cl_kernels/sort.cl); every dtype; indices are
int64. Ties keep their input order (so every sort is stable, `stable=` or not) and NaN sorts as the largest
value, as in PyTorch."""
from __future__ import annotations

import collections

import pyopencl as cl

from .. import backend
from .._layout import IndexOutOfRange, ceil_div, normalize_dim
from .._types import TensorT
from ..backend import dtypes as D

_RUN = 32   # elements each work-item of sort_runs sorts by insertion (RUN in sort.cl)
_PER = 64   # outputs each work-item of a merge pass writes
_LONG_RUN = 4096       # elements a sort_runs work-item scans at most for topk with k < _RUN
_ITEMS_PER_UNIT = 256  # work-items per compute unit that topk's long runs aim for
# topk with _RUN <= k <= len * _SELECT_MAX_SHARE in rows of at least _SELECT_MIN_LEN selects its k first
# (radix select) and sorts only those: the merge passes would run until their runs hold k
_SELECT_MIN_LEN = 1024
_SELECT_MAX_SHARE = 0.5
_SELECT_GROUPS = 256   # work-groups per row at most (select_pick adds up the groups' counts one by one)
# Work-group geometry of the select kernels, (work-items, elements per work-item): where local memory is
# emulated in global memory (CPUs: a work-group's overhead is a loop over its work-items, local atomics are
# global ones) long parts, with select_hist's first pass counting in private memory (PRIVATE_HIST: no
# atomics); with dedicated local memory (GPUs) many short ones, counting with local atomics
_SELECT_CPU = (64, 2048)
_SELECT_OTHER = (256, 16)
_PRIVATE_HIST = None   # None: PRIVATE_HIST without dedicated local memory (the tests choose)
_RADIX = 256           # RADIX in sort.cl: 8 bits of the key per pass
_RANK_MAX_K = 1024     # up to this k (and rows * k^2 comparisons) the selected are put in order by
_RANK_MAX_WORK = 1 << 22  # select_rank (one launch), else by the merge sort

SortResult = collections.namedtuple("sort", "values indices")
TopkResult = collections.namedtuple("topk", "values indices")


def _rows_last(x, d):
    """x with dim d moved last, contiguous: (tensor, rows, len)."""
    xt = x if d == x.dim() - 1 else x.transpose(d, -1)
    xt = xt.contiguous()
    n = xt._shape[-1] if xt._shape else 1
    return xt, (xt._numel // n if n else 0), n


def _defines(dtype):
    """Elements of at most 4 bytes are built with PACK (the position fits beside the key in 64 bits)."""
    return ("PACK",) if dtype.itemsize <= 4 else ()


def _kernel(name, dtype):
    return backend.kernel("sort", name, dtype, _defines(dtype))


def _sorted_rows(x, rows, n, k, descending, positions=None):
    """(values, indices) [rows, k]: the first k of each sorted row of the contiguous [rows, n] x. positions
    (an int32 [rows, n] buffer: topk's candidates' places in the input) maps each row's element to the index
    returned for it."""
    dtype = x.dtype
    if rows == 0 or k == 0:
        return x._empty((rows, k), dtype), x._empty((rows, k), D.int64)
    if _RUN <= k < n and k <= n * _SELECT_MAX_SHARE and n >= _SELECT_MIN_LEN and positions is None:
        candidates, positions, keys = _selected(x, rows, n, k, descending)
        if k > _RANK_MAX_K or rows * k * k > _RANK_MAX_WORK:
            return _sorted_rows(candidates, rows, k, k, descending, positions)
        vals, idx = x._empty((rows, k), dtype), x._empty((rows, k), D.int64)
        backend.launch(_kernel("select_rank", dtype), rows * k, vals, idx, candidates, positions, keys, k, rows * k)
        return vals, idx
    packed = dtype.itemsize <= 4

    def kernel(name):
        return _kernel(name, dtype)

    def scratch():  # 8-byte keys, and 4-byte positions unless they are packed into the keys
        key = backend.alloc(rows * n * 8)
        return key, (key if packed else backend.alloc(rows * n * 4))

    keys, pos = scratch()
    desc = int(bool(descending))
    run = min(_RUN, n)
    if k < _RUN:  # runs keep k: scan long runs, enough of them to keep every core busy
        items = backend.device().compute_units * _ITEMS_PER_UNIT
        run = max(run, min(_LONG_RUN, ceil_div(rows * n, items)))
    runs_per_row = ceil_div(n, run)
    w = min(run, k)  # each run keeps its first k
    length = (runs_per_row - 1) * w + min(n - (runs_per_row - 1) * run, k)
    backend.launch(kernel("sort_runs"), rows * runs_per_row, keys, pos, x, n, run, k, runs_per_row, length,
                   rows * runs_per_row, desc)
    stride = length
    spare = None
    while w < length:
        w_out = min(2 * w, k)
        pairs = ceil_div(length, 2 * w)
        out_len = (pairs - 1) * w_out + min(length - (pairs - 1) * 2 * w, k)
        spare = spare or scratch()
        chunks = ceil_div(w_out, _PER)
        items = pairs * chunks
        backend.launch(kernel("merge_pass"), rows * items, spare[0], spare[1], keys, pos, length, stride, out_len,
                       w, w_out, k, chunks, items, rows * items, _PER)
        (keys, pos), spare = spare, (keys, pos)
        w, length, stride = w_out, out_len, out_len
    vals, idx = x._empty((rows, k), dtype), x._empty((rows, k), D.int64)
    backend.launch(kernel("sort_out"), rows * k, vals, idx, x, keys, pos, keys if positions is None else positions,
                   int(positions is not None), n, stride, k, rows * k, desc)
    return vals, idx


def _selected(x, rows, n, k, descending):
    """(candidates, positions, keys): the k elements of each row of the contiguous [rows, n] x that come
    first in its stable sort (those below the k-th key, then the first of those equal to it), in input
    order, as a [rows, k] tensor, their positions in x (int32 [rows, k]) and their order keys (for
    select_rank: 32 or 64 bits, as the dtype's). A radix select (sort.cl): the key's bits / 8 passes of
    select_hist and select_pick (a settled row's later passes return at once), then select_scatter; nothing
    read back."""
    dtype = x.dtype
    dev = backend.device()
    private = not dev.local_mem_dedicated if _PRIVATE_HIST is None else _PRIVATE_HIST
    hist_k = backend.kernel("sort", "select_hist", dtype, _defines(dtype) + (("PRIVATE_HIST",) if private else ()))
    pick_k, scatter_k = _kernel("select_pick", dtype), _kernel("select_scatter", dtype)
    items, per_item = _SELECT_CPU if private else _SELECT_OTHER
    if private:  # short rows: fewer work-items, each still long (their private counts cost 2 * RADIX)
        items = min(items, ceil_div(n, per_item))
    local = 1 << (min(items, hist_k.max_local, pick_k.max_local, scatter_k.max_local).bit_length() - 1)
    groups = ceil_div(n, local * per_item)
    if private and rows < 2 * dev.compute_units:  # a few work-groups per compute unit, if the row is long
        groups = max(groups, min(2 * dev.compute_units, ceil_div(n, local * 256)))
    groups = max(1, min(_SELECT_GROUPS, groups))
    span = ceil_div(n, groups)
    hist = backend.alloc(rows * groups * _RADIX * 4)
    prefix, left, level = backend.alloc(rows * 8), backend.alloc(rows * 4), backend.alloc(rows * 4)
    below, equal = backend.alloc(rows * groups * 4), backend.alloc(rows * groups * 4)
    bits = 32 if dtype.itemsize <= 4 else 64
    desc = int(bool(descending))
    for p in range(bits // 8):
        shift, first, last = bits - 8 * (p + 1), int(p == 0), int(p == bits // 8 - 1)
        backend.launch(hist_k, rows * groups * local, hist, prefix, level, x, n, groups, span, shift, first, desc,
                       cl.LocalMemory(_RADIX * 4), local=local)
        backend.launch(pick_k, rows * local, prefix, left, level, below, equal, hist, groups, shift, first, last, k,
                       cl.LocalMemory((_RADIX + 2) * 4), local=local)
    cand, cpos, ckey = x._empty((rows, k), dtype), backend.alloc(rows * k * 4), backend.alloc(rows * k * bits // 8)
    backend.launch(scatter_k, rows * groups * local, cand, cpos, ckey, x, n, prefix, left, level, below, equal,
                   groups, span, k, desc, cl.LocalMemory(2 * local * 4), local=local)
    return cand, cpos, ckey


def _restore(t, shape, d):
    """A [rows, k] result back in the input's dim order (shape: the result's shape with dim d last)."""
    t = t.reshape(shape)
    return t if d == len(shape) - 1 else t.transpose(d, -1).contiguous()


def _sort(x, dim, descending, k, op):
    if x.dim() == 0:
        normalize_dim(dim, 0, op)
        if k > 1:
            raise IndexOutOfRange(f"{op}: k ({k}) is out of range for a 0-d tensor (expected 0 or 1)")
        v, i = _sorted_rows(x.reshape(1, 1), 1, 1, k, descending)
        return v.reshape(()) if k else v.reshape((0,)), i.reshape(()) if k else i.reshape((0,))
    d = normalize_dim(dim, x.dim(), op)
    xt, rows, n = _rows_last(x, d)
    vals, idx = _sorted_rows(xt, rows, n, k, descending)
    shape = xt._shape[:-1] + (k,)
    return _restore(vals, shape, d), _restore(idx, shape, d)


class SortOps:
    __slots__ = ()

    def sort(self, dim: int = -1, descending: bool = False, stable: bool = False) -> SortResult:
        """(values, indices) along dim, ascending unless descending=True. Stable whatever `stable` says."""
        n = self._shape[normalize_dim(dim, self.dim(), "sort")] if self._shape else 1
        return SortResult(*_sort(self, dim, descending, n, "sort"))

    def argsort(self: TensorT, dim: int = -1, descending: bool = False, stable: bool = False) -> TensorT:
        return self.sort(dim, descending, stable)[1]

    def msort(self: TensorT) -> TensorT:
        return self.sort(0)[0]

    def topk(self, k: int, dim: int = -1, largest: bool = True, sorted: bool = True) -> TopkResult:
        """(values, indices) of the k largest (smallest with largest=False) elements along dim, in sorted
        order (also with sorted=False); ties keep their input order."""
        if not isinstance(k, int) or isinstance(k, bool):
            raise TypeError(f"topk: k must be an int, got {type(k).__name__}")
        n = self._shape[normalize_dim(dim, self.dim(), "topk")] if self._shape else 1
        if not 0 <= k <= n:
            raise IndexOutOfRange(f"topk: k ({k}) is out of range for dim {dim} of size {n} (expected 0..{n})")
        return TopkResult(*_sort(self, dim, largest, k, "topk"))

    def _sort_grad(self, indices, dim, size):
        """The gradient of sort/topk (self: the gradient of the values): self scattered into zeros at
        `indices` along dim, which has `size` elements in the input."""
        if self.dim() == 0:
            return self.clone()
        d = normalize_dim(dim, self.dim(), "sort")
        g, rows, k = _rows_last(self, d)
        idx = _rows_last(indices.to(D.int64), d)[0]
        out = self._empty(g._shape[:-1] + (size,), self.dtype)._assign_from(0.0)
        backend.launch(_kernel("sort_grad", self.dtype), rows * k, out, g, idx, size, k, rows * k)
        return out if d == self.dim() - 1 else out.transpose(d, -1).contiguous()
