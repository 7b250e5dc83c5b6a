"""The course's week-1 low-level API (ClownpieceTorch's `tensor_impl`; docs/api.md, Import paths) over TensorBase.

`TensorBaseImpl` is TensorBase with the week-1 constructor overloads and method quirks (`split(dim, ...)`
takes the dim first, `.T` swaps dims 0 and 1, `copy.copy` clones); every raw op on it returns a
TensorBaseImpl. The module-level functions are the course's free-function forms. Course code imports this
module as top-level `tensor_impl` through the shim at the repository root."""
import builtins as _builtins
import numbers

import numpy as np

from . import backend
from ._layout import IndexOutOfRange, ShapeError, contiguous_strides, is_int, numel as _numel_of
from ._tensor import TensorBase, _host_array, _resolve_dtype
from .backend.memory import Storage
from .factories import factories_for, size_arg
from .ops import index
from .ops.shape import ShapeOps, _shape_arg


class TensorBaseImpl(TensorBase):
    """TensorBaseImpl() | (value) | (nested_list) | (other) | (shape, value) | (shape, generator) |
    (shape, flat_list) | (shape, stride, offset, storage); `dtype=` keyword on all of them.

    `()` gives an empty tensor of shape [0]. In the raw-view form `storage` is a tensor (its buffer and
    dtype are shared), a backend Storage, or a flat list of values."""
    __slots__ = ()

    def __init__(self, *args, dtype=None):
        if len(args) <= 1:
            TensorBase.__init__(self, args[0] if args else None, dtype)
        elif len(args) == 2:
            self._init_filled(*args, dtype)
        elif len(args) == 4:
            self._init_view(*args, dtype)
        else:
            raise TypeError(f"TensorBaseImpl: takes 0, 1, 2 or 4 positional arguments, got {len(args)}")

    @classmethod
    def _result_cls(cls):
        return TensorBaseImpl

    def _init_filled(self, shape, fill, dtype):
        shape = size_arg((shape,), "TensorBaseImpl")
        dtype = _resolve_dtype(dtype)
        n = _numel_of(shape)
        if isinstance(fill, numbers.Real):
            self._set_view(backend.alloc(n * dtype.itemsize), shape, contiguous_strides(shape), 0, dtype)
            self._assign_from(float(fill))
            return
        if callable(fill):
            fill = [fill() for _ in _builtins.range(n)]
        elif not isinstance(fill, (list, tuple, np.ndarray)):
            raise TypeError(f"TensorBaseImpl(shape, x): x must be a number, a zero-argument callable or a flat "
                            f"list, got {type(fill).__name__}")
        flat = _host_array(fill, dtype).reshape(-1)
        if flat.size != n:
            raise ShapeError(f"TensorBaseImpl: {flat.size} values given for shape {list(shape)} ({n} elements)")
        self._set_view(backend.alloc(flat.nbytes), shape, contiguous_strides(shape), 0, dtype)
        backend.upload(self._storage, flat)

    def _init_view(self, shape, stride, offset, storage, dtype):
        shape = size_arg((shape,), "TensorBaseImpl")
        stride = _shape_arg((stride,), "TensorBaseImpl stride")
        if len(stride) != len(shape):
            raise ShapeError(f"TensorBaseImpl: stride {list(stride)} does not match shape {list(shape)}")
        if not isinstance(offset, (int, np.integer)) or offset < 0:
            raise ValueError(f"TensorBaseImpl: offset must be a non-negative int, got {offset!r}")
        if isinstance(storage, TensorBase):
            if dtype is not None and _resolve_dtype(dtype) != storage.dtype:
                raise TypeError(f"TensorBaseImpl: dtype {dtype} differs from the storage's {storage.dtype}")
            dtype, buf = storage.dtype, storage._storage
            capacity = buf.size // dtype.itemsize  # the pool rounds sizes up: a bound, not the exact size
        elif isinstance(storage, Storage):
            dtype, buf = _resolve_dtype(dtype), storage
            capacity = buf.size // dtype.itemsize
        else:
            dtype = _resolve_dtype(dtype)
            flat = _host_array(storage, dtype).reshape(-1)
            buf, capacity = backend.alloc(flat.nbytes), flat.size
            backend.upload(buf, flat)
        if _numel_of(shape):
            lo = offset + _builtins.sum((s - 1) * st for s, st in zip(shape, stride) if st < 0)
            hi = offset + _builtins.sum((s - 1) * st for s, st in zip(shape, stride) if st > 0)
            if lo < 0 or hi >= capacity:
                raise IndexOutOfRange(f"TensorBaseImpl: view shape {list(shape)}, stride {list(stride)}, offset "
                                      f"{offset} reaches outside a storage of {capacity} elements")
        self._set_view(buf, shape, stride, int(offset), dtype)

    # ---- element access in logical row-major order -------------------------------------------------
    def _element(self, i, op):
        if not is_int(i):
            raise TypeError(f"{op}: index must be an int, got {type(i).__name__}")
        n = self._numel
        if not -n <= i < n:
            raise IndexOutOfRange(f"{op}: index {i} out of range for a tensor of {n} elements")
        rest, offset = int(i) % n, self._offset
        for size, st in zip(reversed(self._shape), reversed(self._strides)):
            offset += (rest % size) * st
            rest //= size
        return self._make(self._storage, (), (), offset, self.dtype)

    def data_at(self, i):
        """Element i in logical row-major order, as a float (reads the device)."""
        return self._element(i, "data_at").item()

    def change_data_at(self, i, value):
        """Write element i (logical row-major order) in place; visible through every view of the storage."""
        self._element(i, "change_data_at").fill_(value)

    # ---- week-1 method forms that differ from TensorBase ---------------------------------------------
    @property
    def T(self):
        """Dims 0 and 1 swapped (the course's rule, also for >2-d tensors)."""
        return self.transpose(0, 1) if self.dim() >= 2 else self._view(self._shape, self._strides)

    def split(self, dim, split):
        """Course order: dim first. Same pieces as TensorBase.split(split, dim)."""
        return ShapeOps.split(self, split, dim)

    def reshape(self, *shape, copy=False):
        out = ShapeOps.reshape(self, *shape)
        return out.clone() if copy and out._storage is self._storage else out

    def __copy__(self):
        return self.clone()


# ---- free functions (argument names follow the course code) ---------------------------------------------
def numel(t): return t.numel()
def sign(t): return t.sign()
def abs(t): return t.abs()
def sin(t): return t.sin()
def cos(t): return t.cos()
def tanh(t): return t.tanh()
def log(t): return t.log()
def exp(t): return t.exp()
def sqrt(t): return t.sqrt()
def clamp(t, min=None, max=None): return t.clamp(min, max)
def pow(t, exponent): return t.pow(exponent)


def dot(a, b):
    """matmul for any ranks (the course's dot)."""
    return a.matmul(b)


matmul = dot


def sum(t, dim=None, keepdims=False):
    return t.sum(dim, keepdims=keepdims)


def max(t, dim=-1, keepdims=False):
    """(values, indices) along dim."""
    return t.max(dim, keepdims=keepdims)


def softmax(t, dim=-1):
    return t.softmax(dim)


def permute(t, dims):
    return t.permute(dims)


def transpose(t, dim0, dim1):
    return t.transpose(dim0, dim1)


def narrow(t, dim, start, length, copy=False):
    out = t.narrow(dim, start, length)
    return out.clone() if copy else out


def chunk(t, chunks, dim=0):
    return t.chunk(chunks, dim)


def split(t, split_size_or_sections, dim=0):
    return ShapeOps.split(t, split_size_or_sections, dim)


def stack(tensors, dim=0):
    return index.stack(tensors, dim)


def cat(tensors, dim=0):
    return index.cat(tensors, dim)


def squeeze(t, dim=0):
    return t.squeeze(dim)


def unsqueeze(t, dim=0):
    return t.unsqueeze(dim)


def broadcast_to(t, shape):
    return t.broadcast_to(shape)


def broadcast_tensors(*tensors):
    """broadcast_tensors(a, b, ...) or broadcast_tensors([a, b, ...]): views with the common shape."""
    return index.broadcast_tensors(*tensors)


_factories = factories_for(TensorBaseImpl)
ones, zeros, empty = _factories.ones, _factories.zeros, _factories.empty
randn, rand = _factories.randn, _factories.rand
ones_like, zeros_like, empty_like = _factories.ones_like, _factories.zeros_like, _factories.empty_like
randn_like, rand_like, full_like = _factories.randn_like, _factories.rand_like, _factories.full_like
_week1 = factories_for(TensorBaseImpl, default_dtype=_resolve_dtype(None))  # the course's: float32 throughout
full, arange, range, linspace = _week1.full, _week1.arange, _week1.range, _week1.linspace  # `range`: the course's


def to_singleton_tensor(value, dim=0):
    """A tensor of shape [1] * dim holding `value`."""
    if not isinstance(dim, (int, np.integer)) or dim < 0:
        raise ValueError(f"to_singleton_tensor: dim must be a non-negative int, got {dim!r}")
    return full([1] * int(dim), value)
