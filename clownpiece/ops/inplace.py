"""In-place elementwise ops on TensorBase with PyTorch's signatures: add_(other, alpha=1),
sub_(other, alpha=1), mul_, div_, pow_, neg_, clamp_(min, max), exp_, log_, sqrt_, abs_, relu_. (fill_,
zero_, copy_ live with the copies in shape.py; masked_fill_ and index_put_ with the indexing ops.)

Each one writes through self's view with one launch and no temporary: a contiguous target runs the op
table's NAME_c / NAME_cs kernel with the output aliased to the input, any other view the NAME_i / NAME_is
form that cl_kernels/elementwise.cl makes when built with -DINPLACE (a second program, built the first time
a strided target is written). The right operand broadcasts to self's shape; one that would make the result
bigger raises, as in PyTorch. A right operand of another dtype is combined in the promoted dtype and the
result cast into self (two launches). Every call bumps the storage's version counter (autograd checks it).
With autograd, clownpiece/autograd/functions/inplace.py records these ops into the graph."""
from __future__ import annotations

import numbers
from typing import Literal, Optional

from .. import backend
from .._layout import ShapeError, broadcast_shapes, broadcast_strides, kernel_meta
from .._types import TensorOrScalar, TensorT
from .elementwise import _is_real

_INPLACE = ("INPLACE",)  # the defines of the program holding the strided in-place kernels


def _check_number(v, op, what):
    if not _is_real(v) or isinstance(v, bool):
        raise TypeError(f"{op}: {what} must be a number, got {type(v).__name__}")


class InplaceOps:
    __slots__ = ()

    # ---- launch helpers -------------------------------------------------------------------------
    def _inplace_unary(self, name, op, p0=0.0, p1=0.0):
        """self = NAME(self) with the unary op's parameters p0, p1."""
        self._check_inplace(op)
        self._check_writable(op)
        self._storage._version += 1
        n = self._numel
        if n:
            if self._contig:
                backend.launch(backend.kernel("elementwise", name + "_c", self.dtype), n, self, self, n, p0, p1)
            else:
                backend.launch(backend.kernel("elementwise", name + "_i", self.dtype, _INPLACE), n, self, n, p0,
                               p1, *kernel_meta(self._shape, self._strides))
        return self

    def _inplace_binary(self, other, name, op, params=()):
        """self = self NAME other; `params` (two numbers) go to a BINARY_P op (add_scaled)."""
        self._check_inplace(op, other)
        if isinstance(other, InplaceOps):
            if other._shape != self._shape:
                shape = broadcast_shapes(self._shape, other._shape, op=op)
                if shape != self._shape:
                    raise ShapeError(f"{op}: output with shape {self.shape} doesn't match the broadcast shape "
                                     f"{list(shape)}")
            self._check_writable(op)
            if other.dtype != self.dtype:  # computed in the promoted dtype, then cast into self
                result = self._binary(other, name, *params)
                self._storage._version += 1
                return self._assign_from(result)
            other = self._unaliased(other)
            self._storage._version += 1
            n = self._numel
            if n:
                if self._contig and other._contig and other._shape == self._shape:
                    backend.launch(backend.kernel("elementwise", name + "_c", self.dtype), n, self, self, other, n,
                                   *params)
                else:
                    meta = kernel_meta(self._shape, self._strides,
                                       broadcast_strides(other._shape, other._strides, self._shape))
                    backend.launch(backend.kernel("elementwise", name + "_i", self.dtype, _INPLACE), n, self, other,
                                   n, *params, *meta)
            return self
        if params or not (_is_real(other) or isinstance(other, numbers.Number) and not isinstance(other, complex)):
            raise TypeError(f"{op}: expected a tensor or a number, got {type(other).__name__}")
        self._check_writable(op)
        self._storage._version += 1
        n = self._numel
        if n:
            if self._contig:
                backend.launch(backend.kernel("elementwise", name + "_cs", self.dtype), n, self, self, other, n)
            else:
                backend.launch(backend.kernel("elementwise", name + "_is", self.dtype, _INPLACE), n, self, other, n,
                               *kernel_meta(self._shape, self._strides))
        return self

    # ---- arithmetic -----------------------------------------------------------------------------
    def add_(self: TensorT, other: TensorOrScalar, alpha: float = 1) -> TensorT:
        """self += alpha * other (other a tensor broadcastable to self's shape, or a number)."""
        _check_number(alpha, "add_", "alpha")
        if alpha == 1:
            return self._inplace_binary(other, "add", "add_")
        if isinstance(other, InplaceOps):
            return self._inplace_binary(other, "add_scaled", "add_", (alpha, 0.0))
        _check_number(other, "add_", "other")
        return self._inplace_binary(other * alpha, "add", "add_")

    def sub_(self: TensorT, other: TensorOrScalar, alpha: float = 1) -> TensorT:
        """self -= alpha * other."""
        _check_number(alpha, "sub_", "alpha")
        if alpha == 1:
            return self._inplace_binary(other, "sub", "sub_")
        if isinstance(other, InplaceOps):
            return self._inplace_binary(other, "add_scaled", "sub_", (-alpha, 0.0))
        _check_number(other, "sub_", "other")
        return self._inplace_binary(other * alpha, "sub", "sub_")

    def mul_(self: TensorT, other: TensorOrScalar) -> TensorT:
        return self._inplace_binary(other, "mul", "mul_")

    def div_(self: TensorT, other: TensorOrScalar, *,
             rounding_mode: Optional[Literal["trunc", "floor"]] = None) -> TensorT:
        if rounding_mode is not None:
            raise ValueError(f"div_: rounding_mode={rounding_mode!r} is not supported; only true division "
                             f"(rounding_mode=None)")
        return self._inplace_binary(other, "div", "div_")

    def pow_(self: TensorT, exponent: TensorOrScalar) -> TensorT:
        if isinstance(exponent, InplaceOps):
            return self._inplace_binary(exponent, "pow", "pow_")
        _check_number(exponent, "pow_", "exponent")
        return self._inplace_unary("pow_scalar", "pow_", exponent)

    # ---- unary ----------------------------------------------------------------------------------
    def neg_(self: TensorT) -> TensorT: return self._inplace_unary("neg", "neg_")
    def exp_(self: TensorT) -> TensorT: return self._inplace_unary("exp", "exp_")
    def log_(self: TensorT) -> TensorT: return self._inplace_unary("log", "log_")
    def sqrt_(self: TensorT) -> TensorT: return self._inplace_unary("sqrt", "sqrt_")
    def abs_(self: TensorT) -> TensorT: return self._inplace_unary("abs", "abs_")
    def relu_(self: TensorT) -> TensorT: return self._inplace_unary("relu", "relu_")

    def clamp_(self: TensorT, min_val: Optional[float] = None, max_val: Optional[float] = None, *,
               min: Optional[float] = None, max: Optional[float] = None) -> TensorT:
        """clamp(min, max) in place; either bound may be None (min=/max= keywords too)."""
        lo = min if min_val is None else min_val
        hi = max if max_val is None else max_val
        for v, nm in ((lo, "min"), (hi, "max")):
            if v is not None:
                _check_number(v, "clamp_", nm)
        return self._inplace_unary("clamp", "clamp_", -float("inf") if lo is None else lo,
                                   float("inf") if hi is None else hi)

    clip_ = clamp_
