"""Gradients of the reductions and softmax family (clownpiece/ops/reduce.py). A reduction's gradient is
broadcast back to the input's shape as a view (no copy); the softmax family has fused gradient kernels."""
from ..._layout import normalize_dim, numel
from ...ops.reduce import _keep
from ..autograd import zeros
from ..formula import Op, Row
from ..methods import differentiable


def _kept_shape(shape, dim):
    """Input shape with the reduced dims set to 1 (dim: None/[] = all, an int, or a list)."""
    if dim is None or (isinstance(dim, (list, tuple)) and not dim):
        return (1,) * len(shape)
    dims = dim if isinstance(dim, (list, tuple)) else (dim,)
    nd = len(shape)
    if nd == 0:
        return ()
    dims = {normalize_dim(d, nd) for d in dims}
    return tuple(1 if i in dims else s for i, s in enumerate(shape))


def _unreduce(grad, shape, dim):
    """Broadcast a reduction's gradient back to the input shape (a view)."""
    kept = _kept_shape(shape, dim)
    if grad._shape != kept:
        grad = grad.reshape(kept)
    return grad.broadcast_to(shape)


def _mean_grad(grad, shape, dim):
    n = numel(shape) // max(numel(_kept_shape(shape, dim)), 1)
    return _unreduce(grad.affine(1.0 / n) if n else grad, shape, dim)


def _var_grad(x, grad_var, dim, unbiased):
    """d var / dx = 2 (x - mean) / (n - 1) (or / n when biased)."""
    kept = _kept_shape(x._shape, dim)
    n = x._numel // max(numel(kept), 1)
    centered = x - x.mean(dim, True)
    return centered * grad_var.reshape(kept).affine(2.0 / (n - 1 if unbiased else n))


def _amax_grad(grad, x, result, dim):
    """Values only, any dims: ties share the gradient evenly (PyTorch's amax rule)."""
    kept = _kept_shape(x._shape, dim)
    hit = x == result.reshape(kept)
    return hit * (grad.reshape(kept) / hit.sum(dim, True))


def _logsumexp_grad(grad, x, dim):
    """d logsumexp / dx = softmax(x) along dim."""
    if not x._shape:
        return grad
    return x.softmax(dim) * grad.reshape(_kept_shape(x._shape, dim))


GRADIENTS = [
    # Function       Tensor methods   gradient of each input
    # (sum/mean with dtype= compute in that dtype; the gradient goes back in the input's)
    Row("Sum",       "sum",
        self=lambda grad, self_shape, self_dtype, dim: _unreduce(grad.to(self_dtype), self_shape, dim)),
    Row("Mean",      "mean",
        self=lambda grad, self_shape, self_dtype, dim: _mean_grad(grad.to(self_dtype), self_shape, dim)),
    Row("SumTo",     "sum_to",        self=lambda grad, self_shape: grad.broadcast_to(self_shape)),
    Row("Var",       "var",           self=lambda grad, self, dim, unbiased: _var_grad(self, grad, dim, unbiased)),
    Row("Std",       "std",           # std = sqrt(var): d std = d var / (2 std)
        self=lambda grad, self, result, dim, unbiased: _var_grad(self, (grad / result).affine(0.5), dim, unbiased)),
    Row("Amax",      "amax",          self=lambda grad, self, result, dim: _amax_grad(grad, self, result, dim)),
    Row("Amin",      "amin",          self=lambda grad, self, result, dim: _amax_grad(grad, self, result, dim)),
    Row("Softmax",   "softmax",       self=lambda grad, result, dim: grad.softmax_grad(result, dim)),
    Row("LogSoftmax", "log_softmax",  self=lambda grad, result, dim: grad.log_softmax_grad(result, dim)),
    Row("LogSumExp", "logsumexp",     self=lambda grad, self, dim: _logsumexp_grad(grad, self, dim)),
]


@differentiable("max")
class Max(Op):
    """(values, indices) along one dim: the gradient goes to the first maximal element (the index the
    forward returned), scattered into zeros of the input's shape. Two outputs, so a class, not a row."""
    materialize_grads = False
    _kind = "max"

    @classmethod
    def forward(cls, ctx, x, dim=-1, keepdims=False, *, keepdim=None):
        values, indices = getattr(x, cls._kind)(dim, _keep(keepdims, keepdim))
        ctx.shape, ctx.dtype = x._shape, x.dtype
        ctx.dim = -1 if dim is None else (dim[0] if isinstance(dim, (list, tuple)) else dim)
        ctx.save_for_backward(indices)
        return values, indices

    @staticmethod
    def backward(ctx, g_values, g_indices=None):
        indices, = ctx.saved_tensors
        if not ctx.shape:
            return g_values
        return zeros(ctx.shape, ctx.dtype).scatter_(ctx.dim, indices, g_values)


@differentiable("min")
class Min(Max):
    _kind = "min"
