"""Indexing and data movement on TensorBase: `t[idx]` views, tensor-index gathers, `t[idx] = value`,
index_select / gather / scatter_ / scatter_add_ / index_add_, masked_fill, one_hot, and the module-level
cat / stack / broadcast_tensors. Kernels: cl_kernels/index.cl; plain strided copies reuse elementwise.cl's
assign kernels through ShapeOps._assign_from.

Index tensors are int64 or int32 (PyTorch), or float tensors of integral values (the course's: rounded).
Negative ids wrap. The ids live on the device and are never read back for a check: an id out of range is
reported by the kernel (backend/checks.py) and raises at the next host read, while the gather gives NaN for
it (0 for integer and bool data) and the scatter skips it. The index forms beyond a tensor of row ids
(masks, several index tensors, lists, strided slices) are parsed by ops/indexing.py."""
from __future__ import annotations

import math
import numbers
from typing import Any, Sequence

import numpy as np

from .. import backend
from .._layout import (
    IndexOutOfRange,
    ShapeError,
    broadcast_shapes,
    broadcast_strides,
    contiguous_layout,
    is_int,
    kernel_meta,
    normalize_dim,
    numel,
)
from .._types import AnyTensor, TensorOrScalar, TensorT
from ..backend import checks, dtypes as D
from . import indexing
from .elementwise import where
from .shape import ShapeOps, _fill_value


def _drop(seq, d):
    return tuple(seq[:d]) + tuple(seq[d + 1:])


def _check_broadcasts_to(shape, target, op, what="value"):
    if len(shape) > len(target) or any(s != 1 and s != t for s, t in zip(reversed(shape), reversed(target))):
        raise ShapeError(f"{op}: {what} of shape {list(shape)} cannot be broadcast to shape {list(target)}")


def _tensor_arg(x, op, what="index"):
    if not isinstance(x, IndexOps):
        raise TypeError(f"{op}: {what} must be a tensor, got {type(x).__name__}")
    return x


def _as_dtype(t, dtype):
    return t if t.dtype is dtype else t.to(dtype)


def _ids(index, op):
    """An index tensor in a dtype the index kernels read: int32, int64, float32 or float64 (float16 ids are
    widened to float32). A bool tensor is a mask, not a list of ids."""
    if index.dtype is D.bool_:
        raise TypeError(f"{op}: a bool tensor is a mask, not an index; use an int64 (or float) index tensor")
    return index.to(D.float32) if index.dtype is D.float16 else index


# what each op's kernels report for an id outside its dim (backend/checks.py)
_BAD_ID = {op: checks.register(op, "index {value} is out of bounds for a dimension of size {bound}")
           for op in ("__getitem__", "take_rows", "index_select", "gather", "__setitem__", "index_put_",
                      "scatter_", "scatter_add_", "index_add_")}


_BAD_CLASS = checks.register("one_hot", "class value {value} is not in [0, num_classes = {bound}) (a float id is "
                                        "shown truncated to an integer)")


def _inferred_classes(ids):
    """one_hot's num_classes=-1: the largest id + 1 (one read; PyTorch reads it too)."""
    if ids._numel == 0:
        raise RuntimeError("one_hot: cannot infer num_classes (num_classes=-1) from an empty tensor; pass "
                           "num_classes")
    top = ids.amax().item()
    if isinstance(top, float):  # the course's float ids are rounded as the kernel rounds them
        if not math.isfinite(top):
            raise RuntimeError(f"one_hot: cannot infer num_classes from a largest id of {top}")
        top = round(top)
    if top < 0:
        raise RuntimeError(f"one_hot: class values must be non-negative, and the largest id is {top}")
    return top + 1


def _kernel(name, dtype, ids):
    """index.cl's kernel for data of `dtype` and ids (or a mask) like `ids`."""
    return backend.kernel("index", name, dtype, D.index_defines(ids.dtype))


def _mask(mask):
    """A mask as the masked_fill kernels read it: in its own dtype, except float16 (stored as half)."""
    return mask.to(D.bool_) if mask.dtype is D.float16 else mask


class IndexOps:
    __slots__ = ()

    # ---- t[idx] -----------------------------------------------------------------------------------
    def __getitem__(self: TensorT, idx: Any) -> TensorT:
        """t[idx] with PyTorch's rules (ops/indexing.py): ints, slices (positive steps), None and `...` give a
        view; index tensors (int64/int32, or the course's integral floats), lists of ints and bool masks, in
        any position and several at once, gather into a new tensor. A tensor of ids alone gathers rows along
        dim 0 (take_rows); out-of-range ids raise at the next host read (backend/checks.py)."""
        shape = self._shape
        if type(idx) is int and shape and -shape[0] <= idx < shape[0]:
            # t[i], the most common index (losses take rows of small buffers): the view without parsing
            strides = self._strides
            return self._view(shape[1:], strides[1:], self._offset + idx % shape[0] * strides[0])
        if isinstance(idx, IndexOps) and idx.dtype is not D.bool_:
            return self._take_rows(idx, "__getitem__")
        parsed = indexing.parse(self, idx, "__getitem__")
        if not parsed.advanced:
            return parsed.view
        adv = indexing.Advanced(parsed, "__getitem__")
        return adv.to_result(IndexOps._take_rows(adv.rows_copy(), adv.lin, "__getitem__"))

    def __setitem__(self, idx: Any, value: TensorOrScalar) -> None:
        """t[idx] = value, in place, for every index form of t[idx]; value (a number, a tensor, a list) is
        broadcast to t[idx]'s shape. With index tensors a repeated position takes one of its values (the last
        here; PyTorch leaves it undefined); index_put_(..., accumulate=True) adds them up. Nothing is written
        when the index or the value is invalid (ids out of range are skipped and raise at the next read)."""
        self._check_inplace("__setitem__", value)
        if isinstance(idx, IndexOps) and idx.dtype is not D.bool_:
            self._set_rows(idx, value)
            return
        parsed = indexing.parse(self, idx, "__setitem__")
        value = self._value_arg(value, "__setitem__")
        if parsed.advanced:
            if len(parsed.advanced) == 1 and parsed.advanced[0][3] and not isinstance(value, IndexOps):
                self._fill_mask(parsed, value)  # t[mask] = number: no read of the mask's count
            else:
                self._put(parsed, value, False, "__setitem__")
            return
        region = parsed.view
        if isinstance(value, IndexOps):
            _check_broadcasts_to(value._shape, region._shape, "__setitem__")
            if value._storage is self._storage:
                value = value.clone()  # the region may overlap what we read
        self._storage._version += 1
        region._assign_from(value)

    def index_put_(self: TensorT, indices: Sequence[AnyTensor], values: TensorOrScalar,
                   accumulate: bool = False) -> TensorT:
        """PyTorch's index_put_: self[indices] = values, or += with accumulate=True (repeated positions then add
        up, in order; without it one value wins). `indices` is a tuple of index tensors (or bool masks) for
        the leading dims; values broadcast to self[indices]'s shape. Returns self."""
        if not isinstance(indices, (tuple, list)) or not indices or \
                not all(isinstance(i, IndexOps) for i in indices):
            raise TypeError(f"index_put_: indices must be a non-empty tuple of index tensors, got "
                            f"{type(indices).__name__}")
        self._check_inplace("index_put_", values)
        if len(indices) == 1 and indices[0].dtype is not D.bool_:
            self._set_rows(indices[0], values, accumulate=bool(accumulate), op="index_put_")
        else:
            parsed = indexing.parse(self, tuple(indices), "index_put_")
            self._put(parsed, self._value_arg(values, "index_put_"), bool(accumulate), "index_put_")
        return self

    def _put(self, parsed, value, accumulate, op):
        """The advanced form of __setitem__ / index_put_: value (a number or a tensor broadcast to the result
        of t[idx]) scattered into the merged rows of ops/indexing.py."""
        adv = indexing.Advanced(parsed, op)
        shape = adv.result_shape()
        k = numel(adv.b_shape)
        if isinstance(value, IndexOps):
            _check_broadcasts_to(value._shape, shape, op)
            if value._storage is self._storage:
                value = value.clone()
            value = adv.from_result(ShapeOps.broadcast_to(value, shape))  # [B..., rest...]
            value = ShapeOps.reshape(value, (k,) + adv.rest_shape)
        ids = ShapeOps.reshape(adv.lin, (k,))
        if adv.rows is not None:
            IndexOps._set_rows(adv.rows, ids, value, accumulate, op)
        else:
            rows = adv.rows_copy()
            IndexOps._set_rows(rows, ids, value, accumulate, op)
            adv.permuted._assign_from(rows._view(adv.permuted._shape, contiguous_layout(adv.permuted._shape)[1]))
        self._storage._version += 1

    def _fill_mask(self, parsed, value):
        """t[mask] = number (or t[..., mask, ...] = number): a masked fill through the view, no sync."""
        first, k, mask, _ = parsed.advanced[0]
        view = parsed.view
        lead, trail = first, view.dim() - first - k
        m = mask._view((1,) * lead + mask._shape + (1,) * trail,
                       (0,) * lead + mask._strides + (0,) * trail)
        IndexOps.masked_fill_(view, m, value)

    def _value_arg(self, value, op):
        """A number (as it is) or a tensor."""
        if isinstance(value, numbers.Real):
            return value
        if isinstance(value, IndexOps):
            return value
        if isinstance(value, (list, tuple, np.ndarray)):
            return self._result_cls()(value, dtype=self.dtype)
        raise TypeError(f"{op}: value must be a number or a tensor, got {type(value).__name__}")

    def _set_rows(self, index, value, accumulate=False, op="__setitem__"):
        if self.dim() == 0:
            raise IndexOutOfRange(f"{op}: a 0-d tensor cannot be indexed by a tensor")
        rest = self._shape[1:]
        value = self._value_arg(value, op)
        if isinstance(value, IndexOps):
            _check_broadcasts_to(value._shape, index._shape + rest, op)
        # same-rank scatter form: ids as a (K, 1, ...) column broadcast over the rows, values as (K, ...)
        k = index._numel
        ids = _ids(ShapeOps.reshape(index, (k,)), op)
        ids = ids._view((k,) + rest, (ids._strides[0],) + (0,) * len(rest))
        if isinstance(value, IndexOps):
            value = ShapeOps.broadcast_to(value, index._shape + rest)
            if index.dim() != 1:
                value = ShapeOps.reshape(value, (k,) + rest)
        self._storage._version += 1
        self._scatter(0, ids, value, accumulate=accumulate, op=op)

    # ---- gathers ----------------------------------------------------------------------------------
    def take_rows(self: TensorT, index: AnyTensor) -> TensorT:
        """Rows of self named by the float ids in `index`: shape index.shape + self.shape[1:], a copy.
        Repeated ids repeat rows; negative ids wrap; an id outside [-n, n) gives a row of NaN (checked on
        the device: reading the ids back would stall the queue)."""
        return self._take_rows(index, "take_rows")

    def _take_rows(self, index, op):
        _tensor_arg(index, op)
        if self.dim() == 0:
            raise IndexOutOfRange(f"{op}: a 0-d tensor cannot be indexed by a tensor")
        ids = _ids(index, op)
        rest = self.dim() - 1
        return self._gather(ids._shape + self._shape[1:], ids, ids._strides + (0,) * rest,
                            (0,) * ids.dim() + self._strides[1:], 0, op)

    def index_select(self: TensorT, dim: int, index: AnyTensor) -> TensorT:
        """Entries along `dim` named by the 1-d (or 0-d) float ids `index`; dim's size becomes
        index.numel(). Out-of-range ids give NaN (see take_rows)."""
        d = self._dim_arg(dim, "index_select")
        _tensor_arg(index, "index_select")
        if index.dim() > 1:
            raise ShapeError(f"index_select: index must be 0-d or 1-d, got shape {index.shape}")
        ids = _ids(index, "index_select")
        id_stride = ids._strides[0] if ids.dim() else 0
        out_shape = self._shape[:d] + (ids._numel,) + self._shape[d + 1:]
        idx_strides = tuple(id_stride if i == d else 0 for i in range(self.dim()))
        return self._gather(out_shape, ids, idx_strides, self._dim_zeroed(d), d, "index_select")

    def gather(self: TensorT, dim: int, index: AnyTensor) -> TensorT:
        """PyTorch gather: out[p] = self[p with p[dim] = index[p]], out shaped like `index`, which has
        self's rank and no larger size than self in the other dims. Out-of-range ids give NaN."""
        d = self._dim_arg(dim, "gather")
        _tensor_arg(index, "gather")
        if index.dim() != self.dim() or any(i > s for j, (i, s) in enumerate(zip(index._shape, self._shape))
                                            if j != d):
            raise ShapeError(f"gather: index of shape {index.shape} does not fit self of shape {self.shape} "
                             f"along dim {dim} (same rank, sizes <= self's outside dim)")
        ids = _ids(index, "gather")
        return self._gather(ids._shape, ids, ids._strides, self._dim_zeroed(d), d, "gather")

    def _gather(self, out_shape, ids, idx_strides, src_strides, dim, op):
        """One launch: out[p] = self[offset(p, src_strides) + id(p) * stride(dim)], p over out_shape."""
        out = self._empty(out_shape, self.dtype)
        n = out._numel
        if n:
            meta = kernel_meta(out._shape, idx_strides, src_strides)
            backend.launch(_kernel("gather_s", self.dtype, ids), n, out, self, ids, n,
                           self._shape[dim], self._strides[dim], checks.error_word(out._storage.pool),
                           _BAD_ID[op], *meta)
        return out

    def _dim_arg(self, dim, op):
        if self.dim() == 0:
            raise RuntimeError(f"{op}: expected a tensor with at least 1 dim, got a 0-d tensor")
        return normalize_dim(dim, self.dim(), op)

    def _dim_zeroed(self, d):
        return self._strides[:d] + (0,) + self._strides[d + 1:]

    # ---- scatters (in place, never recorded by autograd) --------------------------------------------
    def scatter_(self: TensorT, dim: int, index: AnyTensor, src: TensorOrScalar) -> TensorT:
        """Write src into self at the positions named by index along dim; returns self.
        Course form (index and src shaped like self without `dim`): self[p with index[p] inserted at dim]
        = src[p]. PyTorch form (index.dim() == self.dim()): self[p with p[dim] = index[p]] = src[p], src at
        least index's size. src may be a number. Repeated targets keep the last source; out-of-range ids
        are skipped."""
        self._check_inplace("scatter_", src)
        d = self._dim_arg(dim, "scatter_")
        index, src = self._scatter_form(d, index, src, "scatter_")
        self._storage._version += 1
        return self._scatter(d, index, src, accumulate=False, op="scatter_")

    def scatter_add_(self: TensorT, dim: int, index: AnyTensor, src: AnyTensor) -> TensorT:
        """Like scatter_ (either form) but adds; repeated targets accumulate, in source order (no atomics,
        so the result is deterministic)."""
        self._check_inplace("scatter_add_", src)
        d = self._dim_arg(dim, "scatter_add_")
        _tensor_arg(src, "scatter_add_", "src")
        index, src = self._scatter_form(d, index, src, "scatter_add_")
        self._storage._version += 1
        return self._scatter(d, index, src, accumulate=True, op="scatter_add_")

    def index_add_(self: TensorT, dim: int, index: AnyTensor, src: AnyTensor, alpha: float = 1) -> TensorT:
        """self[..., index[k], ...] += alpha * src[..., k, ...] along dim, deterministic; repeated ids
        accumulate (Embedding's backward). index is 0-d or 1-d with K ids; src is self's shape with dim of
        size K. Cost: one work-item per element of self, each scanning the K ids."""
        self._check_inplace("index_add_", src)
        d = self._dim_arg(dim, "index_add_")
        _tensor_arg(index, "index_add_")
        _tensor_arg(src, "index_add_", "src")
        k = index._numel
        if index.dim() > 1 or src._shape != self._shape[:d] + (k,) + self._shape[d + 1:]:
            raise ShapeError(f"index_add_: index of shape {index.shape} and src of shape {src.shape} do not fit "
                             f"self of shape {self.shape} along dim {dim} (1-d index of K ids, src = self's "
                             f"shape with K at dim)")
        if alpha != 1:
            src = src * alpha
        ids = _ids(index, "index_add_")
        id_stride = ids._strides[0] if ids.dim() else 0
        ids = ids._view(src._shape, tuple(id_stride if i == d else 0 for i in range(self.dim())))
        self._storage._version += 1
        return self._scatter(d, ids, src, accumulate=True, op="index_add_")

    def _scatter_form(self, d, index, src, op):
        """Validate, and return (index, src) in the PyTorch same-rank form."""
        _tensor_arg(index, op)
        if not isinstance(src, (IndexOps, numbers.Real)):
            raise TypeError(f"{op}: src must be a tensor or a number, got {type(src).__name__}")
        is_tensor = isinstance(src, IndexOps)
        if index.dim() == self.dim() - 1:
            reduced = _drop(self._shape, d)
            if index._shape != reduced or (is_tensor and src._shape != reduced):
                raise ShapeError(f"{op}: index {index.shape} and src {src.shape if is_tensor else 'number'} "
                                 f"must both have self's shape {self.shape} without dim {d}: {list(reduced)}")
            return ShapeOps.unsqueeze(index, d), (ShapeOps.unsqueeze(src, d) if is_tensor else src)
        fits = index.dim() == self.dim() and all(i <= s for j, (i, s) in enumerate(zip(index._shape, self._shape))
                                                 if j != d)
        if is_tensor:
            fits = fits and src.dim() == index.dim() and all(i <= s for i, s in zip(index._shape, src._shape))
        if not fits:
            raise ShapeError(f"{op}: index {index.shape} and src {src.shape if is_tensor else 'number'} do not "
                             f"fit self {self.shape} along dim {d} (course form: both shaped like self without "
                             f"dim; PyTorch form: same rank, index no larger than self outside dim and than src)")
        return index, src

    def _scatter(self, d, index, src, accumulate, op):
        """One launch. Each destination element (or, when the ids do not vary outside dim d, each
        destination row) is owned by one work-item that scans the index.shape[d] sources lined up with it
        and keeps those naming its position: deterministic, no atomics."""
        k, dim_size = index._shape[d], self._shape[d]
        outer, inner = numel(index._shape[:d]), numel(index._shape[d + 1:])
        rows = all(st == 0 or s == 1 for j, (s, st) in enumerate(zip(index._shape, index._strides)) if j != d)
        n = outer * dim_size * (1 if rows else inner)
        if n == 0 or k == 0 or inner == 0:
            return self
        # read index and src from copies when they share self's storage: the writes could overwrite them
        index = _ids(index.clone() if index._storage is self._storage else index, "scatter")
        src_is_tensor = isinstance(src, IndexOps)
        if src_is_tensor:
            src = src.clone() if src._storage is self._storage else src
            src = _as_dtype(src, self.dtype)
        else:
            src = _fill_value(src, self.dtype)
        src_strides = src._strides if src_is_tensor else (0,) * self.dim()
        meta = kernel_meta(_drop(index._shape, d), _drop(self._strides, d), _drop(src_strides, d),
                           _drop(index._strides, d))
        name = ("scatter_rows" if rows else "scatter") + ("_s" if src_is_tensor else "_value_s")
        backend.launch(_kernel(name, self.dtype, index), n, self, index, src, n, dim_size, inner, k,
                       self._strides[d], src_strides[d], index._strides[d], int(accumulate),
                       checks.error_word(self._storage.pool), _BAD_ID[op], *meta)
        return self

    # ---- masks and one-hot ------------------------------------------------------------------------
    def masked_fill(self: TensorT, mask: AnyTensor, value: float) -> TensorT:
        """A copy of self with `value` where `mask` (broadcast to self's shape) is true; a mask that is not
        bool counts where it is nonzero (the course's float masks; PyTorch wants bool). Keeps self's dtype."""
        _tensor_arg(mask, "masked_fill", "mask")
        _check_broadcasts_to(mask._shape, self._shape, "masked_fill", "mask")
        if isinstance(value, IndexOps):
            return where(mask, _as_dtype(value, self.dtype), self)  # a 0-d tensor value: no sync to read it
        if not isinstance(value, numbers.Real):
            raise TypeError(f"masked_fill: value must be a number or a tensor, got {type(value).__name__}")
        value = _fill_value(value, self.dtype)
        mask = _mask(mask)
        out = self._empty(self._shape, self.dtype)
        n = out._numel
        if n:
            meta = kernel_meta(self._shape, self._strides, broadcast_strides(mask._shape, mask._strides,
                                                                             self._shape))
            backend.launch(_kernel("masked_fill_s", self.dtype, mask), n, out, self, mask, value, n,
                           *meta)
        return out

    def masked_fill_(self: TensorT, mask: AnyTensor, value: float) -> TensorT:
        """`value` (a number, or a tensor broadcast to self) where the mask (broadcast to self's shape; bool,
        or the course's 0/1 floats: nonzero) is true, written through self's view in one launch (two for a
        tensor value)."""
        self._check_inplace("masked_fill_", mask, value)
        _tensor_arg(mask, "masked_fill_", "mask")
        _check_broadcasts_to(mask._shape, self._shape, "masked_fill_", "mask")
        self._check_writable("masked_fill_")
        if isinstance(value, IndexOps):
            _check_broadcasts_to(value._shape, self._shape, "masked_fill_", "value")
            result = where(mask, value, self)
            self._storage._version += 1
            return self._assign_from(result)
        if not isinstance(value, numbers.Real):
            raise TypeError(f"masked_fill_: value must be a number or a tensor, got {type(value).__name__}")
        value = _fill_value(value, self.dtype)
        mask = self._unaliased(_mask(mask))
        self._storage._version += 1
        n = self._numel
        if n:
            meta = kernel_meta(self._shape, self._strides, broadcast_strides(mask._shape, mask._strides,
                                                                             self._shape))
            if self._contig:  # the out-of-place kernel with the output aliased to the input
                backend.launch(_kernel("masked_fill_s", self.dtype, mask), n, self, self, mask, value, n, *meta)
            else:
                backend.launch(_kernel("masked_fill_i", self.dtype, mask), n, self, mask, value, n, *meta)
        return self

    def one_hot(self: TensorT, num_classes: int = -1) -> TensorT:
        """self holds class ids; returns shape self.shape + [num_classes] with 1 at each id, in self's dtype
        (int64 ids give int64, as PyTorch; the course's float ids give floats). num_classes=-1 (PyTorch's
        default) is the largest id + 1, read back from the device (the shape depends on it, as in PyTorch).
        An id outside [0, num_classes) is found on the device: its row is NaN (0 for integer ids) and the
        next host read raises DeviceAssertError (backend/checks.py)."""
        if not is_int(num_classes) or (num_classes < 1 and num_classes != -1):
            raise RuntimeError(f"one_hot: num_classes must be a positive int or -1 (the largest id + 1), got "
                               f"{num_classes!r}")
        ids = _ids(self, "one_hot")
        if num_classes == -1:
            num_classes = _inferred_classes(ids)
        out = ids._empty(ids._shape + (int(num_classes),), ids.dtype)
        n = out._numel
        if n:
            backend.launch(_kernel("one_hot_s", ids.dtype, ids), n, out, ids, n, num_classes,
                           checks.error_word(out._storage.pool), _BAD_CLASS, *kernel_meta(ids._shape, ids._strides))
        return out


# ---- module-level functions ---------------------------------------------------------------------------
def _tensor_list(tensors, op):
    if isinstance(tensors, IndexOps) or not isinstance(tensors, (list, tuple)):
        raise TypeError(f"{op}: expected a list or tuple of tensors, got {type(tensors).__name__}")
    if not tensors:
        raise RuntimeError(f"{op}: expected a non-empty list of tensors")
    for t in tensors:
        _tensor_arg(t, op, "every element")
    return list(tensors)


def _common_dtype(tensors):
    """The promoted dtype of the tensors (cat and stack promote, as PyTorch's do)."""
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        if t.dtype is not dtype:
            dtype = D.promote_types(dtype, t.dtype)
    return dtype


def cat(tensors, dim=0):
    """Concatenate along an existing dim (a copy). Shapes must agree outside `dim`; mixed dtypes are
    promoted; size-0 pieces are fine."""
    tensors = _tensor_list(tensors, "cat")
    first = tensors[0]
    if first.dim() == 0:
        raise ShapeError("cat: 0-d tensors cannot be concatenated; use stack")
    d = normalize_dim(dim, first.dim(), "cat")
    if any(t.dim() != first.dim() or _drop(t._shape, d) != _drop(first._shape, d) for t in tensors):
        raise ShapeError(f"cat: shapes {[t.shape for t in tensors]} must match except in dim {dim}")
    shape = first._shape[:d] + (sum(t._shape[d] for t in tensors),) + first._shape[d + 1:]
    out = first._empty(shape, _common_dtype(tensors))
    start = 0
    for t in tensors:
        out._view(t._shape, out._strides, start * out._strides[d])._assign_from(t)
        start += t._shape[d]
    return out


def stack(tensors, dim=0):
    """Stack equal-shaped tensors along a new dim inserted at `dim` (in [-(d+1), d]); a copy."""
    tensors = _tensor_list(tensors, "stack")
    first = tensors[0]
    if any(t._shape != first._shape for t in tensors):
        raise ShapeError(f"stack: shapes {[t.shape for t in tensors]} must all be equal")
    nd = first.dim()
    if not is_int(dim) or not -(nd + 1) <= dim <= nd:
        raise IndexOutOfRange(f"stack: dim {dim} out of range for {nd}-d inputs (expected {-(nd + 1)}..{nd})")
    d = int(dim) % (nd + 1)
    out = first._empty(first._shape[:d] + (len(tensors),) + first._shape[d:], _common_dtype(tensors))
    piece_strides = _drop(out._strides, d)
    for i, t in enumerate(tensors):
        out._view(t._shape, piece_strides, i * out._strides[d])._assign_from(t)
    return out


def broadcast_tensors(*tensors):
    """Views of the tensors at their common broadcast shape: broadcast_tensors(a, b) or ([a, b])."""
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tensors[0]
    tensors = _tensor_list(list(tensors), "broadcast_tensors")
    shape = broadcast_shapes(*(t._shape for t in tensors), op="broadcast_tensors")
    return tuple(t.broadcast_to(shape) for t in tensors)


def broadcast(tensors):
    """The course's name: a list of views at the common broadcast shape."""
    return list(broadcast_tensors(tensors))
