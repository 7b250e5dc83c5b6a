"""The gradient of the vector norms (clownpiece/ops/linalg.py), written out as PyTorch's: a zero norm gets a
zero gradient, and the inf-norms share it evenly among the tied extremes."""
import math

from ...ops.linalg import norm_order
from ..formula import Op
from ..methods import differentiable
from .reduce import _kept_shape


@differentiable("norm _vector_norm")
class VectorNorm(Op):
    @classmethod
    def record(cls, x, p="fro", dim=None, keepdim=False, dtype=None):
        return cls()._record(x, p, dim, keepdim, dtype)

    @staticmethod
    def forward(ctx, x, p="fro", dim=None, keepdim=False, dtype=None):
        out = x._vector_norm(p, dim, keepdim, dtype)
        ctx.p, ctx.dim, ctx.in_dtype = norm_order(p, "norm"), dim, x.dtype
        ctx.save_for_backward(x if dtype is None else x.to(dtype), out)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, out = ctx.saved_tensors
        dim = None if isinstance(ctx.dim, (list, tuple)) and not ctx.dim else ctx.dim
        kept = _kept_shape(x._shape, dim)
        g, n = grad.reshape(kept), out.reshape(kept)
        p = ctx.p
        if p == 0:
            dx = x * 0.0
        elif p == 1:
            dx = g * x.sign()
        elif math.isinf(p):
            hit = (x.abs() == n).to(x.dtype)
            dx = g * x.sign() * hit / hit.sum(dim, True)
        elif p == 2:
            dx = g * x / n.where(n != 0, 1.0) * (n != 0).to(x.dtype)
        else:  # d/dx (sum |x|^p)^(1/p) = sign(x) |x|^(p-1) / n^(p-1); not x |x|^(p-2), which is 0 * inf at 0
            safe = n.where(n != 0, 1.0)
            dx = g * x.sign() * (x.abs() / safe).pow(p - 1) * (n != 0).to(x.dtype)
        return dx.to(ctx.in_dtype)
