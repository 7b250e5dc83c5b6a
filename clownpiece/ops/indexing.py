"""PyTorch's indexing rules, behind t[idx], t[idx] = v and index_put_ (ops/index.py).

An index is a tuple of entries (anything else is one entry; a list of ints or bools is one index tensor, and
a list holding a slice, None, Ellipsis, a tensor or a sequence counts as a tuple: numpy's old rule, which
PyTorch keeps). Basic entries are applied first, as views: an int selects (its dim goes), a slice with a
positive step narrows and strides (negative steps raise, as in PyTorch), None inserts a size-1 dim, `...`
stands for the dims no entry names. Advanced entries are index tensors (int64/int32, or the course's float
tensors of integral values; lists and numpy arrays become tensors) and bool masks, which cover as many dims
as they have and must match them. Several advanced entries broadcast together to a shape B, and the result
has B where they stood when they are adjacent in the view, else in front (PyTorch's placement; an int
between them has already been applied and does not separate them, None and slices do).

How it runs: the view's advanced dims are moved first and merged into one dim of A = their sizes' product
(a view when their strides allow, else a copy), the ids become one linear id per element of B
(`index_offsets_s`: checked on the device, cl_kernels/index.cl), and the work is a row gather (take_rows)
or a row scatter (the scatter kernels, which add repeated ids in order with accumulate=True) along that
merged dim. A bool mask becomes the flat positions of its True elements (`nonzero`): the one host read of
indexing, as in PyTorch (the count is the result's shape)."""
import numpy as np

from .. import backend
from .._layout import (
    IndexOutOfRange,
    ShapeError,
    broadcast_shapes,
    broadcast_strides,
    contiguous_layout,
    is_int as _is_int,
    kernel_meta,
    numel,
)
from ..backend import checks, dtypes as D

# the device-side check of each op's ids (backend/checks.py), registered at its first use
_BAD_INDEX = {}


def _is_tensor(x):
    return hasattr(x, "_storage") and hasattr(x, "_offset")


def entries(idx):
    """The tuple of entries of an index (see the module docstring)."""
    if isinstance(idx, tuple):
        return idx
    if isinstance(idx, list) and any(isinstance(e, (slice, list, tuple)) or e is None or e is Ellipsis
                                     or _is_tensor(e) for e in idx):
        return tuple(idx)
    return (idx,)


def _index_tensor(like, data, op):
    """A list or numpy array entry as an index tensor on like's device: ints give int64, bools a mask."""
    arr = np.asarray(data)
    if arr.size == 0 and arr.dtype.kind == "f":
        arr = arr.astype(np.int64)  # t[[]]: no ids (PyTorch)
    if arr.dtype.kind not in "biu":
        raise IndexError(f"{op}: index lists and arrays must hold ints or bools, got {arr.dtype} "
                         f"(tensors used as indices must be long, int or bool tensors)")
    dtype = D.bool_ if arr.dtype.kind == "b" else D.int64
    return like._result_cls()(arr.astype(dtype), dtype=dtype)


class Parsed:
    """An index applied to a tensor: `view` (the basic entries applied, advanced dims kept whole) and the
    advanced entries as (first dim in view, number of dims, ids, is_mask)."""
    __slots__ = ("view", "advanced")

    def __init__(self, view, advanced):
        self.view, self.advanced = view, advanced


def parse(t, idx, op):
    items = []
    for e in entries(idx):
        if _is_tensor(e):
            items.append(e)
        elif isinstance(e, (list, tuple, np.ndarray)):
            items.append(_index_tensor(t, e, op))
        elif _is_int(e) or isinstance(e, slice) or e is None or e is Ellipsis:
            items.append(e)
        else:
            raise TypeError(f"{op}: unsupported index entry {type(e).__name__}; expected an int, slice, None, "
                            f"Ellipsis, a tensor, a list of ints or bools, or a tuple of them")
    nd = t.dim()

    def width(e):
        if e is None or e is Ellipsis:
            return 0
        if _is_tensor(e) and e.dtype is D.bool_:
            return e.dim()
        return 1

    named = sum(width(e) for e in items)
    if named > nd:
        raise IndexOutOfRange(f"{op}: too many indices for tensor of dimension {nd} (shape {t.shape})")
    if sum(1 for e in items if e is Ellipsis) > 1:
        raise IndexOutOfRange(f"{op}: an index can only have a single ellipsis ('...')")
    if Ellipsis in items:
        at = next(i for i, e in enumerate(items) if e is Ellipsis)
        items = items[:at] + [slice(None)] * (nd - named) + items[at + 1:]
    shape, strides, offset, d, advanced = [], [], t._offset, 0, []
    for e in items:
        if e is None:
            shape.append(1)
            strides.append(1)
        elif isinstance(e, slice):
            if e.step is not None and (not _is_int(e.step) or e.step <= 0):
                raise ValueError(f"{op}: slice step must be a positive int (negative steps are not supported, "
                                 f"as in PyTorch; use flip()), got {e.step!r}")
            size, stride = t._shape[d], t._strides[d]
            start, stop, step = e.indices(size)
            length = max(-(-(stop - start) // step), 0)
            offset += start * stride if length else 0
            shape.append(length)
            strides.append(stride * step)
            d += 1
        elif _is_int(e):
            size = t._shape[d]
            if not -size <= e < size:
                raise IndexOutOfRange(f"{op}: index {e} is out of bounds for dimension {d} with size {size}")
            offset += (int(e) % size) * t._strides[d]
            d += 1
        elif e.dtype is D.bool_:
            k = e.dim()
            if k == 0:
                raise IndexError(f"{op}: a 0-d bool tensor index is not supported; use a bool mask with dims")
            if e._shape != t._shape[d:d + k]:
                raise IndexError(f"{op}: the shape of the mask {e.shape} at index {d} does not match the shape "
                                 f"of the indexed tensor {list(t._shape[d:d + k])} at index {d}")
            advanced.append((len(shape), k, e, True))
            shape += t._shape[d:d + k]
            strides += t._strides[d:d + k]
            d += k
        else:
            advanced.append((len(shape), 1, e.to(D.float32) if e.dtype is D.float16 else e, False))
            shape.append(t._shape[d])
            strides.append(t._strides[d])
            d += 1
    view = t._view(tuple(shape) + t._shape[d:], tuple(strides) + t._strides[d:], offset)
    return Parsed(view, advanced)


class Advanced:
    """The advanced part of a parsed index: `permuted` (the view with its advanced dims first), `rows` (that
    with the advanced dims merged into one of size A: [A, rest...], a view of the tensor, or None when their
    strides do not merge), `lin` (int64 ids of shape B into the merged dim) and where B goes in the result
    (dim q)."""

    def __init__(self, parsed, op):
        v = parsed.view
        blocks = []  # (ids, size of the block of dims it indexes)
        adv_dims = []
        for first, k, e, is_mask in parsed.advanced:
            dims = list(range(first, first + k))
            adv_dims += dims
            if is_mask:
                flat = e.reshape(-1).nonzero().reshape(-1)  # the flat positions of its True elements
                blocks.append((flat, numel(v._shape[first:first + k])))
            else:
                blocks.append((e, v._shape[first]))
        try:
            self.b_shape = broadcast_shapes(*(ids._shape for ids, _ in blocks))
        except ShapeError:
            raise IndexError(f"{op}: shape mismatch: indexing tensors could not be broadcast together with "
                             f"shapes {', '.join(str(ids.shape) for ids, _ in blocks)}") from None
        adjacent = adv_dims == list(range(adv_dims[0], adv_dims[0] + len(adv_dims)))
        self.q = adv_dims[0] if adjacent else 0
        rest = [d for d in range(v.dim()) if d not in adv_dims]
        self.rest_shape = tuple(v._shape[d] for d in rest)
        self.a = numel([v._shape[d] for d in adv_dims])
        perm_shape = [v._shape[d] for d in adv_dims] + list(self.rest_shape)
        perm_strides = [v._strides[d] for d in adv_dims] + [v._strides[d] for d in rest]
        self.permuted = v._view(tuple(perm_shape), tuple(perm_strides))  # [adv dims..., rest...]
        merged = _merge(perm_shape[:len(adv_dims)], perm_strides[:len(adv_dims)])
        self.rows = None if merged is None else v._view((self.a,) + self.rest_shape,
                                                         (merged,) + tuple(perm_strides[len(adv_dims):]))
        self.lin = _linear_ids(v, blocks, self.b_shape, op)

    def rows_copy(self):
        """[A, rest...]: the merged view, or a contiguous copy of the permuted view."""
        if self.rows is not None:
            return self.rows
        shape = (self.a,) + self.rest_shape
        return self.permuted.contiguous()._view(shape, contiguous_layout(shape)[1])

    def to_result(self, g):
        """g [B..., rest...] laid out as the result: B moved to dim q."""
        nb = len(self.b_shape)
        if self.q == 0 or nb == 0:
            return g
        order = list(range(nb, nb + self.q)) + list(range(nb)) + list(range(nb + self.q, g.dim()))
        return g._view(tuple(g._shape[i] for i in order), tuple(g._strides[i] for i in order))

    def from_result(self, value_shape_tensor):
        """The inverse of to_result, for a tensor of the result's shape."""
        nb = len(self.b_shape)
        x = value_shape_tensor
        if self.q == 0 or nb == 0:
            return x
        order = list(range(self.q, self.q + nb)) + list(range(self.q)) + list(range(self.q + nb, x.dim()))
        return x._view(tuple(x._shape[i] for i in order), tuple(x._strides[i] for i in order))

    def result_shape(self):
        b, r, q = self.b_shape, self.rest_shape, self.q
        return r[:q] + b + r[q:]


def _merge(shape, strides):
    """The stride of dims `shape`/`strides` merged into one row-major dim, or None when they do not merge."""
    dims = [(n, st) for n, st in zip(shape, strides) if n != 1]
    if not dims or any(n == 0 for n, _ in dims):
        return 1
    for (_, st0), (n1, st1) in zip(dims, dims[1:]):
        if st0 != st1 * n1:
            return None
    return dims[-1][1]


def _linear_ids(like, blocks, b_shape, op):
    """int64 [B]: sum over the blocks of (its id, wrapped, range-checked on the device) * the product of the
    sizes of the blocks after it; an out-of-range id leaves a negative id (skipped, NaN rows) and reports."""
    out = like._empty(b_shape, D.int64)
    n = out._numel
    if not n:
        return out
    mult = 1
    err = checks.error_word(out._storage.pool)
    code = _BAD_INDEX.get(op)
    if code is None:
        code = _BAD_INDEX[op] = checks.register(op, "index {value} is out of bounds for a dimension of size "
                                                    "{bound}")
    for i in range(len(blocks) - 1, -1, -1):
        ids, size = blocks[i]
        strides = broadcast_strides(ids._shape, ids._strides, b_shape)
        knl = backend.kernel("index", "index_offsets_s", D.int64, D.index_defines(ids.dtype))
        backend.launch(knl, n, out, ids, n, size, mult, int(i == len(blocks) - 1), err, code,
                       *kernel_meta(b_shape, strides))
        mult *= size
    return out
