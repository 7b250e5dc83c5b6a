"""Elementwise raw ops on TensorBase: unary math, binary arithmetic with broadcasting, comparisons, where.
Kernels: cl_kernels/elementwise.cl. Ops on contiguous same-shape operands (or numbers) are deferred and fused
into generated kernels (backend/fusion.py, on unless CLOWNPIECE_FUSE=0); the rest launch at once."""
import numbers

import numpy as np

from .. import backend
from ..backend import fusion
from .._layout import broadcast_shapes, broadcast_strides, kernel_meta



def _is_real(v):
    """isinstance(v, numbers.Real), skipping the ABC machinery (a Python-level call) for float and int."""
    return type(v) is float or type(v) is int or isinstance(v, numbers.Real)


class ElementwiseOps:
    __slots__ = ()

    # ---- launch helpers -------------------------------------------------------------------------
    def _unary(self, name, p0=0.0, p1=0.0):
        out = self._empty(self._shape, self.dtype)
        n = out._numel
        if n:
            if self._contig:
                if fusion.enabled:
                    if name not in fusion.UNARY_WITH_PARAMS:
                        return fusion.defer(out, name, (self,))
                    num = backend.kernel_number
                    return fusion.defer(out, name, (self, num(self.dtype, p0), num(self.dtype, p1)))
                backend.launch(backend.kernel("elementwise", name + "_c", self.dtype), n, out, self, n, p0, p1)
            else:
                backend.launch(backend.kernel("elementwise", name + "_s", self.dtype), n, out, self, n, p0, p1,
                               *kernel_meta(self._shape, self._strides))
        return out

    def _binary(self, other, name, *params):
        """self (op) other where other is a tensor or a Python/numpy number; NotImplemented otherwise.
        `params` (two numbers) go to the BINARY_P kernels (gradient helpers)."""
        if isinstance(other, ElementwiseOps):
            a, b = self, other
            if a.dtype != b.dtype:
                a, b = _promote(a, b)
            if a._shape == b._shape and a._contig and b._contig:
                out = a._empty(a._shape, a.dtype)
                n = out._numel
                if n:
                    if fusion.enabled:
                        if params:
                            num = backend.kernel_number
                            params = (num(a.dtype, params[0]), num(a.dtype, params[1]))
                        return fusion.defer(out, name, (a, b, *params))
                    backend.launch(backend.kernel("elementwise", name + "_c", a.dtype), n, out, a, b, n, *params)
                return out
            shape = broadcast_shapes(a._shape, b._shape, op=name)
            out = a._empty(shape, a.dtype)
            n = out._numel
            if n:
                meta = kernel_meta(shape, broadcast_strides(a._shape, a._strides, shape),
                                   broadcast_strides(b._shape, b._strides, shape))
                backend.launch(backend.kernel("elementwise", name + "_s", a.dtype), n, out, a, b, n, *params,
                               *meta)
            return out
        if _is_real(other) or isinstance(other, numbers.Number) and not isinstance(other, complex):
            out = self._empty(self._shape, self.dtype)
            n = out._numel
            if n:
                if self._contig:
                    if fusion.enabled and not params:
                        return fusion.defer(out, name, (self, backend.kernel_number(self.dtype, other)))
                    backend.launch(backend.kernel("elementwise", name + "_cs", self.dtype), n, out, self, other, n)
                else:
                    backend.launch(backend.kernel("elementwise", name + "_ss", self.dtype), n, out, self, other, n,
                                   *kernel_meta(self._shape, self._strides))
            return out
        return NotImplemented

    def _binary_or_raise(self, other, name):
        out = self._binary(other, name)
        if out is NotImplemented:
            raise TypeError(f"{name}: expected a tensor or a number, got {type(other).__name__}")
        return out

    # ---- arithmetic -----------------------------------------------------------------------------
    def __add__(self, other): return self._binary(other, "add")
    def __radd__(self, other): return self._binary(other, "add")
    def __sub__(self, other): return self._binary(other, "sub")
    def __rsub__(self, other): return self._binary(other, "rsub")
    def __mul__(self, other): return self._binary(other, "mul")
    def __rmul__(self, other): return self._binary(other, "mul")
    def __truediv__(self, other): return self._binary(other, "div")
    def __rtruediv__(self, other): return self._binary(other, "rdiv")
    def __pow__(self, other):
        if isinstance(other, numbers.Number):
            return self.pow(other)
        return self._binary(other, "pow")
    def __rpow__(self, other): return self._binary(other, "rpow")
    def __neg__(self): return self._unary("neg")
    def __pos__(self): return self
    def __abs__(self): return self.abs()

    def add(self, other, alpha=1):
        """self + alpha * other."""
        return self._binary_or_raise(other, "add") if alpha == 1 else self._scaled_add(other, alpha, "add")

    def sub(self, other, alpha=1):
        """self - alpha * other."""
        return self._binary_or_raise(other, "sub") if alpha == 1 else self._scaled_add(other, -alpha, "sub")

    def _scaled_add(self, other, alpha, op):
        if not _is_real(alpha) or isinstance(alpha, bool):
            raise TypeError(f"{op}: alpha must be a number, got {type(alpha).__name__}")
        if isinstance(other, ElementwiseOps):
            return self._binary(other, "add_scaled", alpha, 0.0)
        if not _is_real(other):
            raise TypeError(f"{op}: expected a tensor or a number, got {type(other).__name__}")
        return self._binary(other * alpha, "add")

    def mul(self, other): return self._binary_or_raise(other, "mul")
    def div(self, other): return self._binary_or_raise(other, "div")
    def maximum(self, other): return self._binary_or_raise(other, "maximum")
    def minimum(self, other): return self._binary_or_raise(other, "minimum")

    # ---- comparisons (float 1.0/0.0 results, never differentiable) --------------------------------
    def __eq__(self, other): return self._binary(other, "eq")
    def __ne__(self, other): return self._binary(other, "ne")
    def __lt__(self, other): return self._binary(other, "lt")
    def __le__(self, other): return self._binary(other, "le")
    def __gt__(self, other): return self._binary(other, "gt")
    def __ge__(self, other): return self._binary(other, "ge")
    __hash__ = object.__hash__

    def eq(self, other): return self._binary_or_raise(other, "eq")
    def ne(self, other): return self._binary_or_raise(other, "ne")
    def lt(self, other): return self._binary_or_raise(other, "lt")
    def le(self, other): return self._binary_or_raise(other, "le")
    def gt(self, other): return self._binary_or_raise(other, "gt")
    def ge(self, other): return self._binary_or_raise(other, "ge")

    # ---- unary math -------------------------------------------------------------------------------
    def neg(self): return self._unary("neg")
    def abs(self): return self._unary("abs")
    def sign(self): return self._unary("sign")
    def sin(self): return self._unary("sin")
    def cos(self): return self._unary("cos")
    def tanh(self): return self._unary("tanh")
    def log(self): return self._unary("log")
    def exp(self): return self._unary("exp")
    def log1p(self): return self._unary("log1p")
    def expm1(self): return self._unary("expm1")
    def sqrt(self): return self._unary("sqrt")
    def floor(self): return self._unary("floor")
    def round(self): return self._unary("round")
    def relu(self): return self._unary("relu")
    def sigmoid(self): return self._unary("sigmoid")
    def gelu(self): return self._unary("gelu")
    def leaky_relu(self, negative_slope=0.01): return self._unary("leaky_relu", negative_slope)
    def gelu_tanh(self): return self._unary("gelu_tanh")
    def silu(self): return self._unary("silu")
    def elu(self, alpha=1.0): return self._unary("elu", alpha)
    def selu(self): return self._unary("selu")
    def softplus(self, beta=1.0, threshold=20.0): return self._unary("softplus", beta, threshold)
    def mish(self): return self._unary("mish")
    def hardswish(self): return self._unary("hardswish")
    def hardsigmoid(self): return self._unary("hardsigmoid")

    def pow(self, exponent):
        if isinstance(exponent, ElementwiseOps):
            return self._binary_or_raise(exponent, "pow")
        if not isinstance(exponent, numbers.Real):
            raise TypeError(f"pow: exponent must be a number or a tensor, got {type(exponent).__name__}")
        return self._unary("pow_scalar", exponent)

    def clamp(self, min_val=None, max_val=None, *, min=None, max=None):
        lo = min if min_val is None else min_val
        hi = max if max_val is None else max_val
        for v, nm in ((lo, "min"), (hi, "max")):
            if v is not None and not _is_real(v):
                raise TypeError(f"clamp: {nm} must be a number or None, got {type(v).__name__}")
        return self._unary("clamp", -np.inf if lo is None else lo, np.inf if hi is None else hi)

    clip = clamp

    def affine(self, scale, shift=0.0):
        """scale * self + shift in one launch."""
        return self._unary("affine", scale, shift)

    # gradient helpers used by autograd: self is the incoming gradient
    def relu_grad(self, saved_input): return self._binary_or_raise(saved_input, "relu_grad")
    def tanh_grad(self, saved_output): return self._binary_or_raise(saved_output, "tanh_grad")
    def sigmoid_grad(self, saved_output): return self._binary_or_raise(saved_output, "sigmoid_grad")
    def sign_mul(self, saved_input): return self._binary_or_raise(saved_input, "sign_mul")

    def clamp_grad(self, saved_input, min_val=None, max_val=None):
        """self where min < x < max strictly (the course's Clamp gradient), else 0; None = unbounded."""
        lo = -np.inf if min_val is None else min_val
        hi = np.inf if max_val is None else max_val
        return self._binary(saved_input, "clamp_grad", lo, hi)

    def leaky_relu_grad(self, saved_input, negative_slope=0.01):
        return self._binary(saved_input, "leaky_relu_grad", negative_slope, 0.0)
    def gelu_grad(self, saved_input): return self._binary_or_raise(saved_input, "gelu_grad")
    def gelu_tanh_grad(self, saved_input): return self._binary_or_raise(saved_input, "gelu_tanh_grad")
    def silu_grad(self, saved_input): return self._binary_or_raise(saved_input, "silu_grad")
    def elu_grad(self, saved_input, alpha=1.0): return self._binary(saved_input, "elu_grad", alpha, 0.0)
    def selu_grad(self, saved_input): return self._binary_or_raise(saved_input, "selu_grad")
    def softplus_grad(self, saved_input, beta=1.0, threshold=20.0):
        return self._binary(saved_input, "softplus_grad", beta, threshold)
    def mish_grad(self, saved_input): return self._binary_or_raise(saved_input, "mish_grad")
    def hardswish_grad(self, saved_input): return self._binary_or_raise(saved_input, "hardswish_grad")
    def hardsigmoid_grad(self, saved_input): return self._binary_or_raise(saved_input, "hardsigmoid_grad")

    def where(self, condition, other):
        """torch.where(condition, self, other)."""
        return where(condition, self, other)


def where(condition, a, b):
    """Elementwise `a if condition != 0 else b`; a and b may be tensors or numbers, all broadcast."""
    ref = next((t for t in (a, b, condition) if isinstance(t, ElementwiseOps)), None)
    if ref is None:
        raise TypeError("where: at least one argument must be a tensor")
    cond, a, b = (t if isinstance(t, ElementwiseOps) else ref._scalar(t) for t in (condition, a, b))
    dtype = a.dtype if a.dtype == b.dtype else np.dtype(np.float64)
    cond, a, b = (t.to(dtype) for t in (cond, a, b))
    shape = broadcast_shapes(cond._shape, a._shape, b._shape, op="where")
    out = ref._empty(shape, dtype)
    n = out._numel
    if n:
        meta = kernel_meta(shape, *(broadcast_strides(t._shape, t._strides, shape) for t in (cond, a, b)))
        backend.launch(backend.kernel("elementwise", "where_s", dtype), n, out, cond, a, b, n, *meta)
    return out


def _promote(a, b):
    wide = np.dtype(np.float64)
    return a.to(wide), b.to(wide)
