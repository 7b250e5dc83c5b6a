"""Vector norms on TensorBase (the raw ops behind Tensor.norm, clownpiece.norm and
clownpiece.linalg.vector_norm): reductions and elementwise kernels of their families, which fusion runs as
few launches. The gradient (autograd/functions/linalg.py) is written out, so a zero vector gets PyTorch's
zero gradient rather than 0 / 0."""
from __future__ import annotations

import math
import numbers
from typing import Union

from .._layout import normalize_dims
from .._types import DimLike, DTypeLike, TensorT


def norm_order(ord, op):
    """ord as a float (inf allowed); 'fro' is 2. 'nuc' and other strings raise."""
    if isinstance(ord, str):
        if ord == "fro":
            return 2.0
        raise ValueError(f"{op}: ord/p {ord!r} is not a vector norm (expected a number, inf, -inf or 'fro'; "
                         f"'nuc' needs singular values, which clownpiece does not compute)")
    if not isinstance(ord, numbers.Real) or isinstance(ord, bool):
        raise TypeError(f"{op}: ord must be a number, got {type(ord).__name__}")
    return float(ord)


class LinalgOps:
    __slots__ = ()

    def _vector_norm(self, ord=2, dim=None, keepdim=False, dtype=None):
        """(sum |x|^ord)^(1/ord) over dim (None or []: all dims); ord inf / -inf: max / min of |x|; ord 0:
        the count of nonzero elements."""
        p = norm_order(ord, "vector_norm")
        x = self if dtype is None else self.to(dtype)
        if isinstance(dim, (list, tuple)) and not dim:
            dim = None
        dims = list(normalize_dims(dim, x.dim(), "vector_norm")) if x._shape else None
        if x._numel == 0 and p < 0 or (x._numel == 0 and math.isinf(p) and dims is not None
                                       and any(x._shape[d] == 0 for d in dims)):
            raise RuntimeError(f"vector_norm: the {ord}-norm of an empty dim is undefined (input shape "
                               f"{x.shape})")
        a = x.abs()
        if p == math.inf:
            return a.amax(dims, keepdim)
        if p == -math.inf:
            return a.amin(dims, keepdim)
        if p == 0:
            return (a != 0).to(x.dtype).sum(dims, keepdim)
        if p == 1:
            return a.sum(dims, keepdim)
        if p == 2:
            return (x * x).sum(dims, keepdim).sqrt()
        return a.pow(p).sum(dims, keepdim).pow(1.0 / p)

    def norm(self: TensorT, p: Union[float, str, None] = "fro", dim: DimLike = None, keepdim: bool = False,
             dtype: DTypeLike = None) -> TensorT:
        """PyTorch's Tensor.norm for vector norms: p a number, inf, -inf or 'fro' (the 2-norm over dim)."""
        return self._vector_norm(p, dim, keepdim, dtype)
