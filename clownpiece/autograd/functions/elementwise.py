"""Gradients of the elementwise ops (clownpiece/ops/elementwise.py, kernels in cl_kernels/elementwise.cl).

One row per op: Function name, the Tensor methods that record through it, and the gradient of each input
as a formula whose parameter names say what the forward keeps (autograd/formula.py). Fused gradient
kernels (relu_grad, tanh_grad, ...: the "gradient helpers" in elementwise.cl) make most of them one launch."""
from __future__ import annotations

import math
import operator
from typing import Union

from ..._tensor import TensorBase
from ...ops import elementwise as _ew
from ..autograd import zeros
from ..formula import Row
from ..methods import recording, register


def _zero(grad):
    """Piecewise-constant ops: the gradient is zero (PyTorch's rule; the course's too)."""
    return zeros(grad._shape, grad.dtype)


def _either(positional, keyword):
    return keyword if positional is None else positional


def _pow(self, exponent):
    """self ** exponent for a number or tensor exponent, and number ** tensor (recorded by __rpow__)."""
    return self.pow(exponent) if isinstance(self, TensorBase) else self ** exponent


def _pow_grad_base(grad, self, exponent):
    if isinstance(exponent, TensorBase):
        return grad * exponent * self.pow(exponent - 1.0)
    if exponent == 2:
        return grad * self.affine(2.0)
    return grad * self.pow(exponent - 1).affine(exponent)


def _pow_grad_exponent(grad, self, result):
    return grad * result * (self.log() if isinstance(self, TensorBase) else math.log(self))


def _tie_weight(a, b):
    """1 where a wins, 0 where b wins, 0.5 on ties: maximum/minimum split a tie's gradient evenly (PyTorch)."""
    return (a - b).sign().affine(0.5, 0.5)


def _add(self, other, alpha=1):
    """self + alpha * other; self may be a number (`2 + t` records Add(2, t))."""
    return self + other if alpha == 1 else self.add(other, alpha)


def _sub(self, other, alpha=1):
    return self - other if alpha == 1 else self.sub(other, alpha)


def _scaled(grad, alpha):
    return grad if alpha == 1 else grad * alpha


def _arithmetic(op):
    """The forward of a binary operator: either operand may be a Python number (a reflected method passes
    the number first)."""
    def forward(self, other):
        return op(self, other)
    forward.__name__ = op.__name__
    return forward


GRADIENTS = [
    # Function     Tensor methods                   gradient of each input
    Row("Neg",     "neg __neg__",                   self=lambda grad: -grad),
    Row("Sign",    "sign",                          self=_zero),
    Row("Floor",   "floor",                         self=_zero),
    Row("Round",   "round",                         self=_zero),
    Row("Abs",     "abs __abs__",                   self=lambda grad, self: grad.sign_mul(self)),  # 0 at 0
    Row("Sin",     "sin",                           self=lambda grad, self: grad * self.cos()),
    Row("Cos",     "cos",                           self=lambda grad, self: grad * (-self).sin()),
    Row("Tanh",    "tanh",                          self=lambda grad, result: grad.tanh_grad(result)),
    Row("Sigmoid", "sigmoid",                       self=lambda grad, result: grad.sigmoid_grad(result)),
    Row("Relu",    "relu",                          self=lambda grad, self: grad.relu_grad(self)),
    Row("Gelu",    "gelu",                          self=lambda grad, self: grad.gelu_grad(self)),
    Row("LeakyRelu", "leaky_relu",
        self=lambda grad, self, negative_slope: grad.leaky_relu_grad(self, negative_slope)),
    Row("GeluTanh", "gelu_tanh",                    self=lambda grad, self: grad.gelu_tanh_grad(self)),
    Row("Silu",    "silu",                          self=lambda grad, self: grad.silu_grad(self)),
    Row("Elu",     "elu",                           self=lambda grad, self, alpha: grad.elu_grad(self, alpha)),
    Row("Selu",    "selu",                          self=lambda grad, self: grad.selu_grad(self)),
    Row("Softplus", "softplus",
        self=lambda grad, self, beta, threshold: grad.softplus_grad(self, beta, threshold)),
    Row("Mish",    "mish",                          self=lambda grad, self: grad.mish_grad(self)),
    Row("Hardswish", "hardswish",                   self=lambda grad, self: grad.hardswish_grad(self)),
    Row("Hardsigmoid", "hardsigmoid",               self=lambda grad, self: grad.hardsigmoid_grad(self)),
    # the course's rule: the gradient passes where min < x < max strictly (PyTorch includes the bounds)
    Row("Lerp",    "lerp",                          broadcasts=True,
        self=lambda grad, weight: grad * (1 - weight), end=lambda grad, weight: grad * weight,
        weight=lambda grad, self, end: grad * (end - self)),
    Row("Log",     "log",                           self=lambda grad, self: grad / self),
    Row("Exp",     "exp",                           self=lambda grad, result: grad * result),
    Row("Log1p",   "log1p",                         self=lambda grad, self: grad / (self + 1.0)),
    # exp(x), not result + 1: result + 1 loses all of exp(x)'s digits where expm1(x) rounds to -1
    Row("Expm1",   "expm1",                         self=lambda grad, self: grad * self.exp()),
    Row("Sqrt",    "sqrt",                          self=lambda grad, result: (grad / result).affine(0.5)),
    Row("Log2",    "log2",                          self=lambda grad, self: grad / (self * math.log(2.0))),
    Row("Log10",   "log10",                         self=lambda grad, self: grad / (self * math.log(10.0))),
    Row("Erf",     "erf",                           # 2 / sqrt(pi) exp(-x^2)
        self=lambda grad, self: grad * (-(self * self)).exp() * (2.0 / math.sqrt(math.pi))),
    Row("Erfinv",  "erfinv",                        # sqrt(pi) / 2 exp(erfinv(x)^2)
        self=lambda grad, result: grad * (result * result).exp() * (math.sqrt(math.pi) / 2.0)),
    Row("Rsqrt",   "rsqrt",                         self=lambda grad, result: grad * result * result * result * -0.5),
    Row("Reciprocal", "reciprocal",                 self=lambda grad, result: -(grad * result * result)),
    Row("Square",  "square",                        self=lambda grad, self: grad * self * 2.0),
    Row("NanToNum", "nan_to_num",                   self=lambda grad, self: _ew.where(self.isfinite(), grad, 0.0)),
    Row("Affine",  "affine",                        self=lambda grad, scale: grad.affine(scale)),
    # binary ops broadcast: each gradient is summed back to its input's shape
    Row("Add",     "add __add__ __radd__",          forward=_add, broadcasts=True,
        self=lambda grad: grad, other=lambda grad, alpha: _scaled(grad, alpha)),
    Row("Sub",     "sub __sub__ __rsub__",          forward=_sub, broadcasts=True,
        self=lambda grad: grad, other=lambda grad, alpha: _scaled(-grad, alpha)),
    Row("Mul",     "mul __mul__ __rmul__",          forward=_arithmetic(operator.mul), broadcasts=True,
        self=lambda grad, other: grad * other, other=lambda grad, self: grad * self),
    Row("Div",     "div __truediv__ __rtruediv__",  forward=_arithmetic(operator.truediv), broadcasts=True,
        self=lambda grad, other: grad / other,
        other=lambda grad, other, result: -(grad / other) * result),  # d(a/b)/db = -(a/b)/b
    Row("Pow",     "pow __pow__ __rpow__",          forward=_pow, broadcasts=True,
        self=_pow_grad_base, exponent=_pow_grad_exponent),
    # d/d other of x - q other: -q, the quotient truncated (fmod) or floored (remainder)
    Row("Fmod",    "fmod",                          broadcasts=True, self=lambda grad: grad,
        other=lambda grad, self, other: -(grad * ((self - self.fmod(other)) / other).round())),
    Row("Remainder", "remainder __mod__ __rmod__",  forward=_arithmetic(operator.mod), broadcasts=True,
        self=lambda grad: grad, other=lambda grad, self, other: -(grad * (self // other))),
    Row("Maximum", "maximum",                       broadcasts=True,
        self=lambda grad, self, other: grad * _tie_weight(self, other),
        other=lambda grad, self, other: grad * _tie_weight(other, self)),
    Row("Minimum", "minimum",                       broadcasts=True,
        self=lambda grad, self, other: grad * _tie_weight(other, self),
        other=lambda grad, self, other: grad * _tie_weight(self, other)),
]

# clamp / clip: number bounds by the course's rule (the gradient passes where min < x < max strictly), tensor
# bounds by PyTorch's (x where min <= x <= max; min where x < min <= max; max where x > max or max < min)
_ClampNumbers = Row("Clamp", forward=_ew.ElementwiseOps.clamp,
                    self=lambda grad, self, min_val, max_val, min, max: grad.clamp_grad(
                        self, _either(min_val, min), _either(max_val, max)))


def _lower(grad, self, lo, hi):
    hit = self < lo
    return _ew.where(hit if hi is None else hit.logical_and(lo < hi), grad, 0.0)


def _upper(grad, self, lo, hi):
    hit = self > hi
    return _ew.where(hit if lo is None else hit.logical_or(hi < lo), grad, 0.0)


def _inside(grad, self, lo, hi):
    keep = None if lo is None else self >= lo
    if hi is not None:
        keep = self <= hi if keep is None else keep.logical_and(self <= hi)
    return _ew.where(keep, grad, 0.0)


_ClampTensors = Row("ClampTensors", forward=lambda self, lo, hi: _ew.ElementwiseOps.clamp(self, lo, hi),
                    broadcasts=True, self=_inside, lo=_lower, hi=_upper)


def _record_clamp(self, min_val=None, max_val=None, *, min=None, max=None):
    lo, hi = _either(min_val, min), _either(max_val, max)
    if isinstance(lo, TensorBase) or isinstance(hi, TensorBase):
        if lo is not None and not isinstance(lo, TensorBase):
            lo = self._scalar(lo)
        if hi is not None and not isinstance(hi, TensorBase):
            hi = self._scalar(hi)
        return _ClampTensors.record(self, lo, hi)
    return _ClampNumbers.record(self, min_val, max_val, min=min, max=max)


register("clamp clip", _record_clamp)

# where(condition, a, b): the condition gets no gradient; a and b may be numbers
Where = Row("Where", forward=_ew.where, broadcasts=True,
            a=lambda grad, condition: _ew.where(condition, grad, 0.0),
            b=lambda grad, condition: _ew.where(condition, 0.0, grad))
register("where", lambda self, condition, other: Where.record(condition, self, other))  # t.where(cond, other)


def where(condition: TensorBase, a: Union[TensorBase, float], b: Union[TensorBase, float]) -> TensorBase:
    """Elementwise `a if condition != 0 else b` (a and b tensors or numbers, all broadcast); differentiable."""
    if recording((condition, a, b)):
        return Where.record(condition, a, b)
    return _ew.where(condition, a, b)
