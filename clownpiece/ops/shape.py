"""View and shape ops on TensorBase. Views share the storage; only reshape of a non-contiguous tensor,
contiguous() and clone() copy."""
from __future__ import annotations

import numbers
from typing import Any, Optional, Sequence, Union

import numpy as np

from .. import backend
from .._layout import (
    IndexOutOfRange,
    ShapeError,
    broadcast_shapes,
    broadcast_strides,
    ceil_div,
    contiguous_layout,
    is_int,
    kernel_meta,
    normalize_dim,
    numel,
)
from .._types import AnyTensor, DTypeLike, ShapeLike, TensorOrScalar, TensorT
from ..backend import dtypes

_ASSIGN_RUN = 16  # elements per work-item of the strided copy (fewer work-items, fewer divisions)


def _shape_arg(args, op):
    """Accept f(2, 3), f((2, 3)), f([2, 3]) and f(()) alike."""
    if len(args) == 1 and isinstance(args[0], (list, tuple)):
        args = tuple(args[0])
    for s in args:  # fast path: a tuple of plain ints is returned as it is
        if type(s) is not int:
            break
    else:
        return args
    for s in args:
        if not is_int(s):
            raise TypeError(f"{op}: shape entries must be ints, got {list(args)}")
    return tuple(int(s) for s in args)


def permutation_order(perm, nd):
    """The order x.permute(*perm) applies to an nd-dim x: output dim i is input dim order[i]. perm is varargs
    or one sequence and may be partial (the course's rule: the named dims are permuted among their own
    sorted positions, the others stay); too many, repeated or out-of-range dims raise."""
    perm = _shape_arg(perm, "permute")
    if len(perm) > nd:
        raise RuntimeError(f"permute: {len(perm)} dims given for a {nd}-d tensor")
    dims = [normalize_dim(p, nd, "permute") for p in perm]
    if len(set(dims)) != len(dims):
        raise RuntimeError(f"permute: repeated dim in {list(perm)}")
    order = list(range(nd))
    for slot, d in zip(sorted(dims), dims):
        order[slot] = d
    return order


_inferred = {}  # (shape, numel) -> the checked shape with -1 resolved (models reshape the same way each step)


def _infer_shape(shape, n, op):
    out = _inferred.get((shape, n))
    if out is None:
        out = _check_shape(shape, n, op)  # raises for a bad shape: only valid ones are cached
        if len(_inferred) > 4096:
            _inferred.clear()
        _inferred[shape, n] = out
    return out


def _check_shape(shape, n, op):
    if sum(1 for s in shape if s == -1) > 1:
        raise ShapeError(f"{op}: only one dim can be -1, got {list(shape)}")
    if any(s < -1 for s in shape):
        raise ShapeError(f"{op}: invalid size in shape {list(shape)}")
    if -1 in shape:
        known = numel(s for s in shape if s != -1)
        if known == 0 or n % known:
            raise ShapeError(f"{op}: shape {list(shape)} is invalid for input of size {n}")
        shape = tuple(n // known if s == -1 else s for s in shape)
    if numel(shape) != n:
        raise ShapeError(f"{op}: shape {list(shape)} is invalid for input of size {n}")
    return shape


def _is_dtype(x):
    if isinstance(x, (type, np.dtype)):
        return True
    if isinstance(x, str) and x in dtypes.NAMES:
        return True
    if isinstance(x, str):
        try:
            np.dtype(x)
        except TypeError:
            return False
        return True
    return False


def _to_arguments(args, kwargs):
    """(device, dtype, copy) from the arguments of PyTorch's Tensor.to."""
    kwargs = dict(kwargs)
    device, dtype = kwargs.pop("device", None), kwargs.pop("dtype", None)
    copy = bool(kwargs.pop("copy", False))
    kwargs.pop("non_blocking", None)
    if kwargs:
        raise TypeError(f"to: unexpected keyword arguments {sorted(kwargs)}")
    args = list(args)
    if args and isinstance(args[0], ShapeOps):  # to(other)
        other = args.pop(0)
        device, dtype = other._storage.pool.device, other.dtype
    elif args and not _is_dtype(args[0]) and args[0] is not None:
        device = args.pop(0)
    elif args and args[0] is None:
        args.pop(0)
    if args and (_is_dtype(args[0]) or args[0] is None):
        dtype = args.pop(0) if dtype is None else dtype
    if args and isinstance(args[0], bool):  # to(dtype, non_blocking, copy)
        args.pop(0)
        if args and isinstance(args[0], bool):
            copy = args.pop(0)
    if args:
        raise TypeError(f"to: unexpected arguments {args}; expected to(dtype), to(device, dtype) or to(tensor)")
    return device, dtype, copy


def _fill_value(value, dtype):
    """A number as a fill of `dtype`: bool tests != 0, integers truncate (as a cast does); overflow raises."""
    if dtype is dtypes.float32:
        return np.float32(value)
    if dtype is dtypes.bool_:
        return np.uint8(value != 0)
    if dtype in dtypes.INTEGRAL:
        if isinstance(value, float) and not np.isfinite(value):
            raise RuntimeError(f"cannot fill a {dtype.name} tensor with {value}")
        try:
            return dtypes.INFO[dtype].scalar(int(value))
        except OverflowError:
            raise RuntimeError(f"value {value!r} cannot be converted to {dtype.name} without overflow") from None
    return dtypes.INFO[dtype].scalar(value)


class ShapeOps:
    __slots__ = ()

    def _view(self, shape, strides, offset=None):
        return self._make(self._storage, shape, strides, self._offset if offset is None else offset, self.dtype)

    def view(self: TensorT, *shape: ShapeLike) -> TensorT:
        shape = _infer_shape(_shape_arg(shape, "view"), self._numel, "view")
        if not self._contig:
            raise ShapeError(f"view: tensor of shape {self.shape} is not contiguous; use reshape() instead")
        return self._view(shape, contiguous_layout(shape)[1])

    def reshape(self: TensorT, *shape: ShapeLike) -> TensorT:
        shape = _infer_shape(_shape_arg(shape, "reshape"), self._numel, "reshape")
        src = self if self._contig else self.contiguous()
        return src._view(shape, contiguous_layout(shape)[1])

    def flatten(self: TensorT, start_dim: int = 0, end_dim: int = -1) -> TensorT:
        if self.dim() == 0:
            return self.reshape(1)
        s = normalize_dim(start_dim, self.dim(), "flatten")
        e = normalize_dim(end_dim, self.dim(), "flatten")
        shape = self._shape[:s] + (numel(self._shape[s:e + 1]),) + self._shape[e + 1:]
        return self.reshape(shape)

    def contiguous(self: TensorT) -> TensorT:
        return self if self._contig else self.clone()

    def clone(self: TensorT) -> TensorT:
        out = self._empty(self._shape, self.dtype)
        out._assign_from(self)
        return out

    def permute(self: TensorT, *perm: ShapeLike) -> TensorT:
        order = permutation_order(perm, self.dim())
        return self._view([self._shape[d] for d in order], [self._strides[d] for d in order])

    def transpose(self: TensorT, dim0: int = -2, dim1: int = -1) -> TensorT:
        nd = len(self._shape)
        d0, d1 = normalize_dim(dim0, nd, "transpose"), normalize_dim(dim1, nd, "transpose")
        if nd == 0:
            return self._view((), ())
        shape, strides = list(self._shape), list(self._strides)
        shape[d0], shape[d1] = shape[d1], shape[d0]
        strides[d0], strides[d1] = strides[d1], strides[d0]
        return self._view(shape, strides)

    @property
    def T(self: TensorT) -> TensorT:
        return self.permute(tuple(reversed(range(self.dim()))))

    @property
    def mT(self: TensorT) -> TensorT:
        return self.transpose(-2, -1)

    def squeeze(self: TensorT, dim: Optional[int] = 0) -> TensorT:
        if self.dim() == 0:
            return self._view((), ())
        if dim is None:
            keep = [i for i, s in enumerate(self._shape) if s != 1]
            return self._view([self._shape[i] for i in keep], [self._strides[i] for i in keep])
        d = normalize_dim(dim, self.dim(), "squeeze")
        if self._shape[d] != 1:
            raise ShapeError(f"squeeze: dim {dim} has size {self._shape[d]}, expected 1 (shape {self.shape})")
        return self._view(self._shape[:d] + self._shape[d + 1:], self._strides[:d] + self._strides[d + 1:])

    def unsqueeze(self: TensorT, dim: int = 0) -> TensorT:
        nd = self.dim()
        if not isinstance(dim, (int, np.integer)) or not -(nd + 1) <= dim <= nd:
            raise IndexOutOfRange(f"unsqueeze: dim {dim} out of range for a {nd}-d tensor "
                                  f"(expected {-(nd + 1)}..{nd})")
        d = dim % (nd + 1)
        st = self._strides[d] * self._shape[d] if d < nd else 1
        return self._view(self._shape[:d] + (1,) + self._shape[d:], self._strides[:d] + (st,) + self._strides[d:])

    def broadcast_to(self: TensorT, *shape: ShapeLike) -> TensorT:
        shape = _shape_arg(shape, "broadcast_to")
        if len(shape) < self.dim():
            raise ShapeError(f"broadcast_to: cannot broadcast {self.shape} to fewer dims {list(shape)}")
        lead = len(shape) - self.dim()
        target = list(shape)
        for i, s in enumerate(self._shape):
            t = shape[lead + i]
            if t == -1:
                target[lead + i] = s
            elif s != t and s != 1:
                raise ShapeError(f"broadcast_to: cannot broadcast {self.shape} to {list(shape)}")
        target = tuple(target)
        return self._view(target, broadcast_strides(self._shape, self._strides, target))

    expand = broadcast_to

    def expand_as(self: TensorT, other: AnyTensor) -> TensorT:
        return self.broadcast_to(other._shape)

    def narrow(self: TensorT, dim: int, start: int, length: int) -> TensorT:
        d = normalize_dim(dim, self.dim(), "narrow")
        size = self._shape[d]
        if not -size <= start < size + (1 if length == 0 else 0):
            raise IndexOutOfRange(f"narrow: start {start} out of range for dim {dim} of size {size}")
        start %= max(size, 1)
        if length < 0 or start + length > size:
            raise IndexOutOfRange(f"narrow: start {start} + length {length} exceeds dim {dim} of size {size}")
        shape = self._shape[:d] + (length,) + self._shape[d + 1:]
        return self._view(shape, self._strides, self._offset + start * self._strides[d])

    def split(self: TensorT, split_size_or_sections: Union[int, Sequence[int]], dim: int = 0) -> tuple[TensorT, ...]:
        d = normalize_dim(dim, self.dim(), "split")
        n = self._shape[d]
        if isinstance(split_size_or_sections, (int, np.integer)):
            size = int(split_size_or_sections)
            if size <= 0:
                raise RuntimeError(f"split: split size must be positive, got {size}")
            sizes = [min(size, n - s) for s in range(0, n, size)] or [0]
        else:
            sizes = [int(s) for s in split_size_or_sections]
            if sum(sizes) != n or any(s < 0 for s in sizes):
                raise ShapeError(f"split: sections {sizes} do not sum to dim {dim} of size {n}")
        out, start = [], 0
        for s in sizes:
            out.append(self.narrow(d, start, s))
            start += s
        return tuple(out)

    def chunk(self: TensorT, chunks: int, dim: int = 0) -> tuple[TensorT, ...]:
        if not isinstance(chunks, (int, np.integer)) or chunks <= 0:
            raise RuntimeError(f"chunk: chunks must be a positive int, got {chunks}")
        n = self._shape[normalize_dim(dim, self.dim(), "chunk")]
        size = max(ceil_div(n, chunks), 1)
        return ShapeOps.split(self, size, dim)  # not self.split: tensor_impl's split takes dim first

    def unbind(self: TensorT, dim: int = 0) -> tuple[TensorT, ...]:
        d = normalize_dim(dim, self.dim(), "unbind")
        return tuple(self.select(d, i) for i in range(self._shape[d]))

    def select(self: TensorT, dim: int, index: int) -> TensorT:
        d = normalize_dim(dim, self.dim(), "select")
        size = self._shape[d]
        if not -size <= index < size:
            raise IndexOutOfRange(f"index {index} is out of range for dim {d} of size {size}")
        index %= size
        return self._view(self._shape[:d] + self._shape[d + 1:], self._strides[:d] + self._strides[d + 1:],
                          self._offset + index * self._strides[d])

    # ---- copies into existing storage ---------------------------------------------------------------
    def _assign_from(self, src):
        """Write `src` (a tensor broadcastable to self, or a number) through self's view."""
        n = self._numel
        if n == 0:
            return self
        if not isinstance(src, ShapeOps) and isinstance(src, numbers.Number):  # tensors skip the ABC check
            backend.launch(backend.kernel("elementwise", "assign_value_s", self.dtype), n, self,
                           _fill_value(src, self.dtype), n, *kernel_meta(self._shape, self._strides))
            return self
        if src.dtype != self.dtype:
            src = src.to(self.dtype)
        if src._shape != self._shape:
            broadcast_shapes(self._shape, src._shape, op="copy_")
            src = src.broadcast_to(self._shape)
        if self._contig and src._contig:
            if src._storage._expr is not None and backend.fusion.assign(self, src):
                return self  # a pending src was evaluated straight into self
            backend.launch(backend.kernel("elementwise", "assign_c", self.dtype), n, self, src, n)
            return self
        meta = kernel_meta(self._shape, self._strides, src._strides)
        backend.launch(backend.kernel("elementwise", "assign_s", self.dtype), ceil_div(n, _ASSIGN_RUN), self, src, n,
                       _ASSIGN_RUN, *meta)
        return self

    def copy_(self: TensorT, src: AnyTensor) -> TensorT:
        """Copy src (broadcastable to self's shape, any dtype) into self's view."""
        if not isinstance(src, ShapeOps):
            raise TypeError(f"copy_: expected a tensor, got {type(src).__name__}")
        if src._shape != self._shape:
            try:
                broadcast_shapes(self._shape, src._shape)
                ok = broadcast_shapes(self._shape, src._shape) == self._shape
            except ShapeError:
                ok = False
            if not ok:
                raise ShapeError(f"copy_: source shape {src.shape} does not match destination {self.shape}")
        self._check_inplace("copy_", src)
        self._check_writable("copy_")
        if src._storage is self._storage and not src._contig:
            src = src.clone()  # overlapping strided source: read it fully before writing
        self._storage._version += 1
        return self._assign_from(src)

    def fill_(self: TensorT, value: TensorOrScalar) -> TensorT:
        """Every element of self's view set to `value`: a number (converted as a cast converts it), or a
        0-d tensor (read on the device)."""
        if isinstance(value, ShapeOps):
            if value.dim():
                raise RuntimeError(f"fill_: only a 0-dim value tensor is supported, got one of shape "
                                   f"{value.shape}")
            self._check_inplace("fill_", value)
            value = self._unaliased(value)
        else:
            if not isinstance(value, numbers.Number) or isinstance(value, complex):
                raise TypeError(f"fill_: expected a number, got {type(value).__name__}")
            self._check_inplace("fill_")
        self._storage._version += 1
        return self._assign_from(value)

    def zero_(self: TensorT) -> TensorT:
        return self.fill_(0.0)

    def _check_inplace(self, op, *operands):
        """Overridden by autograd's Tensor: an in-place write that autograd does not record must not touch
        a tensor that requires grad (or read one) while grad mode is on."""

    def _check_writable(self, op):
        """An in-place write whose target repeats elements (an expanded view) would race: refuse it."""
        if 0 not in self._strides:
            return
        for size, stride in zip(self._shape, self._strides):
            if stride == 0 and size > 1:
                raise RuntimeError(f"{op}: unsupported operation: more than one element of the written-to "
                                   f"tensor (shape {self.shape}, strides {list(self._strides)}) refers to a "
                                   f"single memory location. Please clone() the tensor before performing "
                                   f"the operation.")

    def _unaliased(self, other):
        """`other`, or a copy of it when it reads self's storage through another layout: an in-place kernel
        would otherwise read elements that other work-items have already overwritten."""
        if other._storage is self._storage and (other._offset, other._shape, other._strides) != (
                self._offset, self._shape, self._strides):
            return other.clone()
        return other

    @property
    def _version(self):
        """How many in-place writes self's storage has had (through any view): PyTorch's version counter."""
        return self._storage._version

    def to(self: TensorT, *args: Any, **kwargs: Any) -> TensorT:
        """PyTorch's forms: to(dtype), to(device), to(device, dtype), to(other) (other's device and dtype), and
        keywords device=, dtype=, copy=True (always a new tensor); non_blocking= is accepted. Self when
        nothing changes. A device is a Device, "opencl" (the current one) or "opencl:N"
        (backend.resolve_device); between devices the values go through the host (a download, an upload)."""
        device, dtype, copy = _to_arguments(args, kwargs)
        target = None if device is None else backend.resolve_device(device, "to")
        here = self._storage.pool.device
        if target is None or target is here:
            if dtype is None:
                out = self
            else:
                with backend.using_device(here):  # a conversion runs on the tensor's own device
                    out = self._to_dtype(dtype)
        elif dtype is not None and here is backend.device():
            out = self._to_dtype(dtype)._to_device(target)  # convert where the kernels run, then move
        else:
            out = self._to_device(target)
            if dtype is not None:
                with backend.using_device(target):
                    out = out._to_dtype(dtype)
        if copy and out is self:
            with backend.using_device(here):
                out = self.clone()
        return out

    def _to_device(self, target):
        """A contiguous copy on device `target` (a download from self's device, an upload to target's)."""
        with backend.using_device(self._storage.pool.device):
            host = self.numpy()
        storage = backend.alloc_on(target, host.nbytes)
        backend.upload(storage, host, private=True)
        return self._make(storage, self._shape, contiguous_layout(self._shape)[1], 0, self.dtype)

    def _to_dtype(self, dtype):
        """A copy converted to `dtype` (self when it already has it): floating to integer truncates toward
        zero, to bool tests != 0, to float16 rounds to nearest even (common.h's CAST)."""
        dtype = self._check_dtype(dtype)
        if dtype is self.dtype:
            return self
        out = self._empty(self._shape, dtype)
        n = out._numel
        if n:
            if self._contig and backend.fusion.enabled:
                return backend.fusion.defer(out, "cast", (self,), backend.fusion.codes(self.dtype, dtype))
            name = "cast_c" if self._contig else "cast_s"
            knl = backend.kernel("cast", name, dtype, dtypes.source_defines(self.dtype))
            backend.launch(knl, n, out, self, n, *(() if self._contig else kernel_meta(self._shape, self._strides)))
        return out

    def type(self: TensorT, dtype: DTypeLike = None) -> Union[str, TensorT]:
        """The dtype's name without an argument, else to(dtype) (PyTorch's Tensor.type)."""
        return self.dtype.name if dtype is None else self.to(dtype)

    # PyTorch's conversion methods (float() and double() are differentiable; the others give integers)
    def float(self: TensorT) -> TensorT:
        return self.to(dtypes.float32)

    def double(self: TensorT) -> TensorT:
        return self.to(dtypes.float64)

    def half(self: TensorT) -> TensorT:
        return self.to(dtypes.float16)

    def long(self: TensorT) -> TensorT:
        return self.to(dtypes.int64)

    def int(self: TensorT) -> TensorT:
        return self.to(dtypes.int32)

    def bool(self: TensorT) -> TensorT:
        return self.to(dtypes.bool_)
