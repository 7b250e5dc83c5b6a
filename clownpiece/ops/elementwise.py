"""Elementwise raw ops on TensorBase: unary math, binary arithmetic with broadcasting, floor division and
remainder, bitwise and logical ops, comparisons, where. Kernels: cl_kernels/elementwise.cl. Ops on contiguous
same-shape operands (or numbers) are deferred and fused into generated kernels (backend/fusion.py, on unless
CLOWNPIECE_FUSE=0); the rest launch at once.

dtypes (docs/api.md, dtypes): the operands are promoted to their result_type (backend/dtypes.py), then the
op's rule (_RULES) says what it computes in: the same dtype, the default float (true division and the
float functions on integers, as PyTorch), int64 (bool arithmetic that PyTorch refuses and course code does:
`1 - mask`, `-mask`), or a TypeError naming the op and the dtype, raised before anything launches.
Predicates (comparisons, logical ops, isnan...) give bool."""
from __future__ import annotations

import numbers
from typing import Literal, Optional

import numpy as np

from .. import backend
from .._layout import broadcast_shapes, broadcast_strides, kernel_meta
from .._types import AnyTensor, TensorOrScalar, TensorT
from ..backend import dtypes as D, fusion


def _is_real(v):
    """isinstance(v, numbers.Real), skipping the ABC machinery (a Python-level call) for float and int."""
    return type(v) is float or type(v) is int or isinstance(v, numbers.Real)


# ---- what each op computes in, by the kind of its promoted operand dtype ---------------------------------
_SAME = "same"
_ANY = {"f": _SAME, "i": _SAME, "b": _SAME}
_NUMERIC = {"f": _SAME, "i": _SAME, "b": D.int64}              # bool arithmetic PyTorch refuses: int64
_FLOATING = {"f": _SAME, "i": D.float32, "b": D.float32}       # integers promote to the default float
_FLOAT_ONLY = {"f": _SAME}
_NOT_BOOL = {"f": _SAME, "i": _SAME}
_INTEGER = {"i": _SAME, "b": _SAME}                            # bitwise ops
_SHIFT = {"i": _SAME}
_KIND_NAMES = {"f": "floating", "i": "integer", "b": "bool"}

_RULES = dict.fromkeys(("add mul maximum minimum sign fill copy eq ne lt le gt ge logical_and logical_or "
                        "logical_xor logical_not").split(), _ANY)
_RULES.update(dict.fromkeys("neg sub rsub floor_divide rfloor_divide remainder rremainder pow rpow "
                            "pow_scalar".split(), _NUMERIC))
_RULES.update(dict.fromkeys("div rdiv sin cos tanh log exp log1p expm1 sqrt sigmoid log2 log10 erf erfinv rsqrt "
                            "reciprocal".split(), _FLOATING))
_RULES.update(dict.fromkeys("square fmod".split(), _NUMERIC))
_RULES.update(dict.fromkeys("nan_to_num_inf nan_to_num_nan".split(), _FLOAT_ONLY))
_RULES.update(dict.fromkeys("abs relu clamp".split(), _NOT_BOOL))
_RULES.update(dict.fromkeys("floor round gelu leaky_relu affine isnan isinf isfinite relu_grad tanh_grad "
                            "sigmoid_grad sign_mul clamp_grad leaky_relu_grad gelu_grad gelu_tanh silu elu selu "
                            "softplus mish hardswish hardsigmoid gelu_tanh_grad silu_grad elu_grad selu_grad "
                            "softplus_grad mish_grad hardswish_grad hardsigmoid_grad".split(), _FLOAT_ONLY))
_RULES["add_scaled"] = _NUMERIC
_RULES.update(dict.fromkeys("bitwise_not bitwise_and bitwise_or bitwise_xor".split(), _INTEGER))
_RULES.update(dict.fromkeys("lshift rshift rlshift rrshift".split(), _SHIFT))

# op -> (compute dtype, result dtype, numpy type of its by-value numbers, fusion's dtype codes), one dict per
# operand dtype: the hot path looks float32's up without hashing a dtype (numpy does not cache dtype hashes)
_PLANS = {d: {} for d in D.ALL}
_F32 = D.float32
_PLANS_F32 = _PLANS[_F32]


def _plan(name, dtype):
    """(compute dtype, result dtype, scalar type, codes) of op `name` on operands promoted to `dtype`."""
    plans = _PLANS_F32 if dtype is D.float32 else _PLANS[dtype]
    plan = plans.get(name)
    if plan is None:
        rule = _RULES[name]
        action = rule.get(D.INFO[dtype].kind)
        if action is None:
            takes = " or ".join(_KIND_NAMES[k] for k in rule)
            raise TypeError(f"{name}: not supported for {dtype.name} tensors; it takes {takes} tensors")
        compute = dtype if action is _SAME else action
        result = D.bool_ if fusion.OPS[name].predicate else compute
        plan = plans[name] = (compute, result, D.INFO[compute].scalar, fusion.codes(compute, result))
    return plan


_SCALAR_PLANS = {}  # (op, tensor dtype, type of the number) -> _plan of their result_type
_F32_SCALAR_PLANS = {}  # the same for float32 tensors, keyed (op, type of the number)


def _scalar_plan(name, dtype, value):
    plan = _SCALAR_PLANS.get((name, dtype, type(value)))
    if plan is None:
        plan = _SCALAR_PLANS[name, dtype, type(value)] = _plan(name, _with_number(dtype, value))
        if dtype is D.float32:
            _F32_SCALAR_PLANS[name, type(value)] = plan
    return plan


_PAIRS = {}  # (dtype, has dims, dtype, has dims) -> result_type


def _promoted(a, b):
    """result_type of two tensors of different dtypes (a 0-dim tensor counts for less)."""
    key = (a.dtype, bool(a._shape), b.dtype, bool(b._shape))
    d = _PAIRS.get(key)
    if d is None:
        d = _PAIRS[key] = D.result_type(((a.dtype, 1 + key[1]), (b.dtype, 1 + key[3])))
    return d


_WITH_NUMBER = {}  # (dtype, type of the number) -> result_type


def _with_number(dtype, value):
    """result_type of a tensor and a Python/numpy number."""
    key = (dtype, type(value))
    d = _WITH_NUMBER.get(key)
    if d is None:
        d = _WITH_NUMBER[key] = D.combine(dtype, None, D.scalar_dtype(value))
    return d


_TRACED = backend.runtime.TRACED  # number classes clownpiece.jit traces: they pass unconverted


def _number(value, scalar, name):
    """value as the kernel's by-value type (a number jit traces as it is); a number the op's dtype cannot
    hold raises (PyTorch too)."""
    if type(value) in _TRACED:
        return value
    try:
        return scalar(value)
    except OverflowError:
        raise RuntimeError(f"{name}: value {value!r} cannot be converted to the tensor's dtype without "
                           f"overflow") from None


class ElementwiseOps:
    __slots__ = ()

    # ---- launch helpers -------------------------------------------------------------------------
    def _unary(self, name, p0=0, p1=0, dtype=None):
        """Op `name` of self (p0, p1: the op's parameters); `dtype` the promoted dtype, default self's."""
        dtype = dtype or self.dtype
        compute, result, scalar, codes = (dtype is _F32 and _PLANS_F32.get(name)) or _plan(name, dtype)
        x = self if self.dtype is compute else self.to(compute)
        out = x._empty(x._shape, result)
        n = out._numel
        if n:
            if x._contig and fusion.enabled:
                if name in fusion.UNARY_WITH_PARAMS:
                    return fusion.defer(out, name, (x, _number(p0, scalar, name), _number(p1, scalar, name)),
                                        codes)
                return fusion.defer(out, name, (x,), codes)
            p0, p1 = _number(p0, scalar, name), _number(p1, scalar, name)
            if x._contig:
                backend.launch(backend.kernel("elementwise", name + "_c", compute), n, out, x, n, p0, p1)
            else:
                backend.launch(backend.kernel("elementwise", name + "_s", compute), n, out, x, n, p0, p1,
                               *kernel_meta(x._shape, x._strides))
        return out

    def _binary(self, other, name, *params):
        """self (op) other where other is a tensor or a Python/numpy number; NotImplemented otherwise.
        `params` (two numbers) go to the BINARY_P kernels (gradient helpers)."""
        if isinstance(other, ElementwiseOps):
            a, b = self, other
            dtype = a.dtype
            if dtype is not b.dtype:
                dtype = _promoted(a, b)
            compute, result, scalar, codes = (dtype is _F32 and _PLANS_F32.get(name)) or _plan(name, dtype)
            if a.dtype is not compute:
                a = a.to(compute)
            if b.dtype is not compute:
                b = b.to(compute)
            if params:
                params = (_number(params[0], scalar, name), _number(params[1], scalar, name))
            if a._shape == b._shape and a._contig and b._contig:
                out = a._empty(a._shape, result)
                n = out._numel
                if n:
                    if fusion.enabled:
                        return fusion.defer(out, name, (a, b, *params), codes)
                    backend.launch(backend.kernel("elementwise", name + "_c", compute), n, out, a, b, n, *params)
                return out
            shape = broadcast_shapes(a._shape, b._shape, op=name)
            out = a._empty(shape, result)
            n = out._numel
            if n:
                meta = kernel_meta(shape, broadcast_strides(a._shape, a._strides, shape),
                                   broadcast_strides(b._shape, b._strides, shape))
                backend.launch(backend.kernel("elementwise", name + "_s", compute), n, out, a, b, n, *params,
                               *meta)
            return out
        if _is_real(other) or isinstance(other, numbers.Number) and not isinstance(other, complex):
            dtype = self.dtype
            plan = (dtype is _F32 and _F32_SCALAR_PLANS.get((name, type(other)))) or _scalar_plan(name, dtype,
                                                                                                     other)
            compute, result, scalar, codes = plan
            x = self if self.dtype is compute else self.to(compute)
            y = _number(other, scalar, name)
            out = x._empty(x._shape, result)
            n = out._numel
            if n:
                if x._contig:
                    if fusion.enabled and not params:
                        return fusion.defer(out, name, (x, y), codes)
                    backend.launch(backend.kernel("elementwise", name + "_cs", compute), n, out, x, y, n)
                else:
                    backend.launch(backend.kernel("elementwise", name + "_ss", compute), n, out, x, y, n,
                                   *kernel_meta(x._shape, x._strides))
            return out
        return NotImplemented

    def _binary_or_raise(self, other, name):
        out = self._binary(other, name)
        if out is NotImplemented:
            raise TypeError(f"{name}: expected a tensor or a number, got {type(other).__name__}")
        return out

    # ---- arithmetic -----------------------------------------------------------------------------
    def __add__(self: TensorT, other: TensorOrScalar) -> TensorT: return self._binary(other, "add")
    def __radd__(self: TensorT, other: TensorOrScalar) -> TensorT: return self._binary(other, "add")
    def __sub__(self: TensorT, other: TensorOrScalar) -> TensorT: return self._binary(other, "sub")
    def __rsub__(self: TensorT, other: TensorOrScalar) -> TensorT: return self._binary(other, "rsub")
    def __mul__(self: TensorT, other: TensorOrScalar) -> TensorT: return self._binary(other, "mul")
    def __rmul__(self: TensorT, other: TensorOrScalar) -> TensorT: return self._binary(other, "mul")
    def __truediv__(self: TensorT, other: TensorOrScalar) -> TensorT: return self._binary(other, "div")
    def __rtruediv__(self: TensorT, other: TensorOrScalar) -> TensorT: return self._binary(other, "rdiv")
    def __floordiv__(self: TensorT, other: TensorOrScalar) -> TensorT: return self._binary(other, "floor_divide")
    def __rfloordiv__(self: TensorT, other: TensorOrScalar) -> TensorT: return self._binary(other, "rfloor_divide")
    def __mod__(self: TensorT, other: TensorOrScalar) -> TensorT: return self._binary(other, "remainder")
    def __rmod__(self: TensorT, other: TensorOrScalar) -> TensorT: return self._binary(other, "rremainder")
    def __pow__(self: TensorT, other: TensorOrScalar) -> TensorT:
        if isinstance(other, numbers.Number):
            return self.pow(other)
        return self._binary(other, "pow")
    def __rpow__(self: TensorT, other: TensorOrScalar) -> TensorT: return self._binary(other, "rpow")
    def __neg__(self: TensorT) -> TensorT: return self.neg()
    def __pos__(self: TensorT) -> TensorT: return self
    def __abs__(self: TensorT) -> TensorT: return self.abs()

    def add(self: TensorT, other: TensorOrScalar, alpha: float = 1) -> TensorT:
        """self + alpha * other."""
        return self._binary_or_raise(other, "add") if alpha == 1 else self._scaled_add(other, alpha, "add")

    def sub(self: TensorT, other: TensorOrScalar, alpha: float = 1) -> TensorT:
        """self - alpha * other."""
        return self._binary_or_raise(other, "sub") if alpha == 1 else self._scaled_add(other, -alpha, "sub")

    def _scaled_add(self, other, alpha, op):
        if not _is_real(alpha) or isinstance(alpha, bool):
            raise TypeError(f"{op}: alpha must be a number, got {type(alpha).__name__}")
        if isinstance(other, ElementwiseOps):
            if self.dtype in D.INTEGRAL and not isinstance(alpha, numbers.Integral):
                raise RuntimeError(f"{op}: alpha {alpha!r} must be an integer for {self.dtype.name} tensors")
            return self._binary(other, "add_scaled", alpha, 0.0)
        if not _is_real(other):
            raise TypeError(f"{op}: expected a tensor or a number, got {type(other).__name__}")
        return self._binary(other * alpha, "add")
    def mul(self: TensorT, other: TensorOrScalar) -> TensorT: return self._binary_or_raise(other, "mul")
    def maximum(self: TensorT, other: TensorOrScalar) -> TensorT: return self._binary_or_raise(other, "maximum")
    def minimum(self: TensorT, other: TensorOrScalar) -> TensorT: return self._binary_or_raise(other, "minimum")
    def floor_divide(self: TensorT, other: TensorOrScalar) -> TensorT:
        return self._binary_or_raise(other, "floor_divide")
    def remainder(self: TensorT, other: TensorOrScalar) -> TensorT: return self._binary_or_raise(other, "remainder")
    def fmod(self: TensorT, other: TensorOrScalar) -> TensorT: return self._binary_or_raise(other, "fmod")

    def div(self: TensorT, other: TensorOrScalar, *,
            rounding_mode: Optional[Literal["trunc", "floor"]] = None) -> TensorT:
        """True division (integers give the default float); rounding_mode='floor' is floor_divide."""
        if rounding_mode == "floor":
            return self._binary_or_raise(other, "floor_divide")
        if rounding_mode is not None:
            raise ValueError(f"div: rounding_mode must be None or 'floor', got {rounding_mode!r}")
        return self._binary_or_raise(other, "div")

    true_divide = div

    # ---- bitwise (integers and bool) and logical ops (any dtype; bool results) ----------------------
    def __and__(self: TensorT, other: TensorOrScalar) -> TensorT: return self._binary(other, "bitwise_and")
    def __rand__(self: TensorT, other: TensorOrScalar) -> TensorT: return self._binary(other, "bitwise_and")
    def __or__(self: TensorT, other: TensorOrScalar) -> TensorT: return self._binary(other, "bitwise_or")
    def __ror__(self: TensorT, other: TensorOrScalar) -> TensorT: return self._binary(other, "bitwise_or")
    def __xor__(self: TensorT, other: TensorOrScalar) -> TensorT: return self._binary(other, "bitwise_xor")
    def __rxor__(self: TensorT, other: TensorOrScalar) -> TensorT: return self._binary(other, "bitwise_xor")
    def __lshift__(self: TensorT, other: TensorOrScalar) -> TensorT: return self._binary(other, "lshift")
    def __rlshift__(self: TensorT, other: TensorOrScalar) -> TensorT: return self._binary(other, "rlshift")
    def __rshift__(self: TensorT, other: TensorOrScalar) -> TensorT: return self._binary(other, "rshift")
    def __rrshift__(self: TensorT, other: TensorOrScalar) -> TensorT: return self._binary(other, "rrshift")
    def __invert__(self: TensorT) -> TensorT: return self.bitwise_not()

    def bitwise_and(self: TensorT, other: TensorOrScalar) -> TensorT: return self._binary_or_raise(other, "bitwise_and")
    def bitwise_or(self: TensorT, other: TensorOrScalar) -> TensorT: return self._binary_or_raise(other, "bitwise_or")
    def bitwise_xor(self: TensorT, other: TensorOrScalar) -> TensorT: return self._binary_or_raise(other, "bitwise_xor")
    def bitwise_not(self: TensorT) -> TensorT: return self._unary("bitwise_not")
    def logical_and(self: TensorT, other: TensorOrScalar) -> TensorT: return self._binary_or_raise(other, "logical_and")
    def logical_or(self: TensorT, other: TensorOrScalar) -> TensorT: return self._binary_or_raise(other, "logical_or")
    def logical_xor(self: TensorT, other: TensorOrScalar) -> TensorT: return self._binary_or_raise(other, "logical_xor")
    def logical_not(self: TensorT) -> TensorT: return self._unary("logical_not")

    # ---- comparisons (bool results, never differentiable) -------------------------------------------
    def __eq__(self: TensorT, other: TensorOrScalar) -> TensorT: return self._binary(other, "eq")
    def __ne__(self: TensorT, other: TensorOrScalar) -> TensorT: return self._binary(other, "ne")
    def __lt__(self: TensorT, other: TensorOrScalar) -> TensorT: return self._binary(other, "lt")
    def __le__(self: TensorT, other: TensorOrScalar) -> TensorT: return self._binary(other, "le")
    def __gt__(self: TensorT, other: TensorOrScalar) -> TensorT: return self._binary(other, "gt")
    def __ge__(self: TensorT, other: TensorOrScalar) -> TensorT: return self._binary(other, "ge")
    __hash__ = object.__hash__

    def eq(self: TensorT, other: TensorOrScalar) -> TensorT: return self._binary_or_raise(other, "eq")
    def ne(self: TensorT, other: TensorOrScalar) -> TensorT: return self._binary_or_raise(other, "ne")
    def lt(self: TensorT, other: TensorOrScalar) -> TensorT: return self._binary_or_raise(other, "lt")
    def le(self: TensorT, other: TensorOrScalar) -> TensorT: return self._binary_or_raise(other, "le")
    def gt(self: TensorT, other: TensorOrScalar) -> TensorT: return self._binary_or_raise(other, "gt")
    def ge(self: TensorT, other: TensorOrScalar) -> TensorT: return self._binary_or_raise(other, "ge")

    def isnan(self: TensorT) -> TensorT: return self._unary("isnan") if self.dtype in D.FLOATING else self._all(False)
    def isinf(self: TensorT) -> TensorT: return self._unary("isinf") if self.dtype in D.FLOATING else self._all(False)
    def isfinite(self: TensorT) -> TensorT:
        return self._unary("isfinite") if self.dtype in D.FLOATING else self._all(True)

    def _all(self, value):
        """A bool tensor of self's shape filled with value (isnan of an integer tensor is all False)."""
        return self._empty(self._shape, D.bool_)._assign_from(value)

    # ---- unary math -------------------------------------------------------------------------------
    def neg(self: TensorT) -> TensorT: return self._unary("neg")
    def abs(self: TensorT) -> TensorT: return self._unary("abs")
    def sign(self: TensorT) -> TensorT: return self._unary("sign")
    def sin(self: TensorT) -> TensorT: return self._unary("sin")
    def cos(self: TensorT) -> TensorT: return self._unary("cos")
    def tanh(self: TensorT) -> TensorT: return self._unary("tanh")
    def log(self: TensorT) -> TensorT: return self._unary("log")
    def exp(self: TensorT) -> TensorT: return self._unary("exp")
    def log1p(self: TensorT) -> TensorT: return self._unary("log1p")
    def expm1(self: TensorT) -> TensorT: return self._unary("expm1")
    def sqrt(self: TensorT) -> TensorT: return self._unary("sqrt")
    def log2(self: TensorT) -> TensorT: return self._unary("log2")
    def log10(self: TensorT) -> TensorT: return self._unary("log10")
    def erf(self: TensorT) -> TensorT: return self._unary("erf")
    def erfinv(self: TensorT) -> TensorT: return self._unary("erfinv")
    def rsqrt(self: TensorT) -> TensorT: return self._unary("rsqrt")
    def reciprocal(self: TensorT) -> TensorT: return self._unary("reciprocal")
    def square(self: TensorT) -> TensorT: return self._unary("square")

    def nan_to_num(self: TensorT, nan: Optional[float] = 0.0, posinf: Optional[float] = None,
                   neginf: Optional[float] = None) -> TensorT:
        """NaN, +inf and -inf replaced by nan, posinf and neginf (default: the dtype's largest and lowest
        finite values); integer and bool tensors are copied."""
        for v, nm in ((nan, "nan"), (posinf, "posinf"), (neginf, "neginf")):
            if v is not None and not _is_real(v):
                raise TypeError(f"nan_to_num: {nm} must be a number or None, got {type(v).__name__}")
        if self.dtype not in D.FLOATING:
            return self.clone()
        info = np.finfo(self.dtype)
        hi = float(info.max) if posinf is None else posinf
        lo = float(info.min) if neginf is None else neginf
        return self._unary("nan_to_num_inf", hi, lo)._unary("nan_to_num_nan", 0.0 if nan is None else nan)
    def floor(self: TensorT) -> TensorT: return self.clone() if self.dtype in D.INTEGRAL else self._unary("floor")
    def round(self: TensorT) -> TensorT: return self.clone() if self.dtype in D.INTEGRAL else self._unary("round")
    def relu(self: TensorT) -> TensorT: return self._unary("relu")
    def sigmoid(self: TensorT) -> TensorT: return self._unary("sigmoid")
    def gelu(self: TensorT) -> TensorT: return self._unary("gelu")
    def leaky_relu(self: TensorT, negative_slope: float = 0.01) -> TensorT:
        return self._unary("leaky_relu", negative_slope)
    def gelu_tanh(self: TensorT) -> TensorT: return self._unary("gelu_tanh")
    def silu(self: TensorT) -> TensorT: return self._unary("silu")
    def elu(self: TensorT, alpha: float = 1.0) -> TensorT: return self._unary("elu", alpha)
    def selu(self: TensorT) -> TensorT: return self._unary("selu")
    def softplus(self: TensorT, beta: float = 1.0, threshold: float = 20.0) -> TensorT:
        return self._unary("softplus", beta, threshold)
    def mish(self: TensorT) -> TensorT: return self._unary("mish")
    def hardswish(self: TensorT) -> TensorT: return self._unary("hardswish")
    def hardsigmoid(self: TensorT) -> TensorT: return self._unary("hardsigmoid")

    def pow(self: TensorT, exponent: TensorOrScalar) -> TensorT:
        if isinstance(exponent, ElementwiseOps):
            return self._binary_or_raise(exponent, "pow")
        if not isinstance(exponent, numbers.Real):
            raise TypeError(f"pow: exponent must be a number or a tensor, got {type(exponent).__name__}")
        dtype = _with_number(self.dtype, exponent)
        if dtype not in D.FLOATING and exponent < 0:
            raise RuntimeError(f"pow: integers to negative integer powers are not allowed ({self.dtype.name} "
                               f"tensor ** {exponent})")
        return self._unary("pow_scalar", exponent, dtype=dtype)

    def clamp(self: TensorT, min_val: Optional[float] = None, max_val: Optional[float] = None, *,
              min: Optional[float] = None, max: Optional[float] = None) -> TensorT:
        """Clamp to [min, max] (either may be None, a number or a tensor broadcast against self); float
        bounds on an integer tensor give the default float, as PyTorch's type promotion does. Tensor bounds:
        max(self, min) then min(_, max), NaN anywhere giving NaN."""
        lo = min if min_val is None else min_val
        hi = max if max_val is None else max_val
        if isinstance(lo, ElementwiseOps) or isinstance(hi, ElementwiseOps):
            out = self if lo is None else self.maximum(lo)
            return out if hi is None else out.minimum(hi)
        dtype = self.dtype
        for v, nm in ((lo, "min"), (hi, "max")):
            if v is not None:
                if not _is_real(v):
                    raise TypeError(f"clamp: {nm} must be a number or None, got {type(v).__name__}")
                if dtype is not _F32:  # a number never changes a float32 tensor's dtype
                    dtype = _with_number(dtype, v)
        if dtype is _F32 or dtype in D.FLOATING:
            lo, hi = -np.inf if lo is None else lo, np.inf if hi is None else hi
        else:
            info = np.iinfo(dtype if dtype is not D.bool_ else D.int64)
            lo, hi = info.min if lo is None else lo, info.max if hi is None else hi
        return self._unary("clamp", lo, hi, dtype=dtype)

    clip = clamp

    def lerp(self: TensorT, end: TensorOrScalar, weight: TensorOrScalar) -> TensorT:
        """self + weight * (end - self), as PyTorch computes it: from self where |weight| < 0.5, from end
        otherwise (so weight 1 gives end exactly). end: a tensor; weight: a number or a tensor."""
        if not isinstance(end, ElementwiseOps):
            raise TypeError(f"lerp: end must be a tensor, got {type(end).__name__}")
        diff = end - self
        if isinstance(weight, ElementwiseOps):
            return where(weight.abs() < 0.5, self + weight * diff, end - diff * (1 - weight))
        if not _is_real(weight):
            raise TypeError(f"lerp: weight must be a number or a tensor, got {type(weight).__name__}")
        return self + diff * weight if abs(weight) < 0.5 else end - diff * (1 - weight)

    def isclose(self: TensorT, other: TensorOrScalar, rtol: float = 1e-05, atol: float = 1e-08,
                equal_nan: bool = False) -> TensorT:
        """|self - other| <= atol + rtol * |other| elementwise (bool), or equal (infinities of one sign);
        NaN is close to NaN only with equal_nan."""
        if not isinstance(other, ElementwiseOps):
            raise TypeError(f"isclose: other must be a tensor, got {type(other).__name__}")
        for v, nm in ((rtol, "rtol"), (atol, "atol")):
            if not _is_real(v) or v < 0:
                raise ValueError(f"isclose: {nm} must be a non-negative number, got {v!r}")
        close = self == other
        if equal_nan:
            close = close.logical_or(self.isnan().logical_and(other.isnan()))
        if self.dtype is D.bool_ and other.dtype is D.bool_:
            return close
        err = (self - other).abs() if self.dtype is not D.bool_ else (self.to(D.int64) - other).abs()
        allowed = (other.abs() * rtol + atol) if other.dtype is not D.bool_ else other.to(D.int64) * rtol + atol
        return close.logical_or(err.isfinite().logical_and(err <= allowed))

    def allclose(self, other: TensorOrScalar, rtol: float = 1e-05, atol: float = 1e-08,
                 equal_nan: bool = False) -> bool:
        """Whether isclose holds everywhere (a Python bool: reads the answer back)."""
        return bool(self.isclose(other, rtol, atol, equal_nan).all().item())

    def equal(self: TensorT, other: TensorOrScalar) -> TensorT:
        """True when other has self's shape and the same values (a Python bool: reads the answer back)."""
        if not isinstance(other, ElementwiseOps):
            raise TypeError(f"equal: other must be a tensor, got {type(other).__name__}")
        return self._shape == other._shape and bool((self == other).all().item())

    def affine(self: TensorT, scale: float, shift: float = 0.0) -> TensorT:
        """scale * self + shift in one launch."""
        return self._unary("affine", scale, shift)

    # gradient helpers used by autograd: self is the incoming gradient
    def relu_grad(self: TensorT, saved_input: AnyTensor) -> TensorT:
        return self._binary_or_raise(saved_input, "relu_grad")
    def tanh_grad(self: TensorT, saved_output: AnyTensor) -> TensorT:
        return self._binary_or_raise(saved_output, "tanh_grad")
    def sigmoid_grad(self: TensorT, saved_output: AnyTensor) -> TensorT:
        return self._binary_or_raise(saved_output, "sigmoid_grad")
    def sign_mul(self: TensorT, saved_input: AnyTensor) -> TensorT:
        return self._binary_or_raise(saved_input, "sign_mul")

    def clamp_grad(self: TensorT, saved_input: AnyTensor, min_val: Optional[float] = None,
                   max_val: Optional[float] = None) -> TensorT:
        """self where min < x < max strictly (the course's Clamp gradient), else 0; None = unbounded."""
        lo = -np.inf if min_val is None else min_val
        hi = np.inf if max_val is None else max_val
        return self._binary(saved_input, "clamp_grad", lo, hi)

    def leaky_relu_grad(self: TensorT, saved_input: AnyTensor, negative_slope: float = 0.01) -> TensorT:
        return self._binary(saved_input, "leaky_relu_grad", negative_slope, 0.0)
    def gelu_grad(self: TensorT, saved_input: AnyTensor) -> TensorT:
        return self._binary_or_raise(saved_input, "gelu_grad")
    def gelu_tanh_grad(self: TensorT, saved_input: AnyTensor) -> TensorT:
        return self._binary_or_raise(saved_input, "gelu_tanh_grad")
    def silu_grad(self: TensorT, saved_input: AnyTensor) -> TensorT:
        return self._binary_or_raise(saved_input, "silu_grad")
    def elu_grad(self: TensorT, saved_input: AnyTensor, alpha: float = 1.0) -> TensorT:
        return self._binary(saved_input, "elu_grad", alpha, 0.0)
    def selu_grad(self: TensorT, saved_input: AnyTensor) -> TensorT:
        return self._binary_or_raise(saved_input, "selu_grad")
    def softplus_grad(self: TensorT, saved_input: AnyTensor, beta: float = 1.0, threshold: float = 20.0) -> TensorT:
        return self._binary(saved_input, "softplus_grad", beta, threshold)
    def mish_grad(self: TensorT, saved_input: AnyTensor) -> TensorT:
        return self._binary_or_raise(saved_input, "mish_grad")
    def hardswish_grad(self: TensorT, saved_input: AnyTensor) -> TensorT:
        return self._binary_or_raise(saved_input, "hardswish_grad")
    def hardsigmoid_grad(self: TensorT, saved_input: AnyTensor) -> TensorT:
        return self._binary_or_raise(saved_input, "hardsigmoid_grad")

    def where(self: TensorT, condition: AnyTensor, other: TensorOrScalar) -> TensorT:
        """torch.where(condition, self, other)."""
        return where(condition, self, other)


def where(condition, a, b):
    """Elementwise `a if condition else b`; a and b may be tensors or numbers, all broadcast, promoted to
    their result_type. A condition that is not bool counts where it is nonzero (PyTorch wants bool)."""
    ref = next((t for t in (a, b, condition) if isinstance(t, ElementwiseOps)), None)
    if ref is None:
        raise TypeError("where: at least one argument must be a tensor")
    for v, nm in ((a, "input"), (b, "other")):
        if not isinstance(v, ElementwiseOps) and not _is_real(v):
            raise TypeError(f"where: {nm} must be a tensor or a number, got {type(v).__name__}")
    dtype = D.result_type([(t.dtype, 1 + bool(t._shape)) if isinstance(t, ElementwiseOps) else
                           (D.scalar_dtype(t), 0) for t in (a, b)])
    cond, a, b = (t if isinstance(t, ElementwiseOps) else ref._result_cls()(np.asarray(t, d), dtype=d)
                  for t, d in ((condition, D.bool_), (a, dtype), (b, dtype)))
    cond, a, b = cond.to(D.bool_), a.to(dtype), b.to(dtype)
    shape = broadcast_shapes(cond._shape, a._shape, b._shape, op="where")
    out = ref._empty(shape, dtype)
    n = out._numel
    if n:
        meta = kernel_meta(shape, *(broadcast_strides(t._shape, t._strides, shape) for t in (cond, a, b)))
        backend.launch(backend.kernel("elementwise", "where_s", dtype), n, out, cond, a, b, n, *meta)
    return out
