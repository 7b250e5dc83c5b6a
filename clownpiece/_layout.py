"""Shape and stride arithmetic shared by every op (pure Python on tuples, no device work)."""
import numbers

import numpy as np

MAX_KERNEL_DIMS = 8


class ShapeError(RuntimeError, ValueError):
    """A shape, broadcast or reshape mismatch."""


class IndexOutOfRange(RuntimeError, IndexError):
    """An integer index or dim outside its range."""


def contiguous_strides(shape):
    strides = []
    acc = 1
    for s in reversed(shape):
        strides.append(acc)
        acc *= s
    return tuple(reversed(strides))


_CONTIGUOUS = {}  # shape tuple -> (shape, strides, numel) of a contiguous tensor


def contiguous_layout(shape):
    """(shape, contiguous strides, numel) for a shape tuple, cached: every new tensor and reshape needs it."""
    layout = _CONTIGUOUS.get(shape)
    if layout is None:
        if len(_CONTIGUOUS) > 8192:
            _CONTIGUOUS.clear()
        layout = _CONTIGUOUS[shape] = (shape, contiguous_strides(shape), numel(shape))
    return layout


def numel(shape):
    n = 1
    for s in shape:
        n *= s
    return n


def is_contiguous(shape, strides):
    """PyTorch's rule: size-1 dims don't matter, empty tensors are contiguous."""
    acc = 1
    for s, st in zip(reversed(shape), reversed(strides)):
        if s == 0:
            return True
        if s != 1:
            if st != acc:
                return False
            acc *= s
    return True


def broadcast_shapes(*shapes, op="broadcast"):
    ndim = max((len(s) for s in shapes), default=0)
    out = []
    for i in range(-ndim, 0):
        size = 1
        for s in shapes:
            if len(s) >= -i:
                d = s[i]
                if d != 1:
                    if size != 1 and size != d:
                        raise ShapeError(f"{op}: shapes {' and '.join(str(list(x)) for x in shapes)} "
                                         f"are not broadcastable (dim {i}: {size} vs {d})")
                    size = d
        out.append(size)
    return tuple(out)


def broadcast_strides(shape, strides, target):
    """Strides that view a tensor of `shape`/`strides` as `target` (0 in broadcast dims)."""
    lead = len(target) - len(shape)
    out = [0] * lead
    for s, st, t in zip(shape, strides, target[lead:]):
        out.append(st if s == t else 0)
    return tuple(out)


def ceil_div(a, b):
    """ceil(a / b) for ints, b > 0 (grid sizes, chunk counts)."""
    return -(-a // b)


def is_int(v):
    """An int (Python's or numpy's) but not a bool: what sizes, dims, indices and counts must be."""
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def normalize_dim(dim, ndim, op="op"):
    if type(dim) is int and -ndim <= dim < ndim:  # the common case, without the checks below
        return dim % ndim
    if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool):
        raise TypeError(f"{op}: dim must be an int, got {type(dim).__name__}")
    lo, hi = -max(ndim, 1), max(ndim, 1) - 1
    if dim < lo or dim > hi:
        raise IndexOutOfRange(f"{op}: dim {dim} out of range for a {ndim}-d tensor (expected {lo}..{hi})")
    return int(dim) % max(ndim, 1)


def normalize_dims(dims, ndim, op="op"):
    if dims is None:
        return tuple(range(ndim))
    if isinstance(dims, (int, np.integer)):
        dims = (dims,)
    out = sorted({normalize_dim(d, ndim, op) for d in dims})
    if len(out) != len(dims):
        raise RuntimeError(f"{op}: dim {list(dims)} names a dim twice")
    return tuple(out)


_meta_cache = {}


def kernel_meta(shape, *stride_sets):
    """Collapse dims that are contiguous for every operand, then pack shape and up to three stride sets
    innermost-first into int8 vectors for the strided kernels. Cached per (shape, strides)."""
    key = (shape, stride_sets)
    meta = _meta_cache.get(key)
    if meta is not None:
        return meta
    dims = [(s, [st[i] for st in stride_sets]) for i, s in enumerate(shape) if s != 1]
    merged = []
    for s, sts in dims:
        if merged:
            ps, psts = merged[-1]
            if all(p == c * s for p, c in zip(psts, sts)):
                merged[-1] = (ps * s, sts)
                continue
        merged.append((s, sts))
    if len(merged) > MAX_KERNEL_DIMS:
        raise RuntimeError(f"tensor layout {list(shape)} needs {len(merged)} strided dims; kernels take at "
                           f"most {MAX_KERNEL_DIMS} (call .contiguous() first)")
    merged.reverse()
    nd = max(len(merged), 1)
    sh = np.ones(8, np.int32)
    packed = [np.zeros(8, np.int32) for _ in range(3)]
    for k, (s, sts) in enumerate(merged):
        sh[k] = s
        for j, st in enumerate(sts):
            packed[j][k] = st
    meta = (np.int32(nd), sh, packed[0], packed[1], packed[2])
    if len(_meta_cache) > 4096:
        _meta_cache.clear()
    _meta_cache[key] = meta
    return meta
