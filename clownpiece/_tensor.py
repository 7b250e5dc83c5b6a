"""TensorBase (the course's week-1 tensor: a view of a device buffer, every raw op, no autograd) and
Tensor (TensorBase + autograd recording).

A TensorBase is (storage, shape, strides, offset, dtype); strides and offset count elements. Raw ops are
grouped by family in clownpiece/ops/ and validate their arguments before launching any kernel."""
from __future__ import annotations

import numbers
from typing import Any, Callable, Iterator, Optional, Union

import numpy as np

from . import backend
from ._grad_mode import is_grad_enabled
from ._layout import (
    _CONTIGUOUS,
    ShapeError,
    contiguous_layout,
    contiguous_strides,
    is_contiguous,
    normalize_dim,
    numel as _numel_of,
)
from ._types import Device, DTypeLike, TensorOrScalar, TensorT
from .backend import dtypes as _dtypes
from .backend.dtypes import FLOATING as _FLOATING, bool_, float32, float64, int64
from .ops.elementwise import ElementwiseOps
from .ops.index import IndexOps
from .ops.inplace import InplaceOps
from .ops.linalg import LinalgOps
from .ops.matmul import MatmulOps
from .ops.nn import NNOps
from .ops.optim import OptimOps
from .ops.random import RandomOps
from .ops.reduce import ReduceOps
from .ops.remap import RemapOps
from .ops.scan import ScanOps
from .ops.shape import ShapeOps
from .ops.sort import SortOps

_default_dtype = float32


def _resolve_dtype(dtype):
    """The dtype object for a dtype argument (None: the default float32); float64 needs a device with fp64."""
    if dtype is None:
        return _default_dtype
    d = _dtypes.resolve(dtype)
    if d is float64 and not backend.device().has_fp64:
        raise TypeError(f"float64 requested but device {backend.device().name} has no fp64 support")
    return d


def result_type(*operands: TensorOrScalar) -> np.dtype:
    """The dtype an arithmetic op on `operands` (tensors and numbers) gives: PyTorch's torch.result_type,
    the one rule every op promotes by (docs/api.md, dtypes)."""
    if not operands:
        raise TypeError("result_type: expected at least one tensor or number")
    pairs = []
    for x in operands:
        if isinstance(x, TensorBase):
            pairs.append((x.dtype, 2 if x._shape else 1))
        elif isinstance(x, numbers.Number) and not isinstance(x, complex):
            pairs.append((_dtypes.scalar_dtype(x), 0))
        else:
            raise TypeError(f"result_type: expected tensors or numbers, got {type(x).__name__}")
    return _dtypes.result_type(pairs)


def promote_types(type1: DTypeLike, type2: DTypeLike) -> np.dtype:
    """The smallest dtype of the higher category that holds both (torch.promote_types)."""
    return _dtypes.promote_types(type1, type2)


class TensorBase(ElementwiseOps, InplaceOps, ShapeOps, ReduceOps, MatmulOps, IndexOps, RandomOps, NNOps,
                 OptimOps, SortOps, ScanOps, RemapOps, LinalgOps):
    __slots__ = ("_storage", "_shape", "_strides", "_offset", "dtype", "_numel", "_contig", "__weakref__")
    dtype: np.dtype  # (a slot: this only tells type checkers its type)

    def __init__(self, data: Any = None, dtype: DTypeLike = None) -> None:
        if isinstance(data, TensorBase):  # share the storage and the view
            self._set_view(data._storage, data._shape, data._strides, data._offset, data.dtype)
            if dtype is not None and _resolve_dtype(dtype) is not data.dtype:
                src = data.to(dtype)
                self._set_view(src._storage, src._shape, src._strides, src._offset, src.dtype)
            return
        dtype = _resolve_dtype(dtype)
        if data is None:
            arr = np.zeros((0,), dtype)
        else:
            arr = _host_array(data, dtype)
        self._set_view(backend.alloc(arr.nbytes), arr.shape, contiguous_strides(arr.shape), 0, dtype)
        # a new array (from a list, or converted) is ours to send; the caller's own array is copied first
        private = arr is not data and not (isinstance(data, np.ndarray) and np.may_share_memory(arr, data))
        backend.upload(self._storage, arr, private=private)

    def _set_view(self, storage, shape, strides, offset, dtype):
        if type(shape) is not tuple:
            shape = tuple(shape)
        if type(strides) is not tuple:
            strides = tuple(strides)
        self._storage = storage
        self._shape = shape
        self._strides = strides
        self._offset = offset
        self.dtype = dtype
        # views are made on every op with a handful of distinct layouts: look numel and contiguity up
        key = (shape, strides)
        layout = _VIEWS.get(key)
        if layout is None:
            layout = _view_layout(key)
        self._numel, self._contig = layout

    # results of raw ops are of this class (Tensor for Tensor and Parameter)
    @classmethod
    def _result_cls(cls):
        return TensorBase

    @classmethod
    def _make(cls, storage, shape, strides, offset, dtype):
        obj = object.__new__(_RESULT_CLS.get(cls) or _result_cls_of(cls))
        obj._set_view(storage, shape, strides, offset, dtype)
        return obj

    @classmethod
    def _empty(cls, shape, dtype=None):
        """A new contiguous tensor (uninitialised). The hot path of every op: no layout arithmetic beyond a
        cache lookup."""
        dtype = dtype or _default_dtype
        if type(shape) is not tuple:
            shape = tuple(shape)
        layout = _CONTIGUOUS.get(shape)  # contiguous_layout(shape) without the call when cached
        if layout is None:
            layout = contiguous_layout(shape)
        obj = object.__new__(_RESULT_CLS.get(cls) or _result_cls_of(cls))
        obj._storage = backend.alloc(layout[2] * dtype.itemsize)
        obj._shape, obj._strides, obj._numel = layout
        obj._offset = 0
        obj.dtype = dtype
        obj._contig = True
        return obj

    def _scalar(self, value):
        """A 0-dim tensor of self's dtype holding `value` (uploads: keep it off hot paths)."""
        return self._result_cls()(np.asarray(value, self.dtype))

    @staticmethod
    def _check_dtype(dtype):
        return _resolve_dtype(dtype)

    # ---- properties ---------------------------------------------------------------------------------
    @property
    def shape(self) -> list[int]:
        return list(self._shape)

    def dim(self) -> int:
        return len(self._shape)

    ndim = property(dim)

    def size(self, dim: Optional[int] = None) -> Union[list[int], int]:
        if dim is None:
            return list(self._shape)
        return self._shape[normalize_dim(dim, self.dim(), "size")]

    def numel(self) -> int:
        return self._numel

    def is_contiguous(self) -> bool:
        return self._contig

    def stride(self, dim: Optional[int] = None) -> Union[list[int], int]:
        return list(self._strides) if dim is None else self._strides[normalize_dim(dim, self.dim(), "stride")]

    def element_size(self) -> int:
        return self.dtype.itemsize

    @property
    def device(self) -> Device:
        """The Device holding the tensor (backend/discovery.py; `t.device.type` is "opencl")."""
        return self._storage.pool.device

    def __len__(self) -> int:
        if not self._shape:
            raise TypeError("len() of a 0-d tensor")
        return self._shape[0]

    def __bool__(self) -> bool:
        if self._numel != 1:
            raise RuntimeError(f"Boolean value of a tensor with {self._numel} elements is ambiguous")
        return bool(self.item())

    def __iter__(self: TensorT) -> Iterator[TensorT]:
        if not self._shape:
            raise TypeError("iteration over a 0-d tensor")
        return (self.select(0, i) for i in range(self._shape[0]))

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        """A one-element integer or bool tensor, or a float tensor holding an integral value (the course's
        float indices), as a Python int."""
        v = self.item()
        if v != int(v):
            raise TypeError(f"only integral tensors can be used as an index, got {v}")
        return int(v)

    def is_floating_point(self) -> bool:
        return self.dtype in _FLOATING

    # ---- host boundary ------------------------------------------------------------------------------
    def numpy(self) -> np.ndarray:
        """A fresh numpy array with the values (waits for the queue)."""
        src = self if self._contig else self.clone()
        out = np.empty(self._shape, self.dtype)
        if self._numel:
            backend.download(src._storage, out, src._offset * self.dtype.itemsize)
        return out

    def tolist(self) -> Any:
        return self.numpy().tolist()

    def item(self) -> Union[bool, int, float]:
        if self._numel != 1:
            raise RuntimeError(f"item(): tensor with {self._numel} elements (shape {self.shape}) cannot be "
                               f"converted to a Python number; expected exactly one element")
        out = np.empty((1,), self.dtype)
        backend.download(self._storage, out, self._offset * self.dtype.itemsize)
        return out[0].item()  # a Python float, int or bool, by dtype

    def __array__(self, dtype: DTypeLike = None, copy: Optional[bool] = None) -> np.ndarray:
        a = self.numpy()
        return a if dtype is None else a.astype(dtype)

    _UFUNCS = {"exp": "exp", "log": "log", "log1p": "log1p", "expm1": "expm1", "sqrt": "sqrt", "sin": "sin",
               "cos": "cos", "tanh": "tanh", "absolute": "abs", "negative": "neg", "sign": "sign",
               "floor": "floor", "isnan": "isnan", "isinf": "isinf", "isfinite": "isfinite",
               "logical_not": "logical_not", "invert": "bitwise_not", "log2": "log2", "log10": "log10",
               "square": "square", "reciprocal": "reciprocal"}

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        """np.exp(t) and friends call the tensor's own op (the course's week-1 notebook relies on it)."""
        name = self._UFUNCS.get(ufunc.__name__)
        if method == "__call__" and name and len(inputs) == 1 and not kwargs:
            return getattr(inputs[0], name)()
        binary = {"add": "__add__", "subtract": "__sub__", "multiply": "__mul__", "true_divide": "__truediv__",
                  "floor_divide": "__floordiv__", "remainder": "__mod__"}
        if method == "__call__" and ufunc.__name__ in binary and len(inputs) == 2 and not kwargs:
            a, b = inputs
            if isinstance(a, TensorBase):
                return getattr(a, binary[ufunc.__name__])(b.item() if isinstance(b, np.ndarray) and b.ndim == 0 else b)
            return getattr(b, "__r" + binary[ufunc.__name__][2:])(a)
        return NotImplemented

    def __getstate__(self):
        return {"data": self.numpy(), "requires_grad": getattr(self, "requires_grad", False)}

    def __setstate__(self, state):
        data = state["data"]
        TensorBase.__init__(self, data, dtype=data.dtype)
        if "requires_grad" in state and hasattr(type(self), "requires_grad"):
            self.requires_grad = state["requires_grad"]

    def __copy__(self):
        return self._make(self._storage, self._shape, self._strides, self._offset, self.dtype)

    def __deepcopy__(self, memo):
        return self.clone()

    def __repr__(self):
        return f"{type(self).__name__}({_format(self)}{self._repr_extra()})"

    def _repr_extra(self):
        # as PyTorch: the dtypes data infers by default (float32, int64, bool) are not shown
        return "" if self.dtype in _REPR_IMPLIED else f", dtype={self.dtype.name}"

    __str__ = __repr__

    def data_ptr(self) -> int:
        return id(self._storage)


_REPR_IMPLIED = (float32, int64, bool_)
_RESULT_CLS = {}  # class -> cls._result_cls(), looked up by _make and _empty on every op


def _result_cls_of(cls):
    rc = _RESULT_CLS[cls] = cls._result_cls()
    return rc


_VIEWS = {}  # (shape, strides) -> (numel, is_contiguous) of a view


def _view_layout(key):
    if len(_VIEWS) > 8192:
        _VIEWS.clear()
    # int(): shapes equal as keys may hold numpy ints; a cached numel must not leak that type to others
    layout = _VIEWS[key] = (int(_numel_of(key[0])), is_contiguous(*key))
    return layout


def _host_array(data, dtype):
    if isinstance(data, np.ndarray):
        return np.asarray(data, dtype, order="C")  # ascontiguousarray would turn 0-d into 1-d
    if isinstance(data, (bool, numbers.Number, np.generic)):
        return np.asarray(data, dtype)
    if isinstance(data, (list, tuple)):
        try:
            return np.asarray(data, dtype)
        except (ValueError, TypeError, OverflowError) as e:
            if any(isinstance(x, TensorBase) for x in data):
                raise TypeError("building a tensor from a list of tensors: use clownpiece.stack") from None
            if "sequence" in str(e) or "inhomogeneous" in str(e):
                raise ShapeError(f"tensor data must be a rectangular nested list of numbers ({e})") from None
            raise ValueError(f"tensor data cannot be converted to {dtype.name}: {e}") from None
    raise TypeError(f"cannot build a tensor from {type(data).__name__}")


def _check_can_require_grad(t):
    if t.dtype not in _FLOATING:
        raise RuntimeError(f"only Tensors of floating point dtype can require gradients, got a {t.dtype.name} "
                           f"tensor")


def _format(t):
    if t._numel > 1000:
        body = np.array2string(t.numpy(), separator=", ", threshold=1000, precision=4)
    else:
        body = repr(t.tolist())
    return body


class Tensor(TensorBase):
    """TensorBase with autograd: requires_grad, grad, grad_fn. Its differentiable methods and backward() are
    attached by clownpiece/tensor.py from autograd's table (clownpiece/autograd/methods.py): when grad mode
    is on and an input requires grad they record through the op's Function, otherwise they run the raw
    TensorBase op."""
    __slots__ = ("__dict__",)
    # class-level defaults: op results (the vast majority of tensors) never pay for setting them
    requires_grad: bool = False
    grad: Optional[Tensor] = None
    grad_fn: Any = None  # the autograd Node that made this tensor (clownpiece/autograd/autograd.py)
    output_nr: int = 0
    # attached by clownpiece/tensor.py (autograd sits above this module); declared here for type checkers
    backward: Callable[..., None]
    register_post_accumulate_grad_hook: Callable[..., Any]
    # views in the graph (autograd/autograd.py, Function._mark): a view of a tensor that requires grad
    # remembers that tensor, its `_base`, and the base's `_gen` when the view was made; an in-place op
    # recorded on the base or on one of its views bumps the base's `_gen`, so the views' grad_fn is
    # rebuilt from the base's new one before they are used again (PyTorch's view + in-place rules)
    _base = None
    _base_gen = 0
    _gen = 0

    def __init__(self, data: Any = None, requires_grad: Optional[bool] = None, dtype: DTypeLike = None) -> None:
        TensorBase.__init__(self, data, dtype)
        # data tensors default to requires_grad=False (PyTorch), unlike the course's grad-mode default
        # (docs/api.md, Decisions D4)
        if requires_grad:
            _check_can_require_grad(self)
        self.requires_grad = bool(requires_grad)
        self.grad = None
        self.grad_fn = None
        self.output_nr = 0

    @classmethod
    def _result_cls(cls):
        return Tensor

    def _repr_extra(self):
        extra = TensorBase._repr_extra(self)
        if self.grad_fn is not None:
            extra += f", grad_fn={type(self.grad_fn).__name__}"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return extra

    def is_leaf(self) -> bool:
        return self.grad_fn is None

    is_leaf = property(is_leaf)

    def requires_grad_(self: TensorT, requires_grad: Optional[bool] = None) -> TensorT:
        if requires_grad is None:
            requires_grad = is_grad_enabled()
        if not self.is_leaf and not requires_grad:
            raise RuntimeError("requires_grad_(False) on a non-leaf tensor; use detach()")
        if requires_grad:
            _check_can_require_grad(self)
        self.requires_grad = bool(requires_grad)
        return self

    def detach(self) -> Tensor:
        return self._make(self._storage, self._shape, self._strides, self._offset, self.dtype)

    def detach_(self: TensorT) -> TensorT:
        self.grad_fn = None
        self.requires_grad = False
        return self

    def _check_inplace(self, op, *operands):
        """Raw in-place ops call this before writing. With grad mode on, a write autograd does not record
        (every differentiable in-place op records before it gets here, with grad mode off) must not change
        a tensor that requires grad, or bring in a value that requires grad: its gradient would be lost."""
        if not is_grad_enabled():
            return
        if self.requires_grad and self.grad_fn is None:
            raise RuntimeError(f"{op}: a leaf Variable that requires grad is being used in an in-place "
                               f"operation. Wrap the write in `with no_grad():` (as optimizers do) or "
                               f"detach() the tensor first")
        if self.requires_grad or any(isinstance(o, Tensor) and o.requires_grad for o in operands):
            raise RuntimeError(f"{op}: this in-place operation is not differentiable, and a tensor it writes "
                               f"or reads requires grad: run it under no_grad(), or use an out-of-place form")

    def __getstate__(self):
        return {"data": self.numpy(), "requires_grad": self.requires_grad}

    def __setstate__(self, state):
        Tensor.__init__(self, state["data"], state.get("requires_grad", False), dtype=state["data"].dtype)
