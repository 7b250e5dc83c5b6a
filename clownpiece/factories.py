"""Tensor factories: zeros/ones/full/empty/rand/randn (+ *_like), arange/range/linspace/eye, tensor,
from_numpy, manual_seed.

Each factory is written once as a function of the result class (`_zeros(cls, ...)`). The module-level
functions bind it to Tensor; the common ones are also class methods of TensorBase (CLASS_METHODS, attached
by clownpiece/tensor.py), so `Tensor.zeros(3, 4)` gives a Tensor, `TensorBase.zeros(3, 4)` a TensorBase and
`tensor_impl.TensorBaseImpl.zeros(...)` a TensorBaseImpl. Fills run as one kernel; `empty` launches none."""
from __future__ import annotations

import functools
import inspect
import math
import numbers
import types
from typing import Any, Optional, Sequence, Union

import numpy as np

from . import backend
from ._layout import ShapeError, is_int
from ._tensor import Tensor, TensorBase, _check_can_require_grad, _resolve_dtype
from ._types import DeviceLike, DTypeLike, ShapeLike
from .backend import dtypes as D
from .ops import index
from .ops.random import initial_seed, manual_seed
from .ops.shape import _shape_arg


# ---- validation and the result object ------------------------------------------------------------------
def size_arg(args: Sequence[Any], op: str) -> tuple[int, ...]:
    """A shape from varargs ints, a list or a tuple; negative sizes raise before anything runs."""
    shape = _shape_arg(args, op)
    if any(s < 0 for s in shape):
        raise ShapeError(f"{op}: negative size in shape {list(shape)}")
    return shape


def _number(v, op, name):
    if not isinstance(v, numbers.Real) or isinstance(v, bool):
        raise TypeError(f"{op}: {name} must be a number, got {type(v).__name__}")
    return float(v)


def _result(cls, dtype, requires_grad, op):
    """cls's result class and the resolved dtype, checked before anything is allocated or launched."""
    result_cls = cls._result_cls()
    if requires_grad and not hasattr(result_cls, "requires_grad"):
        raise TypeError(f"{op}: requires_grad=True needs a Tensor, not {result_cls.__name__}")
    dtype = _resolve_dtype(dtype)
    if requires_grad and dtype not in D.FLOATING:
        raise RuntimeError(f"{op}: only Tensors of floating point dtype can require gradients, got {dtype.name}")
    return result_cls, dtype


def _new(cls, shape, dtype, requires_grad, op):
    """An uninitialised contiguous tensor of cls's result class."""
    result_cls, dtype = _result(cls, dtype, requires_grad, op)
    return result_cls._empty(shape, dtype)


def _done(t, requires_grad):
    if requires_grad:
        _check_can_require_grad(t)
        t.requires_grad = True
    return t


def _launch_contiguous(out, name, *args):
    """Run a random.cl index kernel over the fresh contiguous tensor `out`."""
    backend.launch(backend.kernel("random", name, out.dtype), out._numel, out, out._numel, *args)
    return out


# ---- filled tensors -------------------------------------------------------------------------------------
def _empty(cls: type[TensorBase], *shape: ShapeLike, dtype: DTypeLike = None, requires_grad: bool = False
           ) -> TensorBase:
    return _done(_new(cls, size_arg(shape, "empty"), dtype, requires_grad, "empty"), requires_grad)


def _full(cls: type[TensorBase], shape: ShapeLike, fill_value: Union[bool, int, float], *, dtype: DTypeLike = None,
          requires_grad: bool = False) -> TensorBase:
    """Filled with fill_value; without dtype, a bool fill gives bool and an int fill int64 (PyTorch)."""
    if not isinstance(fill_value, numbers.Number) or isinstance(fill_value, complex):
        raise TypeError(f"full: fill_value must be a number, got {type(fill_value).__name__}")
    value = fill_value
    dtype = D.scalar_dtype(value) if dtype is None else dtype
    out = _new(cls, size_arg((shape,), "full"), dtype, requires_grad, "full")
    return _done(out.fill_(value), requires_grad)


def _zeros(cls: type[TensorBase], *shape: ShapeLike, dtype: DTypeLike = None, requires_grad: bool = False
           ) -> TensorBase:
    out = _new(cls, size_arg(shape, "zeros"), dtype, requires_grad, "zeros")
    return _done(out.fill_(0.0), requires_grad)


def _ones(cls: type[TensorBase], *shape: ShapeLike, dtype: DTypeLike = None, requires_grad: bool = False
          ) -> TensorBase:
    out = _new(cls, size_arg(shape, "ones"), dtype, requires_grad, "ones")
    return _done(out.fill_(1.0), requires_grad)


def _rand(cls: type[TensorBase], *shape: ShapeLike, dtype: DTypeLike = None, requires_grad: bool = False
          ) -> TensorBase:
    """Uniform on [0, 1)."""
    out = _new(cls, size_arg(shape, "rand"), dtype, requires_grad, "rand")
    return _done(out.uniform_(), requires_grad)


def _randn(cls: type[TensorBase], *shape: ShapeLike, dtype: DTypeLike = None, requires_grad: bool = False
           ) -> TensorBase:
    """Standard normal."""
    out = _new(cls, size_arg(shape, "randn"), dtype, requires_grad, "randn")
    return _done(out.normal_(), requires_grad)


def _like(fill):
    """zeros_like & co: the shape (and, unless given, the dtype) of `other`; never its requires_grad."""
    def like(cls: type[TensorBase], other: TensorBase, *, dtype: DTypeLike = None, requires_grad: bool = False
             ) -> TensorBase:
        if not isinstance(other, TensorBase):
            raise TypeError(f"{fill.__name__.strip('_')}_like: expected a tensor, got {type(other).__name__}")
        return fill(cls, other._shape, dtype=dtype or other.dtype, requires_grad=requires_grad)
    like.__name__ = fill.__name__ + "_like"
    return like


_zeros_like, _ones_like, _empty_like = _like(_zeros), _like(_ones), _like(_empty)
_rand_like, _randn_like = _like(_rand), _like(_randn)


def _full_like(cls: type[TensorBase], other: TensorBase, fill_value: Union[bool, int, float], *,
               dtype: DTypeLike = None, requires_grad: bool = False) -> TensorBase:
    if not isinstance(other, TensorBase):
        raise TypeError(f"full_like: expected a tensor, got {type(other).__name__}")
    return _full(cls, other._shape, fill_value, dtype=dtype or other.dtype, requires_grad=requires_grad)


# ---- index sequences ------------------------------------------------------------------------------------
def _arange(cls: type[TensorBase], start: float, end: Optional[float] = None, step: float = 1, *,
            dtype: DTypeLike = None, requires_grad: bool = False) -> TensorBase:
    """[start, end) in steps of `step` (float or negative steps too); `arange(end)` starts at 0. Bounds
    that the step moves away from give an empty [0] tensor. Without dtype: int64 when every argument is an
    int, else the default float (PyTorch)."""
    if end is None:
        start, end = 0, start
    for v, nm in ((start, "start"), (end, "end"), (step, "step")):
        _number(v, "arange", nm)
    if step == 0:
        raise ValueError("arange: step must be nonzero")
    ints = all(isinstance(v, numbers.Integral) for v in (start, end, step))
    n = max(-(-(end - start) // step) if ints else math.ceil((end - start) / step), 0)  # ints: exact
    dtype = _resolve_dtype(D.DEFAULT_INT if dtype is None and ints else dtype)
    if dtype is D.bool_:
        raise TypeError("arange: not supported for bool tensors")
    out = _new(cls, (n,), dtype, requires_grad, "arange")
    t = D.INFO[dtype].scalar
    return _done(_launch_contiguous(out, "arange_fill", t(start), t(step)), requires_grad)


def _range(cls: type[TensorBase], start: float, end: float, step: float = 1, *, dtype: DTypeLike = None,
           requires_grad: bool = False) -> TensorBase:
    """[start, end] in steps of `step`: floor((end - start) / step) + 1 elements (course/torch.range)."""
    start, end, step = (_number(v, "range", nm) for v, nm in ((start, "start"), (end, "end"), (step, "step")))
    if step == 0:
        raise ValueError("range: step must be nonzero")
    n = max(math.floor((end - start) / step) + 1, 0)
    out = _new(cls, (n,), dtype, requires_grad, "range")
    t = D.INFO[out.dtype].scalar
    return _done(_launch_contiguous(out, "arange_fill", t(start), t(step)), requires_grad)


def _linspace(cls: type[TensorBase], start: float, end: float, steps: int, *, dtype: DTypeLike = None,
              requires_grad: bool = False) -> TensorBase:
    """`steps` evenly spaced values from start to end, both included."""
    start, end = _number(start, "linspace", "start"), _number(end, "linspace", "end")
    if not is_int(steps) or steps < 1:
        raise ValueError(f"linspace: steps must be an int >= 1, got {steps!r}")
    steps = int(steps)
    if steps == 1:
        end = start  # the kernel fills the upper half from `end`, and one element is all upper half
    step = (end - start) / (steps - 1) if steps > 1 else 0.0
    out = _new(cls, (steps,), dtype, requires_grad, "linspace")
    if out.dtype not in D.FLOATING:  # computed in the default float, then converted (truncated)
        return _linspace(cls, start, end, steps).to(out.dtype)
    t = D.INFO[out.dtype].scalar
    return _done(_launch_contiguous(out, "linspace_fill", t(start), t(end), t(step)), requires_grad)


def _eye(cls: type[TensorBase], n: int, m: Optional[int] = None, *, dtype: DTypeLike = None,
         requires_grad: bool = False) -> TensorBase:
    """An n x m (default n x n) matrix with ones on the diagonal."""
    m = n if m is None else m
    shape = size_arg((n, m), "eye")
    out = _new(cls, shape, dtype, requires_grad, "eye")
    return _done(_launch_contiguous(out, "eye_fill", max(m, 1)), requires_grad)


def _randint(cls: type[TensorBase], low: int, high: Optional[int] = None, size: Optional[ShapeLike] = None, *,
             dtype: DTypeLike = None, requires_grad: bool = False) -> TensorBase:
    """Uniform integers in [low, high) (randint(high, size) starts at 0), int64 unless dtype says int32."""
    if size is None:
        low, high, size = 0, low, high
    for v, nm in ((low, "low"), (high, "high")):
        if not isinstance(v, numbers.Integral) or isinstance(v, bool):
            raise TypeError(f"randint: {nm} must be an int, got {type(v).__name__}")
    if size is None:
        raise TypeError("randint: size is required (randint(low, high, size) or randint(high, size))")
    out = _new(cls, size_arg((size,), "randint"), dtype or D.DEFAULT_INT, requires_grad, "randint")
    return _done(out._randint_(int(low), int(high)), requires_grad)


def _randperm(cls: type[TensorBase], n: int, *, dtype: DTypeLike = None, requires_grad: bool = False) -> TensorBase:
    """A random permutation of 0..n-1 (int64 unless dtype says otherwise): the order that sorts n random
    64-bit keys (ties keep their order: still a permutation), seeded by manual_seed."""
    if not isinstance(n, numbers.Integral) or isinstance(n, bool) or n < 0:
        raise ValueError(f"randperm: n must be a non-negative int, got {n!r}")
    dtype = D.int64 if dtype is None else cls._check_dtype(dtype)
    if dtype is not D.int64 and dtype not in D.FLOATING and dtype is not D.int32:
        raise TypeError(f"randperm: dtype must be an integer or floating dtype, got {dtype.name}")
    keys = _new(cls, (int(n),), D.int64, False, "randperm")._randint_(-(1 << 63), (1 << 63) - 1)
    out = keys.argsort().to(dtype)
    return _done(out, requires_grad)


# ---- from host data --------------------------------------------------------------------------------------
def _host_data(data, op):
    """`data` as numpy sees it when it is an array of another library: an object with `__dlpack__` (torch,
    JAX, CuPy... arrays on the host; read without a copy) or `__array__`; any other data as it is."""
    if isinstance(data, (TensorBase, np.ndarray, np.generic, numbers.Number, list, tuple)):
        return data
    if hasattr(data, "__dlpack__"):
        try:
            return np.from_dlpack(data)
        except (TypeError, ValueError, RuntimeError, BufferError) as e:
            if not hasattr(data, "__array__"):  # e.g. an array in device memory, which only its library reads
                raise TypeError(f"{op}: cannot read the {type(data).__name__} through __dlpack__ ({e}); copy it "
                                f"to host memory first") from None
    if hasattr(data, "__array__"):
        return np.asarray(data)
    return data


def _tensor(cls: type[TensorBase], data: Any, *, dtype: DTypeLike = None, requires_grad: bool = False) -> TensorBase:
    """A new tensor holding a copy of `data` (nested lists, numbers, numpy arrays, a tensor, or an array of
    another library: anything with `__array__` or `__dlpack__`, a torch tensor included). Without dtype it is
    inferred as PyTorch does: a tensor or an array keeps its dtype (narrow integers widen to int32, uint32 to
    int64), Python bools give bool, ints int64, floats float32."""
    data = _host_data(data, "tensor")
    if isinstance(data, TensorBase):
        if data.device is not backend.device():
            data = data.to(backend.device())  # from another device: through the host
        out = _new(cls, data._shape, dtype or data.dtype, requires_grad, "tensor")
        out._assign_from(data)
    else:
        result_cls, dtype = _result(cls, D.infer(data) if dtype is None else dtype, requires_grad, "tensor")
        out = result_cls(data, dtype=dtype)
    return _done(out, requires_grad)


def _from_numpy(cls: type[TensorBase], array: Any) -> TensorBase:
    """A tensor with a copy of `array` (a numpy array, or anything with `__array__` or `__dlpack__`) on the
    device, keeping its dtype (as tensor() does)."""
    array = _host_data(array, "from_numpy")
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected a numpy.ndarray or an object with __array__ or __dlpack__, got "
                        f"{type(array).__name__}")
    return _tensor(cls, array)


def _with_default_dtype(fn, default):
    @functools.wraps(fn)
    def factory(cls, *args, dtype=None, **kwargs):
        if dtype is None and not any(isinstance(a, TensorBase) for a in args):  # *_like keep the tensor's
            dtype = default
        return fn(cls, *args, dtype=dtype, **kwargs)
    return factory


# ---- device= -------------------------------------------------------------------------------------------------
def _placed(fn, like=False):
    """`fn` with PyTorch's `device=` keyword: the tensor is made on that device (backend.resolve_device:
    a Device, "opencl", "opencl:N"); a *_like factory defaults to its model's device, the others to the
    current one. Making it on another device than the current switches to it for the call."""
    @functools.wraps(fn)
    def placed(cls: type[TensorBase], *args: Any, device: DeviceLike = None, **kwargs: Any) -> TensorBase:
        if device is None and like and args and isinstance(args[0], TensorBase):
            device = args[0].device
        target = backend.resolve_device(device, fn.__name__.lstrip("_"))
        if target is backend.device():
            return fn(cls, *args, **kwargs)
        with backend.using_device(target):
            return fn(cls, *args, **kwargs)
    # what help() and typing.get_type_hints see: fn's parameters and device=
    signature = inspect.signature(fn)
    device = inspect.Parameter("device", inspect.Parameter.KEYWORD_ONLY, default=None, annotation="DeviceLike")
    placed.__signature__ = signature.replace(parameters=[*signature.parameters.values(), device])
    placed.__annotations__ = {**fn.__annotations__, "device": "DeviceLike"}
    return placed


# ---- binding ----------------------------------------------------------------------------------------------
_FACTORIES = {fn.__name__.lstrip("_"): _placed(fn, like=fn.__name__.endswith("_like")) for fn in (
    _empty, _full, _zeros, _ones, _rand, _randn, _zeros_like, _ones_like, _empty_like, _rand_like,
    _randn_like, _full_like, _arange, _range, _linspace, _eye, _tensor, _from_numpy, _randint, _randperm)}


def factories_for(cls: type[TensorBase], default_dtype: DTypeLike = None) -> types.SimpleNamespace:
    """A namespace of every factory with its result class fixed to cls's (tensor_impl binds TensorBaseImpl).
    `default_dtype` replaces the dtype the data would infer (tensor_impl: float32, the course's only dtype)."""
    def bind(name, fn):
        if default_dtype is not None and "dtype" in inspect.signature(fn).parameters:
            fn = _with_default_dtype(fn, default_dtype)
        f = functools.update_wrapper(functools.partial(fn, cls), fn)
        f.__name__ = f.__qualname__ = name
        # the signature without cls, returning cls's result class (help(), inspect, typing.get_type_hints)
        signature, result = inspect.signature(fn), cls._result_cls()
        f.__signature__ = signature.replace(parameters=list(signature.parameters.values())[1:],
                                            return_annotation=result)
        f.__annotations__ = {**{k: v for k, v in fn.__annotations__.items() if k != "cls"}, "return": result}
        return f
    return types.SimpleNamespace(**{name: bind(name, fn) for name, fn in _FACTORIES.items()})


_for_tensor = factories_for(Tensor)
empty, full, zeros, ones = _for_tensor.empty, _for_tensor.full, _for_tensor.zeros, _for_tensor.ones
rand, randn = _for_tensor.rand, _for_tensor.randn
zeros_like, ones_like, empty_like, full_like = (_for_tensor.zeros_like, _for_tensor.ones_like,
                                                _for_tensor.empty_like, _for_tensor.full_like)
rand_like, randn_like = _for_tensor.rand_like, _for_tensor.randn_like
# `range` shadows the builtin from here on in this module (the course's name for it)
arange, range, linspace, eye = _for_tensor.arange, _for_tensor.range, _for_tensor.linspace, _for_tensor.eye
randint, randperm = _for_tensor.randint, _for_tensor.randperm
tensor, from_numpy = _for_tensor.tensor, _for_tensor.from_numpy


# ---- class-method forms on TensorBase (inherited by Tensor and tensor_impl.TensorBaseImpl) ---------------
def _stack(cls: type[TensorBase], tensors: Sequence[TensorBase], dim: int = 0) -> TensorBase:
    return index.stack(tensors, dim)


def _cat(cls: type[TensorBase], tensors: Sequence[TensorBase], dim: int = 0) -> TensorBase:
    return index.cat(tensors, dim)


def _broadcast(cls: type[TensorBase], *tensors: Union[TensorBase, Sequence[TensorBase]]) -> list[TensorBase]:
    """Tensor.broadcast(a, b, ...) or Tensor.broadcast([a, b, ...]): a list of views at the common shape."""
    return list(index.broadcast_tensors(*tensors))


# name -> function of the result class: TensorBase.zeros(2, 3) is a TensorBase, Tensor.zeros(2, 3) a Tensor
# (clownpiece/tensor.py attaches them as class methods)
CLASS_METHODS = {name: _FACTORIES[name] for name in (
    "empty", "full", "zeros", "ones", "rand", "randn", "zeros_like", "ones_like", "empty_like", "rand_like",
    "randn_like", "full_like")}
CLASS_METHODS.update(stack=_stack, cat=_cat, broadcast=_broadcast)

__all__ = sorted(_FACTORIES) + ["manual_seed", "initial_seed"]
